/**
 * Paths left out of a diff, a layer tar or an export: the runtime's bind-mount
 * targets (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`) when it had to
 * create them as empty files in the container's upper directory.
 *
 * An excluded path is left out with everything below it. In an upper
 * directory, a (non-opaque) directory that holds nothing but excluded paths is
 * left out too: it is there only because the runtime created a mount point in
 * it (Docker keeps those in a separate "-init" layer, so `docker diff` never
 * shows them). The price: a metadata-only change to such a directory (chmod of
 * /etc) is not seen while it holds nothing else.
 */
import { open, readdir } from "node:fs/promises";
import { cleanRelativePath } from "../fs-util.ts";
import { atFd, DIR_FLAGS, isErrno } from "./tree-walk.ts";
import { lstatIfAny } from "../fs-util.ts";

export class Exclusion {
  private readonly paths = new Set<string>();
  /** Proper ancestors of excluded paths (never the root ""). */
  private readonly ancestors = new Set<string>();

  /** @param paths absolute paths inside the container ("/etc/hosts"); "/" and empty entries are ignored. */
  constructor(paths: readonly string[] | undefined) {
    for (const p of paths ?? []) {
      const rel = cleanRelativePath(p);
      if (rel === undefined || rel === "") continue;
      this.paths.add(rel);
      const parts = rel.split("/");
      for (let i = 1; i < parts.length; i++) this.ancestors.add(parts.slice(0, i).join("/"));
    }
  }

  excluded(rel: string): boolean {
    return this.paths.has(rel);
  }

  /**
   * Whether the upper directory `rel` (reachable as `at` without following symlinks)
   * holds nothing but excluded paths, recursively. Cheap for every other directory.
   */
  async onlyExcluded(at: string, rel: string, opaque: (rel: string) => boolean): Promise<boolean> {
    if (!this.ancestors.has(rel) || opaque(rel)) return false;
    let fh;
    try {
      fh = await open(at, DIR_FLAGS);
    } catch (e) {
      if (isErrno(e, "ENOENT") || isErrno(e, "ELOOP") || isErrno(e, "ENOTDIR")) return false;
      throw e;
    }
    try {
      for (const name of await readdir(atFd(fh.fd))) {
        const childRel = `${rel}/${name}`;
        if (this.paths.has(childRel)) continue;
        const st = await lstatIfAny(atFd(fh.fd, name)); // gone meanwhile: nothing to keep
        if (!st) continue;
        if (st.isDirectory() && (await this.onlyExcluded(atFd(fh.fd, name), childRel, opaque))) continue;
        return false;
      }
      return true;
    } finally {
      await fh.close();
    }
  }
}
