/**
 * The worker thread of unpack-pool.ts: one layer at a time, bytes in by message, then
 * decompress (when asked), hash (diff ID) and unpack with extract.ts's synchronous writer.
 * Everything it knows of a failure goes back as { kind, message, code }.
 */
import { createHash } from "node:crypto";
import { PassThrough, type Readable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { parentPort } from "node:worker_threads";
import { EngineError } from "../errors.ts";
import { decompressStream } from "./decompress.ts";
import { extractTarHere } from "./extract.ts";
import type { FromWorker, ToWorker } from "./unpack-pool.ts";

const port = parentPort;
if (!port) throw new Error("unpack-worker.ts runs only as a worker thread (unpack-pool.ts starts it)");

// Every chunk in (a message's copy) and out of gunzip is a new Buffer outside V8's heap; V8
// collects them only when that external memory passes its own threshold (tens of MB), which
// each worker would otherwise hold on top of the main thread's. A collection every few MB of
// layer keeps a worker's dead buffers small; on a small heap it takes about a millisecond.
setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;
const COLLECT_EVERY_BYTES = 4 * 1024 * 1024;
let sinceCollect = 0;

let job: { id: number; input: PassThrough; abort: AbortController } | undefined;

port.on("message", (m: ToWorker) => {
  switch (m.t) {
    case "start":
      start(m.job, m.dir, m.compressed);
      return;
    case "data": {
      const current = job;
      if (!current || current.input.destroyed) return;
      const n = m.chunk.length;
      current.input.write(Buffer.from(m.chunk.buffer, m.chunk.byteOffset, n), () => post({ t: "ack", job: current.id, n }));
      return;
    }
    case "end":
      job?.input.end();
      return;
    case "fail":
      job?.input.destroy(new Error(m.message));
      return;
    case "abort":
      job?.abort.abort(new Error("layer extraction canceled"));
      job?.input.destroy();
      return;
  }
});

function post(m: FromWorker): void {
  port!.postMessage(m);
}

function start(id: number, dir: string, compressed: boolean): void {
  const input = new PassThrough({ highWaterMark: 256 * 1024 });
  const abort = new AbortController();
  const current = { id, input, abort };
  job = current;
  const hash = createHash("sha256");
  let tarSize = 0;
  const tar: Readable = compressed ? decompressStream(input) : input;
  const observe = (chunk: Buffer) => {
    hash.update(chunk);
    tarSize += chunk.length;
    sinceCollect += chunk.length;
    if (sinceCollect >= COLLECT_EVERY_BYTES) {
      sinceCollect = 0;
      collectGarbage();
    }
  };
  extractTarHere(tar, dir, { signal: abort.signal, observe }).then(
    ({ size }) => {
      if (job === current) job = undefined;
      post({ t: "done", job: id, size, diffId: `sha256:${hash.digest("hex")}`, tarSize });
    },
    (e: unknown) => {
      if (job === current) job = undefined;
      if (!tar.destroyed) tar.destroy();
      post({ t: "error", job: id, kind: e instanceof EngineError ? e.kind : "Internal", message: e instanceof Error ? e.message : String(e), ...errnoOf(e) });
    },
  );
}

/** The first errno code in the cause chain. */
function errnoOf(e: unknown): { code?: string } {
  for (let cur: unknown = e, depth = 0; cur && depth < 8; depth++) {
    const code = (cur as NodeJS.ErrnoException).code;
    if (typeof code === "string" && /^E[A-Z]+$/.test(code)) return { code };
    cur = (cur as { cause?: unknown }).cause;
  }
  return {};
}
