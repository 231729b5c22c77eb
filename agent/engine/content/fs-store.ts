/**
 * ContentStore on a local filesystem.
 *
 * Layout:
 *   ROOT/blobs/sha256/<hex>   committed blobs, read-only by convention
 *   ROOT/ingest/<random>      temporary files of writers in progress
 *
 * ROOT/ingest and ROOT/blobs must be on the same filesystem (rename).
 */
import { createHash, randomBytes, type Hash } from "node:crypto";
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Writable } from "node:stream";
import { finished, pipeline } from "node:stream/promises";
import { canceled, dataLoss, invalidArgument, notFound } from "../errors.ts";
import { parseDigest, type BlobExpectation, type BlobInfo, type BlobWriter, type ContentStore } from "./store.ts";
import { fsyncDir, isErrno } from "../fs-util.ts";
import { pino, type Logger } from "pino";
import { bestEffort, settled } from "../../../shared/best-effort.ts";

const DEFAULT_MAX_READ_BYTES = 4 * 1024 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;

export class FsContentStore implements ContentStore {
  readonly root: string;
  private readonly blobDir: string;
  private readonly ingestDir: string;
  /** Temp file names of writers open in this process; removeStaleIngests keeps them. */
  private readonly active = new Set<string>();

  private readonly log: Logger;

  constructor(root: string, logger?: Logger) {
    this.root = root;
    this.log = logger ?? pino({ enabled: false });
    this.blobDir = join(root, "blobs", "sha256");
    this.ingestDir = join(root, "ingest");
  }

  path(digest: string): string {
    return join(this.blobDir, parseDigest(digest).hex);
  }

  async info(digest: string): Promise<BlobInfo | undefined> {
    const p = this.path(digest);
    try {
      const st = await stat(p);
      return st.isFile() ? { digest, size: st.size } : undefined;
    } catch (e) {
      if (isErrno(e, "ENOENT")) return undefined;
      throw e;
    }
  }

  async has(digest: string): Promise<boolean> {
    return (await this.info(digest)) !== undefined;
  }

  read(digest: string, opts?: { start?: number }): Readable {
    const p = this.path(digest);
    const start = opts?.start ?? 0;
    if (!Number.isSafeInteger(start) || start < 0) throw invalidArgument(`invalid read offset ${start} for blob ${digest}`);
    return Readable.from(readFile(p, digest, start), { objectMode: false });
  }

  async readBytes(digest: string, maxBytes = DEFAULT_MAX_READ_BYTES): Promise<Buffer> {
    const fh = await openBlob(this.path(digest), digest);
    try {
      const { size } = await fh.stat();
      if (size > maxBytes) throw invalidArgument(`blob ${digest} is ${size} bytes, more than the limit of ${maxBytes} bytes`);
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  }

  async writer(expected?: BlobExpectation): Promise<BlobWriter> {
    if (expected?.digest !== undefined) parseDigest(expected.digest);
    if (expected?.size !== undefined && (!Number.isSafeInteger(expected.size) || expected.size < 0)) {
      throw invalidArgument(`invalid expected blob size: ${expected.size}`);
    }
    await mkdir(this.ingestDir, { recursive: true });
    const name = `${expected?.digest ? parseDigest(expected.digest).hex.slice(0, 12) + "-" : ""}${randomBytes(12).toString("hex")}`;
    const tempPath = join(this.ingestDir, name);
    const fh = await open(tempPath, "wx", 0o644);
    this.active.add(name);
    return new FsBlobWriter({
      fh,
      tempPath,
      expected: { ...expected },
      finalPath: (digest) => this.path(digest),
      blobDir: this.blobDir,
      onRelease: () => this.active.delete(name),
      log: this.log,
    });
  }

  async writeBytes(data: Uint8Array, expectedDigest?: string): Promise<BlobInfo> {
    const w = await this.writer({ digest: expectedDigest, size: data.byteLength });
    try {
      await new Promise<void>((resolve, reject) => {
        w.once("error", reject);
        w.end(Buffer.from(data.buffer, data.byteOffset, data.byteLength), () => resolve());
      });
      return await w.commit();
    } finally {
      await w.abort();
    }
  }

  async writeStream(source: Readable, expected?: BlobExpectation, signal?: AbortSignal): Promise<BlobInfo> {
    let w: BlobWriter;
    try {
      w = await this.writer(expected);
    } catch (e) {
      source.destroy(); // ours to release, also when nothing was read (an open file)
      throw e;
    }
    try {
      await pipeline(source, w, signal ? { signal } : {});
      return await w.commit();
    } catch (e) {
      if (signal?.aborted || (e instanceof Error && e.name === "AbortError"))
        throw canceled(`writing blob ${expected?.digest ?? "(digest unknown)"} canceled`, e);
      throw e;
    } finally {
      await w.abort();
    }
  }

  async delete(digest: string): Promise<void> {
    const p = this.path(digest);
    try {
      await unlink(p);
    } catch (e) {
      if (!isErrno(e, "ENOENT")) throw e;
    }
  }

  async list(): Promise<BlobInfo[]> {
    let names: string[];
    try {
      names = await readdir(this.blobDir);
    } catch (e) {
      if (isErrno(e, "ENOENT")) return [];
      throw e;
    }
    const out: BlobInfo[] = [];
    for (const n of names) {
      if (!HEX64.test(n)) continue;
      const info = await this.info(`sha256:${n}`);
      if (info) out.push(info);
    }
    return out;
  }

  async removeStaleIngests(): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.ingestDir);
    } catch (e) {
      if (isErrno(e, "ENOENT")) return 0;
      throw e;
    }
    let n = 0;
    for (const name of names) {
      if (this.active.has(name)) continue;
      await rm(join(this.ingestDir, name), { recursive: true, force: true });
      n++;
    }
    return n;
  }
}

async function openBlob(p: string, digest: string): Promise<FileHandle> {
  try {
    return await open(p, "r");
  } catch (e) {
    if (isErrno(e, "ENOENT")) throw notFound(`blob ${digest} not found`);
    throw e;
  }
}

async function* readFile(p: string, digest: string, start: number): AsyncGenerator<Buffer> {
  const fh = await openBlob(p, digest);
  // The file stream closes the handle when it ends or is destroyed (generator return).
  yield* fh.createReadStream({ start, highWaterMark: 256 * 1024 }) as AsyncIterable<Buffer>;
}

interface WriterParts {
  fh: FileHandle;
  tempPath: string;
  expected: BlobExpectation;
  finalPath: (digest: string) => string;
  blobDir: string;
  onRelease: () => void;
  log: Logger;
}

class FsBlobWriter extends Writable implements BlobWriter {
  readonly digest: string | undefined;
  private readonly parts: WriterParts;
  private readonly hash: Hash = createHash("sha256");
  private written = 0;
  private renamed = false;
  private aborted = false;
  private committing: Promise<BlobInfo> | undefined;
  private released: Promise<void> | undefined;

  constructor(parts: WriterParts) {
    super({ highWaterMark: 64 * 1024, decodeStrings: true });
    this.parts = parts;
    this.digest = parts.expected.digest;
  }

  bytesWritten(): number {
    return this.written;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const limit = this.parts.expected.size;
    if (limit !== undefined && this.written + chunk.length > limit) {
      cb(dataLoss(`blob ${this.digest ?? "(digest unknown)"} exceeds its expected size of ${limit} bytes (got at least ${this.written + chunk.length})`));
      return;
    }
    this.hash.update(chunk);
    this.written += chunk.length;
    writeAll(this.parts.fh, chunk).then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    // A clean auto-destroy after 'finish' keeps the file for commit(); anything else releases it.
    if (err || !this.writableFinished || this.aborted) {
      this.release().then(
        () => cb(err),
        () => cb(err),
      );
    } else {
      cb(err);
    }
  }

  commit(): Promise<BlobInfo> {
    this.committing ??= this.doCommit();
    return this.committing;
  }

  async abort(): Promise<void> {
    if (this.committing) {
      await settled(this.committing); // its failure goes to commit()'s caller
      return;
    }
    this.aborted = true;
    if (!this.destroyed) this.destroy();
    await this.release();
  }

  private async doCommit(): Promise<BlobInfo> {
    try {
      if (this.aborted) throw canceled("blob writer was aborted before commit");
      if (this.errored) throw this.errored;
      if (!this.writableFinished) {
        if (this.destroyed) throw dataLoss("blob writer was destroyed before all data was written");
        const done = finished(this, { readable: false });
        if (!this.writableEnded) this.end();
        await done;
      }
      const size = this.written;
      const digest = `sha256:${this.hash.digest("hex")}`;
      const exp = this.parts.expected;
      if (exp.size !== undefined && exp.size !== size) {
        throw dataLoss(`blob ${exp.digest ?? digest} is truncated: expected ${exp.size} bytes, got ${size}`);
      }
      if (exp.digest !== undefined && exp.digest !== digest) {
        throw dataLoss(`blob digest mismatch: expected ${exp.digest} got ${digest}`);
      }
      const { fh, tempPath } = this.parts;
      await fh.sync();
      await fh.close();
      const finalPath = this.parts.finalPath(digest);
      await mkdir(this.parts.blobDir, { recursive: true });
      if (await exists(finalPath)) {
        await unlink(tempPath).catch(bestEffort(this.parts.log, `remove ${tempPath}, a duplicate of ${digest}`));
      } else {
        // Replacing an identical blob written concurrently is atomic and harmless.
        await rename(tempPath, finalPath);
        await fsyncDir(this.parts.blobDir);
      }
      this.renamed = true;
      return { digest, size };
    } finally {
      await this.release();
      if (!this.destroyed) this.destroy();
    }
  }

  private release(): Promise<void> {
    this.released ??= (async () => {
      await this.parts.fh.close().catch(bestEffort(this.parts.log, `close ${this.parts.tempPath}`));
      if (!this.renamed) await unlink(this.parts.tempPath).catch(bestEffort(this.parts.log, `remove ${this.parts.tempPath}`));
      this.parts.onRelease();
    })();
    return this.released;
  }
}

async function writeAll(fh: FileHandle, chunk: Buffer): Promise<void> {
  let off = 0;
  while (off < chunk.length) {
    const { bytesWritten } = await fh.write(chunk, off, chunk.length - off);
    off += bytesWritten;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch (e) {
    if (isErrno(e, "ENOENT")) return false;
    throw e;
  }
}
