import { z } from "zod";
import { CreateOptionsSchema, MountSpecSchema, NetworkAttachmentSchema, PortBindingSchema } from "../../../shared/container-options.ts";

/**
 * What the engine keeps about one container: the options it was created with (the
 * engine's own vocabulary, translated from the Docker API by the door), its state,
 * and what it was given at start (network endpoints, mounts). One JSON file per
 * container, replaced atomically.
 */

export const ContainerStatusSchema = z.enum(["created", "running", "paused", "restarting", "removing", "exited", "dead"]);
export type ContainerStatus = z.infer<typeof ContainerStatusSchema>;

// The create options are shared with the console link (shared/container-options.ts).
export {
  CreateOptionsSchema,
  DeviceMappingSchema,
  MountSpecSchema,
  NetworkAttachmentSchema,
  PortBindingSchema,
  RestartPolicySchema,
} from "../../../shared/container-options.ts";
export type {
  ContainerOptions,
  CreateOptions,
  DeviceMappingSpec,
  HealthcheckSpec,
  MountSpec,
  NetworkAttachment,
  PortSpec,
  RestartPolicy,
} from "../../../shared/container-options.ts";

/** One run of a health check (Docker's HealthcheckResult); times are ISO 8601. */
export const HealthResultSchema = z.object({
  start: z.string(),
  end: z.string(),
  exitCode: z.number().int(),
  output: z.string(),
});
export type HealthResult = z.infer<typeof HealthResultSchema>;

export const HealthStatusSchema = z.enum(["starting", "healthy", "unhealthy"]);
export type HealthStatus = z.infer<typeof HealthStatusSchema>;

/** Docker's State.Health: present once a container with a health check has started. */
export const HealthStateSchema = z.object({
  status: HealthStatusSchema,
  failingStreak: z.number().int().default(0),
  /** The last results, oldest first. */
  log: z.array(HealthResultSchema).default([]),
});
export type HealthState = z.infer<typeof HealthStateSchema>;

export const ContainerStateSchema = z.object({
  status: ContainerStatusSchema,
  pid: z.number().int().default(0),
  exitCode: z.number().int().default(0),
  error: z.string().default(""),
  oomKilled: z.boolean().default(false),
  startedAt: z.string().default("0001-01-01T00:00:00Z"),
  finishedAt: z.string().default("0001-01-01T00:00:00Z"),
  restartCount: z.number().int().default(0),
  /** Set by `docker stop`/`kill` so restart policies do not bring the container back. */
  stoppedByUser: z.boolean().default(false),
  health: HealthStateSchema.optional(),
});
export type ContainerState = z.infer<typeof ContainerStateSchema>;

export const EndpointSchema = z.object({
  networkId: z.string(),
  networkName: z.string(),
  ipAddress: z.string(),
  prefixLen: z.number(),
  gateway: z.string(),
  macAddress: z.string(),
  aliases: z.array(z.string()),
  ipv6Address: z.string().optional(),
  ipv6PrefixLen: z.number().optional(),
  ipv6Gateway: z.string().optional(),
});
export type Endpoint = z.infer<typeof EndpointSchema>;

export const ContainerRecordSchema = z.object({
  id: z.string(),
  name: z.string(),
  created: z.string(),
  /** Image ID (config digest) and the name it was created from. */
  imageId: z.string(),
  imageName: z.string(),
  /** Top layer chain of the image: the snapshot's parent. */
  imageChainId: z.string().optional(),
  options: CreateOptionsSchema,
  /** The resolved command line: what `docker ps` shows. */
  path: z.string(),
  args: z.array(z.string()),
  state: ContainerStateSchema,
  /** What is running: one per network joined at start or by connect (empty while not running). */
  endpoints: z.array(EndpointSchema).default([]),
  /**
   * The networks the container joins at start, with their settings: changed by `network
   * connect`/`disconnect`, also while it is not running (Docker's NetworkSettings.Networks).
   * Absent in records of older agents: derived from the create options.
   */
  networks: z.array(NetworkAttachmentSchema).optional(),
  /** Published ports with host ports resolved (while running). */
  publishedPorts: z.array(PortBindingSchema).default([]),
  mounts: z.array(MountSpecSchema).default([]),
});
export type ContainerRecord = z.infer<typeof ContainerRecordSchema>;
