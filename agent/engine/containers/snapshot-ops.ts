import { randomBytes } from "node:crypto";
import { realpath } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import type { Writable } from "node:stream";
import { applyChanges } from "../images/changes.ts";
import { diffUpper, type Change } from "../archive/upper-diff.ts";
import { upperToLayerTar } from "../archive/layer-tar.ts";
import { rootfsTar } from "../archive/rootfs-tar.ts";
import { teeStream } from "../streams.ts";
import { containerEnv } from "../../../shared/env.ts";
import { bestEffort } from "../../../shared/best-effort.ts";
import { familiarString, parseNormalizedReference, withDefaultTag } from "../../../shared/reference.ts";
import type { ContainerRecord } from "./container-record.ts";
import type { ContainerCore } from "./container-core.ts";
import { effectiveHealthcheck, healthcheckToDocker } from "./health.ts";
import { BIND_TARGETS } from "./run-options.ts";

/**
 * A container's filesystem as a whole: its root mounted for a moment (`docker cp`, export),
 * its writable layer (size, diff) and that layer as a new image (commit).
 */
export class ContainerSnapshotOps {
  constructor(private readonly core: ContainerCore) {}

  /**
   * Runs `fn` with the container's root filesystem mounted (it is mounted already while
   * running). The mount is shared: a start or another operation meanwhile keeps it.
   */
  async withRootfs<T>(idOrName: string, fn: (rootfs: string, record: ContainerRecord) => Promise<T>): Promise<T> {
    const record = this.core.get(idOrName);
    const p = this.core.paths(record.id);
    const holder = randomBytes(8).toString("hex");
    await this.core.rootfsMounts.acquire(record.id, p.rootfs, holder);
    try {
      return await fn(p.rootfs, record);
    } finally {
      await this.core.rootfsMounts.release(record.id, p.rootfs, holder).catch(bestEffort(this.core.deps.logger, `unmount the root of ${record.id}`));
    }
  }

  async upperDir(idOrName: string): Promise<string> {
    return this.core.deps.snapshots.upperDir(this.core.get(idOrName).id);
  }

  /** Absolute lower dirs of the container's image, topmost first. */
  async lowerDirs(idOrName: string): Promise<string[]> {
    const record = this.core.get(idOrName);
    if (!record.imageChainId) return [];
    const { cwd, lowers } = await this.core.deps.layers.lowerDirs(record.imageChainId);
    // The short links are symlinks; the diff walks real directories without following any.
    return Promise.all(lowers.map((l) => realpath(join(cwd, l))));
  }

  /** Bytes in the container's writable layer. */
  async sizeRw(idOrName: string): Promise<number> {
    return (await this.core.deps.snapshots.usage(this.core.get(idOrName).id).catch(() => ({ size: 0 }))).size;
  }

  /** `docker diff`: changes of the writable layer against the image. */
  async diff(idOrName: string): Promise<Change[]> {
    const record = this.core.get(idOrName);
    return diffUpper(await this.upperDir(record.id), await this.lowerDirs(record.id), { exclude: BIND_TARGETS });
  }

  /** `docker export`: the container's merged filesystem as a tar. */
  async exportTo(idOrName: string, out: NodeJS.WritableStream): Promise<void> {
    await this.withRootfs(idOrName, (rootfs) => pipeline(rootfsTar(rootfs), out as Writable));
  }

  /**
   * `docker commit`: the writable layer becomes a new layer on top of the image; the
   * new config is the container's (command, env, ports…) with `changes` applied, and a
   * history entry records author and message.
   */
  async commit(
    idOrName: string,
    opts: {
      reference?: string;
      author?: string;
      comment?: string;
      changes?: string[];
      pause?: boolean;
      config?: { Cmd?: string[]; Entrypoint?: string[]; Env?: string[]; Labels?: Record<string, string> };
    },
  ): Promise<string> {
    const record = this.core.get(idOrName);
    const { images, layers, runc } = this.core.deps;
    const { content, store } = this.core.deps.imageStores;
    const ref = opts.reference ? withDefaultTag(parseNormalizedReference(opts.reference)) : undefined;
    const base = await images.config(record.imageId);
    const baseRecord = store.get(record.imageId);
    const containerConfig = applyChanges(
      {
        ...(base.config ?? {}),
        Env: containerEnv(base.config?.Env, record.options.env),
        Cmd: record.options.cmd?.length ? record.options.cmd : record.options.entrypoint !== undefined ? [] : base.config?.Cmd,
        Entrypoint: record.options.entrypoint === "" ? null : (record.options.entrypoint ?? base.config?.Entrypoint),
        WorkingDir: record.options.workingDir ?? base.config?.WorkingDir,
        User: record.options.user ?? base.config?.User,
        Labels: { ...(base.config?.Labels ?? {}), ...record.options.labels },
        ...(record.options.healthcheck
          ? { Healthcheck: healthcheckToDocker(effectiveHealthcheck(base.config?.Healthcheck, record.options.healthcheck)!) }
          : {}),
        ...(opts.config?.Cmd ? { Cmd: opts.config.Cmd } : {}),
        ...(opts.config?.Entrypoint ? { Entrypoint: opts.config.Entrypoint } : {}),
      },
      opts.changes ?? [],
    );
    // As Docker: a running container is paused while its layer is read (consistent files), and
    // resumed after, also when the commit fails.
    const paused = opts.pause !== false && record.state.status === "running";
    if (paused) {
      await runc.pause(record.id);
      this.core.emitEvent("pause", record);
    }
    try {
      const upper = await this.upperDir(record.id);
      const [toStore, toUnpack] = teeStream(upperToLayerTar(upper, { exclude: BIND_TARGETS }));
      const [blob, layer] = await Promise.all([content.writeStream(toStore), layers.unpack({ parent: record.imageChainId }, toUnpack)]);
      const now = new Date().toISOString();
      const config = {
        ...base,
        created: now,
        author: opts.author ?? "",
        ...(opts.comment ? { comment: opts.comment } : {}),
        config: containerConfig,
        rootfs: { type: "layers", diff_ids: [...base.rootfs.diff_ids, blob.digest] },
        history: [
          ...(base.history ?? []),
          {
            created: now,
            created_by: [record.path, ...record.args].join(" "),
            ...(opts.author ? { author: opts.author } : {}),
            ...(opts.comment ? { comment: opts.comment } : {}),
          },
        ],
      };
      const { id } = await images.registerImage(
        {
          configBytes: Buffer.from(JSON.stringify(config)),
          layers: [
            ...(baseRecord?.layers ?? []),
            {
              diffId: blob.digest,
              chainId: layer.chainId,
              size: layer.size,
              tarSize: blob.size,
              blob: { mediaType: "application/vnd.docker.image.rootfs.diff.tar", digest: blob.digest, size: blob.size },
            },
          ],
          parent: record.imageId,
        },
        ref ? [ref] : [],
      );
      if (ref) images.publishEvent("tag", id, familiarString(ref));
      this.core.emitEvent("commit", record, { comment: opts.comment ?? "" });
      return id;
    } finally {
      if (paused) {
        await runc
          .resume(record.id)
          .catch((err: unknown) => this.core.deps.logger.warn({ err, id: record.id }, "could not resume the container after its commit"));
        this.core.emitEvent("unpause", record);
      }
    }
  }
}
