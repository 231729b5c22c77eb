// Unit tests of the k8s-file log reader on files written by hand in conmon's format
// (no containers): partial records, tail, since/until, follow across a rotation.
import assert from "node:assert/strict";
import { appendFile, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { parseRecord, parseTimestamp, readLogs, type LogEntry } from "./k8s-log.ts";

async function tempDir(t: TestContext): Promise<string> {
  let dir = "";
  t.after(() => (dir ? rm(dir, { recursive: true, force: true }) : undefined));
  dir = await mkdtemp(join(tmpdir(), "berth-k8slog-"));
  return dir;
}

/** A record as conmon writes it, second `s` of a fixed minute, in +02:00. */
const rec = (s: number, stream: "stdout" | "stderr", tag: "F" | "P", msg: string) =>
  `2024-05-01T12:00:${String(s).padStart(2, "0")}.123456789+02:00 ${stream} ${tag} ${msg}${tag === "P" ? "\n" : ""}`;
const T0 = Date.UTC(2024, 4, 1, 10, 0, 0) / 1000; // 12:00:00+02:00

async function collect(it: AsyncIterable<LogEntry>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of it) out.push(`${e.stream}:${e.data.toString()}`);
  return out;
}

test("parseTimestamp: offsets to UTC, nanoseconds kept", () => {
  assert.deepEqual(parseTimestamp("2024-05-01T12:00:03.123456789+02:00"), { time: "2024-05-01T10:00:03.123456789Z", seconds: T0 + 3.123456789 });
  assert.equal(parseTimestamp("2024-05-01T09:30:00.5-00:30")?.time, "2024-05-01T10:00:00.500000000Z");
  assert.equal(parseTimestamp("2024-05-01T10:00:00Z")?.time, "2024-05-01T10:00:00.000000000Z");
  assert.equal(parseTimestamp("yesterday"), undefined);
  assert.equal(parseRecord(Buffer.from("garbage line\n")), undefined);
  assert.equal(parseRecord(Buffer.from(rec(1, "stdout", "F", "x\n")))?.message.toString(), "x\n");
  assert.equal(parseRecord(Buffer.from(rec(1, "stderr", "P", "x")))?.message.toString(), "x");
});

test("readLogs: partial records joined per stream, streams interleaved, tail, since and until", async (t) => {
  const dir = await tempDir(t);
  const log = join(dir, "ctr.log");
  await writeFile(
    log,
    [
      rec(1, "stdout", "F", "one\n"),
      rec(2, "stdout", "P", "tw"),
      rec(2, "stderr", "F", "err\n"),
      rec(3, "stdout", "F", "o\n"),
      "not a record\n",
      rec(4, "stdout", "F", "three\n"),
      rec(5, "stderr", "P", "unfinished"),
    ].join(""),
  );
  assert.deepEqual(await collect(readLogs(log)), ["stdout:one\n", "stderr:err\n", "stdout:two\n", "stdout:three\n", "stderr:unfinished"]);
  const all: LogEntry[] = [];
  for await (const e of readLogs(log)) all.push(e);
  assert.equal(all[2]?.time, "2024-05-01T10:00:02.123456789Z", "a joined line carries the time of its first part");

  assert.deepEqual(await collect(readLogs(log, { tail: 2 })), ["stdout:three\n", "stderr:unfinished"]);
  assert.deepEqual(
    await collect(readLogs(log, { tail: 3 })),
    ["stdout:two\n", "stdout:three\n", "stderr:unfinished"],
    "the partial parts of a tailed line come along",
  );
  assert.deepEqual(await collect(readLogs(log, { tail: 0 })), []);
  assert.deepEqual(await collect(readLogs(log, { tail: 100 })), await collect(readLogs(log)));
  assert.deepEqual(await collect(readLogs(log, { since: T0 + 2.5 })), ["stdout:three\n", "stderr:unfinished"]);
  assert.deepEqual(await collect(readLogs(log, { since: T0 + 2, until: T0 + 3.5 })), ["stderr:err\n", "stdout:two\n"]);
  assert.deepEqual(await collect(readLogs(join(dir, "missing.log"))), []);
});

test("readLogs: tail over more than one read chunk", async (t) => {
  const dir = await tempDir(t);
  const log = join(dir, "big.log");
  const lines: string[] = [];
  for (let i = 0; i < 5000; i++) lines.push(rec(i % 60, i % 3 ? "stdout" : "stderr", "F", `line ${i} ${"x".repeat(40)}\n`));
  await writeFile(log, lines.join(""));
  const got = await collect(readLogs(log, { tail: 3000 }));
  assert.equal(got.length, 3000);
  assert.ok(got[0]?.includes("line 2000 "), got[0]);
  assert.ok(got[2999]?.includes("line 4999 "));
});

test("readLogs follow: new lines, a rotation (new file renamed over), the end once the writer stops", async (t) => {
  const dir = await tempDir(t);
  const log = join(dir, "ctr.log");
  await writeFile(log, rec(1, "stdout", "F", "before\n"));
  let running = true;
  const ac = new AbortController();
  t.after(() => ac.abort());
  const seen: string[] = [];
  const done = (async () => {
    for await (const e of readLogs(log, { follow: true, tail: 1, signal: ac.signal, pollMs: 50, isRunning: async () => running })) seen.push(e.data.toString());
  })();
  const until = async (n: number) => {
    for (let i = 0; i < 200 && seen.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(seen.length >= n, `saw ${JSON.stringify(seen)}`);
  };
  await until(1);
  await appendFile(log, rec(2, "stdout", "P", "half") + rec(2, "stdout", "F", " line\n"));
  await until(2);
  // conmon's rotation: the last write to the old file, then a fresh file renamed over the path.
  await appendFile(log, rec(3, "stdout", "F", "last of old\n"));
  await writeFile(`${log}.tmp`, rec(4, "stdout", "F", "first of new\n"));
  await rename(`${log}.tmp`, log);
  await until(4);
  running = false;
  await appendFile(log, rec(5, "stderr", "F", "written before the end\n"));
  await done;
  assert.deepEqual(seen, ["before\n", "half line\n", "last of old\n", "first of new\n", "written before the end\n"]);
});

test("readLogs follow: abort ends the iteration; a file that appears later is read", async (t) => {
  const dir = await tempDir(t);
  const log = join(dir, "late.log");
  const ac = new AbortController();
  const seen: string[] = [];
  const done = (async () => {
    for await (const e of readLogs(log, { follow: true, signal: ac.signal, pollMs: 50 })) seen.push(e.data.toString());
  })();
  await new Promise((r) => setTimeout(r, 100));
  await writeFile(log, rec(1, "stdout", "F", "hello\n"));
  for (let i = 0; i < 100 && seen.length < 1; i++) await new Promise((r) => setTimeout(r, 10));
  ac.abort();
  await done;
  assert.deepEqual(seen, ["hello\n"]);
});
