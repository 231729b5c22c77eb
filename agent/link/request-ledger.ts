import pino, { type Logger } from "pino";
import { toEngineError } from "../engine/errors.ts";
import { AGENT_RESTARTED_MESSAGE, type LinkErrorBody } from "./contract.ts";
import { RequestJournal, type JournalEntry } from "./request-journal.ts";

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
  /**
   * The journal file that makes the ledger outlive the agent (see request-journal.ts);
   * memory only when unset. Read by `open()`.
   */
  journalFile?: string;
  /** Rewrite the journal past this size (default 4 MiB). */
  journalMaxBytes?: number;
  /** An outcome larger than this is journaled as "too large to keep" (default 64 KiB). */
  maxJournaledOutcomeBytes?: number;
  /** For the journal's warnings; required with `journalFile`. */
  logger?: Logger;
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
  what: string;
  startedAt: number;
  outcome: Promise<Outcome>;
  controller: AbortController;
  settledAt?: number;
  /** The outcome as journaled (recorded requests, once settled). */
  journaled?: Outcome;
  abortable: boolean;
}

/** The answer to a request that was running when the agent died: never run again, since running it may be what killed the agent. */
function interrupted(e: JournalEntry): Outcome {
  const message = `${AGENT_RESTARTED_MESSAGE} (${e.what}, started ${new Date(e.startedAt).toISOString()}); it was not run again: check the node before you retry`;
  return { ok: false, error: { kind: "Interrupted", message } };
}

/**
 * The agent's memory of request ids, which makes requests idempotent: an id runs its work
 * once; a repeat while it runs waits for the same outcome, a repeat within the retention
 * window after it finished gets the recorded outcome.
 *
 * With a journal file it outlives the agent: every request is journaled as started
 * (durably) before its work runs and as settled when it ends. A request that was running
 * when the agent died is answered after the restart as failed, kind Interrupted ("the
 * agent restarted while running this"), and never run again: a request that crashes the
 * agent would otherwise crash it again on every retry. Recorded outcomes are replayed to
 * retries after a restart too, within the retention window.
 */
export class RequestLedger {
  private readonly entries = new Map<string, Entry>();
  private readonly retentionMs: number;
  private readonly maxEntries: number;
  private readonly maxJournaledOutcomeBytes: number;
  private readonly now: () => number;
  private readonly opts: LedgerOptions;
  private journal?: RequestJournal;

  constructor(opts: LedgerOptions = {}) {
    this.opts = opts;
    this.retentionMs = opts.retentionMs ?? 10 * 60_000;
    this.maxEntries = opts.maxEntries ?? 10_000;
    this.maxJournaledOutcomeBytes = opts.maxJournaledOutcomeBytes ?? 64 * 1024;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Reads the journal of the previous run: requests it left running become Interrupted
   * outcomes, recorded outcomes within the retention window are kept; then journals from
   * here on. A journal that cannot be used is logged and the ledger stays memory only:
   * the link works, without crash protection.
   */
  async open(): Promise<void> {
    const { journalFile, logger } = this.opts;
    if (!journalFile || this.journal) return;
    const log = logger?.child({ journal: journalFile });
    try {
      const journalOpts = { logger: log ?? pino({ level: "silent" }), ...(this.opts.journalMaxBytes ? { maxBytes: this.opts.journalMaxBytes } : {}) };
      this.journal = await RequestJournal.open(
        journalFile,
        journalOpts,
        (read) => this.restore(read, log),
        () => this.journalEntries(),
      );
    } catch (e) {
      log?.error(
        { err: e },
        "cannot use the request journal: requests are remembered in memory only, and a request that crashes the agent would run again after the restart",
      );
    }
  }

  /** Stops journaling (the agent is stopping); requests still running stay "started" on disk, so the next run answers them as interrupted. */
  async close(): Promise<void> {
    const j = this.journal;
    this.journal = undefined;
    await j?.close();
  }

  private restore(read: JournalEntry[], log: Logger | undefined): JournalEntry[] {
    const now = this.now();
    const horizon = now - this.retentionMs;
    const kept: JournalEntry[] = [];
    for (const e of read) {
      if (e.settledAt === undefined) {
        const startedAt = new Date(e.startedAt).toISOString();
        log?.warn({ requestId: e.id, method: e.what, startedAt }, "a request was running when the agent stopped: it is answered as interrupted, not run again");
        kept.push({ ...e, settledAt: now, outcome: interrupted(e) });
      } else if (e.settledAt >= horizon && e.outcome) kept.push(e);
    }
    kept.sort((a, b) => b.settledAt! - a.settledAt!);
    for (const e of kept.slice(0, this.maxEntries)) {
      const outcome = e.outcome!;
      this.entries.set(e.id, {
        fingerprint: e.fingerprint,
        what: e.what,
        startedAt: e.startedAt,
        outcome: Promise.resolve(outcome),
        controller: new AbortController(),
        settledAt: e.settledAt!,
        journaled: outcome,
        abortable: false,
      });
    }
    return kept.slice(0, this.maxEntries);
  }

  /** What the journal keeps when it is rewritten: running requests and recorded outcomes. */
  private journalEntries(): JournalEntry[] {
    const out: JournalEntry[] = [];
    for (const [id, e] of this.entries) {
      if (e.settledAt !== undefined && !e.journaled) continue;
      const settled = e.settledAt !== undefined ? { settledAt: e.settledAt, outcome: e.journaled! } : {};
      out.push({ id, fingerprint: e.fingerprint, what: e.what, startedAt: e.startedAt, ...settled });
    }
    return out;
  }

  /** The outcome as the journal keeps it: results too large to keep become an error saying so. */
  private toJournal(outcome: Outcome, what: string): Outcome {
    const size = Buffer.byteLength(JSON.stringify(outcome));
    if (size <= this.maxJournaledOutcomeBytes) return outcome;
    const message = `${what} finished before the agent restarted, but its answer (${Math.ceil(size / 1024)} KiB) was too large to keep: check the node for its effect`;
    return { ok: false, error: { kind: "Unavailable", message } };
  }

  /**
   * Runs `work` for a new id, or joins the known one.
   * @returns the outcome (never rejects) and whether this call joined an earlier one;
   *          `conflict` when the id was used for a different request (the work does not run).
   */
  begin(
    id: string,
    opts: BeginOptions,
    work: (signal: AbortSignal) => Promise<unknown>,
  ): { outcome: Promise<Outcome>; joined: boolean } | { conflict: string } {
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
    const entry: Entry = {
      fingerprint: opts.fingerprint,
      what: opts.what,
      startedAt: this.now(),
      controller,
      abortable: opts.abortable,
      outcome: undefined as unknown as Promise<Outcome>,
    };
    entry.outcome = (async (): Promise<Outcome> => {
      const journal = this.journal;
      if (journal) {
        // On disk before the work runs: if the work kills the agent, the next one knows.
        await journal.started({ id, fingerprint: opts.fingerprint, what: opts.what, startedAt: entry.startedAt }).catch((e: unknown) => {
          const why = "cannot journal the request; running it anyway (should it crash the agent, it would run again after the restart)";
          this.opts.logger?.error({ err: e, requestId: id, method: opts.what }, why);
        });
      }
      let outcome: Outcome;
      try {
        outcome = { ok: true, result: await work(controller.signal) };
      } catch (e) {
        if (controller.signal.aborted) {
          const reason = controller.signal.reason;
          outcome = { ok: false, error: { kind: "Canceled", message: reason instanceof Error ? reason.message : `${opts.what} was canceled` } };
        } else {
          const err = toEngineError(e);
          outcome = { ok: false, error: { kind: err.kind, message: err.message } };
        }
      } finally {
        clearTimeout(timer);
      }
      entry.settledAt = this.now();
      if (opts.record) entry.journaled = this.toJournal(outcome, opts.what);
      else if (this.entries.get(id) === entry) this.entries.delete(id);
      // Settled on disk before the answer leaves: a retry after a crash then never hears "interrupted" for work that finished.
      await this.journal?.settled(id, entry.settledAt, entry.journaled).catch((e: unknown) => {
        this.opts.logger?.error({ err: e, requestId: id, method: opts.what }, "cannot journal the outcome of the request");
      });
      return outcome;
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
