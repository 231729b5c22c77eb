/**
 * Resolving a path inside a container's root filesystem from the host, after
 * Go's `github.com/cyphar/filepath-securejoin` (used by runc, containerd and Docker).
 *
 * A container's filesystem is untrusted: its `/etc/passwd` may be a symlink
 * to `/etc/passwd` of the host, its WORKDIR may go through `../../..`. Read
 * naively from the host, such paths leave the container's root. Here every
 * component is resolved as the kernel would inside a chroot at `root`:
 * absolute symlinks restart at `root`, `..` never climbs above `root`.
 */
import { lstat, readlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { invalidArgument } from "../errors.ts";

/** Symlinks followed before giving up, as Linux's ELOOP limit (MAXSYMLINKS is 40; securejoin uses 255). */
const MAX_SYMLINKS = 255;

/**
 * The host path of `unsafePath` resolved inside `root` as if `root` were `/`:
 * symlinks are followed inside the root (absolute ones relative to it), `..`
 * stops at the root, and the result is always `root` or below it. Components
 * that do not exist are kept as they are (the result may not exist), so a
 * caller can create them.
 *
 * Not race-free: a process that can change the tree (a running container)
 * may swap a component for a symlink after this returns. Use it on a
 * filesystem nothing else writes to at the time (before the container starts),
 * and open the result with O_NOFOLLOW where it matters.
 *
 * @param root absolute or relative path of the root directory (the result is absolute).
 * @throws InvalidArgument after 255 symlinks (a loop), or for a path with a NUL byte.
 */
export async function secureJoin(root: string, unsafePath: string): Promise<string> {
  if (unsafePath.includes("\0")) throw invalidArgument(`path ${JSON.stringify(unsafePath)} contains a NUL byte`);
  const base = resolve(root);
  /** Resolved components below the root, no symlinks, no `..`. */
  const current: string[] = [];
  let remaining = unsafePath;
  let links = 0;
  while (remaining !== "") {
    const slash = remaining.indexOf("/");
    const part = slash < 0 ? remaining : remaining.slice(0, slash);
    remaining = slash < 0 ? "" : remaining.slice(slash + 1);
    if (part === "" || part === ".") continue;
    if (part === "..") {
      current.pop();
      continue;
    }
    const host = join(base, ...current, part);
    let isLink = false;
    try {
      isLink = (await lstat(host)).isSymbolicLink();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") throw e;
    }
    if (!isLink) {
      current.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) {
      throw invalidArgument(`resolving ${JSON.stringify(unsafePath)} inside ${base}: too many levels of symbolic links`);
    }
    const dest = await readlink(host);
    if (dest.startsWith("/")) current.length = 0;
    remaining = remaining === "" ? dest : `${dest}/${remaining}`;
  }
  return join(base, ...current);
}
