/**
 * Snapshotter on overlayfs (after containerd's overlay snapshotter and Docker's
 * overlay2). On disk:
 *
 *   ROOT/<key>/meta.json   { key, parent?, created }
 *   ROOT/<key>/upper/      the container's changes (overlay upperdir)
 *   ROOT/<key>/work/       overlay's workdir (same filesystem as upper)
 *   ROOT/<key>/lower/      only for a scratch snapshot: an empty lower dir
 *                          (overlay needs at least one)
 *   ROOT/tmp/              prepares and removals under way
 *
 * A snapshot directory appears only by rename of a complete temporary
 * directory and disappears by rename into ROOT/tmp before it is deleted, so
 * after a crash only ROOT/tmp needs cleaning (`removeStale`).
 *
 * The overlay mount takes the image's layers from the layer store as short
 * links relative to the store's root (`lowerdir=l/ABC…:l/DEF…`, with
 * `Mount.cwd` set to that root), so that a chain of hundreds of layers fits in
 * the one page of mount data the kernel reads. If the absolute upper and work
 * paths would push the options over that limit, they are given relative to the
 * same `cwd` as well.
 */
import { randomBytes } from "node:crypto";
import { lstat, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, isAbsolute, join, relative } from "node:path";
import { parseDigest } from "../content/store.ts";
import { alreadyExists, conflict, dataLoss, invalidArgument, notFound } from "../errors.ts";
import type { LayerStore } from "../layers/layer-store.ts";
import { mountInfo } from "./mount.ts";
import type { Mount, SnapshotInfo, Snapshotter, SnapshotUsage } from "./snapshotter.ts";
import { isErrno, readdirOrEmpty } from "../fs-util.ts";
import { ScratchDir } from "../scratch-dir.ts";
import type { DebugLog } from "../../../shared/best-effort.ts";

/** Container IDs and names as Docker allows them; "tmp" is ours. */
const KEY_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;
/** The kernel copies one page of mount data, NUL included (PAGE_SIZE is at least 4096). */
export const MAX_MOUNT_DATA = 4095;

interface Meta {
  key: string;
  parent?: string;
  created: string;
}

export class OverlaySnapshotter implements Snapshotter {
  readonly root: string;
  private readonly layers: LayerStore;
  private readonly tmpDir: string;
  /** Temporary directories of this process's operations: removeStale keeps them. */
  private readonly scratch: ScratchDir;

  /**
   * @param root directory of the snapshots (created on demand); must not contain "," or ":"
   *   (overlay's option separators).
   * @param layers where the parent chains' lower directories come from.
   */
  constructor(root: string, layers: LayerStore, logger?: DebugLog) {
    this.root = root;
    this.layers = layers;
    this.tmpDir = join(root, "tmp");
    this.scratch = new ScratchDir(this.tmpDir, logger ?? { debug: () => undefined });
  }

  async prepare(key: string, parentChainId: string | undefined): Promise<Mount[]> {
    this.checkKey(key);
    if (parentChainId !== undefined) parseDigest(parentChainId);
    const dir = join(this.root, key);
    if (await this.stat(key)) throw alreadyExists(`snapshot ${key} already exists`);
    // The mounts first: a missing or too long chain fails before anything is created.
    const mounts = await this.buildMounts(key, parentChainId);

    await mkdir(this.tmpDir, { recursive: true });
    const tmpName = `prepare-${key}-${randomBytes(6).toString("hex")}`;
    const tmp = this.scratch.hold(tmpName);
    try {
      await mkdir(tmp, { mode: 0o711 });
      await mkdir(join(tmp, "upper"), { mode: 0o755 });
      await mkdir(join(tmp, "work"), { mode: 0o700 });
      if (parentChainId === undefined) await mkdir(join(tmp, "lower"), { mode: 0o755 });
      const meta: Meta = { key, ...(parentChainId ? { parent: parentChainId } : {}), created: new Date().toISOString() };
      await writeFile(join(tmp, "meta.json"), JSON.stringify(meta, null, 2) + "\n", { flag: "wx" });
      try {
        await rename(tmp, dir);
      } catch (e) {
        if (isErrno(e, "ENOTEMPTY") || isErrno(e, "EEXIST")) throw alreadyExists(`snapshot ${key} already exists`);
        throw e;
      }
      return mounts;
    } finally {
      await rm(tmp, { recursive: true, force: true });
      this.scratch.release(tmpName);
    }
  }

  async mounts(key: string): Promise<Mount[]> {
    const info = await this.mustStat(key);
    return this.buildMounts(key, info.parent);
  }

  async stat(key: string): Promise<SnapshotInfo | undefined> {
    this.checkKey(key);
    let meta: Meta;
    try {
      meta = JSON.parse(await readFile(join(this.root, key, "meta.json"), "utf8")) as Meta;
    } catch (e) {
      if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return undefined;
      if (e instanceof SyntaxError) throw dataLoss(`snapshot ${key} has a corrupt meta.json`, e);
      throw e;
    }
    if (meta.key !== key) throw dataLoss(`snapshot ${key} has inconsistent metadata (key ${JSON.stringify(meta.key)})`);
    return { key, ...(meta.parent ? { parent: meta.parent } : {}), created: meta.created };
  }

  async list(): Promise<SnapshotInfo[]> {
    const out: SnapshotInfo[] = [];
    for (const name of await readdirOrEmpty(this.root)) {
      if (name === "tmp" || !KEY_RE.test(name)) continue;
      const info = await this.stat(name);
      if (info) out.push(info);
    }
    return out;
  }

  async usage(key: string): Promise<SnapshotUsage> {
    return diskUsage(await this.upperDir(key));
  }

  async upperDir(key: string): Promise<string> {
    await this.mustStat(key);
    return join(this.root, key, "upper");
  }

  async remove(key: string): Promise<void> {
    this.checkKey(key);
    const dir = join(this.root, key);
    const st = await lstat(dir).catch((e: unknown) => {
      if (isErrno(e, "ENOENT")) return undefined;
      throw e;
    });
    if (!st) return;
    const where = await this.mountedAt(key);
    if (where) throw conflict(`snapshot ${key} is mounted on ${where}: unmount it before removing`);
    await this.scratch.trash(dir, `remove-${key}`);
  }

  async removeStale(): Promise<number> {
    let n = 0;
    n += await this.scratch.sweep();
    // Not made by rename of a complete directory (no meta.json): delete, unless mounted.
    for (const name of await readdirOrEmpty(this.root)) {
      if (name === "tmp" || !KEY_RE.test(name)) continue;
      if (
        await lstat(join(this.root, name, "meta.json")).then(
          () => true,
          () => false,
        )
      )
        continue;
      if (await this.mountedAt(name)) continue;
      await this.scratch.trash(join(this.root, name), `stale-${name}`);
      n++;
    }
    return n;
  }

  private async buildMounts(key: string, parent: string | undefined): Promise<Mount[]> {
    const dir = join(this.root, key);
    if (/[,:]/.test(dir)) throw invalidArgument(`snapshot path ${dir} contains "," or ":", which overlay mount options cannot hold`);
    if (parent === undefined) {
      return [
        {
          type: "overlay",
          source: "overlay",
          options: ["index=off", `lowerdir=${join(dir, "lower")}`, `upperdir=${join(dir, "upper")}`, `workdir=${join(dir, "work")}`],
        },
      ];
    }
    const { cwd, lowers } = await this.layers.lowerDirs(parent);
    const lowerOpt = `lowerdir=${lowers.join(":")}`;
    let options = ["index=off", lowerOpt, `upperdir=${join(dir, "upper")}`, `workdir=${join(dir, "work")}`];
    if (options.join(",").length > MAX_MOUNT_DATA) {
      const rel = relative(cwd, dir);
      options = ["index=off", lowerOpt, `upperdir=${join(rel, "upper")}`, `workdir=${join(rel, "work")}`];
    }
    const size = options.join(",").length;
    if (size > MAX_MOUNT_DATA) {
      throw invalidArgument(
        `the ${lowers.length} layers of ${parent} need ${size} bytes of overlay mount options, over the kernel's limit of ${MAX_MOUNT_DATA}`,
      );
    }
    return [{ type: "overlay", source: "overlay", options, cwd }];
  }

  /** The mount point of an overlay using this snapshot's upper dir, if any. */
  private async mountedAt(key: string): Promise<string | undefined> {
    const abs = join(this.root, key, "upper");
    const relSuffix = `/${basename(this.root)}/${key}/upper`;
    for (const m of await mountInfo()) {
      if (m.fsType !== "overlay") continue;
      for (const o of m.superOptions) {
        if (!o.startsWith("upperdir=")) continue;
        const v = o.slice("upperdir=".length);
        if (v === abs || (!isAbsolute(v) && v.endsWith(relSuffix))) return m.mountPoint;
      }
    }
    return undefined;
  }

  private async mustStat(key: string): Promise<SnapshotInfo> {
    const info = await this.stat(key);
    if (!info) throw notFound(`snapshot ${key} not found`);
    return info;
  }

  private checkKey(key: string): void {
    if (typeof key !== "string" || !KEY_RE.test(key) || key === "tmp") {
      throw invalidArgument(`invalid snapshot key ${JSON.stringify(key)}: expected [a-zA-Z0-9][a-zA-Z0-9_.-]* of at most 128 characters`);
    }
  }
}

/** Sizes of regular files and symlinks under `dir` (hard links once) and the number of inodes. */
async function diskUsage(dir: string): Promise<SnapshotUsage> {
  const seen = new Set<string>();
  let size = 0;
  let inodes = 0;
  const stack = [dir];
  while (stack.length) {
    const d = stack.pop()!;
    let names: string[];
    try {
      names = await readdir(d);
    } catch (e) {
      if (isErrno(e, "ENOENT")) continue; // removed while we walk (a running container)
      throw e;
    }
    for (const name of names) {
      const p = join(d, name);
      const st = await lstat(p, { bigint: true }).catch((e: unknown) => {
        if (isErrno(e, "ENOENT")) return undefined;
        throw e;
      });
      if (!st) continue;
      const id = `${st.dev}:${st.ino}`;
      if (seen.has(id)) continue;
      seen.add(id);
      inodes++;
      if (st.isDirectory()) stack.push(p);
      else if (st.isFile() || st.isSymbolicLink()) size += Number(st.size);
    }
  }
  return { size, inodes };
}
