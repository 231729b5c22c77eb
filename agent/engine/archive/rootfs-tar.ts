import type { Readable } from "node:stream";
import { treeTar } from "./tree-tar.ts";

/**
 * `docker export`: a whole (merged) root filesystem as a tar, with the entry
 * rules of tree-tar.ts and no whiteout conversion (a merged view has none).
 * The walk never follows a symlink out of `dir`, even if the tree changes while
 * it is read. The caller owns the stream: read it to the end or destroy it.
 *
 * @param dir the container's mounted root filesystem (the overlay's merged directory).
 * @param opts.exclude absolute paths inside the container to leave out.
 */
export function rootfsTar(dir: string, opts?: { exclude?: string[] }): Readable {
  return treeTar(dir, { upper: false, ...(opts?.exclude ? { exclude: opts.exclude } : {}) });
}
