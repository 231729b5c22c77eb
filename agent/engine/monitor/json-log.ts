/**
 * Docker's json-file log format, kept by the agent beside conmon's log.
 *
 * conmon (2.1.6, Debian bookworm) writes only the k8s-file, journald and passthrough
 * formats, so it cannot write Docker's file itself. The agent therefore mirrors conmon's
 * k8s-file (the live source, k8s-log.ts) into `<id>-json.log`: one line per log line,
 *
 *   {"log":"hello\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}
 *
 * (the time is the one conmon recorded), rotated as Docker's json-file driver rotates
 * (`max-size`: before a write, a file at or past the size becomes `.1`, `.1` becomes `.2`…,
 * keeping `max-file` files). The mirror catches up on every read and once a second while the
 * container runs (ContainerService), so tools reading the file see it within a second, and
 * `docker logs` reads the json files across rotations. Where the mirror is in conmon's file is
 * kept in `<json>.pos`, so an agent restart continues where it stopped. conmon's own file keeps
 * its size cap (it rotates it by replacing it): the mirror holds the old file open and drains
 * it first, so nothing is lost while the agent runs.
 *
 * Ownership: a mirror holds two file handles (conmon's file, the json file); `close()` releases
 * them; ContainerService owns the mirrors (one per container, dropped at removal).
 */
import { createReadStream } from "node:fs";
import { open, readFile, rename, rm, stat, writeFile, type FileHandle } from "node:fs/promises";
import { createInterface } from "node:readline";
import { invalidArgument } from "../errors.ts";
import { settled } from "../../../shared/best-effort.ts";
import { ifMissing } from "../fs-util.ts";
import { parseRecord, parseTimestamp, readLogs, type LogEntry, type ReadLogsOptions } from "./k8s-log.ts";

export interface JsonLogLimits {
  /** Bytes; 0 = no rotation. */
  maxSize: number;
  /** Files kept, the live one included (≥ 1). */
  maxFile: number;
}

/** go-units RAMInBytes, as Docker parses `max-size`: "10k" = 10240, "1.5m", "2g", "512". */
function parseSize(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$/i.exec(v.trim());
  if (!m) throw invalidArgument(`invalid size: '${v}'`);
  const mult = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 }[m[2]!.toLowerCase() as "k"];
  return Math.floor(Number(m[1]) * mult);
}

/**
 * A driver's `--log-opt` max-size/max-file, checked with Docker's words. Docker's `local`
 * driver defaults to 20m × 5; json-file to no rotation.
 */
export function jsonLogLimits(driver: string, config: Record<string, string>): JsonLogLimits {
  const local = driver === "local";
  const maxSize = config["max-size"] !== undefined ? parseSize(config["max-size"]) : local ? 20 * 1024 * 1024 : 0;
  let maxFile = local ? 5 : 1;
  if (config["max-file"] !== undefined) {
    maxFile = Number(config["max-file"]);
    if (!Number.isInteger(maxFile)) throw invalidArgument(`strconv.Atoi: parsing "${config["max-file"]}": invalid syntax`);
    if (maxFile < 1) throw invalidArgument("max-file cannot be less than 1");
    if (maxFile > 1 && maxSize === 0) throw invalidArgument("max-file can only be used with max-size");
  }
  return { maxSize, maxFile };
}

const CHUNK = 64 * 1024;

/** Keeps `<id>-json.log` in step with conmon's k8s-file. All work is serialized. */
export class JsonLogMirror {
  private src: FileHandle | undefined;
  private srcIno: number | undefined;
  /** Bytes of conmon's file read. */
  private pos = 0;
  private rest: Buffer = Buffer.alloc(0);
  /** Lines begun (P records) per stream, with the offset of their first record (the safe restart point). */
  private pending = new Map<string, { time: string; parts: Buffer[]; at: number }>();
  private out: FileHandle | undefined;
  private outSize = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private savedPos: string | undefined;

  constructor(
    readonly sourcePath: string,
    readonly path: string,
    private readonly limits: JsonLogLimits,
  ) {}

  /**
   * Appends what conmon wrote since the last call. `final` (the container exited): a line the
   * process left without its newline is written too, as Docker's driver does.
   */
  sync(final = false): Promise<void> {
    return this.serialized(() => this.catchUp(final));
  }

  /** Runs `fn` after a catch-up, with no other work of the mirror in between. */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = settled(run);
    return run;
  }

  private get posPath(): string {
    return `${this.path}.pos`;
  }

  /** Where a previous agent left conmon's file; none (start over) when missing or unreadable. */
  private async readPos(): Promise<{ ino: number; pos: number } | undefined> {
    const text = await readFile(this.posPath, "utf8").catch(ifMissing);
    if (!text) return undefined;
    try {
      const v = JSON.parse(text) as { ino?: unknown; pos?: unknown };
      return typeof v.ino === "number" && typeof v.pos === "number" ? { ino: v.ino, pos: v.pos } : undefined;
    } catch {
      // A torn write (a crash mid-write): the mirror starts over from the start of conmon's file (lines may repeat).
      return undefined;
    }
  }

  private async catchUp(final = false): Promise<void> {
    if (this.closed) return;
    if (!this.src) {
      const fh = await open(this.sourcePath, "r").catch(ifMissing);
      if (!fh) return;
      this.src = fh;
      this.srcIno = (await fh.stat()).ino;
      const saved = await this.readPos();
      this.pos = saved && saved.ino === this.srcIno ? saved.pos : 0;
    }
    for (;;) {
      await this.drain();
      // conmon replaced its file (its size cap): the old one is drained, go on with the new one.
      const st = await stat(this.sourcePath).catch(ifMissing);
      if (!st || st.ino === this.srcIno) break;
      await this.src.close();
      this.src = await open(this.sourcePath, "r");
      this.srcIno = (await this.src.stat()).ino;
      this.pos = 0;
      this.rest = Buffer.alloc(0);
      this.pending.clear();
    }
    if (final) {
      const left = [...this.pending.entries()].sort((a, b) => a[1].at - b[1].at);
      this.pending.clear();
      for (const [stream, p] of left) await this.write(JSON.stringify({ log: Buffer.concat(p.parts).toString("utf8"), stream, time: p.time }) + "\n");
    }
    const safe = Math.min(this.pos - this.rest.length, ...[...this.pending.values()].map((p) => p.at));
    const saved = JSON.stringify({ ino: this.srcIno, pos: safe });
    // Most looks find nothing new: the file is written only when the place moved.
    if (saved !== this.savedPos) {
      await writeFile(this.posPath, saved);
      this.savedPos = saved;
    }
  }

  private async drain(): Promise<void> {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      const { bytesRead } = await this.src!.read(buf, 0, CHUNK, this.pos);
      if (bytesRead === 0) return;
      const base = this.pos - this.rest.length;
      this.pos += bytesRead;
      const data = this.rest.length ? Buffer.concat([this.rest, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
      let start = 0;
      const lines: string[] = [];
      for (let nl = data.indexOf(0x0a, start); nl >= 0; nl = data.indexOf(0x0a, start)) {
        const rec = parseRecord(data.subarray(start, nl + 1));
        if (rec) {
          const p = this.pending.get(rec.stream);
          if (rec.partial) {
            if (p) p.parts.push(rec.message);
            else this.pending.set(rec.stream, { time: rec.time, parts: [rec.message], at: base + start });
          } else {
            this.pending.delete(rec.stream);
            const log = Buffer.concat([...(p?.parts ?? []), rec.message]).toString("utf8");
            lines.push(JSON.stringify({ log, stream: rec.stream, time: p?.time ?? rec.time }) + "\n");
          }
        }
        start = nl + 1;
      }
      this.rest = Buffer.from(data.subarray(start));
      for (const l of lines) await this.write(l);
    }
  }

  private async write(line: string): Promise<void> {
    if (!this.out) {
      this.out = await open(this.path, "a");
      this.outSize = (await this.out.stat()).size;
    }
    if (this.limits.maxSize > 0 && this.outSize >= this.limits.maxSize) await this.rotate();
    const b = Buffer.from(line);
    await this.out.write(b);
    this.outSize += b.length;
  }

  /** Docker's rotation: path → .1 → .2 … up to max-file - 1; with max-file 1 the file starts over. */
  private async rotate(): Promise<void> {
    await this.out?.close();
    this.out = undefined;
    const n = this.limits.maxFile;
    if (n <= 1) await rm(this.path, { force: true });
    else {
      await rm(`${this.path}.${n - 1}`, { force: true });
      for (let i = n - 2; i >= 1; i--) await rename(`${this.path}.${i}`, `${this.path}.${i + 1}`).catch(ifMissing);
      await rename(this.path, `${this.path}.1`);
    }
    this.out = await open(this.path, "a");
    this.outSize = 0;
  }

  /**
   * The log's lines, oldest first, across the rotated files. `follow`: then what conmon writes
   * next, read from conmon's file from where the mirror stands.
   */
  async *read(opts: ReadLogsOptions = {}): AsyncGenerator<LogEntry> {
    // Under the mirror's turn: caught up, the files' content and where conmon's file stands are one moment.
    const snap = await this.serialized(async () => {
      await this.catchUp();
      const files: Array<{ fh: FileHandle; size: number }> = [];
      try {
        for (let i = this.limits.maxFile - 1; i >= 0; i--) {
          const fh = await open(i === 0 ? this.path : `${this.path}.${i}`, "r").catch(ifMissing);
          if (fh) files.push({ fh, size: (await fh.stat()).size });
        }
      } catch (e) {
        await Promise.all(files.map((f) => f.fh.close()));
        throw e;
      }
      return { files, ino: this.srcIno, pos: this.pos - this.rest.length };
    });
    try {
      const inRange = (s: number) => (opts.since === undefined || s >= opts.since) && (opts.until === undefined || s <= opts.until);
      const tail = opts.tail !== undefined && opts.tail >= 0 ? opts.tail : undefined;
      const kept: LogEntry[] = [];
      for (const f of snap.files) {
        for await (const e of jsonLines(f.fh, f.size)) {
          if (opts.signal?.aborted) return;
          if (!inRange(e.seconds)) continue;
          if (tail === undefined) yield e.entry;
          else {
            kept.push(e.entry);
            if (kept.length > tail) kept.shift();
          }
        }
      }
      yield* kept;
    } finally {
      await Promise.all(snap.files.map((f) => f.fh.close()));
    }
    if (!opts.follow) return;
    const since = opts.since;
    yield* readLogs(this.sourcePath, { ...opts, tail: undefined, since, startAt: snap.ino !== undefined ? { ino: snap.ino, pos: snap.pos } : undefined });
  }

  async close(): Promise<void> {
    await this.serialized(async () => {
      this.closed = true;
      await this.src?.close();
      await this.out?.close();
      this.src = this.out = undefined;
    });
  }
}

/** The entries of a json-file log read through `fh`, up to `size` bytes. Lines that do not parse are skipped. */
async function* jsonLines(fh: FileHandle, size: number): AsyncGenerator<{ entry: LogEntry; seconds: number }> {
  if (size === 0) return;
  const rl = createInterface({ input: createReadStream("", { fd: fh.fd, start: 0, end: size - 1, autoClose: false }), crlfDelay: Infinity });
  for await (const line of rl) {
    let j: { log?: unknown; stream?: unknown; time?: unknown };
    try {
      j = JSON.parse(line) as typeof j;
    } catch {
      continue;
    }
    if (typeof j.log !== "string" || (j.stream !== "stdout" && j.stream !== "stderr") || typeof j.time !== "string") continue;
    const ts = parseTimestamp(j.time);
    if (!ts) continue;
    yield { entry: { stream: j.stream, time: ts.time, data: Buffer.from(j.log) }, seconds: ts.seconds };
  }
}
