import { PassThrough, Transform, pipeline, type Duplex, type Readable } from "node:stream";

/**
 * Splits one stream into two that are both fed every chunk. The source is paused
 * until both branches have taken a chunk (backpressure from the slower side), so
 * a layer can be stored and unpacked while it downloads without buffering it.
 * An error on the source is forwarded to both branches; a branch closed early
 * (its consumer gave up) destroys the source, and with it the other branch.
 */
export function teeStream(source: Readable): [Readable, Readable] {
  const a = new PassThrough();
  const b = new PassThrough();
  // The source's error reaches each consumer through its own pipeline or iterator; a
  // branch whose consumer already gave up (the other side failed first) has nobody
  // listening, and an unheard 'error' would end the process.
  a.on("error", () => undefined);
  b.on("error", () => undefined);
  let waiting = 0;
  const resumeWhenDrained = () => {
    waiting -= 1;
    if (waiting === 0) source.resume();
  };
  source.on("data", (chunk: Buffer) => {
    const okA = a.write(chunk);
    const okB = b.write(chunk);
    if (!okA || !okB) {
      source.pause();
      if (!okA) {
        waiting += 1;
        a.once("drain", resumeWhenDrained);
      }
      if (!okB) {
        waiting += 1;
        b.once("drain", resumeWhenDrained);
      }
    }
  });
  source.once("end", () => {
    a.end();
    b.end();
  });
  source.once("error", (err) => {
    a.destroy(err);
    b.destroy(err);
  });
  // If a consumer gives up, stop reading the source so nothing keeps flowing nowhere.
  const onBranchClose = (branch: PassThrough) => () => {
    if (!branch.writableFinished && !source.destroyed) source.destroy(branch.errored ?? new Error("stream consumer closed early"));
  };
  a.once("close", onBranchClose(a));
  b.once("close", onBranchClose(b));
  return [a, b];
}

/** A pass-through that reports the running byte count (at most every `intervalMs`, and once at the end). */
export function countingStream(onCount: (bytes: number) => void, intervalMs = 100): Transform {
  let bytes = 0;
  let last = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      bytes += chunk.length;
      const now = Date.now();
      if (now - last >= intervalMs) {
        last = now;
        onCount(bytes);
      }
      cb(null, chunk);
    },
    flush(cb) {
      onCount(bytes);
      cb();
    },
  });
}

/** Reads a whole stream into memory, refusing more than `maxBytes`. For small documents only. */
export async function readAll(stream: Readable, maxBytes: number, what = "document"): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += (chunk as Buffer).length;
    if (total > maxBytes) {
      stream.destroy();
      throw new RangeError(`${what} is larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * `source.pipe(transform)` with errors carried both ways: a failing source destroys
 * the transform (so its reader sees the error instead of waiting forever), and a
 * destroyed transform destroys the source.
 */
export function through<T extends Duplex>(source: Readable, transform: T): T {
  pipeline(source, transform, () => undefined);
  return transform;
}

/**
 * Watches what a client types for a detach sequence (Docker's `--detach-keys`, ctrl-p ctrl-q by
 * default). `push` returns the bytes to forward and whether the sequence was completed: the
 * sequence itself is never forwarded, bytes before it are, and a partial match at the end of a
 * chunk is held back until the next chunk shows whether it was the sequence (then dropped) or
 * ordinary input (then forwarded first), as moby/term's escape proxy does across reads.
 */
export class EscapeSequenceFilter {
  /** How many keys of the sequence the last bytes matched (those bytes are held back). */
  private matched = 0;
  private done = false;

  constructor(private readonly keys: Buffer) {
    if (keys.length === 0) throw new RangeError("an escape sequence needs at least one key");
  }

  push(chunk: Buffer): { forward: Buffer; detached: boolean } {
    if (this.done) return { forward: Buffer.alloc(0), detached: true };
    const out: Buffer[] = [];
    let run = 0; // where the current run of ordinary bytes in `chunk` starts
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b !== this.keys[this.matched] && this.matched > 0) {
        // Not the sequence after all: the held bytes were ordinary input; this byte may start a new match.
        out.push(this.keys.subarray(0, this.matched));
        this.matched = 0;
        run = i;
      }
      if (b !== this.keys[this.matched]) continue;
      if (this.matched === 0) out.push(chunk.subarray(run, i));
      this.matched++;
      run = i + 1;
      if (this.matched === this.keys.length) {
        this.done = true;
        return { forward: Buffer.concat(out), detached: true };
      }
    }
    if (this.matched === 0) out.push(chunk.subarray(run));
    return { forward: Buffer.concat(out), detached: false };
  }
}
