/**
 * The content store: immutable blobs (layer tarballs as downloaded, manifests,
 * image configs) addressed by their sha256 digest.
 *
 * Contract, after containerd's content.Store and containers/image's PutBlob:
 *
 * - A blob is visible under its digest only once it is complete and verified.
 *   Writers stream into a temporary file, hash every byte as it passes, and on
 *   `commit()` check size and digest, fsync and rename into place. No reader can
 *   ever see half a blob, after a crash either: the leftovers are temporary files
 *   that `removeStaleIngests()` deletes at start-up.
 * - Blobs are never modified. Writing a blob that already exists is allowed and
 *   harmless (the new copy is verified, then dropped or atomically replaces an
 *   identical one), so concurrent writers of the same digest need no lock.
 * - Every digest string is validated with `parseDigest` before it is used in a
 *   path; anything but `sha256:` + 64 lowercase hex is InvalidArgument.
 * - Errors are `EngineError`s: InvalidArgument (bad digest string or option),
 *   NotFound (missing blob), DataLoss (digest or size mismatch, truncated or
 *   oversized input), Canceled (AbortSignal fired).
 *
 * Ownership: whoever calls `writer()` owns the writer and must end it with
 * exactly one of `commit()` or `abort()` (both always release the temporary
 * file; `abort()` after `commit()` is a no-op). Whoever calls `read()` owns the
 * returned stream and must consume or destroy it. The store does not track
 * which blobs are in use: deleting a blob some image still names is the
 * caller's (image service's) business.
 */
import type { Readable, Writable } from "node:stream";
import { invalidArgument } from "../errors.ts";

export interface BlobInfo {
  /** `sha256:<64 lowercase hex>` */
  digest: string;
  /** bytes */
  size: number;
}

/** What a writer is told to expect. Either, both or neither may be known. */
export interface BlobExpectation {
  digest?: string;
  size?: number;
}

/**
 * A `node:stream` Writable the caller pipes a blob's bytes into.
 *
 * Call order: write/pipe bytes → (end the stream, or let `pipeline` end it) →
 * `commit()`; or at any point `abort()`. `commit()` also ends the stream if the
 * caller has not, and waits for every write to reach the file.
 *
 * If more bytes than the expected size are written, the write fails at once with
 * DataLoss (the stream errors; a `pipeline` feeding it rejects), without waiting
 * for the end of the input.
 */
export interface BlobWriter extends Writable {
  /** The expected digest, if one was given. */
  readonly digest: string | undefined;
  /** Bytes accepted so far. */
  bytesWritten(): number;
  /**
   * Verifies size and digest of everything written, fsyncs and renames the blob
   * into place (or drops the temporary file if the blob already exists). Always
   * releases the temporary file.
   * @throws DataLoss "blob digest mismatch: expected sha256:… got sha256:…" or a size mismatch; the data is deleted.
   * @throws whatever error destroyed the stream before (e.g. size exceeded), after cleaning up.
   */
  commit(): Promise<BlobInfo>;
  /** Discards the temporary file. Safe after `commit()` and safe to call twice. Never throws. */
  abort(): Promise<void>;
}

export interface ContentStore {
  /** Final path of a blob (which may not exist). @throws InvalidArgument on a bad digest. */
  path(digest: string): string;
  /** Size of a stored blob, or undefined if it is not stored. */
  info(digest: string): Promise<BlobInfo | undefined>;
  has(digest: string): Promise<boolean>;
  /**
   * Streams a stored blob, from byte `start` (default 0).
   * A malformed digest throws InvalidArgument synchronously; a missing blob is
   * reported asynchronously: the returned stream emits a NotFound EngineError
   * as its 'error' (so `pipeline`/`for await` reject with it).
   */
  read(digest: string, opts?: { start?: number }): Readable;
  /**
   * Reads a small blob (manifest, config) whole. Not re-verified: blobs were
   * verified when written.
   * @param maxBytes refuse (InvalidArgument) blobs larger than this; default 4 MiB.
   * @throws NotFound if the blob is not stored.
   */
  readBytes(digest: string, maxBytes?: number): Promise<Buffer>;
  /** Opens a writer (see BlobWriter for the call order). @throws InvalidArgument on a bad expectation. */
  writer(expected?: BlobExpectation): Promise<BlobWriter>;
  /** Stores bytes held in memory; `expectedDigest` is verified if given. */
  writeBytes(data: Uint8Array, expectedDigest?: string): Promise<BlobInfo>;
  /**
   * Stores a stream: writer + pipeline + commit, aborting on any failure.
   * The source is consumed (or destroyed on failure).
   * @throws DataLoss on mismatch or oversized/truncated input, Canceled if `signal` fires,
   *   or the source's own error.
   */
  writeStream(source: Readable, expected?: BlobExpectation, signal?: AbortSignal): Promise<BlobInfo>;
  /** Deletes a blob; no error if it does not exist. */
  delete(digest: string): Promise<void>;
  /** All stored blobs (order unspecified). */
  list(): Promise<BlobInfo[]>;
  /**
   * Deletes temporary files left by writes that never committed or aborted
   * (a crash). Meant for start-up; files of writers open in this process are kept.
   * @returns how many were deleted.
   */
  removeStaleIngests(): Promise<number>;
}

const DIGEST_RE = /^sha256:([0-9a-f]{64})$/;

/**
 * Splits and validates a digest. Only `sha256:` followed by exactly 64
 * lowercase hex characters is accepted.
 * @throws InvalidArgument "invalid digest format: …" on anything else.
 */
export function parseDigest(d: string): { algorithm: "sha256"; hex: string } {
  const m = typeof d === "string" ? DIGEST_RE.exec(d) : null;
  if (!m) {
    const shown = typeof d === "string" ? JSON.stringify(d.length > 80 ? d.slice(0, 80) + "…" : d) : String(d);
    throw invalidArgument(`invalid digest format: ${shown} (expected sha256: followed by 64 lowercase hex characters)`);
  }
  return { algorithm: "sha256", hex: m[1]! };
}
