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
import { chmod, chown, lchown, link, lstat, lutimes, mkdir, open, readdir, readlink, rm, symlink, unlink, utimes } from "node:fs/promises";
import { join, posix } from "node:path";
import { invalidArgument, notFound } from "../errors.ts";
import { secureJoin } from "../runtime/secure-join.ts";

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
    if (what === "build context") throw notFound(`file not found in build context or excluded by .dockerignore: stat ${src.replace(/^\/+/, "")}: file does not exist`);
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
  const visit = async (hostPath: string, rel: string): Promise<void> => {
    const st = await lstat(hostPath);
    h.update(`${rel}\0${st.mode}\0`);
    if (st.isSymbolicLink()) h.update(`link:${await readlink(hostPath)}\0`);
    else if (st.isFile()) {
      h.update(`size:${st.size}\0`);
      const fh = await open(hostPath, fsc.O_RDONLY | fsc.O_NOFOLLOW);
      try {
        const buf = Buffer.allocUnsafe(CHUNK);
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
          if (bytesRead === 0) break;
          h.update(buf.subarray(0, bytesRead));
        }
      } finally {
        await fh.close();
      }
    } else if (st.isDirectory()) {
      for (const name of (await readdir(hostPath)).sort()) await visit(join(hostPath, name), `${rel}/${name}`);
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
 */
export async function copyInto(root: string, src: string, destPath: string, opts: CopyOptions): Promise<void> {
  const links = new Map<string, string>();
  const st = await lstat(src);
  if (st.isDirectory()) {
    const destHost = await ensureDir(root, destPath, opts, st);
    await applyMeta(destHost, st, opts, true);
    for (const name of (await readdir(src)).sort()) await copyEntry(root, join(src, name), posix.join(destPath, name), opts, links);
    return;
  }
  await ensureDir(root, posix.dirname(destPath), opts);
  await copyEntry(root, src, destPath, opts, links);
}

async function copyEntry(root: string, src: string, destPath: string, opts: CopyOptions, links: Map<string, string>): Promise<void> {
  const st = await lstat(src);
  // The parent is resolved inside the root; the entry itself is never followed.
  const parent = await secureJoin(root, posix.dirname(destPath));
  const dest = join(parent, posix.basename(destPath));
  const existing = await lstat(dest).catch(() => undefined);
  if (st.isDirectory()) {
    if (existing && !existing.isDirectory()) await rm(dest, { recursive: true, force: true });
    if (!existing || !existing.isDirectory()) await mkdir(dest, { mode: st.mode & 0o7777 });
    await applyMeta(dest, st, opts, true);
    for (const name of (await readdir(src)).sort()) await copyEntry(root, join(src, name), posix.join(destPath, name), opts, links);
    await lutimes(dest, st.atime, st.mtime);
    return;
  }
  if (existing?.isDirectory()) throw invalidArgument(`cannot overwrite directory ${destPath} with a non-directory`);
  if (existing) await unlink(dest);
  if (st.isSymbolicLink()) {
    await symlink(await readlink(src), dest);
    const owner = opts.owner ?? { uid: st.uid, gid: st.gid };
    await lchown(dest, owner.uid, owner.gid);
    await lutimes(dest, st.atime, st.mtime);
    return;
  }
  if (!st.isFile()) return; // devices, sockets, FIFOs and whiteouts are never copied
  const key = `${st.dev}:${st.ino}`;
  if (st.nlink > 1) {
    const first = links.get(key);
    if (first) {
      await link(first, dest);
      return;
    }
    links.set(key, dest);
  }
  const input = await open(src, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    const out = await open(dest, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    try {
      const buf = Buffer.allocUnsafe(CHUNK);
      for (;;) {
        const { bytesRead } = await input.read(buf, 0, CHUNK, null);
        if (bytesRead === 0) break;
        await out.write(buf, 0, bytesRead);
      }
    } finally {
      await out.close();
    }
  } finally {
    await input.close();
  }
  await applyMeta(dest, st, opts, false);
  await utimes(dest, st.atime, st.mtime);
}

async function applyMeta(dest: string, st: Stats, opts: CopyOptions, isDir: boolean): Promise<void> {
  const owner = opts.owner ?? { uid: st.uid, gid: st.gid };
  await chown(dest, owner.uid, owner.gid);
  // chown clears setuid bits: the mode goes last.
  await chmod(dest, opts.mode ?? st.mode & 0o7777);
}

/** Creates `path` inside `root` (and missing parents, 0755, owned by `owner`). @returns its host path */
async function ensureDir(root: string, path: string, opts: CopyOptions, like?: Stats): Promise<string> {
  const parts = path.split("/").filter(Boolean);
  let current = "/";
  for (const [i, part] of parts.entries()) {
    current = posix.join(current, part);
    const host = await secureJoin(root, current);
    const st = await lstat(host).catch(() => undefined);
    if (st?.isDirectory()) continue;
    if (st) throw invalidArgument(`cannot copy to ${path}: ${current} is not a directory`);
    await mkdir(host, { mode: 0o755 });
    const owner = opts.owner ?? { uid: 0, gid: 0 };
    await chown(host, owner.uid, owner.gid);
    const last = i === parts.length - 1;
    await chmod(host, last && like ? (opts.mode ?? like.mode & 0o7777) : 0o755);
  }
  return secureJoin(root, path);
}

/** Whether a destination inside `root` is an existing directory (symlinks followed inside the root). */
export async function isDirInRoot(root: string, path: string): Promise<boolean> {
  const host = await secureJoin(root, path);
  return (await lstat(host).catch(() => undefined))?.isDirectory() ?? false;
}

