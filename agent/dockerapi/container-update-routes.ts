/**
 * `docker update` (POST /containers/{id}/update), legacy links removal
 * (DELETE /containers/{name}/{link}) and `GET /distribution/{name}/json`.
 */
import { z } from "zod";
import { invalidArgument, notFound } from "../engine/errors.ts";
import type { ContainerUpdate } from "../engine/containers/update.ts";
import { parseNormalizedReference } from "../../shared/reference.ts";
import { credentialsFromHeader } from "./registry-auth.ts";
import { clientGone, readJsonBody, sendJson, type Router } from "./router.ts";
import { parseDockerBody, UpdateBodySchema } from "./schemas.ts";
import type { Engine } from "../engine/engine.ts";

/** Fields Berth has no equivalent for: refused when set, ignored at their zero value (the CLI sends every resource field, unset ones as 0). */
const UNSUPPORTED: Array<[keyof NonNullable<z.infer<typeof UpdateBodySchema>> & string, string]> = [
  ["BlkioWeight", "--blkio-weight"],
  ["CpusetMems", "--cpuset-mems"],
  ["MemoryReservation", "--memory-reservation"],
  ["KernelMemory", "--kernel-memory"],
  ["CpuRealtimePeriod", "--cpu-rt-period"],
  ["CpuRealtimeRuntime", "--cpu-rt-runtime"],
];

/** Docker's UpdateConfig → the engine's update; Docker's texts for what it refuses. */
export function updateFromDocker(raw: unknown): ContainerUpdate {
  const b = parseDockerBody(UpdateBodySchema, raw);
  for (const [field, flag] of UNSUPPORTED) {
    const v = b[field];
    if (v !== undefined && v !== null && v !== 0 && v !== "") throw invalidArgument(`${flag} is not supported by Berth (${field}: ${JSON.stringify(v)})`);
  }
  const u: ContainerUpdate = {};
  if (b.Memory) u.memory = b.Memory;
  if (b.MemorySwap) u.memorySwap = b.MemorySwap;
  if (b.NanoCpus) u.nanoCpus = b.NanoCpus;
  if (b.CpuShares) u.cpuShares = b.CpuShares;
  if (b.CpuQuota) u.cpuQuota = b.CpuQuota;
  if (b.CpuPeriod) u.cpuPeriod = b.CpuPeriod;
  if (b.CpusetCpus) u.cpusetCpus = b.CpusetCpus;
  if (b.PidsLimit !== undefined && b.PidsLimit !== null) u.pidsLimit = b.PidsLimit;
  const name = b.RestartPolicy?.Name ?? "";
  if (name !== "") {
    if (name !== "no" && name !== "always" && name !== "on-failure" && name !== "unless-stopped") throw invalidArgument(`invalid restart policy '${name}'`);
    const retries = b.RestartPolicy?.MaximumRetryCount ?? 0;
    if (retries < 0) throw invalidArgument("maximum retry count cannot be negative");
    if (retries > 0 && name !== "on-failure") throw invalidArgument(`maximum retry count cannot be used with restart policy '${name}'`);
    u.restartPolicy = { name, maximumRetryCount: retries };
  }
  return u;
}

export function addContainerUpdateRoutes(router: Router, engine: Engine): void {
  router.post("/containers/{id}/update", async ({ req, res, params }) => {
    const update = updateFromDocker(await readJsonBody(req));
    const warnings = await engine.containers.update(params.id!, update);
    sendJson(res, 200, { Warnings: warnings });
  });

  // Legacy links (`docker rm --link /parent/name`): Berth makes none, so every link is
  // unknown, and Docker's answer for an unknown link is that no container has its name.
  router.delete("/containers/{name}/{link}", ({ params }) => {
    throw notFound(`No such container: ${params.name}/${params.link}`);
  });

  router.get("/distribution/{name*}/json", async (ctx) => {
    let ref;
    try {
      ref = parseNormalizedReference(ctx.params.name!);
    } catch (e) {
      throw invalidArgument((e as Error).message, e);
    }
    const { descriptor, platforms } = await engine.registry.inspectDistribution(ref, credentialsFromHeader(ctx.req), clientGone(ctx));
    sendJson(ctx.res, 200, { Descriptor: { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size }, Platforms: platforms });
  });
}
