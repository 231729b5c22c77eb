import { lstat, readlink } from "node:fs/promises";
import { join } from "node:path";
import { invalidArgument } from "../errors.ts";

/** Symlinks followed before giving up, as the kernel's (and Docker's symlink.FollowSymlinkInScope) limit. */
const MAX_LINKS = 255;

/**
 * Resolves `path` the way a process chrooted at `root` would see it: symlinks
 * are followed, absolute targets start again at `root`, and ".." stops at
 * `root`. The result is always `root` or a path below it (Docker's
 * FollowSymlinkInScope, filepath-securejoin).
 *
 * Resolving is not opening: the caller must still not follow symlinks when it
 * uses the result, since the tree may change in between.
 *
 * @returns the host path, or undefined if a component does not exist or is not a directory.
 * @throws InvalidArgument after too many symlinks (a loop).
 */
export async function resolveInRoot(root: string, path: string): Promise<string | undefined> {
  const resolved: string[] = [];
  const queue = split(path);
  let links = 0;
  while (queue.length > 0) {
    const part = queue.shift()!;
    if (part === "..") {
      resolved.pop();
      continue;
    }
    const candidate = join(root, ...resolved, part);
    let st;
    try {
      st = await lstat(candidate);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") return undefined;
      throw e;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw invalidArgument(`${path}: too many levels of symbolic links inside the container's root filesystem`);
      const target = await readlink(candidate);
      if (target.startsWith("/")) resolved.length = 0;
      queue.unshift(...split(target));
      continue;
    }
    if (queue.length > 0 && !st.isDirectory()) return undefined;
    resolved.push(part);
  }
  return join(root, ...resolved);
}

function split(p: string): string[] {
  return p.split("/").filter((c) => c !== "" && c !== ".");
}
