/**
 * A container's filesystem as `docker cp` sees it (Docker's `GET/HEAD/PUT
 * /containers/{id}/archive`): its root filesystem with its volumes, bind mounts and
 * the engine's /etc/hosts, /etc/hostname and /etc/resolv.conf at their destinations,
 * for a running or a stopped container.
 *
 * The tree belongs to the container and may be changed by it meanwhile, so nothing
 * leaves the container's root (the CVE-2018-15664 class):
 * - a path is resolved in container terms, component by component (lstat, readlink),
 *   absolute symlink targets starting again at the container's `/` and `..` stopping
 *   there (filepath-securejoin's rules), a mount destination switching to the mount's
 *   source on the host;
 * - the result is then opened one directory at a time, each relative to its parent's
 *   descriptor with O_NOFOLLOW: a component swapped for a symlink in between fails the
 *   operation instead of being followed;
 * - reading (archive/tree-tar.ts) and writing (archive/copy-extract.ts) work from those
 *   descriptors in the same way.
 *
 * Not covered: a directory archived from the root filesystem does not descend into
 * the mounts below it (its mount points are archived as they are in the rootfs).
 */
import { constants as fsc, type BigIntStats } from "node:fs";
import { lstat, open, readlink, stat, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { conflict, EngineError, invalidArgument, notFound } from "../errors.ts";
import { pathTar, type SubTree } from "../archive/tree-tar.ts";
import { extractCopy } from "../archive/copy-extract.ts";
import { atFdForChild, DIR_FLAGS, isErrno } from "../archive/tree-walk.ts";
import { decompressStream } from "../layers/decompress.ts";
import { resolveUser } from "../runtime/user.ts";
import type { ContainerRecord } from "./container-record.ts";

/** Docker's ContainerPathStat (`X-Docker-Container-Path-Stat`): mode is Go's os.FileMode. */
export interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

export interface ExtractOptions {
  noOverwriteDirNonDir: boolean;
  /** Files get the container's user as owner (`docker cp -a`), instead of the tar's. */
  copyUIDGID: boolean;
}

/** The filesystem part of the engine's surface (moby's `ContainerArchivePath`, `ContainerStatPath`, `ContainerExtractToDir`). */
export interface ContainerFilesystem {
  /** @throws NotFound "Could not find the file PATH in container NAME". */
  statPath(container: string, path: string): Promise<PathStat>;
  /** Runs `use` with the path's stat and its tar; the container's filesystem stays mounted until `use` settles. */
  archivePath<T>(container: string, path: string, use: (stat: PathStat, tar: Readable) => Promise<T>): Promise<T>;
  /** Unpacks `tar` (optionally gzip-compressed) into the directory `path`. */
  extractToDir(container: string, path: string, tar: Readable, opts: ExtractOptions): Promise<void>;
}

/** One mount as the container sees it: `destination` in the container is `source` on the host. */
export interface ViewMount {
  destination: string;
  source: string;
  readonly: boolean;
}

/** A container's filesystem from the host: the mounted rootfs and the mounts above it. */
export interface FsView {
  rootfs: string;
  mounts: ViewMount[];
  readonlyRootfs: boolean;
}

/** What the filesystem needs from the container service. */
export interface FilesystemDeps {
  withRootfs<T>(container: string, fn: (rootfs: string, record: ContainerRecord) => Promise<T>): Promise<T>;
  volumeMountpoint(name: string): Promise<string>;
  paths(id: string): { hostsPath: string; hostnamePath: string; resolvConfPath: string };
  /** The image's USER, which a container without `--user` runs as. */
  imageUser(imageId: string): Promise<string>;
}

const MAX_LINKS = 255;

export class ContainerFiles implements ContainerFilesystem {
  constructor(private readonly deps: FilesystemDeps) {}

  statPath(container: string, path: string): Promise<PathStat> {
    checkPath(path);
    return this.withView(container, async (view) => {
      const t = await openPath(view, path).catch(notFoundAs(path, container));
      try {
        return await t.stat();
      } catch (e) {
        throw notFoundAs(path, container)(e);
      } finally {
        await t.close();
      }
    });
  }

  archivePath<T>(container: string, path: string, use: (stat: PathStat, tar: Readable) => Promise<T>): Promise<T> {
    checkPath(path);
    return this.withView(container, async (view) => {
      const t = await openPath(view, path).catch(notFoundAs(path, container));
      try {
        const st = await t.stat().catch(notFoundAs(path, container));
        return await use(st, pathTar(t.at, t.name, t.mounts));
      } finally {
        await t.close();
      }
    });
  }

  extractToDir(container: string, path: string, tar: Readable, opts: ExtractOptions): Promise<void> {
    checkPath(path);
    return this.withView(container, async (view, record, rootfs) => {
      const comps = await resolveComponents(view, absolute(path), true);
      const mount = mountOf(view, comps);
      if (mount?.readonly) throw invalidArgument("mounted volume is marked read-only");
      if (!mount && view.readonlyRootfs) throw invalidArgument("container rootfs is marked read-only");
      let dir: FileHandle;
      try {
        dir = await openDir(view, comps);
      } catch (e) {
        if (isErrno(e, "ENOENT")) throw notFound(`Could not find the file ${path} in container ${container}`);
        // Docker answers this one with a 500.
        if (isErrno(e, "ENOTDIR") || isErrno(e, "ELOOP")) throw new EngineError("Internal", "extraction point is not a directory");
        throw e;
      }
      try {
        // Docker's copyUIDGID: everything owned by the container's user (its --user, else the image's USER).
        const user = opts.copyUIDGID ? record.options.user || (await this.deps.imageUser(record.imageId)) : "";
        const owner = user ? await resolveUser(rootfs, user) : undefined;
        await extractCopy(decompressStream(tar), dir, { noOverwriteDirNonDir: opts.noOverwriteDirNonDir, owner, destination: "/" + comps.join("/") });
      } finally {
        await dir.close();
      }
    });
  }

  private withView<T>(container: string, fn: (view: FsView, record: ContainerRecord, rootfs: string) => Promise<T>): Promise<T> {
    return this.deps.withRootfs(container, async (rootfs, record) => {
      const mounts: ViewMount[] = [];
      for (const m of record.mounts) {
        const source = m.type === "volume" ? await this.deps.volumeMountpoint(m.source) : m.source;
        if (source) mounts.push({ destination: m.destination, source, readonly: m.readonly });
      }
      const p = this.deps.paths(record.id);
      for (const [destination, source] of [
        ["/etc/hosts", p.hostsPath],
        ["/etc/hostname", p.hostnamePath],
        ["/etc/resolv.conf", p.resolvConfPath],
      ] as const) {
        if (
          !mounts.some((m) => m.destination === destination) &&
          (await stat(source).then(
            () => true,
            () => false,
          ))
        )
          mounts.push({ destination, source, readonly: false });
      }
      return fn({ rootfs, mounts, readonlyRootfs: record.options.readonlyRootfs }, record, rootfs);
    });
  }
}

function checkPath(path: string): void {
  if (path === "") throw invalidArgument("bad parameter: path cannot be empty");
  if (path.includes("\0")) throw invalidArgument("bad parameter: path contains a NUL byte");
}

function notFoundAs(path: string, container: string) {
  return (e: unknown): never => {
    if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) throw notFound(`Could not find the file ${path} in container ${container}`, e);
    throw e;
  };
}

function absolute(path: string): string {
  return path.startsWith("/") ? path : `/${path}`;
}

function split(p: string): string[] {
  return p.split("/").filter((c) => c !== "" && c !== ".");
}

function isPrefix(prefix: readonly string[], comps: readonly string[]): boolean {
  return prefix.length <= comps.length && prefix.every((c, i) => comps[i] === c);
}

/** The mount holding container path `comps` (the deepest whose destination is a prefix), if any. */
export function mountOf(view: FsView, comps: readonly string[]): (ViewMount & { depth: number }) | undefined {
  let best: (ViewMount & { depth: number }) | undefined;
  for (const m of view.mounts) {
    const dest = split(m.destination);
    if (isPrefix(dest, comps) && (!best || dest.length > best.depth)) best = { ...m, depth: dest.length };
  }
  return best;
}

/** A trusted host directory (the rootfs, a mount's source) and the container-controlled components below it. */
function hostLocation(view: FsView, comps: readonly string[]): { base: string; rel: string[] } {
  const m = mountOf(view, comps);
  return m ? { base: m.source, rel: comps.slice(m.depth) } : { base: view.rootfs, rel: [...comps] };
}

/**
 * Resolves `path` in the container's terms: symlinks followed inside the container
 * (absolute targets from its `/`), `..` stopping at `/`, mounts taken into account.
 * Missing components are kept as they are. With `followFinal` false a final symlink
 * is kept (not followed).
 * @returns the components of the resolved path below `/`.
 */
export async function resolveComponents(view: FsView, path: string, followFinal: boolean): Promise<string[]> {
  let comps: string[] = [];
  const queue = split(path);
  let links = 0;
  while (queue.length > 0) {
    const part = queue.shift()!;
    if (part === "..") {
      comps.pop();
      continue;
    }
    const next = [...comps, part];
    if (queue.length === 0 && !followFinal) return next;
    // A mount's destination is the mount's root in the container: never a symlink there.
    if (view.mounts.some((m) => split(m.destination).join("/") === next.join("/"))) {
      comps = next;
      continue;
    }
    const { base, rel } = hostLocation(view, next);
    let st;
    try {
      st = await lstat(join(base, ...rel));
    } catch (e) {
      if (!isErrno(e, "ENOENT") && !isErrno(e, "ENOTDIR")) throw e;
      comps = next;
      continue;
    }
    if (!st.isSymbolicLink()) {
      comps = next;
      continue;
    }
    if (++links > MAX_LINKS) throw invalidArgument(`${path}: too many levels of symbolic links`);
    const target = await readlink(join(base, ...rel));
    if (target.startsWith("/")) comps = [];
    queue.unshift(...split(target));
  }
  return comps;
}

/** Opens a trusted host directory and walks `rel` below it one component at a time, never following a symlink. */
async function walkDirs(base: string, rel: readonly string[]): Promise<FileHandle> {
  let fh = await open(base, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    for (const c of rel) {
      const next = await open(atFdForChild(fh.fd, c), DIR_FLAGS);
      await fh.close();
      fh = next;
    }
    return fh;
  } catch (e) {
    await fh.close();
    throw e;
  }
}

/** The directory at container path `comps`, opened safely. @throws ENOENT, ENOTDIR, ELOOP (a symlink appeared) */
async function openDir(view: FsView, comps: readonly string[]): Promise<FileHandle> {
  const { base, rel } = hostLocation(view, comps);
  return walkDirs(base, rel);
}

interface OpenedPath {
  /** A path reaching the entry without following any symlink but a final one. */
  at: string;
  /** The tar's top name: Go's filepath.Base of the requested path. */
  name: string;
  /** Mounts below the path (when it is a directory), relative to it. */
  mounts: SubTree[];
  stat(): Promise<PathStat>;
  close(): Promise<void>;
}

/**
 * Docker's ResolvePath: the requested path's directory is resolved fully, its last
 * element not (a symlink there is archived as a symlink), unless the path ends in "/"
 * or "/." (then it is followed too).
 */
async function openPath(view: FsView, path: string): Promise<OpenedPath> {
  const abs = absolute(path);
  const trailing = abs.endsWith("/") || abs.endsWith("/.");
  const name = goBase(abs);
  const comps = await resolveComponents(view, abs, trailing);
  const mountRoot = view.mounts.find((m) => split(m.destination).join("/") === comps.join("/"));
  let at: string;
  let parent: FileHandle | undefined;
  if (comps.length === 0) at = view.rootfs;
  else if (mountRoot) at = mountRoot.source;
  else {
    parent = await openDir(view, comps.slice(0, -1)).catch((e: unknown) => {
      if (isErrno(e, "ELOOP")) throw conflict(`${path} changed while it was being resolved (a directory became a symlink)`);
      throw e;
    });
    at = atFdForChild(parent.fd, comps[comps.length - 1]!);
  }
  const statOf = async (): Promise<PathStat> => {
    const st = await lstat(at, { bigint: true });
    let linkTarget = "";
    if (st.isSymbolicLink()) linkTarget = "/" + (await resolveComponents(view, abs, true)).join("/");
    return { name, size: Number(st.size), mode: goFileMode(st), mtime: goTime(st.mtimeNs), linkTarget };
  };
  const mounts: SubTree[] = [];
  for (const m of view.mounts) {
    const dest = split(m.destination);
    if (dest.length > comps.length && isPrefix(comps, dest)) mounts.push({ rel: dest.slice(comps.length).join("/"), source: m.source });
  }
  return { at, name, mounts, stat: statOf, close: async () => void (await parent?.close()) };
}

/** Go's filepath.Base: "/" for the root, the last element otherwise ("." for "/x/."). */
function goBase(p: string): string {
  const trimmed = p.replace(/\/+$/, "");
  if (trimmed === "") return "/";
  return trimmed.slice(trimmed.lastIndexOf("/") + 1);
}

/** A Unix mode as Go's os.FileMode (type bits high), which the docker CLI reads. */
export function goFileMode(
  st: Pick<BigIntStats, "mode" | "isDirectory" | "isSymbolicLink" | "isBlockDevice" | "isCharacterDevice" | "isFIFO" | "isSocket">,
): number {
  const mode = Number(st.mode);
  let m = mode & 0o777;
  if (mode & 0o4000) m |= 1 << 23;
  if (mode & 0o2000) m |= 1 << 22;
  if (mode & 0o1000) m |= 1 << 20;
  if (st.isDirectory()) m |= 1 << 31;
  else if (st.isSymbolicLink()) m |= 1 << 27;
  else if (st.isBlockDevice()) m |= 1 << 26;
  else if (st.isCharacterDevice()) m |= (1 << 26) | (1 << 21);
  else if (st.isFIFO()) m |= 1 << 25;
  else if (st.isSocket()) m |= 1 << 24;
  return m >>> 0;
}

/** RFC 3339 with nanoseconds, as Go marshals a time.Time. */
function goTime(ns: bigint): string {
  const sec = ns / 1_000_000_000n;
  const frac = (ns % 1_000_000_000n).toString().padStart(9, "0").replace(/0+$/, "");
  const base = new Date(Number(sec) * 1000).toISOString().slice(0, 19);
  return `${base}${frac ? "." + frac : ""}Z`;
}
