/**
 * The tar writer behind layer-tar.ts (an upper directory → a layer) and
 * rootfs-tar.ts (a merged root filesystem → `docker export`).
 *
 * Entry rules (Docker's archive package, as its overlay2 driver writes layers):
 * - names relative, without "./"; directories end with "/"; the root itself is
 *   not an entry; entries in byte order of names, a directory before its contents;
 * - regular files, directories, symlinks, FIFOs, character and block devices;
 *   sockets are skipped;
 * - a file seen again under another name (same device and inode) becomes a hard
 *   link entry naming the first one;
 * - mode with setuid/setgid/sticky, numeric uid/gid, no user or group names,
 *   mtime in whole seconds, no atime/ctime;
 * - portable extended attributes (xattrs.ts) as PAX `SCHILY.xattr.*` records;
 * - in upper mode only: a whiteout (char 0/0) becomes an empty regular file
 *   `.wh.NAME` (mode 0600, the whiteout's owner and mtime), and an opaque
 *   directory is followed by an empty `DIR/.wh..wh..opq` (the directory's owner
 *   and permission bits, mtime 0).
 *
 * Files are streamed in chunks, never held whole. A file whose size changes
 * while it is read (a running container) is cut or zero-padded to the size
 * its header announced, so the tar stays well-formed; entries that vanish are skipped.
 */
import { constants as fsc } from "node:fs";
import { lstat, open, readlink } from "node:fs/promises";
import { Readable } from "node:stream";
import { EngineError } from "../errors.ts";
import { Exclusion } from "./exclusion.ts";
import { checkSelfContained, isOpaque, isWhiteout, majorMinor } from "./overlay-form.ts";
import { encodeHeader, END_OF_ARCHIVE, padding, type TarHeader } from "./tar-header.ts";
import { isErrno, walkTree, type TreeEntry } from "./tree-walk.ts";
import { portableList, readTreeXattrs } from "./xattrs.ts";

export interface TreeTarOptions {
  /** The tree is an overlay upper directory: write whiteouts and opaque markers in tar form. */
  upper: boolean;
  /** Absolute paths inside the tree to leave out (exclusion.ts). */
  exclude?: readonly string[];
  /**
   * The root itself is an entry of this name, and every other entry is below it
   * (`NAME/etc/passwd`), as Docker's archive of one path (`docker cp`) rebases its entries.
   */
  rebase?: string;
  /**
   * Leave extended attributes out (default: carried). They are read by path (getfattr -R),
   * which a tree that its owner changes meanwhile (a running container) could lead out of
   * the tree: a copy out of a container must not carry what is read that way.
   */
  noXattrs?: boolean;
  /** Leave out the end-of-archive marker (more entries follow). */
  noEnd?: boolean;
}

const CHUNK = 64 * 1024;

/** The tree as a tar stream. Errors (a missing root, a missing tool) destroy the stream. */
export function treeTar(root: string, opts: TreeTarOptions): Readable {
  return Readable.from(generate(root, opts), { objectMode: false, highWaterMark: CHUNK });
}

/** A tree mounted below an archived directory: `rel` below it, `source` on the host. */
export interface SubTree {
  rel: string;
  source: string;
}

/**
 * One path as a tar whose entries are named `name` and, for a directory, `name/…`
 * (Docker's archive of a container path). `at` must reach the path without following a
 * symlink but a final one, which is archived as a symlink (never followed).
 * For a directory, `mounts` are trees mounted below it (volumes, binds): their content
 * replaces what the directory holds at their place, as the container sees it.
 * @throws ENOENT (on the stream) when nothing is at `at`.
 */
export function pathTar(at: string, name: string, mounts: readonly SubTree[] = []): Readable {
  return Readable.from(generatePath(at, name, mounts), { objectMode: false, highWaterMark: CHUNK });
}

async function* generatePath(at: string, name: string, mounts: readonly SubTree[]): AsyncGenerator<Buffer> {
  const st = await lstat(at, { bigint: true });
  if (!st.isDirectory()) {
    yield* pathEntry(at, name);
    yield END_OF_ARCHIVE;
    return;
  }
  const below = (rel: string) => mounts.filter((m) => m.rel.startsWith(rel === "" ? "" : `${rel}/`) && m.rel !== rel);
  const joined = (rel: string) => (name === "/" ? `/${rel}` : `${name}/${rel}`);
  yield* generate(at, { upper: false, rebase: name, noXattrs: true, noEnd: true, exclude: mounts.map((m) => `/${m.rel}`) });
  for (const m of [...mounts].sort((a, b) => a.rel.length - b.rel.length)) {
    const inner = below(m.rel).map((o) => `/${o.rel.slice(m.rel.length + 1)}`);
    const mst = await lstat(m.source, { bigint: true });
    if (mst.isDirectory()) yield* generate(m.source, { upper: false, rebase: joined(m.rel), noXattrs: true, noEnd: true, exclude: inner });
    else yield* pathEntry(m.source, joined(m.rel));
  }
  yield END_OF_ARCHIVE;
}

/** The entry of one non-directory. */
async function* pathEntry(at: string, name: string): AsyncGenerator<Buffer> {
  const st = await lstat(at, { bigint: true });
  const base = { mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), size: 0, mtime: seconds(st.mtimeNs) };
  const e: TreeEntry = { rel: name, name, st, at };
  if (st.isFile()) yield* fileEntry(e, base, []);
  else if (st.isSymbolicLink()) yield encodeHeader({ ...base, name, type: "symlink", linkname: await readlink(at) });
  else if (st.isFIFO()) yield encodeHeader({ ...base, name, type: "fifo" });
  else if (st.isCharacterDevice() || st.isBlockDevice()) {
    const { major, minor } = majorMinor(st.rdev);
    yield encodeHeader({ ...base, name, type: st.isCharacterDevice() ? "char" : "block", devmajor: major, devminor: minor });
  }
}

async function* generate(root: string, opts: TreeTarOptions): AsyncGenerator<Buffer> {
  const xattrs = opts.noXattrs ? new Map<string, Map<string, Buffer>>() : await readTreeXattrs(root);
  const exclusion = new Exclusion(opts.exclude);
  const opaque = (rel: string) => opts.upper && isOpaque(xattrs.get(rel));
  // dev:ino → the first entry with that inode, for hard links. The stat must match too: in an
  // overlay's merged view a copied-up file reports its lower origin's inode number.
  const firstName = new Map<string, { name: string; sig: string }>();

  const keep = async (e: TreeEntry) => {
    if (exclusion.excluded(e.rel)) return false;
    if (opts.upper && e.st.isDirectory() && (await exclusion.onlyExcluded(e.at, e.rel, opaque))) return false;
    return true;
  };

  for await (const walked of walkTree(root, { keep })) {
    if (walked.rel === "" && opts.rebase === undefined) continue;
    // Rebased, every name starts with the root's; `name` is Go's filepath.Base of a path, "/" for the root.
    const e =
      opts.rebase === undefined
        ? walked
        : { ...walked, rel: walked.rel === "" ? opts.rebase : opts.rebase === "/" ? `/${walked.rel}` : `${opts.rebase}/${walked.rel}` };
    const st = e.st;
    const x = xattrs.get(walked.rel);
    if (opts.upper) checkSelfContained(e.rel, x);
    const base = { mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), size: 0, mtime: seconds(st.mtimeNs) };

    if (opts.upper && isWhiteout(st)) {
      yield encodeHeader({ ...base, name: whiteoutName(e.rel), type: "file", mode: 0o600 });
      continue;
    }
    if (st.isDirectory()) {
      yield encodeHeader({ ...base, name: e.rel.endsWith("/") ? e.rel : `${e.rel}/`, type: "directory", xattrs: portableList(x) });
      if (opaque(e.rel)) yield encodeHeader({ ...base, name: `${e.rel}/.wh..wh..opq`, type: "file", mode: base.mode & 0o777, mtime: 0 });
      continue;
    }
    if (st.isSocket()) continue;

    const key = st.nlink > 1n ? `${st.dev}:${st.ino}` : undefined;
    const sig = `${st.mode}:${st.uid}:${st.gid}:${st.size}:${st.mtimeNs}`;
    if (key !== undefined) {
      const first = firstName.get(key);
      if (first !== undefined && first.sig === sig) {
        yield encodeHeader({ ...base, name: e.rel, type: "link", linkname: first.name });
        continue;
      }
    }

    if (st.isFile()) {
      const written = yield* fileEntry(e, base, portableList(x));
      if (written && key !== undefined && !firstName.has(key)) firstName.set(key, { name: e.rel, sig });
      continue;
    }
    if (key !== undefined && !firstName.has(key)) firstName.set(key, { name: e.rel, sig });
    if (st.isSymbolicLink()) {
      let target: string;
      try {
        target = await readlink(e.at);
      } catch (err) {
        if (isErrno(err, "ENOENT") || isErrno(err, "EINVAL")) continue; // gone or replaced meanwhile
        throw err;
      }
      yield encodeHeader({ ...base, name: e.rel, type: "symlink", linkname: target, xattrs: portableList(x) });
    } else if (st.isFIFO()) {
      yield encodeHeader({ ...base, name: e.rel, type: "fifo", xattrs: portableList(x) });
    } else if (st.isCharacterDevice() || st.isBlockDevice()) {
      const { major, minor } = majorMinor(st.rdev);
      yield encodeHeader({ ...base, name: e.rel, type: st.isCharacterDevice() ? "char" : "block", devmajor: major, devminor: minor, xattrs: portableList(x) });
    }
  }
  if (!opts.noEnd) yield END_OF_ARCHIVE;
}

/** Header and data of a regular file; returns false if it vanished before it could be opened. */
async function* fileEntry(e: TreeEntry, base: Omit<TarHeader, "name" | "type">, xattrs: Array<[string, Buffer]>): AsyncGenerator<Buffer, boolean> {
  let fh;
  try {
    fh = await open(e.at, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    if (isErrno(err, "ENOENT") || isErrno(err, "ELOOP")) return false; // gone, or now a symlink: skipped
    throw err;
  }
  try {
    const st = await fh.stat({ bigint: true });
    if (!st.isFile()) return false; // replaced meanwhile
    const size = Number(st.size);
    yield encodeHeader({
      ...base,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: seconds(st.mtimeNs),
      name: e.rel,
      type: "file",
      size,
      xattrs,
    });
    let done = 0;
    while (done < size) {
      const want = Math.min(CHUNK, size - done);
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await fh.read(buf, 0, want, done);
      if (bytesRead === 0) {
        yield Buffer.alloc(size - done); // the file shrank while read
        done = size;
        break;
      }
      done += bytesRead;
      yield bytesRead === want ? buf : buf.subarray(0, bytesRead);
    }
    yield padding(size);
    return true;
  } catch (err) {
    if (err instanceof EngineError) throw err;
    throw new EngineError("Internal", `reading /${e.rel}: ${(err as Error).message}`, { cause: err });
  } finally {
    await fh.close();
  }
}

function whiteoutName(rel: string): string {
  const i = rel.lastIndexOf("/");
  return i < 0 ? `.wh.${rel}` : `${rel.slice(0, i)}/.wh.${rel.slice(i + 1)}`;
}

function seconds(ns: bigint): number {
  // Floor, also for times before the epoch.
  const s = ns / 1_000_000_000n;
  return Number(ns < 0n && s * 1_000_000_000n !== ns ? s - 1n : s);
}
