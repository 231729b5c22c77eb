/**
 * A depth-first walk of a directory tree that never follows a symlink, even
 * when the tree changes while it is walked (a running container swapping a
 * directory for a symlink to `/`, the class of CVE-2018-15664).
 *
 * Every directory is opened with O_DIRECTORY|O_NOFOLLOW *relative to its
 * parent's open descriptor* (through `/proc/self/fd/N/NAME`, which the kernel
 * resolves from the descriptor, not from a path), so each name the walk hands
 * out resolves inside the tree. Entries come in byte order of their names,
 * a directory before its contents: the same tree gives the same sequence.
 *
 * Needs /proc (Linux). Entries that vanish while walked are skipped.
 */
import { constants as fsc, type BigIntStats } from "node:fs";
import { lstat, open, readdir, type FileHandle } from "node:fs/promises";

export interface TreeEntry {
  /** Path relative to the walked root ("etc/passwd"); "" for the root itself. */
  rel: string;
  /** Last component of `rel` ("" for the root). */
  name: string;
  /** lstat of the entry (for a directory: fstat of the descriptor the walk opened). */
  st: BigIntStats;
  /**
   * A path that reaches this entry through its parent's open descriptor without
   * following any symlink but a final one: open it with O_NOFOLLOW. Valid only
   * until the walk moves on. For the root it is the root's own descriptor.
   */
  at: string;
  /** For a directory: its open descriptor, valid until its `leave` event. */
  fd?: number;
  /** For a directory with `opts.leave`: this is the event after its contents. */
  leave?: boolean;
}

export interface WalkOptions {
  /**
   * Called before an entry (other than the root) is yielded: false skips the entry
   * and, for a directory, everything below it.
   */
  keep?: (entry: TreeEntry) => boolean | Promise<boolean>;
  /** Also yield each directory again after its contents (`leave: true`). */
  leave?: boolean;
}

export const DIR_FLAGS = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;

/** Orders names by their UTF-8 bytes, as Go's filepath.Walk does. */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** The path of `name` inside the directory open as `fd`, for this process. */
export function atFd(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

/**
 * The same path as seen by a child process (setfattr, mknod): through
 * `/proc/<our pid>/fd/N`, which the child can resolve because it runs as root.
 */
export function atFdForChild(fd: number, name?: string): string {
  return name === undefined ? `/proc/${process.pid}/fd/${fd}` : `/proc/${process.pid}/fd/${fd}/${name}`;
}

/**
 * Walks `root` (which must be a directory, not a symlink to one).
 * The generator owns the descriptors it opens: they are closed when it finishes
 * or when the consumer stops early (`return()`/`break`).
 * @throws whatever opening the root throws (ENOENT, ENOTDIR, ELOOP for a symlink).
 */
export async function* walkTree(root: string, opts?: WalkOptions): AsyncGenerator<TreeEntry> {
  const fh = await open(root, DIR_FLAGS);
  try {
    const st = await fh.stat({ bigint: true });
    const entry: TreeEntry = { rel: "", name: "", st, at: atFd(fh.fd), fd: fh.fd };
    yield entry;
    yield* walkDir(fh.fd, "", opts);
    if (opts?.leave) yield { ...entry, leave: true };
  } finally {
    await fh.close();
  }
}

async function* walkDir(fd: number, rel: string, opts: WalkOptions | undefined): AsyncGenerator<TreeEntry> {
  let names: string[];
  try {
    names = await readdir(atFd(fd));
  } catch (e) {
    if (isErrno(e, "ENOENT")) return;
    throw e;
  }
  names.sort(byteOrder);
  for (const name of names) {
    const at = atFd(fd, name);
    const childRel = rel === "" ? name : `${rel}/${name}`;
    let st: BigIntStats;
    try {
      st = await lstat(at, { bigint: true });
    } catch (e) {
      if (isErrno(e, "ENOENT")) continue;
      throw e;
    }
    const entry: TreeEntry = { rel: childRel, name, st, at };
    if (opts?.keep && !(await opts.keep(entry))) continue;
    if (!st.isDirectory()) {
      yield entry;
      continue;
    }
    let child: FileHandle;
    try {
      child = await open(at, DIR_FLAGS);
    } catch (e) {
      // Gone, or replaced by a symlink or a file since the lstat: skipped, never followed.
      if (isErrno(e, "ENOENT") || isErrno(e, "ELOOP") || isErrno(e, "ENOTDIR")) continue;
      throw e;
    }
    try {
      const dirEntry: TreeEntry = { ...entry, st: await child.stat({ bigint: true }), fd: child.fd };
      yield dirEntry;
      yield* walkDir(child.fd, childRel, opts);
      if (opts?.leave) yield { ...dirEntry, leave: true };
    } finally {
      await child.close();
    }
  }
}

export function isErrno(e: unknown, code: string): boolean {
  return (e as NodeJS.ErrnoException | undefined)?.code === code;
}
