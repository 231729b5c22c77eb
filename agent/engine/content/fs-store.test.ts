import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { test, type TestContext } from "node:test";
import { isEngineError } from "../errors.ts";
import { FsContentStore } from "./fs-store.ts";
import { parseDigest } from "./store.ts";

const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

async function newStore(t: TestContext): Promise<{ store: FsContentStore; root: string }> {
  const root = await mkdtemp(join(tmpdir(), "berth-content-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  return { store: new FsContentStore(root), root };
}

async function ingestFiles(root: string): Promise<string[]> {
  return readdir(join(root, "ingest")).catch(() => []);
}

/** A source that yields `chunks` one by one, then either ends or fails. */
function source(chunks: Buffer[], opts: { failWith?: Error } = {}): Readable {
  return Readable.from(
    (async function* () {
      for (const c of chunks) yield c;
      if (opts.failWith) throw opts.failWith;
    })(),
    { objectMode: false },
  );
}

test("parseDigest accepts only sha256 with 64 lowercase hex", () => {
  const hex = "a".repeat(64);
  assert.deepEqual(parseDigest(`sha256:${hex}`), { algorithm: "sha256", hex });
  const bad = [
    "",
    hex,
    `sha256:${"A".repeat(64)}`,
    `sha256:${"a".repeat(63)}`,
    `sha256:${"a".repeat(65)}`,
    `sha512:${"a".repeat(128)}`,
    `sha256:../../${"a".repeat(58)}`,
    `sha256:${"a".repeat(64)}\n`,
    ` sha256:${"a".repeat(64)}`,
    `sha256:${"g".repeat(64)}`,
    `SHA256:${hex}`,
  ];
  for (const d of bad) {
    assert.throws(
      () => parseDigest(d),
      (e) => isEngineError(e, "InvalidArgument") && /invalid digest format/.test(e.message),
      d,
    );
  }
});

test("invalid digest strings are refused before touching any path", async (t) => {
  const { store, root } = await newStore(t);
  const evil = "sha256:../../../etc/passwd";
  assert.throws(
    () => store.path(evil),
    (e) => isEngineError(e, "InvalidArgument"),
  );
  assert.throws(
    () => store.read(evil),
    (e) => isEngineError(e, "InvalidArgument"),
  );
  await assert.rejects(store.info(evil), (e) => isEngineError(e, "InvalidArgument"));
  await assert.rejects(store.has(evil), (e) => isEngineError(e, "InvalidArgument"));
  await assert.rejects(store.readBytes(evil), (e) => isEngineError(e, "InvalidArgument"));
  await assert.rejects(store.delete(evil), (e) => isEngineError(e, "InvalidArgument"));
  await assert.rejects(store.writer({ digest: evil }), (e) => isEngineError(e, "InvalidArgument"));
  await assert.rejects(store.writeBytes(Buffer.from("x"), "sha256:ABC"), (e) => isEngineError(e, "InvalidArgument"));
  await assert.rejects(store.writer({ size: -1 }), (e) => isEngineError(e, "InvalidArgument"));
  assert.deepEqual(await ingestFiles(root), []);
});

test("writeBytes, info, has, read, readBytes, list, delete", async (t) => {
  const { store, root } = await newStore(t);
  const data = Buffer.from("hello blob");
  const d = sha(data);
  assert.equal(await store.has(d), false);
  assert.equal(await store.info(d), undefined);
  assert.deepEqual(await store.writeBytes(data, d), { digest: d, size: data.length });
  assert.equal(store.path(d), join(root, "blobs", "sha256", d.slice(7)));
  assert.equal(await store.has(d), true);
  assert.deepEqual(await store.info(d), { digest: d, size: data.length });
  assert.deepEqual(await store.readBytes(d), data);
  const chunks: Buffer[] = [];
  for await (const c of store.read(d)) chunks.push(c as Buffer);
  assert.equal(Buffer.concat(chunks).toString(), "hello blob");
  const tail: Buffer[] = [];
  for await (const c of store.read(d, { start: 6 })) tail.push(c as Buffer);
  assert.equal(Buffer.concat(tail).toString(), "blob");
  await assert.rejects(store.readBytes(d, 3), (e) => isEngineError(e, "InvalidArgument") && /limit of 3 bytes/.test(e.message));

  const empty = await store.writeBytes(new Uint8Array(0));
  assert.deepEqual(empty, { digest: sha(new Uint8Array(0)), size: 0 });
  const listed = (await store.list()).sort((a, b) => a.digest.localeCompare(b.digest));
  assert.deepEqual(
    listed,
    [empty, { digest: d, size: data.length }].sort((a, b) => a.digest.localeCompare(b.digest)),
  );

  // Writing an existing blob again is fine.
  assert.deepEqual(await store.writeBytes(data, d), { digest: d, size: data.length });
  await store.delete(d);
  await store.delete(d); // no error when missing
  assert.equal(await store.has(d), false);
  assert.deepEqual(await ingestFiles(root), []);
});

test("read of a missing blob emits NotFound; readBytes throws NotFound", async (t) => {
  const { store } = await newStore(t);
  const d = sha(Buffer.from("nope"));
  await assert.rejects(
    (async () => {
      for await (const _ of store.read(d)) void _;
    })(),
    (e) => isEngineError(e, "NotFound") && e.message.includes(d),
  );
  await assert.rejects(pipeline(store.read(d), new PassThrough().resume()), (e) => isEngineError(e, "NotFound"));
  await assert.rejects(store.readBytes(d), (e) => isEngineError(e, "NotFound"));
});

test("digest mismatch: DataLoss naming both digests, nothing stored, temp file gone", async (t) => {
  const { store, root } = await newStore(t);
  const wrong = sha(Buffer.from("something else"));
  const data = Buffer.from("actual content");
  await assert.rejects(store.writeBytes(data, wrong), (e) => {
    assert.ok(isEngineError(e, "DataLoss"));
    assert.match(e.message, new RegExp(`expected ${wrong} got ${sha(data)}`));
    return true;
  });
  await assert.rejects(store.writeStream(source([data]), { digest: wrong }), (e) => isEngineError(e, "DataLoss"));
  assert.equal(await store.has(wrong), false);
  assert.equal(await store.has(sha(data)), false);
  assert.deepEqual(await ingestFiles(root), []);
  assert.deepEqual(await store.list(), []);
});

test("expected size exceeded fails at once, before the source ends", async (t) => {
  const { store, root } = await newStore(t);
  let pulled = 0;
  // An endless source: the write must fail as soon as the limit is passed.
  const endless = new Readable({
    read() {
      pulled++;
      this.push(Buffer.alloc(1024, 1));
    },
  });
  await assert.rejects(
    store.writeStream(endless, { size: 10_000 }),
    (e) => isEngineError(e, "DataLoss") && /exceeds its expected size of 10000/.test(e.message),
  );
  assert.ok(pulled < 200, `source read ${pulled} times`);
  assert.deepEqual(await ingestFiles(root), []);

  // Same through a writer used directly: the write errors, commit rethrows, nothing left.
  const w = await store.writer({ size: 3 });
  const errored = new Promise((resolve) => w.once("error", resolve));
  w.write(Buffer.from("abcd"));
  assert.ok(isEngineError(await errored, "DataLoss"));
  await assert.rejects(w.commit(), (e) => isEngineError(e, "DataLoss"));
  await w.abort();
  assert.deepEqual(await ingestFiles(root), []);
});

test("truncated input: size mismatch or source error, nothing left", async (t) => {
  const { store, root } = await newStore(t);
  const full = Buffer.alloc(5000, 7);
  const d = sha(full);
  await assert.rejects(store.writeStream(source([full.subarray(0, 4000)]), { digest: d, size: full.length }), (e) => {
    assert.ok(isEngineError(e, "DataLoss"));
    assert.match(e.message, /expected 5000 bytes, got 4000/);
    return true;
  });
  const broken = new Error("connection reset");
  await assert.rejects(store.writeStream(source([full.subarray(0, 100)], { failWith: broken }), { digest: d, size: full.length }), (e) => e === broken);
  assert.equal(await store.has(d), false);
  assert.deepEqual(await ingestFiles(root), []);
  // With no expectation at all, what arrived is stored under its own digest.
  const part = full.subarray(0, 10);
  assert.deepEqual(await store.writeStream(source([part])), { digest: sha(part), size: 10 });
});

test("abort signal cancels writeStream", async (t) => {
  const { store, root } = await newStore(t);
  const ac = new AbortController();
  const slow = new Readable({ read() {} });
  slow.push(Buffer.alloc(10));
  setTimeout(() => ac.abort(), 20);
  await assert.rejects(store.writeStream(slow, {}, ac.signal), (e) => isEngineError(e, "Canceled"));
  assert.deepEqual(await ingestFiles(root), []);
});

test("writer: commit verifies, abort after commit and double abort are safe", async (t) => {
  const { store, root } = await newStore(t);
  const data = Buffer.alloc(3 * 1024 * 1024, 0x5a);
  const d = sha(data);
  const w = await store.writer({ digest: d, size: data.length });
  assert.equal(w.digest, d);
  await pipeline(source([data.subarray(0, 1000), data.subarray(1000)]), w);
  assert.equal(w.bytesWritten(), data.length);
  assert.deepEqual(await w.commit(), { digest: d, size: data.length });
  await w.abort();
  await w.abort();
  assert.deepEqual(await readFile(store.path(d)), data);

  // commit() without ending the stream first ends it.
  const w2 = await store.writer();
  w2.write(Buffer.from("abc"));
  assert.deepEqual(await w2.commit(), { digest: sha(Buffer.from("abc")), size: 3 });

  const w3 = await store.writer();
  w3.write(Buffer.from("discard me"));
  await w3.abort();
  await w3.abort();
  await assert.rejects(w3.commit(), (e) => isEngineError(e, "Canceled"));
  assert.equal(await store.has(sha(Buffer.from("discard me"))), false);
  assert.deepEqual(await ingestFiles(root), []);
});

test("concurrent writers of the same digest both succeed with one intact blob", async (t) => {
  const { store, root } = await newStore(t);
  const data = Buffer.alloc(2 * 1024 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  const d = sha(data);
  const writers = await Promise.all(Array.from({ length: 6 }, () => store.writer({ digest: d, size: data.length })));
  // Interleave the writes chunk by chunk.
  for (let off = 0; off < data.length; off += 64 * 1024) {
    for (const w of writers) w.write(data.subarray(off, off + 64 * 1024));
  }
  const results = await Promise.all(writers.map((w) => w.commit()));
  for (const r of results) assert.deepEqual(r, { digest: d, size: data.length });
  assert.deepEqual(await readFile(store.path(d)), data);
  assert.deepEqual(await ingestFiles(root), []);
  // Plus writeStream racing writeBytes.
  const other = Buffer.from("race");
  const [a, b] = await Promise.all([store.writeStream(source([other]), { digest: sha(other) }), store.writeBytes(other, sha(other))]);
  assert.deepEqual(a, b);
});

test("removeStaleIngests deletes crash leftovers but not open writers", async (t) => {
  const { store, root } = await newStore(t);
  assert.equal(await store.removeStaleIngests(), 0); // no ingest dir yet
  await mkdir(join(root, "ingest"), { recursive: true });
  await writeFile(join(root, "ingest", "leftover-1"), "half a blob");
  await writeFile(join(root, "ingest", "leftover-2"), "");
  await mkdir(join(root, "ingest", "weird-dir"));
  const open = await store.writer();
  open.write(Buffer.from("in progress"));
  assert.equal(await store.removeStaleIngests(), 3);
  const left = await ingestFiles(root);
  assert.equal(left.length, 1);
  const info = await open.commit();
  assert.equal(info.size, "in progress".length);
  assert.deepEqual(await ingestFiles(root), []);
  assert.deepEqual(await store.list(), [info]);
});
