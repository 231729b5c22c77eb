/**
 * How overlayfs records changes in an upper directory (and how the layer store
 * keeps whiteouts in lower ones), as read by `diff`, `commit` and `export`:
 *
 * - a deleted name is a whiteout: a character device 0/0 (overlay may share
 *   one inode between all whiteouts, so their link count means nothing);
 * - a directory whose lower contents are hidden is opaque:
 *   `trusted.overlay.opaque=y` (other values, such as 6.7's "x", are not opaque);
 * - `trusted.overlay.redirect` (a renamed directory) and
 *   `trusted.overlay.metacopy` (a file whose data stayed below) mean the upper
 *   directory alone does not hold the change. They appear only with
 *   `redirect_dir=on` or `metacopy=on`, which the snapshotter does not ask for
 *   (and which are off by default on Debian); an upper dir using them is refused
 *   rather than turned into a wrong layer.
 */
import type { BigIntStats } from "node:fs";
import { notImplemented } from "../errors.ts";
import type { Xattrs } from "./xattrs.ts";

export const OPAQUE_XATTR = "trusted.overlay.opaque";
const REDIRECT_XATTR = "trusted.overlay.redirect";
const METACOPY_XATTR = "trusted.overlay.metacopy";

export function isWhiteout(st: BigIntStats): boolean {
  return st.isCharacterDevice() && st.rdev === 0n;
}

export function isOpaque(x: Xattrs | undefined): boolean {
  const v = x?.get(OPAQUE_XATTR);
  return v !== undefined && v.length === 1 && v[0] === 0x79; // "y"
}

/** @throws NotImplemented for an upper entry whose change lives partly in a lower layer. */
export function checkSelfContained(rel: string, x: Xattrs | undefined): void {
  if (!x) return;
  if (x.has(REDIRECT_XATTR)) {
    throw notImplemented(
      `/${rel} is a redirected directory (overlay redirect_dir=on): its content is not in the upper layer; mount overlay with redirect_dir=off`,
    );
  }
  if (x.has(METACOPY_XATTR)) {
    throw notImplemented(`/${rel} is a metadata-only copy-up (overlay metacopy=on): its data is not in the upper layer; mount overlay with metacopy=off`);
  }
}

/** Linux dev_t → major and minor numbers (glibc's gnu_dev_major/minor). */
export function majorMinor(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}
