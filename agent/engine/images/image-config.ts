import { z } from "zod";
import { invalidArgument } from "../errors.ts";

/**
 * The image config document (OCI image-spec "config", identical in Docker schema2).
 * Unknown keys are kept so a config round-trips byte-for-byte through save/load/push
 * (we never re-serialise a stored config; we only read it).
 */
const Digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, "invalid digest");

export const ContainerConfigSchema = z
  .object({
    User: z.string().optional(),
    ExposedPorts: z.record(z.string(), z.object({}).passthrough()).nullish(),
    Env: z.array(z.string()).nullish(),
    Entrypoint: z.array(z.string()).nullish(),
    Cmd: z.array(z.string()).nullish(),
    Volumes: z.record(z.string(), z.object({}).passthrough()).nullish(),
    WorkingDir: z.string().optional(),
    Labels: z.record(z.string(), z.string()).nullish(),
    StopSignal: z.string().optional(),
    ArgsEscaped: z.boolean().optional(),
    Healthcheck: z.unknown().optional(),
    OnBuild: z.array(z.string()).nullish(),
    Shell: z.array(z.string()).nullish(),
  })
  .passthrough();

export const HistoryEntrySchema = z
  .object({
    created: z.string().optional(),
    created_by: z.string().optional(),
    author: z.string().optional(),
    comment: z.string().optional(),
    empty_layer: z.boolean().optional(),
  })
  .passthrough();

export const ImageConfigSchema = z
  .object({
    architecture: z.string().optional(),
    os: z.string().optional(),
    variant: z.string().optional(),
    created: z.string().optional(),
    author: z.string().optional(),
    docker_version: z.string().optional(),
    comment: z.string().optional(),
    config: ContainerConfigSchema.nullish(),
    container_config: ContainerConfigSchema.nullish(),
    rootfs: z.object({ type: z.literal("layers"), diff_ids: z.array(Digest) }),
    history: z.array(HistoryEntrySchema).nullish(),
  })
  .passthrough();

export type ContainerConfig = z.infer<typeof ContainerConfigSchema>;
export type HistoryEntry = z.infer<typeof HistoryEntrySchema>;
export type ImageConfig = z.infer<typeof ImageConfigSchema>;

/** @throws InvalidArgument naming what is wrong with the document */
export function parseImageConfig(bytes: Uint8Array, where: string): ImageConfig {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch (e) {
    throw invalidArgument(`${where}: image config is not valid JSON: ${(e as Error).message}`);
  }
  const r = ImageConfigSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw invalidArgument(`${where}: invalid image config: ${issue?.path.join(".")}: ${issue?.message}`);
  }
  return r.data;
}
