import { randomBytes } from "node:crypto";
import { lstatSync, type Stats } from "node:fs";
import { lstat, open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Small filesystem helpers the on-disk stores share. */

export function isErrno(e: unknown, code: string): boolean {
  return (e as NodeJS.ErrnoException | undefined)?.code === code;
}

/** Whether something (of any type, a dangling symlink included) is at `p`. */
export async function pathExists(p: string): Promise<boolean> {
  try {
    await lstat(p);
    return true;
  } catch (e) {
    if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return false;
    throw e;
  }
}

/** A catch handler for a read of something that may not be there: ENOENT becomes undefined, the rest is thrown on. */
export function ifMissing(e: unknown): undefined {
  if (isErrno(e, "ENOENT")) return undefined;
  throw e;
}

/** lstat(2), or undefined when nothing is there (an entry that vanished meanwhile is not a failure). */
export async function lstatIfAny(p: string): Promise<Stats | undefined> {
  try {
    return await lstat(p);
  } catch (e) {
    if (isErrno(e, "ENOENT")) return undefined;
    throw e;
  }
}

/** The names in a directory, or none when it does not exist. */
export async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if (isErrno(e, "ENOENT")) return [];
    throw e;
  }
}

/** Makes a rename or a new entry in `dir` durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** "/a/./b/" → "a/b" ("" is the root); undefined if it climbs above the root. Lexical: links are not followed. */
export function cleanRelativePath(p: string): string | undefined {
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length === 0) return undefined;
      out.pop();
      continue;
    }
    out.push(part);
  }
  return out.join("/");
}

/** Creates `p` (it must not exist) with `text`, flushed to disk before returning. */
export async function writeNewFileSynced(p: string, text: string): Promise<void> {
  const fh = await open(p, "wx", 0o644);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** lstat(2), synchronously, or undefined when nothing is there. */
export function lstatOr(p: string): Stats | undefined {
  try {
    return lstatSync(p);
  } catch (e) {
    if (isErrno(e, "ENOENT")) return undefined;
    throw e;
  }
}

/**
 * Replaces `path` atomically: a temporary file beside it (named `.NAME.tmp-PID-RANDOM`:
 * `tempPrefixOf(path)` finds what a crash left), written, fsynced, renamed over `path`, then
 * the directory fsynced so the rename itself survives a crash. Readers see the old content
 * or the new, never a mix. The directory must exist. `durable: false` skips both fsyncs
 * (tests of stores that make it configurable); the rename stays atomic.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, opts: { mode?: number; durable?: boolean } = {}): Promise<void> {
  const mode = opts.mode ?? 0o600;
  const durable = opts.durable ?? true;
  const dir = dirname(path);
  const tmp = join(dir, `${tempPrefixOf(path)}${process.pid}-${randomBytes(4).toString("hex")}`);
  try {
    const fh = await open(tmp, "wx", mode);
    try {
      await fh.writeFile(data);
      // open(2)'s mode is narrowed by the umask; chmod states the intended mode either way.
      await fh.chmod(mode);
      if (durable) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
  if (durable) await fsyncDir(dir);
}

/** The name prefix of writeFileAtomic's temporary files for `path` (in its directory). */
export function tempPrefixOf(path: string): string {
  return `.${basename(path)}.tmp-`;
}
