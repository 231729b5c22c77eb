/**
 * A build context archive as a user uploads it (the console's Build form): checked to be a
 * tar, plain or gzip-compressed, before it is kept for its job, so a wrong file is refused
 * at once, with its name, and not minutes later on the node.
 */
import { constants as zc, gunzipSync } from "node:zlib";

/** Why `archive` is not a build context the node can unpack; null when it is one. */
export function contextArchiveProblem(archive: Buffer, name: string): string | null {
  if (archive.length === 0) return `the context archive ${name} is empty`;
  let head = archive;
  if (archive[0] === 0x1f && archive[1] === 0x8b) {
    try {
      // The first blocks are enough to know; a truncated stream is flushed, not refused.
      head = gunzipSync(archive.subarray(0, 64 * 1024), { finishFlush: zc.Z_SYNC_FLUSH });
    } catch (e) {
      return `the context archive ${name} is not valid gzip: ${(e as Error).message}`;
    }
  }
  // ustar (POSIX and GNU) keeps its magic at offset 257 of every header.
  if (head.length < 512 || head.subarray(257, 262).toString("latin1") !== "ustar") {
    return `the context archive ${name} is not a tar archive: upload a .tar or .tar.gz`;
  }
  return null;
}
