import type { ServerResponse } from "node:http";
import type { ProgressEvent } from "../engine/images/progress.ts";
import { toEngineError } from "../engine/errors.ts";

/**
 * Docker's JSON message stream (application/json, one object per line), used by
 * pull, push, load and import. The CLI draws per-layer progress bars from
 * `progressDetail` and prints `progress` as given when it is not on a terminal.
 */
export class JsonMessageStream {
  private started = false;

  constructor(private readonly res: ServerResponse) {}

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, { "Content-Type": "application/json" });
  }

  write(message: Record<string, unknown>): void {
    this.start();
    if (!this.res.writableEnded) this.res.write(JSON.stringify(message) + "\n");
  }

  progress(e: ProgressEvent): void {
    const msg: Record<string, unknown> = { status: e.status };
    if (e.current !== undefined) {
      msg.progressDetail = e.total ? { current: e.current, total: e.total } : { current: e.current };
      msg.progress = progressBar(e.current, e.total);
    } else {
      msg.progressDetail = {};
    }
    if (e.id !== undefined) msg.id = e.id;
    this.write(msg);
  }

  /** Ends the stream with an error message (the HTTP status is already 200 once a stream started). */
  fail(e: unknown): void {
    const err = toEngineError(e);
    this.write({ errorDetail: { message: err.message }, error: err.message });
    this.end();
  }

  get hasStarted(): boolean {
    return this.started;
  }

  end(): void {
    this.start();
    if (!this.res.writableEnded) this.res.end();
  }
}

export function humanSize(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i += 1;
  }
  return i === 0 ? `${v}${units[i]}` : `${v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0).replace(/\.0+$/, "")}${units[i]}`;
}

/** The "[=====>      ]  1.2MB/3.4MB" text Docker puts in `progress`. */
export function progressBar(current: number, total?: number): string {
  if (!total || total <= 0) return humanSize(current);
  const width = 50;
  const filled = Math.min(width, Math.floor((current / total) * width));
  const bar = "=".repeat(Math.max(0, filled - 1)) + (filled > 0 ? (filled === width ? "=" : ">") : "") + " ".repeat(width - filled);
  return `[${bar}] ${humanSize(current).padStart(8)}/${humanSize(total)}`;
}
