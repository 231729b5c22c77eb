// The request ledger's journal on a real file: what a second agent (a new ledger on the
// same file) answers after the first one died mid-request, replays of settled outcomes,
// retention and size bounds, and journals left torn or unusable.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { appendFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { notFound } from "../engine/errors.ts";
import { AGENT_RESTARTED_MESSAGE } from "./contract.ts";
import { RequestLedger, type LedgerOptions, type Outcome } from "./request-ledger.ts";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function journalFile(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "berth-ledger-"));
  dirs.push(d);
  return join(d, "link", "requests.journal");
}

/** A logger whose lines the test reads. */
function capture() {
  const lines: Array<{ level: number; msg: string } & Record<string, unknown>> = [];
  const logger = pino({ level: "debug" }, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { logger, lines };
}

async function openLedger(file: string, opts: LedgerOptions = {}): Promise<RequestLedger> {
  const ledger = new RequestLedger({ journalFile: file, logger: capture().logger, ...opts });
  await ledger.open();
  return ledger;
}

const opts = (over: Partial<Parameters<RequestLedger["begin"]>[1]> = {}) => ({
  fingerprint: "f",
  record: true,
  abortable: false,
  timeoutMs: 60_000,
  what: "image.pull",
  ...over,
});

/** Begins a request and returns its outcome; fails the test on a conflict. */
function run(
  ledger: RequestLedger,
  id: string,
  work: () => Promise<unknown>,
  over: Partial<Parameters<RequestLedger["begin"]>[1]> = {},
): { outcome: Promise<Outcome>; joined: boolean } {
  const b = ledger.begin(id, opts(over), work);
  assert.ok("outcome" in b, "conflict" in b ? b.conflict : "");
  return b;
}

describe("the request ledger's journal", () => {
  test("a request the agent died in is answered as interrupted by the next agent, and not run again", async () => {
    const file = await journalFile();
    const first = await openLedger(file);
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    // The work runs only after the start is on disk; it never ends: the agent "dies" here.
    run(first, "poison", () => {
      started();
      return new Promise(() => undefined);
    });
    await running;

    const { logger, lines } = capture();
    const second = new RequestLedger({ journalFile: file, logger });
    await second.open();
    assert.ok(
      lines.some((l) => l.msg.includes("running when the agent stopped") && l.requestId === "poison"),
      "the restart logs the interrupted request",
    );
    let ran = false;
    const again = run(second, "poison", async () => (ran = true));
    assert.equal(again.joined, true);
    const outcome = await again.outcome;
    assert.equal(ran, false, "not run a second time");
    assert.ok(!outcome.ok);
    assert.equal(outcome.error.kind, "Interrupted");
    assert.ok(outcome.error.message.startsWith(AGENT_RESTARTED_MESSAGE), outcome.error.message);
    assert.match(outcome.error.message, /image\.pull/);
    const other = second.begin("poison", opts({ fingerprint: "another request" }), async () => (ran = true));
    assert.ok("conflict" in other, "the id still belongs to the request it was used for");

    // A third agent (a second restart) still answers the same, and runs nothing.
    const third = await openLedger(file);
    const thirdTry = await run(third, "poison", async () => (ran = true)).outcome;
    assert.deepEqual(thirdTry, outcome);
    assert.equal(ran, false);
  });

  test("settled outcomes are replayed after a restart; reads are forgotten", async () => {
    const file = await journalFile();
    const first = await openLedger(file);
    assert.deepEqual(await run(first, "ok", async () => ({ id: "sha256:abc", upToDate: false })).outcome, {
      ok: true,
      result: { id: "sha256:abc", upToDate: false },
    });
    const failed = await run(first, "failed", async () => {
      throw notFound("No such image: nothing:latest");
    }).outcome;
    assert.deepEqual(failed, { ok: false, error: { kind: "NotFound", message: "No such image: nothing:latest" } });
    await run(first, "read", async () => "listing", { record: false }).outcome;
    await first.close();

    const second = await openLedger(file);
    let runs = 0;
    const work = async () => {
      runs += 1;
      return "ran again";
    };
    assert.deepEqual(await run(second, "ok", work).outcome, { ok: true, result: { id: "sha256:abc", upToDate: false } });
    assert.deepEqual(await run(second, "failed", work).outcome, failed);
    assert.equal(runs, 0);
    const read = run(second, "read", work, { record: false });
    assert.equal(read.joined, false, "a read is not remembered across restarts");
    assert.deepEqual(await read.outcome, { ok: true, result: "ran again" });
  });

  test("outcomes expire with the retention window, counted from the restart for interrupted requests", async () => {
    const file = await journalFile();
    let now = 1_000_000;
    const clock = { retentionMs: 60_000, now: () => now };
    const first = await openLedger(file, clock);
    await run(first, "done", async () => 1).outcome;
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    run(first, "cut", () => {
      started();
      return new Promise(() => undefined);
    });
    await running;

    now += 61_000; // the agent comes back after the window
    const second = await openLedger(file, clock);
    let ran: string[] = [];
    const work = (id: string) => async () => void ran.push(id);
    const done = run(second, "done", work("done"));
    assert.equal(done.joined, false, "an expired outcome is forgotten");
    await done.outcome;
    const cut = await run(second, "cut", work("cut")).outcome;
    assert.equal(!cut.ok && cut.error.kind, "Interrupted", "kept: interrupted when this agent started");
    assert.deepEqual(ran, ["done"]);

    now += 61_000;
    await second.close();
    const third = await openLedger(file, clock);
    ran = [];
    await run(third, "cut", work("cut")).outcome;
    assert.deepEqual(ran, ["cut"], "after the window from that restart the id is new again");
  });

  test("the journal stays within its size; the newest outcomes survive a restart, oversized ones say so", async () => {
    const file = await journalFile();
    const maxBytes = 8 * 1024;
    const first = await openLedger(file, { journalMaxBytes: maxBytes, maxJournaledOutcomeBytes: 1024 });
    for (let i = 0; i < 300; i++) {
      await run(first, `r${i}`, async () => ({ deleted: [`sha256:${String(i).padStart(64, "0")}`] })).outcome;
      // Rewritten past the limit: never more than the limit and one batch of lines.
      assert.ok((await stat(file)).size <= maxBytes + 512, `journal ${(await stat(file)).size} bytes after ${i + 1} requests`);
    }
    const big = "x".repeat(4096);
    assert.deepEqual(await run(first, "big", async () => big).outcome, { ok: true, result: big }, "the answer itself is whole");
    await first.close();

    const second = await openLedger(file, { journalMaxBytes: maxBytes });
    let runs = 0;
    const work = async () => ++runs;
    assert.deepEqual(await run(second, "r299", work).outcome, { ok: true, result: { deleted: [`sha256:${"299".padStart(64, "0")}`] } });
    const oldest = run(second, "r0", work);
    assert.equal(oldest.joined, false, "the oldest outcome was dropped to keep the size");
    await oldest.outcome;
    const bigAgain = await run(second, "big", work).outcome;
    assert.ok(!bigAgain.ok && bigAgain.error.kind === "Unavailable" && /too large to keep/.test(bigAgain.error.message), JSON.stringify(bigAgain));
    assert.equal(runs, 1, "only the forgotten request ran again");
  });

  test("at most maxEntries outcomes are restored, the newest", async () => {
    const file = await journalFile();
    let now = 0;
    const first = await openLedger(file, { now: () => now });
    for (let i = 0; i < 5; i++) {
      now += 1;
      await run(first, `e${i}`, async () => i).outcome;
    }
    await first.close();
    const second = await openLedger(file, { now: () => now, maxEntries: 2 });
    assert.equal(second.size, 2);
    assert.equal(run(second, "e4", async () => -1).joined, true);
    assert.equal(run(second, "e0", async () => -1).joined, false);
  });

  test("a torn or corrupt journal is read as far as it goes, with a warning, and rewritten whole", async () => {
    const file = await journalFile();
    const first = await openLedger(file);
    await run(first, "kept", async () => "kept").outcome;
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    run(first, "was running", () => {
      started();
      return new Promise(() => undefined);
    });
    await running;
    // A rewrite's temporary file left by a crash; garbage between lines (a disk error), then a last line cut off by the crash.
    const leftover = join(file, "..", ".requests.journal.tmp-4242-0badf00d");
    await writeFile(leftover, "half a rewrite");
    await appendFile(file, '\u0000\u0000{"end":\n{"start":"x","at":"not a number","fingerprint":"f","what":"w"}\n{"start":"torn","fingerpr');

    const { logger, lines } = capture();
    const second = new RequestLedger({ journalFile: file, logger });
    await second.open();
    const warning = lines.find((l) => /request journal/.test(l.msg) && l.level === 40);
    assert.ok(warning, JSON.stringify(lines));
    assert.equal(warning.unreadable, 3);
    assert.deepEqual(await run(second, "kept", async () => "again").outcome, { ok: true, result: "kept" });
    const cut = await run(second, "was running", async () => "again").outcome;
    assert.equal(!cut.ok && cut.error.kind, "Interrupted");
    assert.equal(run(second, "torn", async () => "ran").joined, false, "the torn request was never known to have started");

    assert.deepEqual(await readdir(join(file, "..")), ["requests.journal"], "the leftover temporary file is gone");
    const text = await readFile(file, "utf8");
    for (const line of text.split("\n").filter(Boolean)) JSON.parse(line);
    await second.close();
    const { logger: quiet, lines: after } = capture();
    const third = new RequestLedger({ journalFile: file, logger: quiet });
    await third.open();
    assert.ok(!after.some((l) => /unreadable|cut short/.test(l.msg)), "the rewritten journal reads cleanly");
  });

  test("a journal that cannot be used leaves the ledger working in memory, with an error logged", async () => {
    const file = await journalFile();
    const blocker = join(file, "..", "..", "not-a-dir");
    await writeFile(blocker, "a file where the journal's directory should be");
    const { logger, lines } = capture();
    const ledger = new RequestLedger({ journalFile: join(blocker, "requests.journal"), logger });
    await ledger.open();
    assert.ok(lines.some((l) => l.level === 50 && /cannot use the request journal/.test(l.msg)));
    assert.deepEqual(await run(ledger, "a", async () => 1).outcome, { ok: true, result: 1 });
    assert.equal(run(ledger, "a", async () => 2).joined, true);
  });
});
