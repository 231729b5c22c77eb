// Layers are unpacked in worker threads (agent/engine/layers/unpack-pool.ts). A worker
// that dies, or a layer it cannot unpack, ends only that layer's unpack with an error:
// nothing is left on disk, the next unpack works, and a real agent keeps serving.
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { isEngineError } from "../agent/engine/errors.ts";
import { OverlayLayerStore } from "../agent/engine/layers/overlay-layer-store.ts";
import { makeTar as makeLayerTar } from "../agent/engine/layers/testing-tar.ts";
import { UnpackPool } from "../agent/engine/layers/unpack-pool.ts";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { docker, dockerOk, startAgent, type AgentHandle } from "./helpers/agent.ts";
import { makeLayer, pushRawImage, sha256Digest } from "./helpers/raw-images.ts";

const HEX64 = /^[0-9a-f]{64}$/;

async function names(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).sort();
}

/** A store with its own pool of two workers, in a fresh directory beside an "outside" one holding a sentinel. */
async function newStore(t: TestContext) {
  const base = await mkdtemp(join(tmpdir(), "berth-unpack-workers-"));
  const pool = new UnpackPool(2);
  t.after(async () => {
    await pool.close();
    await rm(base, { recursive: true, force: true });
  });
  const root = join(base, "layers");
  const outside = join(base, "outside");
  await mkdir(outside);
  await writeFile(join(outside, "sentinel"), "untouched");
  return { store: new OverlayLayerStore(root, { durable: false, pool }), pool, root, base, outside };
}

/** Layer directories and unpacks in progress: what a failed unpack must not leave. */
async function leftovers(root: string): Promise<string[]> {
  const layers = (await names(root)).filter((n) => HEX64.test(n));
  const tmp = (await names(join(root, "tmp"))).map((n) => `tmp/${n}`);
  return [...layers, ...tmp];
}

/** A gzipped layer of `files` files of 64 KiB random bytes each (big enough to be mid-unpack for a while). */
function bigLayer(files: number): { gz: Buffer; tar: Buffer } {
  const tar = makeLayerTar(Array.from({ length: files }, (_, i) => ({ name: `data/f${i}`, type: "file" as const, data: randomBytes(64 * 1024) })));
  return { gz: gzipSync(tar), tar };
}

test("a worker killed mid-unpack fails only that layer; nothing is left and the next unpack works on a new worker", async (t) => {
  const { store, pool, root } = await newStore(t);
  const { gz } = bigLayer(64);
  // Half the blob, then nothing: the worker is busy with this layer when it is killed.
  const input = new PassThrough();
  input.write(gz.subarray(0, gz.length >> 1));
  const unpacking = store.unpack({ compressed: true }, input);
  const settled = unpacking.then(
    () => undefined,
    (e: unknown) => e,
  );
  let busy = pool.busyWorkers();
  for (let i = 0; i < 200 && busy.length === 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
    busy = pool.busyWorkers();
  }
  assert.equal(busy.length, 1, "no worker took the layer");
  await busy[0]!.terminate();

  const err = await settled;
  assert.ok(isEngineError(err, "Internal"), `want an Internal error, got ${String(err)}`);
  assert.match((err as Error).message, /layer unpack worker stopped/);
  assert.ok(input.destroyed, "the input stream of the dead worker's layer was not released");
  assert.deepEqual(await leftovers(root), [], "the killed unpack left a layer or a temporary directory");

  // The pool goes on: two layers at once, each on its own worker.
  const a = bigLayer(4);
  const b = bigLayer(4);
  const [la, lb] = await Promise.all([
    store.unpack({ compressed: true, expectedDiffId: sha256Digest(a.tar) }, Readable.from([a.gz])),
    store.unpack({ compressed: true, expectedDiffId: sha256Digest(b.tar) }, Readable.from([b.gz])),
  ]);
  assert.equal(la.size, 4 * 64 * 1024);
  assert.equal(lb.size, 4 * 64 * 1024);
  assert.deepEqual(await names(join(la.diffDir, "data")), ["f0", "f1", "f2", "f3"]);
  assert.deepEqual(await names(join(root, "tmp")), []);
});

test("a corrupt gzip blob fails with DataLoss in the worker and leaves nothing", async (t) => {
  const { store, root } = await newStore(t);
  const { gz } = bigLayer(8);
  const bad = Buffer.from(gz);
  // The first deflate block's header (right after gzip's 10-byte header) says block type 3,
  // which does not exist: zlib fails before a byte of tar comes out, whatever the timing.
  bad[10] = 0xff;
  const tarSizes: number[] = [];
  await assert.rejects(
    store.unpack({ compressed: true, onTarSize: (n) => tarSizes.push(n) }, Readable.from([bad])),
    (e: unknown) => isEngineError(e, "DataLoss") && /corrupt gzip layer stream/.test((e as Error).message),
  );
  assert.deepEqual(tarSizes, []);
  assert.deepEqual(await leftovers(root), []);
});

test("an entry escaping the layer root in a gzipped blob is still refused, naming the entry, with nothing written outside", async (t) => {
  const { store, root, outside } = await newStore(t);
  for (const name of ["../outside/evil", "a/../../outside/evil", "/../outside/evil"]) {
    const tar = makeLayerTar([
      { name: "ok", type: "file", data: "fine" },
      { name, type: "file", data: "evil" },
    ]);
    await assert.rejects(
      store.unpack({ compressed: true }, Readable.from([gzipSync(tar)])),
      (e: unknown) => isEngineError(e, "InvalidArgument") && (e as Error).message.includes(name),
      name,
    );
    assert.deepEqual(await names(outside), ["sentinel"], `${name} wrote outside`);
    assert.deepEqual(await leftovers(root), [], `${name} left a layer`);
  }
  // The same tar without the escaping entry unpacks, and gives its tar's length.
  const good = makeLayerTar([{ name: "ok", type: "file", data: "fine" }]);
  let tarSize = 0;
  const info = await store.unpack({ compressed: true, expectedDiffId: sha256Digest(good), onTarSize: (n) => (tarSize = n) }, Readable.from([gzipSync(good)]));
  assert.equal(tarSize, good.length);
  assert.deepEqual(await names(info.diffDir), ["ok"]);
});

describe("a real agent: a layer its worker cannot unpack fails that pull only", () => {
  let reg: RegistryFixture;
  let agent: AgentHandle;

  before(async () => {
    reg = await startRegistry({ auth: "none" });
    agent = await startAgent();
  });
  after(async () => {
    await agent?.destroy();
    await reg?.stop();
  });

  test("a blob that matches its digest but is not valid gzip: the pull fails naming the corruption, the agent lives on and the next pull works", async () => {
    const good = await makeLayer([{ name: "hello", type: "file", mode: 0o644, content: Buffer.from("hello\n") }]);
    const big = await makeLayer([{ name: "big", type: "file", mode: 0o644, content: randomBytes(512 * 1024) }]);
    const gz = Buffer.from(big.gz);
    for (let i = 200; i < 400; i++) gz[i] = gz[i]! ^ 0xff;
    const corrupt = { ...big, gz, digest: sha256Digest(gz), size: gz.length };
    const bad = await pushRawImage(reg, "workers/corrupt", "v1", [good, corrupt]);
    const pid = agent.process.pid;

    const r = await docker(agent, ["pull", bad.ref], { timeoutMs: 120_000 });
    assert.notEqual(r.code, 0, `the pull of a corrupt layer succeeded:\n${r.stdout}`);
    assert.match(r.stderr, /corrupt gzip layer stream/, `stderr: ${r.stderr}`);
    assert.equal(agent.process.exitCode, null, "the agent exited");
    assert.equal(agent.process.pid, pid);
    assert.deepEqual(await names(join(agent.dataRoot, "layers", "tmp")), [], "an unpack left its temporary directory");

    const ok = await pushRawImage(reg, "workers/fine", "v1", [
      good,
      await makeLayer([{ name: "more", type: "file", mode: 0o644, content: randomBytes(64 * 1024) }]),
    ]);
    await dockerOk(agent, ["pull", ok.ref]);
    assert.match(await dockerOk(agent, ["image", "inspect", "--format", "{{len .RootFS.Layers}}", ok.ref]), /^2\s*$/);
  });
});
