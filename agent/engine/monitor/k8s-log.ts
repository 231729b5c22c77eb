/**
 * Reading a container's log file as conmon writes it: the CRI "k8s-file" format
 * (conmon `ctr_logging.c`), one record per line:
 *
 *   2024-05-01T12:00:00.123456789+02:00 stdout F hello
 *   TIMESTAMP                           STREAM TAG MESSAGE
 *
 * - TIMESTAMP: RFC 3339 with nanoseconds and the host's UTC offset, taken when
 *   conmon read the output (one read of up to 8 KiB may hold several lines,
 *   which then share it);
 * - STREAM: stdout or stderr;
 * - TAG: F for a full line (MESSAGE ends with the line's own "\n"), P for a
 *   partial one (the output had no newline yet: conmon's buffer ended, or the
 *   process wrote half a line; conmon adds the "\n" ending the record). A line
 *   is its P records followed by one F record of the same stream.
 *
 * Rotation: when a write would take the file past `--log-size-max`, conmon
 * writes `PATH.tmp` afresh and renames it over PATH: the old content is gone
 * (no numbered backups) and PATH is a new inode. A follower notices the new
 * inode, drains the old file it still has open, then reads the new one from its
 * start. Lines rotated away between two looks of a follower are lost to it, as
 * they are to `podman logs -f`.
 */
import { watch, type FSWatcher } from "node:fs";
import { open, stat, type FileHandle } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { canceled } from "../errors.ts";
import { ifMissing } from "../fs-util.ts";

export interface LogEntry {
  stream: "stdout" | "stderr";
  /** When the line (its first part) was read, RFC 3339 in UTC with nanoseconds, e.g. "2024-05-01T10:00:00.123456789Z". */
  time: string;
  /** One line including its "\n" (partial records joined); only the last line of a finished log may lack the "\n". */
  data: Buffer;
}

export interface ReadLogsOptions {
  /** Keep reading what is appended until `isRunning` says the container stopped (and the file is drained) or `signal` aborts. */
  follow?: boolean;
  /** Only the last N lines that exist when reading starts (0: none; absent or negative: all). Applied before `since`/`until`. */
  tail?: number;
  /** Unix seconds (fractions allowed): only lines at or after it. */
  since?: number;
  /** Unix seconds: only lines at or before it; a follower stops at the first later line. */
  until?: number;
  /** Stops reading (the iteration ends quietly; a read already waiting is canceled). */
  signal?: AbortSignal;
  /** For `follow`: whether the writer is still alive. Absent: follow until aborted. */
  isRunning?: () => Promise<boolean>;
  /** For `follow`: how often to look for new data without a file-system event (default 250 ms). */
  pollMs?: number;
  /** Start at this offset when the file is still this inode (json-log.ts continues from its mirror). */
  startAt?: { ino: number; pos: number };
}

const CHUNK = 64 * 1024;
const NL = 0x0a;

/** Parsed record line. */
interface LogRecord {
  stream: "stdout" | "stderr";
  partial: boolean;
  /** UTC RFC 3339 with 9 fraction digits. */
  time: string;
  /** Unix seconds (float). */
  seconds: number;
  message: Buffer;
}

/**
 * The lines of a k8s-file log, oldest first.
 * @throws Canceled only if `signal` is already aborted when called; I/O errors other than a missing file.
 */
export async function* readLogs(logPath: string, opts: ReadLogsOptions = {}): AsyncGenerator<LogEntry> {
  if (opts.signal?.aborted) throw canceled("reading logs canceled");
  const follow = !!opts.follow;
  const pollMs = opts.pollMs ?? 250;
  const joiner = new LineJoiner();
  const inRange = (e: { seconds: number }) => (opts.since === undefined || e.seconds >= opts.since) && (opts.until === undefined || e.seconds <= opts.until);
  const pastUntil = (e: { seconds: number }) => opts.until !== undefined && e.seconds > opts.until;

  let fh = await openIfExists(logPath);
  let waiter: ChangeWaiter | undefined;
  try {
    let ino = fh ? (await fh.stat()).ino : undefined;
    let pos = opts.startAt && opts.startAt.ino === ino ? opts.startAt.pos : 0;
    let rest: Buffer = Buffer.alloc(0);
    const drain = async (): Promise<JoinedLine[]> => {
      if (!fh) return [];
      const out: JoinedLine[] = [];
      const r = await readRecords(fh, pos, rest, (rec) => out.push(...joiner.add(rec)));
      pos = r.pos;
      rest = r.rest;
      return out;
    };

    // The first pass: the file as it is now, cut to its last `tail` lines. (Lines still
    // waiting for their end are kept by the joiner and come when they complete.)
    const tail = opts.tail !== undefined && opts.tail >= 0 ? opts.tail : undefined;
    if (fh && tail !== undefined) pos = await tailOffset(fh, (await fh.stat()).size, tail);
    const first = await drain();
    if (!follow) first.push(...joiner.flush());
    for (const l of tail !== undefined ? first.slice(Math.max(0, first.length - tail)) : first) {
      if (pastUntil(l)) return;
      if (inRange(l)) yield entry(l);
    }
    if (!follow) return;

    waiter = new ChangeWaiter(logPath, pollMs);
    let stopping = false;
    for (;;) {
      if (opts.signal?.aborted) return;
      for (const l of await drain()) {
        if (pastUntil(l)) return;
        if (inRange(l)) yield entry(l);
      }
      // Rotated (a new inode at the path) or truncated: continue with the new content from its start.
      const st = await stat(logPath).catch(ifMissing); // between the rename and the new file
      if (st && (st.ino !== ino || st.size < pos)) {
        if (st.ino !== ino) {
          // What was written to the old file after the read above, before the rename.
          for (const l of await drain()) {
            if (pastUntil(l)) return;
            if (inRange(l)) yield entry(l);
          }
          await fh?.close();
          fh = await openIfExists(logPath);
          ino = fh ? (await fh.stat()).ino : undefined;
        }
        pos = 0;
        rest = Buffer.alloc(0);
        continue;
      }
      if (stopping) break;
      if (opts.isRunning && !(await opts.isRunning())) {
        // The writer is gone: one more look picks up its last lines.
        stopping = true;
        continue;
      }
      await waiter.wait(opts.signal);
    }
    for (const l of joiner.flush()) {
      if (pastUntil(l)) return;
      if (inRange(l)) yield entry(l);
    }
  } finally {
    waiter?.close();
    await fh?.close();
  }
}

interface JoinedLine {
  stream: "stdout" | "stderr";
  time: string;
  seconds: number;
  data: Buffer;
}

function entry(l: JoinedLine): LogEntry {
  return { stream: l.stream, time: l.time, data: l.data };
}

/** Joins P records with the F record that ends them, per stream. */
class LineJoiner {
  private readonly pending = new Map<"stdout" | "stderr", { time: string; seconds: number; parts: Buffer[] }>();

  add(rec: LogRecord): JoinedLine[] {
    const p = this.pending.get(rec.stream);
    if (rec.partial) {
      if (p) p.parts.push(rec.message);
      else this.pending.set(rec.stream, { time: rec.time, seconds: rec.seconds, parts: [rec.message] });
      return [];
    }
    this.pending.delete(rec.stream);
    const parts = p ? [...p.parts, rec.message] : [rec.message];
    return [{ stream: rec.stream, time: p?.time ?? rec.time, seconds: p?.seconds ?? rec.seconds, data: Buffer.concat(parts) }];
  }

  /** Lines that never got their end (the writer stopped mid-line), oldest first. */
  flush(): JoinedLine[] {
    const out = [...this.pending.entries()].map(([stream, p]) => ({ stream, time: p.time, seconds: p.seconds, data: Buffer.concat(p.parts) }));
    this.pending.clear();
    return out.sort((a, b) => a.seconds - b.seconds);
  }
}

/** Reads complete record lines from `pos` to the end of the file. `rest` is an incomplete line carried over. */
async function readRecords(fh: FileHandle, pos: number, rest: Buffer, onRecord: (r: LogRecord) => void): Promise<{ pos: number; rest: Buffer }> {
  const buf = Buffer.allocUnsafe(CHUNK);
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, CHUNK, pos);
    if (bytesRead === 0) return { pos, rest };
    pos += bytesRead;
    const data = rest.length ? Buffer.concat([rest, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
    let start = 0;
    for (let nl = data.indexOf(NL, start); nl >= 0; nl = data.indexOf(NL, start)) {
      const rec = parseRecord(data.subarray(start, nl + 1));
      if (rec) onRecord(rec);
      start = nl + 1;
    }
    rest = Buffer.from(data.subarray(start));
  }
}

/**
 * One record line (with its terminating "\n"), or undefined if malformed. A
 * full record's message keeps the "\n"; a partial's drops the one conmon added.
 */
export function parseRecord(line: Buffer): LogRecord | undefined {
  const s1 = line.indexOf(0x20);
  if (s1 < 0) return undefined;
  const s2 = line.indexOf(0x20, s1 + 1);
  if (s2 < 0) return undefined;
  const stream = line.toString("latin1", s1 + 1, s2);
  if (stream !== "stdout" && stream !== "stderr") return undefined;
  const tag = line[s2 + 1];
  if ((tag !== 0x46 && tag !== 0x50) || line[s2 + 2] !== 0x20) return undefined; // "F " / "P "
  const ts = parseTimestamp(line.toString("latin1", 0, s1));
  if (!ts) return undefined;
  const partial = tag === 0x50;
  const end = line[line.length - 1] === NL && partial ? line.length - 1 : line.length;
  return { stream, partial, time: ts.time, seconds: ts.seconds, message: Buffer.from(line.subarray(s2 + 3, end)) };
}

const TS_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|([+-])(\d{2}):(\d{2}))$/;

/** RFC 3339 (any offset, up to nanoseconds) → UTC with 9 fraction digits, and Unix seconds. */
export function parseTimestamp(s: string): { time: string; seconds: number } | undefined {
  const m = TS_RE.exec(s);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, se, frac = "", z, sign, oh, om] = m;
  let ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(se));
  if (z !== "Z") ms -= (sign === "-" ? -1 : 1) * (Number(oh) * 60 + Number(om)) * 60_000;
  if (!Number.isFinite(ms)) return undefined;
  const nanos = frac.padEnd(9, "0");
  const iso = new Date(ms).toISOString(); // whole seconds: "…T10:00:00.000Z"
  return { time: `${iso.slice(0, 19)}.${nanos}Z`, seconds: ms / 1000 + Number(`0.${nanos}`) };
}

/**
 * Where to start reading so that the last `n` lines (ends of lines: F records)
 * are included: just after the (n+1)-th last F record, or 0.
 */
async function tailOffset(fh: FileHandle, size: number, n: number): Promise<number> {
  if (n === 0) return size;
  let pos = size;
  let acc: Buffer = Buffer.alloc(0);
  // acc covers [pos, size); lines starting at acc[counted] or later have been looked at.
  let counted = 0;
  let found = 0;
  while (pos > 0) {
    const len = Math.min(CHUNK, pos);
    pos -= len;
    const chunk = Buffer.allocUnsafe(len);
    await fh.read(chunk, 0, len, pos);
    counted = acc.length === 0 ? len : counted + len;
    acc = Buffer.concat([chunk, acc]);
    let end = counted; // the line ending just before `end` is next
    while (end > 0) {
      const nl = end >= 2 ? acc.lastIndexOf(NL, end - 2) : -1;
      if (nl < 0 && pos > 0) break; // its start is in an earlier chunk
      const start = nl + 1;
      if (isFullRecord(acc.subarray(start, end))) {
        found += 1;
        if (found > n) return pos + end;
      }
      end = start;
      counted = start;
    }
  }
  return 0;
}

function isFullRecord(line: Buffer): boolean {
  const s1 = line.indexOf(0x20);
  const s2 = s1 < 0 ? -1 : line.indexOf(0x20, s1 + 1);
  return s2 >= 0 && line[s2 + 1] === 0x46 && line[s2 + 2] === 0x20;
}

async function openIfExists(path: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, "r");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/** Wakes a follower on a change in the log's directory (writes, the rotation's rename) or after `pollMs`. */
class ChangeWaiter {
  private watcher: FSWatcher | undefined;
  private wake: (() => void) | undefined;
  private changed = false;

  constructor(
    path: string,
    private readonly pollMs: number,
  ) {
    const name = basename(path);
    try {
      this.watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
        if (file === null || file === name || file === `${name}.tmp`) this.signal();
      });
      this.watcher.on("error", () => this.close());
    } catch {
      this.watcher = undefined; // polling only
    }
  }

  private signal(): void {
    this.changed = true;
    this.wake?.();
  }

  async wait(signal?: AbortSignal): Promise<void> {
    if (this.changed) {
      this.changed = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        this.wake = undefined;
        this.changed = false;
        resolve();
      };
      const timer = setTimeout(done, this.pollMs);
      signal?.addEventListener("abort", done, { once: true });
      this.wake = done;
    });
  }

  close(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }
}
