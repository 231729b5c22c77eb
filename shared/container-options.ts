import { z } from "zod";
import { HostPathRuleSchema } from "./host-paths.ts";

/**
 * The options a container is created with, in the engine's own vocabulary: the engine
 * keeps them in each container's record, and the console link sends them as the params
 * of `container.create`. A leaf module (zod only), shared by the engine, the link
 * contract and the console.
 */

export const PortBindingSchema = z.object({
  containerPort: z.number().int(),
  protocol: z.enum(["tcp", "udp"]),
  hostIp: z.string(),
  hostPort: z.number().int(),
});
export type PortSpec = z.infer<typeof PortBindingSchema>;

export const MountSpecSchema = z.object({
  type: z.enum(["volume", "bind"]),
  /** Volume name (type volume) or absolute host path (type bind). */
  source: z.string(),
  destination: z.string(),
  readonly: z.boolean().default(false),
  /** An anonymous volume created for this container (image VOLUME or `-v /path`). */
  anonymous: z.boolean().default(false),
});
export type MountSpec = z.infer<typeof MountSpecSchema>;

export const RestartPolicySchema = z.object({
  name: z.enum(["no", "always", "on-failure", "unless-stopped"]),
  maximumRetryCount: z.number().int().nonnegative().default(0),
});
export type RestartPolicy = z.infer<typeof RestartPolicySchema>;

/** `--device`: a host device node (or a directory of them) made in the container. */
export const DeviceMappingSchema = z.object({
  pathOnHost: z.string(),
  pathInContainer: z.string(),
  cgroupPermissions: z.string().default("rwm"),
});
export type DeviceMappingSpec = z.infer<typeof DeviceMappingSchema>;

/**
 * Docker's Config.Healthcheck: `test` is ["NONE"] (no check, also none from the image),
 * ["CMD", arg…], ["CMD-SHELL", command] or [] (the image's test, with these timings).
 * Durations are nanoseconds; 0 means the image's value, else Docker's default.
 */
export const HealthcheckSchema = z.object({
  test: z.array(z.string()).default([]),
  // Out-of-range values are refused at create with Docker's texts (engine: containers/health.ts).
  interval: z.number().int().default(0),
  timeout: z.number().int().default(0),
  startPeriod: z.number().int().default(0),
  retries: z.number().int().default(0),
});
export type HealthcheckSpec = z.infer<typeof HealthcheckSchema>;

/**
 * One network a container joins and its endpoint settings (Docker's NetworkingConfig.EndpointsConfig
 * entry, `docker network connect --alias --ip`).
 */
export const NetworkAttachmentSchema = z.object({
  /** The network's name (as Docker keys NetworkSettings.Networks). */
  name: z.string(),
  aliases: z.array(z.string()).default([]),
  /** `--ip`. */
  ipv4Address: z.string().optional(),
  /** Legacy links given with the endpoint ("container:alias"); kept and shown. */
  links: z.array(z.string()).default([]),
  driverOpts: z.record(z.string(), z.string()).default({}),
  /** Set once the container has been on the network (Docker shows NetworkID from then on, also after stop). */
  networkId: z.string().optional(),
});
export type NetworkAttachment = z.infer<typeof NetworkAttachmentSchema>;

export const CreateOptionsSchema = z.object({
  name: z.string().optional(),
  image: z.string(),
  cmd: z.array(z.string()).optional(),
  entrypoint: z.union([z.array(z.string()), z.literal("")]).optional(),
  env: z.array(z.string()).default([]),
  workingDir: z.string().optional(),
  user: z.string().optional(),
  hostname: z.string().optional(),
  domainname: z.string().optional(),
  labels: z.record(z.string(), z.string()).default({}),
  tty: z.boolean().default(false),
  openStdin: z.boolean().default(false),
  stdinOnce: z.boolean().default(false),
  exposedPorts: z.array(z.string()).default([]),
  stopSignal: z.string().optional(),
  stopTimeout: z.number().int().optional(),
  networkMode: z.string().default("bridge"),
  ports: z.array(PortBindingSchema).default([]),
  publishAll: z.boolean().default(false),
  aliases: z.array(z.string()).default([]),
  /** The networks to join with their settings; absent: `networkMode` with `aliases`. */
  networks: z.array(NetworkAttachmentSchema).optional(),
  mounts: z.array(MountSpecSchema).default([]),
  /** `--add-host NAME:IP` (IP may be `host-gateway`: the default bridge's gateway, as Docker's default). */
  extraHosts: z.array(z.string()).default([]),
  /**
   * Set by the console for a request it judged against a node group's host policy (an
   * operator's): every bind source must resolve on the node, symbolic links followed, inside
   * one of these prefixes, or the create (and each later start) is refused. Unset: no
   * confinement (admins, the local Docker socket).
   */
  hostPathRules: z.array(HostPathRuleSchema).optional(),
  restartPolicy: RestartPolicySchema.default({ name: "no", maximumRetryCount: 0 }),
  autoRemove: z.boolean().default(false),
  memory: z.number().int().nonnegative().default(0),
  memorySwap: z.number().int().default(0),
  /** Negative values are refused with Docker's message when the runtime spec is built (create). */
  nanoCpus: z.number().int().default(0),
  cpuShares: z.number().int().nonnegative().default(0),
  /** `--cpu-quota`/`--cpu-period` in microseconds (0: unset); `nanoCpus` excludes them. */
  cpuQuota: z.number().int().default(0),
  cpuPeriod: z.number().int().nonnegative().default(0),
  cpusetCpus: z.string().default(""),
  pidsLimit: z.number().int().optional(),
  readonlyRootfs: z.boolean().default(false),
  capAdd: z.array(z.string()).default([]),
  capDrop: z.array(z.string()).default([]),
  noNewPrivileges: z.boolean().default(false),
  /** `--privileged`: every capability and device, no seccomp, writable /sys (Docker's meaning). */
  privileged: z.boolean().default(false),
  /** `--security-opt` as given (inspect shows it); what it means is in the fields beside it. */
  securityOpt: z.array(z.string()).default([]),
  /** `--security-opt seccomp=`: absent for Docker's default profile, "unconfined", or a profile's JSON. */
  seccompProfile: z.string().optional(),
  /** `--pid`: "" (a PID namespace of its own), "host", or "container:<id or name>". */
  pidMode: z.string().default(""),
  /** `--ipc`: "" or "private" (its own), "none" (own, without /dev/shm), "host". */
  ipcMode: z.string().default(""),
  /** `--uts`: "" (its own) or "host". */
  utsMode: z.string().default(""),
  /** `--cgroupns`: Docker's default on cgroup v1 hosts is the host's. */
  cgroupns: z.enum(["host", "private"]).default("host"),
  devices: z.array(DeviceMappingSchema).default([]),
  /** `--device-cgroup-rule`, e.g. "c 10:237 rw". */
  deviceCgroupRules: z.array(z.string()).default([]),
  sysctls: z.record(z.string(), z.string()).default({}),
  /** HostConfig.MaskedPaths/ReadonlyPaths; absent: Docker's defaults. */
  maskedPaths: z.array(z.string()).optional(),
  readonlyPaths: z.array(z.string()).optional(),
  shmSize: z.number().int().nonnegative().default(0),
  consoleSize: z.object({ height: z.number(), width: z.number() }).optional(),
  /** `--health-*` / `--no-healthcheck`; absent: the image's HEALTHCHECK, if any. */
  healthcheck: HealthcheckSchema.optional(),
  /** Config.AttachStdin/Stdout/Stderr as the client sent them (inspect shows them; attaching is per request). */
  attachStdin: z.boolean().default(false),
  attachStdout: z.boolean().default(false),
  attachStderr: z.boolean().default(false),
  /** `--init`: Docker's docker-init (the host's tini) runs as PID 1 and starts the command. */
  init: z.boolean().default(false),
  /** `--group-add`: group names (looked up in the container's /etc/group at start) or numeric IDs. */
  groupAdd: z.array(z.string()).default([]),
  /** `--log-driver` and `--log-opt`; Docker's default driver is json-file. */
  logConfig: z.object({ type: z.string(), config: z.record(z.string(), z.string()).default({}) }).default({ type: "json-file", config: {} }),
  /** `--tmpfs`: mount point → mount options ("" for the defaults). */
  tmpfs: z.record(z.string(), z.string()).default({}),
  /** `--volumes-from`: "container[:ro|:rw]", resolved into `mounts` at create and kept for inspect. */
  volumesFrom: z.array(z.string()).default([]),
  /** `--runtime`: "" is the agent's runtime (its --runtime setting); another is refused, naming why. */
  runtime: z.string().default(""),
  /** `--isolation`: "" or "default" (Linux has no other). */
  isolation: z.string().default(""),
  /** `--memory-swappiness` (0-100); absent: the kernel's. */
  memorySwappiness: z.number().int().optional(),
  /** `--oom-kill-disable`. */
  oomKillDisable: z.boolean().default(false),
  /** `--volume-driver`: "" or "local". */
  volumeDriver: z.string().default(""),
  /** `--mac-address`: the MAC of the container's interface ("" for a generated one). */
  macAddress: z.string().default(""),
  /** `--dns`, `--dns-search`, `--dns-option`: the container's resolv.conf (see network/hosts.ts renderResolvConf). */
  dns: z.array(z.string()).default([]),
  dnsSearch: z.array(z.string()).default([]),
  dnsOptions: z.array(z.string()).default([]),
  /** `--link NAME[:ALIAS]` on the default bridge (HostConfig.Links): a hosts entry and Docker's legacy variables. */
  links: z.array(z.string()).default([]),
});
export type CreateOptions = z.input<typeof CreateOptionsSchema>;
export type ContainerOptions = z.infer<typeof CreateOptionsSchema>;
