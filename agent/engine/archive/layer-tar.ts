import type { Readable } from "node:stream";
import { treeTar } from "./tree-tar.ts";

/**
 * A container's changes as an image layer (`docker commit`): the overlay upper
 * directory of its snapshot (snapshots/overlay.ts `upperDir(key)`) as an
 * uncompressed layer tar, whiteouts as `.wh.NAME` and opaque directories as
 * `DIR/.wh..wh..opq` (entry rules in tree-tar.ts). Deterministic: the same upper
 * directory gives the same bytes, so the same diff ID.
 *
 * The upper directory may belong to a mounted (even running) container; a
 * paused or stopped one gives a consistent layer. The caller owns the stream:
 * read it to the end or destroy it (which releases every open file).
 * Errors arrive on the stream: NotImplemented for an upper dir made with overlay
 * redirect_dir or metacopy (overlay-form.ts), Unavailable if getfattr is missing.
 *
 * @param opts.exclude paths not to commit, such as the runtime's bind-mount
 *   targets (/etc/hosts, /etc/hostname, /etc/resolv.conf) when it created them as
 *   empty files in the upper directory (exclusion.ts).
 */
export function upperToLayerTar(upperDir: string, opts?: { exclude?: string[] }): Readable {
  return treeTar(upperDir, { upper: true, ...(opts?.exclude ? { exclude: opts.exclude } : {}) });
}
