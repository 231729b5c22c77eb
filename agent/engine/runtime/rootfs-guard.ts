/**
 * Making a container's root filesystem safe for runc before `runc create`.
 *
 * runc (1.1.x, Debian's) resolves mount destinations inside the rootfs, but it
 * still builds a few paths by plain joining: the /dev symlinks (`/dev/fd`,
 * `/dev/stdin`…, `/dev/ptmx`) and cgroup mount points under /sys/fs/cgroup.
 * When the image's `/dev` is a symlink to an absolute host path (`/dev ->
 * /tmp/x`), those paths leave the rootfs and runc writes symlinks on the host.
 * Docker never meets this: its "init layer" above the image holds real `/dev`,
 * `/proc` and `/sys` directories, which mask whatever the image has there.
 * Berth does the same on the container's writable layer.
 */
import { lstat, mkdir, unlink } from "node:fs/promises";
import { join } from "node:path";

/** Top-level directories runc mounts over and writes below: they must be real directories. */
export const RUNTIME_DIRS = ["dev", "proc", "sys"] as const;

/**
 * Replaces each of /dev, /proc and /sys of the mounted `rootfs` that is a
 * symlink or any other non-directory with an empty directory (mode 0755,
 * owned by root), and creates those that are missing. Writes go to the
 * container's writable layer; the image is untouched. Call it on a rootfs no
 * process runs in yet (before `runc create`).
 * @returns the names that were replaced (not those merely created).
 */
export async function guardRuntimeDirs(rootfs: string): Promise<string[]> {
  const replaced: string[] = [];
  for (const name of RUNTIME_DIRS) {
    const path = join(rootfs, name);
    const st = await lstat(path).catch((e: unknown) => {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw e;
    });
    if (st?.isDirectory()) continue;
    if (st) {
      await unlink(path);
      replaced.push(name);
    }
    await mkdir(path, { mode: 0o755 });
  }
  return replaced;
}
