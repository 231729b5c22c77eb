import assert from "node:assert/strict";
import { PassThrough, Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { test } from "node:test";
import { EscapeSequenceFilter, teeStream } from "./streams.ts";

/** Fails the test if anything escapes as an uncaught exception while `fn` runs (and a moment after). */
async function noUncaught(fn: () => Promise<void>): Promise<void> {
  const escaped: unknown[] = [];
  const onUncaught = (e: unknown) => escaped.push(e);
  process.on("uncaughtException", onUncaught);
  try {
    await fn();
    await new Promise((r) => setTimeout(r, 50));
  } finally {
    process.off("uncaughtException", onUncaught);
  }
  assert.deepEqual(escaped, [], "an error escaped as uncaught");
}

async function collect(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

test("both branches of a tee get every byte", async () => {
  const data = Buffer.alloc(1024 * 1024, 7);
  const [a, b] = teeStream(Readable.from([data.subarray(0, 300_000), data.subarray(300_000)], { objectMode: false }));
  const [x, y] = await Promise.all([collect(a), collect(b)]);
  assert.ok(x.equals(data));
  assert.ok(y.equals(data));
});

test("a source that breaks off after one consumer already failed fails the other", async () => {
  await noUncaught(async () => {
    const source = new PassThrough();
    const [toStore, toUnpack] = teeStream(source);
    // The unpacker gives up on its own (a bad entry) and stops listening; the store keeps reading.
    const unpacking = (async () => {
      for await (const _ of toUnpack) throw new Error("bad entry");
    })();
    const storing = pipeline(toStore, new Writable({ write: (_c, _e, cb) => cb() }));
    source.write(Buffer.alloc(100));
    await assert.rejects(unpacking, /bad entry/);
    source.destroy(new Error("unexpected EOF: the download broke off after 135 of 235 bytes"));
    await assert.rejects(storing);
  });
});

test("a source error with a branch nobody listens to does not crash the process (issue 11: a registry cutting a blob short)", async () => {
  await noUncaught(async () => {
    const source = new PassThrough();
    const [a] = teeStream(source);
    const reading = collect(a);
    source.write(Buffer.from("abc"));
    source.destroy(new Error("broke off"));
    await assert.rejects(reading, /broke off/);
  });
});

test("a consumer leaving early stops the source, and the other branch fails without crashing the process", async () => {
  await noUncaught(async () => {
    const source = new PassThrough();
    const [a, b] = teeStream(source);
    b.resume();
    a.destroy();
    await new Promise((r) => setImmediate(r));
    assert.equal(source.destroyed, true);
    assert.equal(b.destroyed, true);
  });
});

test("an escape sequence is found within and across chunks; the bytes around it are forwarded, the sequence never", () => {
  const keys = Buffer.from([16, 17]); // ctrl-p, ctrl-q
  const run = (chunks: number[][]) => {
    const f = new EscapeSequenceFilter(keys);
    const forwarded: number[] = [];
    let detached = false;
    for (const c of chunks) {
      const r = f.push(Buffer.from(c));
      forwarded.push(...r.forward);
      detached = r.detached;
      if (detached) break;
    }
    return { forwarded, detached };
  };
  assert.deepEqual(run([[97, 98, 99]]), { forwarded: [97, 98, 99], detached: false });
  assert.deepEqual(run([[97, 16, 17, 98]]), { forwarded: [97], detached: true });
  assert.deepEqual(run([[16], [17]]), { forwarded: [], detached: true });
  // moby/term's cases: ctrl-p held, then 'a' releases it; a later ctrl-p ctrl-q detaches.
  assert.deepEqual(run([[16], [97], [16, 17]]), { forwarded: [16, 97], detached: true });
  // A partial match at the end of a chunk is held until the next one decides.
  assert.deepEqual(run([[97, 16], [98]]), { forwarded: [97, 16, 98], detached: false });
  // The byte that breaks a partial match can itself start the sequence.
  assert.deepEqual(run([[16, 16, 17]]), { forwarded: [16], detached: true });
  const three = new EscapeSequenceFilter(Buffer.from("abc"));
  assert.deepEqual(three.push(Buffer.from("xab")), { forward: Buffer.from("x"), detached: false });
  assert.deepEqual(three.push(Buffer.from("ad")), { forward: Buffer.from("abad"), detached: false });
  assert.deepEqual(three.push(Buffer.from("abc")), { forward: Buffer.alloc(0), detached: true });
});
