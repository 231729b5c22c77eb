import { mkdir, open, readdir, readFile, rm, type FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Logger } from "pino";
import { z } from "zod";
import { LinkErrorSchema } from "./contract.ts";
import { tempPrefixOf, writeFileAtomic } from "../engine/fs-util.ts";
import type { Outcome } from "./request-ledger.ts";

/**
 * The request ledger on disk: an append-only journal of JSON lines, one when a request
 * starts (written and fsynced before its work runs) and one when it settles (with the
 * outcome of a recorded request, without one for a read). After a crash it tells the
 * next agent which requests were running, so they are answered as interrupted instead
 * of being run again, and which outcomes to replay to retries.
 *
 * Bounded: when the file grows past `maxBytes` it is rewritten (atomically) from what
 * the ledger still holds, keeping running requests and the newest outcomes within half
 * of it. A line torn by a crash or a disk error is skipped with a warning.
 */

const StartLine = z.object({ start: z.string().min(1), fingerprint: z.string(), what: z.string(), at: z.number() });
const OutcomeSchema = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true), result: z.unknown() }),
  z.object({ ok: z.literal(false), error: LinkErrorSchema }),
]);
const EndLine = z.object({ end: z.string().min(1), at: z.number(), outcome: OutcomeSchema.optional() });
const JournalLine = z.union([StartLine, EndLine]);

/** A request as the journal knows it: running when `settledAt` is unset. */
export interface JournalEntry {
  id: string;
  fingerprint: string;
  what: string;
  startedAt: number;
  settledAt?: number;
  outcome?: Outcome;
}

export interface RequestJournalOptions {
  logger: Logger;
  /** Rewrite the journal when it grows past this (default 4 MiB). */
  maxBytes?: number;
}

const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;

const startLine = (e: JournalEntry) => JSON.stringify({ start: e.id, fingerprint: e.fingerprint, what: e.what, at: e.startedAt }) + "\n";
const endLine = (id: string, at: number, outcome?: Outcome) => JSON.stringify(outcome ? { end: id, at, outcome } : { end: id, at }) + "\n";

export class RequestJournal {
  private fh?: FileHandle;
  private bytes = 0;
  private readonly maxBytes: number;
  private readonly log: Logger;
  private queue: Array<{ line: string; done: (err?: Error) => void }> = [];
  private flushing?: Promise<void>;
  /** A write failed: the file may end in a torn line, so it is rewritten before the next append. */
  private broken = false;
  private closed = false;

  private constructor(
    readonly file: string,
    opts: RequestJournalOptions,
    /** What the ledger holds now, for rewrites. */
    private readonly live: () => JournalEntry[],
  ) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    this.log = opts.logger;
  }

  /**
   * Reads the journal left by the previous run (none: empty), then opens it for appending.
   * `prepare` turns what was read into what the ledger keeps (interrupted requests
   * settled, old outcomes dropped); the file is rewritten to exactly that.
   * @throws when the journal's directory or file cannot be read or written
   */
  static async open(
    file: string,
    opts: RequestJournalOptions,
    prepare: (read: JournalEntry[]) => JournalEntry[],
    live: () => JournalEntry[],
  ): Promise<RequestJournal> {
    const journal = new RequestJournal(file, opts, live);
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    // Temporary files of a rewrite the previous agent died in.
    const leftover = tempPrefixOf(file);
    for (const name of await readdir(dirname(file))) if (name.startsWith(leftover)) await rm(join(dirname(file), name), { force: true });
    let text = "";
    try {
      text = await readFile(file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    const kept = prepare(journal.parse(text));
    await journal.rewrite(kept);
    return journal;
  }

  /** Records a request as started; resolves once it is on disk. */
  started(entry: JournalEntry): Promise<void> {
    return this.append(startLine(entry));
  }

  /** Records a request as settled: with its outcome when retries are to get it, without to forget it. */
  settled(id: string, at: number, outcome?: Outcome): Promise<void> {
    return this.append(endLine(id, at, outcome));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flushing;
    await this.fh?.close().catch((e: unknown) => this.log.debug({ err: e }, "request journal: closing failed"));
    this.fh = undefined;
  }

  private parse(text: string): JournalEntry[] {
    const entries = new Map<string, JournalEntry>();
    const lines = text.split("\n");
    const torn: number[] = [];
    lines.forEach((raw, i) => {
      if (!raw) return;
      let line: z.infer<typeof JournalLine>;
      try {
        line = JournalLine.parse(JSON.parse(raw));
      } catch {
        torn.push(i + 1);
        return;
      }
      if ("start" in line) {
        entries.set(line.start, { id: line.start, fingerprint: line.fingerprint, what: line.what, startedAt: line.at });
        return;
      }
      const entry = entries.get(line.end);
      if (!entry) return;
      if (line.outcome) Object.assign(entry, { settledAt: line.at, outcome: line.outcome as Outcome });
      else entries.delete(line.end);
    });
    if (torn.length) {
      const tail =
        torn.length === 1 && torn[0] === lines.length
          ? "its last line was cut short (a write the crash interrupted)"
          : `lines ${torn.slice(0, 10).join(", ")}${torn.length > 10 ? ", …" : ""} are unreadable`;
      this.log.warn({ file: this.file, unreadable: torn.length, kept: entries.size }, `request journal: ${tail}; skipped`);
    }
    return [...entries.values()];
  }

  private append(line: string): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`the request journal ${this.file} is closed`));
    return new Promise((resolve, reject) => {
      this.queue.push({ line, done: (err) => (err ? reject(err) : resolve()) });
      this.flushing ??= this.flush().finally(() => (this.flushing = undefined));
    });
  }

  /** Writes queued lines in batches, one fsync per batch; rewrites the file when it is too big or a write failed. */
  private async flush(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue.splice(0);
      try {
        if (this.broken || this.bytes > this.maxBytes) await this.rewrite(this.live(), true);
        const data = batch.map((b) => b.line).join("");
        if (!this.fh) throw new Error(`the request journal ${this.file} is not open`);
        await this.fh.write(data);
        await this.fh.datasync();
        this.bytes += Buffer.byteLength(data);
        for (const b of batch) b.done();
      } catch (e) {
        this.broken = true;
        for (const b of batch) b.done(e as Error);
      }
    }
  }

  /**
   * Replaces the file with the given entries (running ones, and settled ones newest first
   * within half of maxBytes) and reopens it for appending. `pending`: the entries come from
   * the live ledger, whose lines still queued are appended right after.
   */
  private async rewrite(entries: JournalEntry[], pending = false): Promise<void> {
    const running = entries.filter((e) => e.settledAt === undefined);
    const settled = entries.filter((e) => e.settledAt !== undefined && e.outcome).sort((a, b) => b.settledAt! - a.settledAt!);
    let text = running.map(startLine).join("");
    let budget = this.maxBytes / 2 - Buffer.byteLength(text);
    let dropped = 0;
    for (const e of settled) {
      const lines = startLine(e) + endLine(e.id, e.settledAt!, e.outcome);
      const size = Buffer.byteLength(lines);
      if (size > budget) {
        dropped += 1;
        continue;
      }
      budget -= size;
      text += lines;
    }
    if (dropped) {
      const why = "request journal: the oldest recorded outcomes do not fit its size limit; a retry of those requests after a restart runs them again";
      this.log.warn({ file: this.file, dropped }, why);
    }
    await this.fh?.close().catch((e: unknown) => this.log.debug({ err: e }, "request journal: closing before the rewrite failed"));
    this.fh = undefined;
    await writeFileAtomic(this.file, text, { mode: 0o600 });
    this.fh = await open(this.file, "a", 0o600);
    this.bytes = Buffer.byteLength(text);
    this.broken = false;
    if (pending) this.log.debug({ file: this.file, bytes: this.bytes, entries: entries.length }, "request journal rewritten");
  }
}
