import { Readable, type Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as zlib from "node:zlib";
import { dataLoss, invalidArgument } from "../errors.ts";
import { awaitedLater } from "../../../shared/best-effort.ts";

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
 * Lazy: nothing is read from `input` until the returned stream is read, so its
 * errors cannot fire before the reader is listening. Errors are emitted on the
 * returned stream (`pipeline`/`for await` reject with them): unsupported
 * compression is InvalidArgument "unsupported layer compression: zstd", a
 * corrupt or truncated gzip stream is DataLoss, the input's own errors pass
 * through unchanged. The caller owns the returned stream; destroying it
 * destroys `input`. (`.pipe()` does not forward errors: use `pipeline`.)
 */
export function decompressStream(input: Readable): Readable {
  const out = Readable.from(decompress(input), { objectMode: false, highWaterMark: 256 * 1024 });
  out.once("close", () => {
    if (!input.readableEnded) input.destroy();
  });
  return out;
}

async function* decompress(input: Readable): AsyncGenerator<Buffer> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
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
  const rest = async function* (): AsyncGenerator<Buffer> {
    if (head.length) yield head;
    if (ended) return;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield typeof r.value === "string" ? Buffer.from(r.value) : r.value;
    }
  };
  let decoder: Transform | undefined;
  try {
    decoder = decoderFor(kind);
  } catch (e) {
    input.destroy();
    throw e;
  }
  if (!decoder) {
    yield* rest();
    return;
  }
  // Feed the decoder in the background; its output (and any error, the input's
  // included, since pipeline destroys the decoder with it) comes out below.
  const feeding = awaitedLater(pipeline(Readable.from(rest(), { objectMode: false }), decoder));
  try {
    for await (const chunk of decoder as AsyncIterable<Buffer>) yield chunk;
    await feeding;
  } catch (e) {
    // A corrupt or truncated compressed stream is damaged content.
    throw isZlibError(e) ? dataLoss(`corrupt ${kind} layer stream: ${e.message}`, e) : e;
  } finally {
    decoder.destroy();
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
