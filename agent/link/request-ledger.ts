import { toEngineError } from "../engine/errors.ts";
import type { LinkErrorBody } from "./contract.ts";

/** "250 ms", "90 s": for messages about time limits. */
export function formatDuration(ms: number): string {
  return ms < 1_000 ? `${Math.round(ms)} ms` : `${Math.round(ms / 1_000)} s`;
}

/** How a request ended: its result, or the engine error it failed with. */
export type Outcome = { ok: true; result: unknown } | { ok: false; error: LinkErrorBody };

export interface LedgerOptions {
  /** How long a finished request's outcome is kept for retries (default 10 minutes). */
  retentionMs?: number;
  /** Finished outcomes kept at most (oldest dropped first; running requests are never dropped). */
  maxEntries?: number;
  now?: () => number;
}

export interface BeginOptions {
  /** Identifies the request's content: a retry must carry the same one. */
  fingerprint: string;
  /** Keep the outcome after it settles (mutating requests); otherwise only concurrent repeats share it. */
  record: boolean;
  /** The work may be aborted: on `cancel()` and when `timeoutMs` passes. */
  abortable: boolean;
  /** Abortable work is aborted after this long. */
  timeoutMs: number;
  /** A name for messages ("image.pull"). */
  what: string;
}

interface Entry {
  fingerprint: string;
  outcome: Promise<Outcome>;
  controller: AbortController;
  settledAt?: number;
  abortable: boolean;
}

/**
 * The agent's memory of request ids, which makes requests idempotent: an id runs its work
 * once; a repeat while it runs waits for the same outcome, a repeat within the retention
 * window after it finished gets the recorded outcome. Memory only: an agent restart
 * forgets (the console then sees a node that restarted, and its requests' sockets died).
 */
export class RequestLedger {
  private readonly entries = new Map<string, Entry>();
  private readonly retentionMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(opts: LedgerOptions = {}) {
    this.retentionMs = opts.retentionMs ?? 10 * 60_000;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Runs `work` for a new id, or joins the known one.
   * @returns the outcome (never rejects) and whether this call joined an earlier one;
   *          `conflict` when the id was used for a different request (the work does not run).
   */
  begin(id: string, opts: BeginOptions, work: (signal: AbortSignal) => Promise<unknown>): { outcome: Promise<Outcome>; joined: boolean } | { conflict: string } {
    this.sweep();
    const known = this.entries.get(id);
    if (known) {
      if (known.fingerprint !== opts.fingerprint) return { conflict: `request id ${id} was already used for a different request` };
      return { outcome: known.outcome, joined: true };
    }
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    if (opts.abortable) {
      timer = setTimeout(() => controller.abort(new Error(`${opts.what} did not finish within ${formatDuration(opts.timeoutMs)}`)), opts.timeoutMs);
    }
    const entry: Entry = { fingerprint: opts.fingerprint, controller, abortable: opts.abortable, outcome: undefined as unknown as Promise<Outcome> };
    entry.outcome = (async (): Promise<Outcome> => {
      try {
        return { ok: true, result: await work(controller.signal) };
      } catch (e) {
        if (controller.signal.aborted) {
          const reason = controller.signal.reason;
          return { ok: false, error: { kind: "Canceled", message: reason instanceof Error ? reason.message : `${opts.what} was canceled` } };
        }
        const err = toEngineError(e);
        return { ok: false, error: { kind: err.kind, message: err.message } };
      } finally {
        clearTimeout(timer);
        entry.settledAt = this.now();
        if (!opts.record && this.entries.get(id) === entry) this.entries.delete(id);
      }
    })();
    this.entries.set(id, entry);
    return { outcome: entry.outcome, joined: false };
  }

  /** Aborts a running abortable request. @returns false when there is nothing to abort. */
  cancel(id: string, reason: string): boolean {
    const e = this.entries.get(id);
    if (!e || e.settledAt !== undefined || !e.abortable) return false;
    e.controller.abort(new Error(reason));
    return true;
  }

  /** Aborts everything still running (the link is stopping). */
  abortAll(reason: string): void {
    for (const e of this.entries.values()) if (e.settledAt === undefined && e.abortable) e.controller.abort(new Error(reason));
  }

  get size(): number {
    return this.entries.size;
  }

  private sweep(): void {
    const horizon = this.now() - this.retentionMs;
    for (const [id, e] of this.entries) if (e.settledAt !== undefined && e.settledAt < horizon) this.entries.delete(id);
    if (this.entries.size < this.maxEntries) return;
    const settled = [...this.entries].filter(([, e]) => e.settledAt !== undefined).sort((a, b) => a[1].settledAt! - b[1].settledAt!);
    for (const [id] of settled.slice(0, this.entries.size - this.maxEntries + 1)) this.entries.delete(id);
  }
}
