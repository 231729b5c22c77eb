/**
 * Layer unpacking off the agent's event loop: a small pool of worker threads
 * (one per core, at least 2), each unpacking one layer at a time with synchronous
 * file-system calls (unpack-worker.ts). The main thread only streams the layer's bytes
 * (compressed or not) into the worker; the worker decompresses, hashes (diff ID) and
 * writes the files, so layers of one pull are unpacked on different cores.
 *
 * A job ends (its promise settles) only once its worker has stopped writing into the
 * target directory, so the caller may remove a half-written directory right away.
 * A worker that dies (a crash, an out-of-memory abort) fails only the job it was running,
 * with an Internal error; the next job gets a new worker.
 *
 * Input streams: consumed to their end, or destroyed when the job fails; the input's own
 * failure (a broken download) is what the job rejects with, so callers can tell a network
 * reset from a bad tar.
 */
import { availableParallelism } from "node:os";
import type { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type * as Esbuild from "esbuild";
import { canceled, ENGINE_ERROR_KINDS, EngineError, type EngineErrorKind } from "../errors.ts";

export interface UnpackJob {
  /** Existing (empty) directory to unpack into. */
  dir: string;
  /** The input is a layer blob as stored (gzip, zstd where Node has it, or a plain tar), recognised by its first bytes. */
  compressed: boolean;
}

export interface UnpackOutcome {
  /** Bytes of regular files written (extract.ts ExtractResult). */
  size: number;
  /** `sha256:…` of the uncompressed tar. */
  diffId: string;
  /** Length of the uncompressed tar. */
  tarSize: number;
}

/** Main thread → worker. */
export type ToWorker =
  | { t: "start"; job: number; dir: string; compressed: boolean }
  | { t: "data"; chunk: Uint8Array }
  | { t: "end" }
  /** The input failed on the main thread: stop, the main thread reports its error. */
  | { t: "fail"; message: string }
  | { t: "abort" };

/** Worker → main thread, each naming the job (its start message's number): a late word of an ended job is ignored. */
export type FromWorker =
  | { t: "ack"; job: number; n: number }
  | ({ t: "done"; job: number } & UnpackOutcome)
  | { t: "error"; job: number; kind: string; message: string; code?: string };

let jobSeq = 0;

/** Bytes posted to a worker and not yet taken by its tar reader: bounds the memory a fast download can fill. */
const WINDOW = 2 * 1024 * 1024;
/** A small young generation: a worker's data are Buffers (outside the V8 heap), and each worker's heap counts in the agent's memory. */
const YOUNG_MB = 4;
/** An idle worker ends after this long (its memory goes back); the next pull starts a new one. */
const IDLE_MS = 60_000;

interface Slot {
  worker: Worker;
  busy: boolean;
  idleTimer?: NodeJS.Timeout;
  /** Set while a job runs: its handler for the worker's messages and its death. */
  job?: { onMessage(m: FromWorker): void; onDeath(e: Error): void };
}

/**
 * The worker's code. Beside the agent's bundle (scripts/build-agent.mjs builds it); from the
 * sources, bundled here once per process with esbuild (a dev dependency, as tsx is): Node 20
 * hands tsx's loader to no worker thread, and a loader in each worker would cost a second
 * thread, ~100 MB and a second or more of start-up per worker.
 */
let script: Promise<URL> | undefined;
let scriptUrl: URL | undefined;

function workerScript(): Promise<URL> {
  script ??= (async () => {
    const here = import.meta.url;
    if (!here.endsWith(".ts")) return new URL("./berth-agent-unpack-worker.mjs", here);
    // A name the agent's bundler does not follow: the bundle must not carry esbuild (it has its worker file).
    const bundler = "esbuild";
    const { build } = (await import(bundler)) as typeof Esbuild;
    const entry = fileURLToPath(new URL("./unpack-worker.ts", here));
    const out = await build({
      entryPoints: [entry],
      bundle: true,
      platform: "node",
      format: "esm",
      target: `node${process.versions.node.split(".")[0]}`,
      write: false,
      logLevel: "warning",
      // Bundled CommonJS dependencies (tar-stream) call require() for Node's builtins.
      banner: { js: `import { createRequire } from "node:module"; const require = createRequire(${JSON.stringify(entry)});` },
    });
    return new URL(`data:text/javascript,${encodeURIComponent(out.outputFiles[0]!.text)}`);
  })().then(
    (url) => (scriptUrl = url),
    (e: unknown) => {
      script = undefined; // the next job tries again
      throw new EngineError("Internal", `cannot prepare the layer unpack worker: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    },
  );
  return script;
}

export class UnpackPool {
  readonly size: number;
  private readonly slots = new Set<Slot>();
  private readonly waiting: Array<(s: Slot) => void> = [];

  constructor(size = Math.max(2, availableParallelism())) {
    this.size = size;
  }

  /** Starts the workers ahead of need (a pull calls this while it fetches the manifest and config). */
  warm(): void {
    workerScript().then(
      () => {
        while (this.slots.size < this.size) this.idle(this.spawn());
      },
      () => undefined, // a hint only: the first job meets (and reports) the same failure
    );
  }

  /** Workers running a job now (tests use this to kill one mid-unpack). */
  busyWorkers(): Worker[] {
    return [...this.slots].filter((s) => s.busy).map((s) => s.worker);
  }

  /** Ends every worker; running jobs fail. */
  async close(): Promise<void> {
    await Promise.all([...this.slots].map((s) => s.worker.terminate()));
  }

  /** Unpacks `input` into `job.dir` in a worker. @throws EngineError as extractLayer does, or the input's own error. */
  async run(input: Readable, job: UnpackJob, signal?: AbortSignal): Promise<UnpackOutcome> {
    if (signal?.aborted) {
      input.destroy();
      throw canceled("layer extraction canceled", signal.reason);
    }
    let slot: Slot;
    try {
      slot = await this.acquire(signal);
    } catch (e) {
      input.destroy();
      throw e;
    }
    try {
      return await feed(slot, input, job, signal);
    } finally {
      slot.job = undefined;
      if (this.slots.has(slot)) this.idle(slot);
    }
  }

  /** A new worker; workerScript() must have resolved. */
  private spawn(): Slot {
    const worker = new Worker(scriptUrl!, { name: "berth-unpack", resourceLimits: { maxYoungGenerationSizeMb: YOUNG_MB } });
    const slot: Slot = { worker, busy: false };
    this.slots.add(slot);
    const died = (e: Error) => {
      if (!this.slots.delete(slot)) return;
      clearTimeout(slot.idleTimer);
      slot.job?.onDeath(e);
      // A waiter may now start a worker of its own.
      const next = this.waiting.shift();
      if (next) {
        const s = this.spawn();
        s.busy = true;
        next(s);
      }
    };
    worker.on("message", (m: FromWorker) => slot.job?.onMessage(m));
    worker.on("error", (e) => died(e));
    worker.on("exit", (code) => died(new Error(`the worker exited with code ${code}`)));
    return slot;
  }

  private idle(slot: Slot): void {
    const next = this.waiting.shift();
    if (next) {
      slot.busy = true;
      next(slot);
      return;
    }
    slot.busy = false;
    slot.worker.unref(); // an idle worker keeps no process alive
    clearTimeout(slot.idleTimer);
    slot.idleTimer = setTimeout(() => {
      if (slot.busy) return;
      this.slots.delete(slot); // out of reach of acquire() before it goes
      void slot.worker.terminate();
    }, IDLE_MS).unref();
  }

  private async acquire(signal: AbortSignal | undefined): Promise<Slot> {
    await workerScript();
    const take = (s: Slot) => {
      clearTimeout(s.idleTimer);
      s.busy = true;
      s.worker.ref();
      return s;
    };
    for (const s of this.slots) if (!s.busy) return take(s);
    if (this.slots.size < this.size) return take(this.spawn());
    return new Promise((resolve, reject) => {
      const waiter = (s: Slot) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(take(s));
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(waiter);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(canceled("layer extraction canceled", signal?.reason));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }
}

/** Streams `input` into the slot's worker and waits for its answer. */
function feed(slot: Slot, input: Readable, job: UnpackJob, signal: AbortSignal | undefined): Promise<UnpackOutcome> {
  const worker = slot.worker;
  return new Promise<UnpackOutcome>((resolve, reject) => {
    let outstanding = 0;
    let wake: (() => void) | undefined;
    let over = false;
    let inputError: unknown;
    let aborted = false;

    const finish = (err: unknown, outcome?: UnpackOutcome) => {
      if (over) return;
      over = true;
      signal?.removeEventListener("abort", onAbort);
      wake?.();
      if (!input.readableEnded) input.destroy();
      if (err === undefined) resolve(outcome!);
      // A failed input also breaks the worker's tar: the input's failure is the news.
      else if (inputError !== undefined) reject(inputError);
      else if (aborted || signal?.aborted) reject(canceled("layer extraction canceled", signal?.reason ?? err));
      else reject(err);
    };
    const onAbort = () => {
      aborted = true;
      worker.postMessage({ t: "abort" } satisfies ToWorker);
      input.destroy();
    };
    const id = ++jobSeq;
    slot.job = {
      onMessage(m) {
        if (m.job !== id) return;
        if (m.t === "ack") {
          outstanding -= m.n;
          if (outstanding < WINDOW) wake?.();
        } else if (m.t === "done") finish(undefined, { size: m.size, diffId: m.diffId, tarSize: m.tarSize });
        else finish(revive(m));
      },
      onDeath(e) {
        finish(new EngineError("Internal", `the layer unpack worker stopped while unpacking into ${job.dir}: ${e.message}`, { cause: e }));
      },
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    worker.postMessage({ t: "start", job: id, dir: job.dir, compressed: job.compressed } satisfies ToWorker);

    void (async () => {
      try {
        for await (const chunk of input as AsyncIterable<Buffer | string>) {
          if (over) return;
          const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
          if (bytes.length === 0) continue;
          // Posting copies the chunk's whole ArrayBuffer: a small view of a big one is cut out first.
          // (Transferring would detach a buffer the caller may still hold, a tee's other branch.)
          const chunkOut = bytes.buffer.byteLength > 2 * bytes.length + 8192 ? new Uint8Array(bytes) : bytes;
          worker.postMessage({ t: "data", chunk: chunkOut } satisfies ToWorker);
          outstanding += bytes.length;
          while (outstanding >= WINDOW && !over) await new Promise<void>((r) => (wake = r));
          wake = undefined;
        }
        if (!over) worker.postMessage({ t: "end" } satisfies ToWorker);
      } catch (e) {
        if (over || aborted) return;
        inputError = e;
        worker.postMessage({ t: "fail", message: e instanceof Error ? e.message : String(e) } satisfies ToWorker);
      }
    })();
  });
}

function revive(m: { kind: string; message: string; code?: string }): EngineError {
  const kind: EngineErrorKind = (ENGINE_ERROR_KINDS as readonly string[]).includes(m.kind) ? (m.kind as EngineErrorKind) : "Internal";
  // The errno code survives the thread hop: a full disk must still read as ENOSPC to the puller.
  const cause = m.code ? Object.assign(new Error(m.message), { code: m.code }) : undefined;
  return new EngineError(kind, m.message, cause ? { cause } : undefined);
}

let shared: UnpackPool | undefined;

/** The process's pool, made on first use. */
export function unpackPool(): UnpackPool {
  return (shared ??= new UnpackPool());
}
