/**
 * Creating a directory inside a container's root filesystem from the host,
 * without following symlinks out of it: Docker creates a missing WORKDIR
 * before the container starts (`container.SetupWorkingDirectory`), and so
 * does Berth, with this function, on the mounted rootfs, before `runc create`.
 */
import { lstat, mkdir } from "node:fs/promises";
import { join, relative, resolve, sep } from "node:path";
import { conflict, invalidArgument } from "../errors.ts";
import { secureJoin } from "./secure-join.ts";

/**
 * Creates `unsafePath` (and its missing parents) inside `root`, resolving it
 * with `secureJoin` first, so that a symlink in the container's filesystem
 * (`/srv -> /etc` of the host) leads to a directory inside the root.
 * New directories are owned by the caller (root) with `mode` (default 0755),
 * as Docker makes them. Existing directories are left as they are.
 * @returns the host path of the directory.
 * @throws InvalidArgument if a component exists and is not a directory
 *   ("Cannot mkdir: /x is not a directory", Docker's message);
 *   Conflict if the tree changes under it (a component becomes a symlink).
 */
export async function mkdirInRoot(root: string, unsafePath: string, mode = 0o755): Promise<string> {
  const base = resolve(root);
  const target = await secureJoin(base, unsafePath);
  const rel = relative(base, target);
  if (rel === "") return base;
  let cur = base;
  for (const part of rel.split(sep)) {
    cur = join(cur, part);
    const st = await lstat(cur).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw e;
    });
    if (st?.isDirectory()) continue;
    if (st?.isSymbolicLink()) throw conflict(`${unsafePath}: ${"/" + relative(base, cur)} changed into a symlink while it was being created`);
    if (st) throw invalidArgument(`Cannot mkdir: ${"/" + relative(base, cur)} is not a directory`);
    try {
      await mkdir(cur, { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const again = await lstat(cur);
      if (!again.isDirectory()) throw conflict(`${unsafePath}: ${"/" + relative(base, cur)} appeared as a non-directory while it was being created`);
    }
  }
  return target;
}
