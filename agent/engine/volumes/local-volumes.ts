/**
 * VolumeStore of Docker's `local` driver, on disk:
 *
 *   ROOT/<name>/_data/         the volume's data (its mountpoint)
 *   ROOT/<name>/volume.json    { name, createdAt, labels, options, anonymous }
 *   ROOT/<name>/populating     present only while a copy-up runs (populate)
 *   ROOT/.tmp/                 creations and removals under way
 *
 * A volume directory appears only by rename of a complete temporary directory
 * (metadata flushed first) and disappears by rename into ROOT/.tmp before its
 * data is deleted: after a crash a volume exists complete or not at all, and
 * only ROOT/.tmp needs cleaning (`removeStale`, once at start-up). `.tmp` can
 * never be a volume name (names start with a letter or digit).
 *
 * Options are validated as Docker's local driver does and recorded; mounting a
 * device or filesystem given by `type`/`device`/`o` is the runtime's business,
 * and `size` (quota) is refused since the store has no quota support.
 */
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, unlink } from "node:fs/promises";
import { join } from "node:path";
import { conflict, dataLoss, invalidArgument, isEngineError, notFound } from "../errors.ts";
import { walkTree } from "../archive/tree-walk.ts";
import { mountInfo } from "../snapshots/mount.ts";
import { copyTree } from "./copy-tree.ts";
import { resolveInRoot } from "./resolve-in-root.ts";
import type { Volume, VolumeListFilters, VolumeStore } from "./volume-store.ts";
import { fsyncDir, isErrno, lstatIfAny, pathExists, readdirOrEmpty, writeNewFileSynced } from "../fs-util.ts";
import { pino, type Logger } from "pino";
import { bestEffort, settled } from "../../../shared/best-effort.ts";
import type { PublishEvent } from "../system/events.ts";
import { ScratchDir } from "../scratch-dir.ts";

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const NAME_CHARS = "[a-zA-Z0-9][a-zA-Z0-9_.-]";
export const ANONYMOUS_LABEL = "com.docker.volume.anonymous";
const VALID_OPTS = new Set(["type", "o", "device", "size"]);
const MANDATORY_OPTS: Record<string, string[]> = { device: ["type"], type: ["device"], o: ["device", "type"] };
const TMP = ".tmp";
const META = "volume.json";
const DATA = "_data";
const POPULATING = "populating";

interface Meta {
  name: string;
  createdAt: string;
  labels: Record<string, string>;
  options: Record<string, string>;
  anonymous: boolean;
}

export class LocalVolumeStore implements VolumeStore {
  readonly root: string;
  private readonly tmpDir: string;
  /** Temporary directories of this process's operations: removeStale keeps them. */
  private readonly scratch: ScratchDir;
  /** Per-volume serialisation of create, remove and populate. */
  private readonly locks = new Map<string, Promise<unknown>>();

  private readonly log: Logger;

  /**
   * @param root directory of the volumes (created on demand).
   * @param events the engine's event stream (create, destroy; containers report mount, unmount).
   */
  constructor(
    root: string,
    logger?: Logger,
    private readonly events?: PublishEvent,
  ) {
    this.root = root;
    this.tmpDir = join(root, TMP);
    this.log = logger ?? pino({ enabled: false });
    this.scratch = new ScratchDir(this.tmpDir, this.log);
  }

  async create(opts: { name?: string; labels?: Record<string, string>; options?: Record<string, string>; anonymous?: boolean }): Promise<Volume> {
    const name = opts.name ?? randomBytes(32).toString("hex");
    validateName(name);
    const options = { ...(opts.options ?? {}) };
    validateOptions(name, options);
    const anonymous = opts.anonymous ?? opts.name === undefined;
    const labels = { ...(opts.labels ?? {}), ...(anonymous ? { [ANONYMOUS_LABEL]: "" } : {}) };

    return this.locked(name, async () => {
      const existing = await this.read(name);
      if (existing) return existing;
      const meta: Meta = { name, createdAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"), labels, options, anonymous };
      await mkdir(this.tmpDir, { recursive: true });
      const tmpName = `create-${randomBytes(8).toString("hex")}`;
      const tmp = this.scratch.hold(tmpName);
      try {
        await mkdir(tmp, { mode: 0o701 });
        await mkdir(join(tmp, DATA), { mode: 0o755 });
        await writeNewFileSynced(join(tmp, META), JSON.stringify(meta, null, 2) + "\n");
        await fsyncDir(tmp);
        try {
          await rename(tmp, this.dir(name));
        } catch (e) {
          if (!isErrno(e, "EEXIST") && !isErrno(e, "ENOTEMPTY")) throw e;
          const theirs = await this.read(name); // made by another process meanwhile
          if (!theirs) throw e;
          return theirs;
        }
        await fsyncDir(this.root);
        this.events?.("volume", "create", name, { driver: "local" });
        return this.toVolume(meta);
      } finally {
        await rm(tmp, { recursive: true, force: true });
        this.scratch.release(tmpName);
      }
    });
  }

  async get(name: string): Promise<Volume> {
    const v = NAME_RE.test(name) ? await this.read(name) : undefined;
    if (!v) throw notFound(`get ${name}: no such volume`);
    return v;
  }

  async list(filters?: VolumeListFilters, inUse?: (name: string) => boolean): Promise<Volume[]> {
    const out: Volume[] = [];
    const names = (await readdirOrEmpty(this.root)).filter((n) => NAME_RE.test(n)).sort();
    for (const name of names) {
      const v = await this.read(name);
      if (!v) continue;
      if (filters?.dangling !== undefined && (inUse?.(name) ?? false) === filters.dangling) continue;
      if (filters?.name?.length && !filters.name.some((re) => nameMatches(re, name))) continue;
      if (filters?.label?.length && !labelsMatch(filters.label, v.labels)) continue;
      out.push(v);
    }
    return out;
  }

  async remove(name: string, opts: { force?: boolean }, inUse?: (name: string) => string[]): Promise<void> {
    try {
      await this.get(name);
    } catch (e) {
      if (opts.force && isEngineError(e, "NotFound")) return;
      throw e;
    }
    await this.locked(name, async () => {
      if (!(await this.read(name))) {
        if (opts.force) return;
        throw notFound(`get ${name}: no such volume`);
      }
      const users = inUse?.(name) ?? [];
      if (users.length > 0) throw conflict(`remove ${name}: volume is in use - [${users.join(", ")}]`);
      const dir = this.dir(name);
      const mounted = (await mountInfo()).find((m) => m.mountPoint === dir || m.mountPoint.startsWith(dir + "/"));
      if (mounted) throw conflict(`remove ${name}: volume is in use - something is mounted on ${mounted.mountPoint}`);
      await this.scratch.trash(dir, `remove-${name}`, { syncParent: this.root });
      this.events?.("volume", "destroy", name, { driver: "local" });
    });
  }

  async prune(inUse: (name: string) => boolean, opts?: { all?: boolean; label?: string[] }): Promise<{ deleted: string[]; spaceReclaimed: number }> {
    const deleted: string[] = [];
    let spaceReclaimed = 0;
    for (const v of await this.list()) {
      if (!opts?.all && !v.anonymous) continue;
      if (opts?.label?.length && !labelsMatch(opts.label, v.labels)) continue;
      if (inUse(v.name)) continue;
      const size = (await this.usage(v.name).catch(bestEffort(this.log, `measure volume ${v.name}`))) ?? 0; // only the reclaimed figure
      try {
        await this.remove(v.name, {}, (n) => (inUse(n) ? ["(in use)"] : []));
      } catch (e) {
        if (isEngineError(e, "Conflict") || isEngineError(e, "NotFound")) continue; // taken or removed meanwhile
        throw e;
      }
      deleted.push(v.name);
      spaceReclaimed += size;
    }
    return { deleted, spaceReclaimed };
  }

  async usage(name: string): Promise<number> {
    const v = await this.get(name);
    const seen = new Set<string>();
    let size = 0;
    try {
      for await (const e of walkTree(v.mountpoint)) {
        if (e.rel === "" || e.st.isDirectory()) continue;
        if (e.st.nlink > 1n) {
          const key = `${e.st.dev}:${e.st.ino}`;
          if (seen.has(key)) continue;
          seen.add(key);
        }
        size += Number(e.st.size);
      }
    } catch (e) {
      if (isErrno(e, "ENOENT")) throw notFound(`get ${name}: no such volume`, e);
      throw e;
    }
    return size;
  }

  async populate(name: string, rootfs: string, containerPath: string): Promise<void> {
    await this.get(name);
    await this.locked(name, async () => {
      const v = await this.get(name);
      const marker = join(this.dir(name), POPULATING);
      const interrupted = await pathExists(marker);
      if (interrupted) {
        // A copy-up cut short by a crash: its partial data is ours to discard.
        for (const entry of await readdir(v.mountpoint)) await rm(join(v.mountpoint, entry), { recursive: true, force: true });
      } else if ((await readdir(v.mountpoint)).length > 0) {
        return;
      }
      const source = await resolveInRoot(rootfs, containerPath);
      const st = source === undefined ? undefined : await lstatIfAny(source);
      if (source === undefined || !st?.isDirectory()) {
        if (interrupted) await unlink(marker);
        return;
      }
      if (!interrupted) await writeNewFileSynced(marker, JSON.stringify({ rootfs, containerPath }) + "\n");
      await copyTree(source, v.mountpoint, this.log);
      await unlink(marker);
    });
  }

  /**
   * Start-up cleanup: deletes what interrupted creations and removals left in
   * ROOT/.tmp, and volume directories without metadata. Call once, before use.
   * @returns how many leftovers were deleted.
   */
  async removeStale(): Promise<number> {
    let n = 0;
    n += await this.scratch.sweep();
    for (const name of await readdirOrEmpty(this.root)) {
      if (!NAME_RE.test(name) || (await pathExists(join(this.root, name, META)))) continue;
      await this.scratch.trash(join(this.root, name), `stale-${name}`, { syncParent: this.root });
      n++;
    }
    return n;
  }

  private dir(name: string): string {
    return join(this.root, name);
  }

  private toVolume(m: Meta): Volume {
    return {
      name: m.name,
      driver: "local",
      mountpoint: join(this.dir(m.name), DATA),
      createdAt: m.createdAt,
      labels: { ...m.labels },
      options: { ...m.options },
      scope: "local",
      anonymous: m.anonymous,
    };
  }

  private async read(name: string): Promise<Volume | undefined> {
    let text: string;
    try {
      text = await readFile(join(this.dir(name), META), "utf8");
    } catch (e) {
      if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return undefined;
      throw e;
    }
    let meta: Meta;
    try {
      meta = JSON.parse(text) as Meta;
    } catch (e) {
      throw dataLoss(`volume ${name} has a corrupt ${META}`, e);
    }
    if (meta.name !== name) throw dataLoss(`volume ${name} has inconsistent metadata (name ${JSON.stringify(meta.name)})`);
    return this.toVolume({ ...meta, labels: meta.labels ?? {}, options: meta.options ?? {}, anonymous: meta.anonymous === true });
  }

  private async locked<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = settled(run); // run's failure goes to this caller
    this.locks.set(name, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    }
  }
}

/** @throws InvalidArgument with Docker's messages. */
function validateName(name: string): void {
  if (name.length === 1) throw invalidArgument(`create ${name}: volume name is too short, names should be at least two alphanumeric characters`);
  if (!NAME_RE.test(name)) {
    throw invalidArgument(
      `create ${name}: ${JSON.stringify(name)} includes invalid characters for a local volume name, only ${JSON.stringify(NAME_CHARS)} are allowed. If you intended to pass a host directory, use absolute path`,
    );
  }
}

/** Docker's local driver rules (volume/local/local_unix.go). */
function validateOptions(name: string, opts: Record<string, string>): void {
  for (const k of Object.keys(opts).sort()) {
    if (!VALID_OPTS.has(k)) throw invalidArgument(`create ${name}: invalid option: ${JSON.stringify(k)}`);
  }
  if (opts.size !== undefined) throw invalidArgument(`create ${name}: quota size requested but no quota support`);
  for (const [opt, required] of Object.entries(MANDATORY_OPTS)) {
    if (opts[opt] === undefined) continue;
    for (const r of required) if (opts[r] === undefined) throw invalidArgument(`create ${name}: missing required option: ${JSON.stringify(r)}`);
  }
}

function nameMatches(pattern: string, name: string): boolean {
  try {
    return new RegExp(pattern).test(name);
  } catch {
    return name.includes(pattern);
  }
}

/** Docker's MatchKVList: every `key` or `key=value` must match. */
function labelsMatch(filters: string[], labels: Record<string, string>): boolean {
  return filters.every((f) => {
    const eq = f.indexOf("=");
    if (eq < 0) return Object.hasOwn(labels, f);
    const k = f.slice(0, eq);
    return Object.hasOwn(labels, k) && labels[k] === f.slice(eq + 1);
  });
}
