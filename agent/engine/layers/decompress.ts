import { PassThrough, Readable, Writable, type Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as zlib from "node:zlib";
import { dataLoss, invalidArgument } from "../errors.ts";

export type Compression = "gzip" | "zstd" | "bzip2" | "xz" | "none";

/** Recognises a compression format from the first bytes of a stream (at least 6 for certainty). */
export function detectCompression(head: Uint8Array): Compression {
  const b = (i: number) => head[i];
  if (b(0) === 0x1f && b(1) === 0x8b) return "gzip";
  if (b(0) === 0x28 && b(1) === 0xb5 && b(2) === 0x2f && b(3) === 0xfd) return "zstd";
  if (b(0) === 0x42 && b(1) === 0x5a && b(2) === 0x68) return "bzip2"; // "BZh"
  if (b(0) === 0xfd && b(1) === 0x37 && b(2) === 0x7a && b(3) === 0x58 && b(4) === 0x5a && b(5) === 0x00) return "xz";
  return "none";
}

/**
 * Turns a layer blob into its tar stream by sniffing the magic bytes:
 * gzip is gunzipped (multi-member gzip included), anything that is not a known
 * compression format is passed through unchanged (a plain tar; if it is not a
 * tar either, the tar reader rejects it). zstd is decompressed only when this
 * Node has `zlib.createZstdDecompress` (Node ≥ 22.15); bzip2 and xz never are.
 *
 * Errors (unsupported compression: InvalidArgument "unsupported layer
 * compression: zstd"; corrupt gzip: DataLoss; the input's own errors) are
 * emitted on the returned stream, which the caller owns: destroying it
 * destroys `input`.
 */
export function decompressStream(input: Readable): Readable {
  const out = new PassThrough({ highWaterMark: 256 * 1024 });
  void run(input, out).catch((e: unknown) => {
    input.destroy();
    out.destroy(e instanceof Error ? e : new Error(String(e)));
  });
  return out;
}

async function run(input: Readable, out: PassThrough): Promise<void> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const headChunks: Buffer[] = [];
  let headLen = 0;
  let ended = false;
  while (headLen < 6) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    const chunk = typeof r.value === "string" ? Buffer.from(r.value) : r.value;
    headChunks.push(chunk);
    headLen += chunk.length;
  }
  const head = Buffer.concat(headChunks);
  const kind = detectCompression(head);
  const rest = Readable.from(
    (async function* () {
      if (head.length) yield head;
      if (ended) return;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield r.value;
      }
    })(),
    { objectMode: false },
  );
  // The generator's `return` on early destroy calls it.return(), which destroys `input`.
  // `out` is fed through a sink rather than being the pipeline's last stage, so that
  // it is destroyed with the mapped error below, not with zlib's raw one.
  const decoder = decoderFor(kind);
  const sink = new Writable({
    highWaterMark: 256 * 1024,
    write(chunk: Buffer, _enc, cb) {
      if (out.destroyed) return cb(new Error("decompressed stream closed by its reader"));
      if (out.write(chunk)) cb();
      else out.once("drain", () => cb());
    },
    final(cb) {
      out.end();
      cb();
    },
  });
  out.once("close", () => {
    if (!out.writableFinished) sink.destroy(new Error("decompressed stream closed by its reader"));
  });
  try {
    await (decoder ? pipeline(rest, decoder, sink) : pipeline(rest, sink));
  } catch (e) {
    // A corrupt or truncated compressed stream is damaged content.
    throw isZlibError(e) ? dataLoss(`corrupt ${kind} layer stream: ${e.message}`, e) : e;
  }
}

function decoderFor(kind: Compression): Transform | undefined {
  switch (kind) {
    case "none":
      return undefined;
    case "gzip":
      return zlib.createGunzip({ chunkSize: 128 * 1024 });
    case "zstd": {
      const make = (zlib as unknown as { createZstdDecompress?: () => Transform }).createZstdDecompress;
      if (typeof make === "function") return make();
      throw invalidArgument("unsupported layer compression: zstd (this Node has no zstd decoder; Node 22.15 or later has one)");
    }
    case "bzip2":
    case "xz":
      throw invalidArgument(`unsupported layer compression: ${kind}`);
  }
}

function isZlibError(e: unknown): e is Error & { code?: string } {
  const code = (e as { code?: unknown } | undefined)?.code;
  return e instanceof Error && typeof code === "string" && code.startsWith("Z_");
}
