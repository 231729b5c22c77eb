/**
 * COPY and ADD: finding the sources in a source tree (the build context, or
 * another stage's or image's root filesystem), hashing them for the build
 * cache, and copying them into an image's root filesystem, with Docker's rules
 * (moby's builder/dockerfile/copy.go): wildcards match paths of the source
 * tree, a directory's *contents* are copied, several sources need a
 * destination ending in `/`, new files belong to root unless `--chown`.
 *
 * Escapes: a source is resolved inside its tree (`..` stops at the tree's
 * root, symlinks are followed as if the tree were `/`), so `COPY ../x` or a
 * symlink to `/etc/passwd` names a file of the context, never the host's. A
 * destination is resolved the same way inside the image's root: a symlink of
 * the image pointing out cannot redirect a write. Inside a copied tree
 * symlinks are copied as symlinks and never followed.
 */
import { createHash } from "node:crypto";
import { constants as fsc } from "node:fs";
import type { Stats } from "node:fs";
import {
  chmodSync,
  chownSync,
  closeSync,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join, posix } from "node:path";
import { invalidArgument, notFound } from "../errors.ts";
import { secureJoin } from "../runtime/secure-join.ts";
import { isErrno, lstatOr } from "../fs-util.ts";

export interface CopyOwner {
  uid: number;
  gid: number;
}

export interface SourceItem {
  /** Host path of the (resolved) source. */
  hostPath: string;
  /** Path of the source inside its tree ("/a/b"), for messages and the destination name. */
  treePath: string;
  stat: Stats;
  /** Matched by a wildcard. */
  wildcard: boolean;
}

const CHUNK = 1 << 20;

export function hasWildcards(p: string): boolean {
  return /[*?[]/.test(p.replace(/\\./g, ""));
}

/** Go's filepath.Match as a regular expression (`*` and `?` never match `/`). */
export function globRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "\\" && i + 1 < pattern.length) re += escapeRe(pattern[++i]!);
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) throw invalidArgument(`syntax error in pattern: ${pattern}`);
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith("^")) cls = "^" + cls.slice(1).replace(/\\/g, "\\\\");
      else cls = cls.replace(/\\/g, "\\\\");
      re += `[${cls}]`;
      i = end;
    } else re += escapeRe(c);
  }
  return new RegExp(`^${re}$`);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/**
 * The sources named by one COPY/ADD argument inside `root`.
 * @throws NotFound with Docker's message when nothing matches.
 */
export async function findSources(root: string, src: string, what: "build context" | "stage"): Promise<SourceItem[]> {
  const clean = posix.normalize("/" + src);
  if (hasWildcards(src)) {
    const re = globRegExp(clean.slice(1));
    const items: SourceItem[] = [];
    for await (const rel of walkPaths(root, "")) {
      if (!re.test(rel)) continue;
      const hostPath = join(root, rel);
      items.push({ hostPath, treePath: "/" + rel, stat: await lstat(hostPath), wildcard: true });
    }
    return items;
  }
  const hostPath = await secureJoin(root, clean);
  let st: Stats;
  try {
    // The source itself is followed (Docker copies what a top-level symlink points to), inside the tree only.
    st = await lstat(hostPath);
  } catch {
    if (what === "build context")
      throw notFound(`file not found in build context or excluded by .dockerignore: stat ${src.replace(/^\/+/, "")}: file does not exist`);
    throw notFound(`stat ${clean}: file does not exist`);
  }
  return [{ hostPath, treePath: clean, stat: st, wildcard: false }];
}

async function* walkPaths(root: string, rel: string): AsyncGenerator<string> {
  let names: string[];
  try {
    names = await readdir(join(root, rel));
  } catch {
    return;
  }
  for (const name of names.sort()) {
    const r = rel ? `${rel}/${name}` : name;
    yield r;
    const st = await lstat(join(root, r));
    if (st.isDirectory()) yield* walkPaths(root, r);
  }
}

/**
 * The content hash of sources, for the build cache: names, types, modes, link
 * targets and file contents; not times or owners (as Docker's tarsum for the cache).
 */
export async function hashSources(items: SourceItem[]): Promise<string> {
  const h = createHash("sha256");
  const buf = Buffer.allocUnsafe(CHUNK);
  const visit = async (hostPath: string, rel: string): Promise<void> => {
    const st = lstatSync(hostPath);
    h.update(`${rel}\0${st.mode}\0`);
    if (st.isSymbolicLink()) h.update(`link:${readlinkSync(hostPath)}\0`);
    else if (st.isFile()) {
      h.update(`size:${st.size}\0`);
      const fd = openSync(hostPath, fsc.O_RDONLY | fsc.O_NOFOLLOW);
      try {
        for (;;) {
          const n = readSync(fd, buf, 0, CHUNK, null);
          if (n === 0) break;
          h.update(buf.subarray(0, n));
        }
      } finally {
        closeSync(fd);
      }
    } else if (st.isDirectory()) {
      for (const name of readdirSync(hostPath).sort()) await visit(join(hostPath, name), `${rel}/${name}`);
      await new Promise<void>((r) => setImmediate(r));
    }
  };
  for (const item of items) await visit(item.hostPath, item.treePath);
  return h.digest("hex");
}

export interface CopyOptions {
  /** Owner of new files and directories; absent: keep the source's owner (ADD of an archive). */
  owner?: CopyOwner;
  /** --chmod: mode of every copied file and directory. */
  mode?: number;
}

/**
 * Copies `src` (a file, symlink or directory on the host) to `destPath` inside
 * `root`. A directory's contents are copied into `destPath`.
 *
 * The destination is resolved inside the root once; below it every entry is created
 * by name in a directory this copy made or found to be a real directory (never a
 * symlink), and the final name is removed, never followed. The calls are synchronous:
 * both trees are private to the build (the context, a snapshot mounted for this step),
 * and a COPY is many small files where each asynchronous call costs a thread-pool trip.
 */
export async function copyInto(root: string, src: string, destPath: string, opts: CopyOptions): Promise<void> {
  const links = new Map<string, string>();
  const st = lstatSync(src);
  if (st.isDirectory()) {
    const { host, created } = await ensureDir(root, destPath, opts);
    applyMeta(host, st, opts, created);
    await copyChildren(src, host, opts, links);
    utimesSync(host, st.atime, st.mtime);
    return;
  }
  const { host: parent } = await ensureDir(root, posix.dirname(destPath), opts);
  await copyEntry(src, parent, posix.basename(destPath), destPath, opts, links);
}

async function copyChildren(src: string, destDir: string, opts: CopyOptions, links: Map<string, string>): Promise<void> {
  for (const name of readdirSync(src).sort()) await copyEntry(join(src, name), destDir, name, name, opts, links);
}

async function copyEntry(src: string, destDir: string, name: string, shown: string, opts: CopyOptions, links: Map<string, string>): Promise<void> {
  const st = lstatSync(src);
  const dest = join(destDir, name);
  const existing = lstatOr(dest);
  if (st.isDirectory()) {
    if (existing && !existing.isDirectory()) rmSync(dest, { recursive: true, force: true });
    const created = !existing?.isDirectory();
    if (created) mkdirSync(dest, { mode: 0o700 });
    applyMeta(dest, st, opts, created);
    await copyChildren(src, dest, opts, links);
    utimesSync(dest, st.atime, st.mtime);
    // Many entries: give the event loop back now and then.
    await new Promise<void>((r) => setImmediate(r));
    return;
  }
  if (existing?.isDirectory()) throw invalidArgument(`cannot overwrite directory ${shown} with a non-directory`);
  if (existing) unlinkSync(dest);
  if (st.isSymbolicLink()) {
    symlinkSync(readlinkSync(src), dest);
    const owner = opts.owner ?? { uid: st.uid, gid: st.gid };
    lchownSync(dest, owner.uid, owner.gid);
    lutimesSync(dest, st.atime, st.mtime);
    return;
  }
  if (!st.isFile()) return; // devices, sockets, FIFOs and whiteouts are never copied
  const key = `${st.dev}:${st.ino}`;
  if (st.nlink > 1) {
    const first = links.get(key);
    if (first) {
      linkSync(first, dest);
      return;
    }
    links.set(key, dest);
  }
  const input = openSync(src, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    const out = openSync(dest, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    try {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(st.size, 1)));
      for (;;) {
        const n = readSync(input, buf, 0, buf.length, null);
        if (n === 0) break;
        let off = 0;
        while (off < n) off += writeSync(out, buf, off, n - off);
      }
      const owner = opts.owner ?? { uid: st.uid, gid: st.gid };
      fchownSync(out, owner.uid, owner.gid);
      // chown clears setuid bits: the mode goes last.
      fchmodSync(out, opts.mode ?? st.mode & 0o7777);
      futimesSync(out, st.atime, st.mtime);
    } finally {
      closeSync(out);
    }
  } finally {
    closeSync(input);
  }
}

/** Owner and mode of a copied directory; an existing one keeps its owner (Docker chowns only what it made). */
function applyMeta(dest: string, st: Stats, opts: CopyOptions, created: boolean): void {
  if (created) {
    const owner = opts.owner ?? { uid: st.uid, gid: st.gid };
    chownSync(dest, owner.uid, owner.gid);
  }
  chmodSync(dest, opts.mode ?? st.mode & 0o7777);
}

/** Creates `path` inside `root` (and missing parents, 0755, owned by `owner`). @returns its host path, and whether it was made */
async function ensureDir(root: string, path: string, opts: CopyOptions): Promise<{ host: string; created: boolean }> {
  const parts = path.split("/").filter(Boolean);
  let current = "/";
  let created = false;
  for (const part of parts) {
    current = posix.join(current, part);
    const host = await secureJoin(root, current);
    const st = lstatOr(host);
    created = false;
    if (st?.isDirectory()) continue;
    if (st) throw invalidArgument(`cannot copy to ${path}: ${current} is not a directory`);
    mkdirSync(host, { mode: 0o755 });
    const owner = opts.owner ?? { uid: 0, gid: 0 };
    chownSync(host, owner.uid, owner.gid);
    chmodSync(host, 0o755);
    created = true;
  }
  return { host: await secureJoin(root, path), created };
}

/** Whether a destination inside `root` is an existing directory (symlinks followed inside the root). */
export async function isDirInRoot(root: string, path: string): Promise<boolean> {
  const host = await secureJoin(root, path);
  try {
    return (await lstat(host)).isDirectory();
  } catch (e) {
    if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return false;
    throw e;
  }
}
