import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { test, type TestContext } from "node:test";
import { gzipSync } from "node:zlib";
import { isEngineError } from "../errors.ts";
import { chainIdOf } from "./chain-id.ts";
import { decompressStream } from "./decompress.ts";
import { OverlayLayerStore } from "./overlay-layer-store.ts";
import { evilCases, makeTar, type TarEntry } from "./testing-tar.ts";

const sha = (b: Uint8Array) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const HEX64 = /^[0-9a-f]{64}$/;

async function newStore(t: TestContext): Promise<{ store: OverlayLayerStore; root: string; base: string }> {
  const base = await mkdtemp(join(tmpdir(), "berth-layers-"));
  t.after(() => rm(base, { recursive: true, force: true }));
  const root = join(base, "overlay");
  return { store: new OverlayLayerStore(root), root, base };
}

function stream(buf: Buffer, chunk = 4096): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) parts.push(buf.subarray(i, i + chunk));
  return Readable.from(parts, { objectMode: false });
}

/** The store holds exactly these layers and no leftovers. */
async function assertOnly(root: string, chainIds: string[]): Promise<void> {
  const names = await readdir(root).catch(() => [] as string[]);
  assert.deepEqual(names.filter((n) => HEX64.test(n)).sort(), chainIds.map((c) => c.slice(7)).sort());
  assert.deepEqual(
    names.filter((n) => !HEX64.test(n) && n !== "l" && n !== "tmp"),
    [],
  );
  assert.deepEqual(await readdir(join(root, "tmp")).catch(() => []), [], "no temporary directories left");
  assert.equal((await readdir(join(root, "l")).catch(() => [])).length, chainIds.length, "one short link per layer");
}

const baseEntries: TarEntry[] = [
  { name: "etc/", type: "directory" },
  { name: "etc/motd", data: "welcome\n" },
  { name: "etc/hostname", data: "box\n" },
  { name: "var/", type: "directory" },
  { name: "var/cache/", type: "directory" },
  { name: "var/cache/a", data: "a" },
  { name: "var/cache/b", data: "b" },
  { name: "keep/", type: "directory" },
  { name: "keep/x", data: "x" },
];
const topEntries: TarEntry[] = [
  { name: "etc/", type: "directory" },
  { name: "etc/.wh.motd", data: "" },
  { name: "var/", type: "directory" },
  { name: "var/cache/", type: "directory" },
  { name: "var/cache/.wh..wh..opq", data: "" },
  { name: "var/cache/c", data: "c" },
];

test("unpack, get, list: chain IDs, diff IDs, sizes, links and meta.json", async (t) => {
  const { store, root } = await newStore(t);
  const baseTar = makeTar(baseEntries);
  const topTar = makeTar(topEntries);
  const base = await store.unpack({}, stream(baseTar));
  assert.equal(base.diffId, sha(baseTar));
  assert.equal(base.chainId, chainIdOf([sha(baseTar)]));
  assert.equal(base.parent, undefined);
  assert.equal(base.size, 8 + 4 + 1 + 1 + 1);
  assert.match(base.link, /^[A-Z0-9]{26}$/);
  assert.equal(base.diffDir, join(root, base.chainId.slice(7), "diff"));
  assert.equal(await readlink(join(root, "l", base.link)), `../${base.chainId.slice(7)}/diff`);
  assert.equal(await readFile(join(root, "l", base.link, "etc/motd"), "utf8"), "welcome\n");

  const top = await store.unpack({ parent: base.chainId, expectedDiffId: sha(topTar) }, stream(topTar));
  assert.equal(top.chainId, chainIdOf([sha(baseTar), sha(topTar)]));
  assert.equal(top.parent, base.chainId);
  assert.equal(top.size, 1);
  const meta = JSON.parse(await readFile(join(root, top.chainId.slice(7), "meta.json"), "utf8"));
  assert.deepEqual(meta, { chainId: top.chainId, diffId: sha(topTar), parent: base.chainId, size: 1 });

  assert.deepEqual(await store.get(top.chainId), top);
  assert.equal(await store.get(`sha256:${"0".repeat(64)}`), undefined);
  await assert.rejects(store.get("sha256:../../x"), (e) => isEngineError(e, "InvalidArgument"));
  const all = (await store.list()).sort((a, b) => a.chainId.localeCompare(b.chainId));
  assert.deepEqual(
    all,
    [base, top].sort((a, b) => a.chainId.localeCompare(b.chainId)),
  );
  assert.deepEqual(await store.lowerDirs(top.chainId), { cwd: root, lowers: [`l/${top.link}`, `l/${base.link}`] });
  await assertOnly(root, [base.chainId, top.chainId]);
});

test("overlay mount of two layers: whiteout hides a lower file, opaque dir hides lower content", async (t) => {
  const { store, base: tmp } = await newStore(t);
  const baseLayer = await store.unpack({}, stream(makeTar(baseEntries)));
  const top = await store.unpack({ parent: baseLayer.chainId }, stream(makeTar(topEntries)));
  const { cwd, lowers } = await store.lowerDirs(top.chainId);
  const upper = join(tmp, "upper");
  const work = join(tmp, "work");
  const mnt = join(tmp, "mnt");
  await Promise.all([mkdir(upper), mkdir(work), mkdir(mnt)]);
  t.after(() => {
    try {
      execFileSync("umount", [mnt], { stdio: "ignore" });
    } catch {
      /* not mounted */
    }
  });
  execFileSync("mount", ["-t", "overlay", "overlay", "-o", `lowerdir=${lowers.join(":")},upperdir=${upper},workdir=${work}`, mnt], { cwd });
  assert.deepEqual((await readdir(join(mnt, "etc"))).sort(), ["hostname"], "the whiteout hides etc/motd");
  assert.deepEqual(await readdir(join(mnt, "var/cache")), ["c"], "the opaque directory hides a and b");
  assert.equal(await readFile(join(mnt, "keep/x"), "utf8"), "x");
  // Writes go to the upper directory; the layers stay untouched.
  await writeFile(join(mnt, "keep/new"), "n");
  assert.equal(await readFile(join(upper, "keep/new"), "utf8"), "n");
  assert.deepEqual((await readdir(join(baseLayer.diffDir, "keep"))).sort(), ["x"]);
  execFileSync("umount", [mnt]);
});

test("diff ID mismatch is DataLoss and leaves nothing", async (t) => {
  const { store, root } = await newStore(t);
  const tar = makeTar(baseEntries);
  const wrong = sha(Buffer.from("not this"));
  await assert.rejects(store.unpack({ expectedDiffId: wrong }, stream(tar)), (e) => {
    assert.ok(isEngineError(e, "DataLoss"));
    assert.match(e.message, new RegExp(`expected ${wrong} got ${sha(tar)}`));
    return true;
  });
  await assertOnly(root, []);
});

test("truncated or garbage tar fails and leaves nothing", async (t) => {
  const { store, root } = await newStore(t);
  const tar = makeTar([{ name: "big", data: Buffer.alloc(100_000, 1) }]);
  await assert.rejects(store.unpack({}, stream(tar.subarray(0, 50_000))), (e) => isEngineError(e, "DataLoss"));
  await assert.rejects(store.unpack({ expectedDiffId: sha(tar) }, stream(tar.subarray(0, 50_000))), (e) => isEngineError(e, "DataLoss"));
  await assert.rejects(store.unpack({}, stream(makeTar([{ name: "a", data: "a" }], { noEnd: true }))), (e) => isEngineError(e, "DataLoss"));
  await assert.rejects(store.unpack({}, stream(Buffer.alloc(3000, 0x41))), (e) => isEngineError(e, "InvalidArgument"));
  await assertOnly(root, []);
});

for (const c of evilCases("/placeholder")) {
  test(`evil tar through the store leaves no layer: ${c.title}`, async (t) => {
    const { store, root, base } = await newStore(t);
    const outside = join(base, "outside");
    await mkdir(outside);
    await writeFile(join(outside, "sentinel"), "untouched");
    const { entries, message } = evilCases(outside).find((x) => x.title === c.title)!;
    await assert.rejects(store.unpack({}, stream(makeTar(entries))), (e) => isEngineError(e, "InvalidArgument") && message.test(e.message));
    await assertOnly(root, []);
    assert.deepEqual((await readdir(base)).sort(), ["outside", "overlay"]);
    assert.deepEqual(await readdir(outside), ["sentinel"]);
    assert.equal(await readFile(join(outside, "sentinel"), "utf8"), "untouched");
  });
}

test("unpacking an existing layer consumes the stream and returns the existing one", async (t) => {
  const { store, root } = await newStore(t);
  const tar = makeTar(baseEntries);
  const first = await store.unpack({}, stream(tar));
  const again = stream(tar);
  assert.deepEqual(await store.unpack({ expectedDiffId: sha(tar) }, again), first);
  assert.ok(again.readableEnded, "stream consumed");
  // Without an expected diff ID it is unpacked, found to exist, and the copy dropped.
  assert.deepEqual(await store.unpack({}, stream(tar)), first);
  // Existing layer, but the bytes do not match: DataLoss, the existing layer stays.
  await assert.rejects(store.unpack({ expectedDiffId: sha(tar) }, stream(tar.subarray(0, 2048))), (e) => isEngineError(e, "DataLoss"));
  assert.deepEqual(await store.get(first.chainId), first);
  await assertOnly(root, [first.chainId]);
});

test("parallel unpacks: different layers of one image, and the same layer twice", async (t) => {
  const { store, root } = await newStore(t);
  const tars = [0, 1, 2, 3].map((i) =>
    makeTar([
      { name: `layer${i}/`, type: "directory" },
      { name: `layer${i}/data`, data: Buffer.alloc(200_000 + i, i) },
    ]),
  );
  const diffIds = tars.map((x) => sha(x));
  const chains = diffIds.map((_, i) => chainIdOf(diffIds.slice(0, i + 1)));
  // Parents first (unpack only checks that a named parent exists)...
  const l0 = await store.unpack({ expectedDiffId: diffIds[0] }, stream(tars[0]!));
  // ...the base of each job known, the layers themselves unpacked at the same time.
  const base1 = await store.unpack({ parent: l0.chainId, expectedDiffId: diffIds[1] }, stream(tars[1]!));
  const [a, b, c] = await Promise.all([
    store.unpack({ parent: base1.chainId, expectedDiffId: diffIds[2] }, stream(tars[2]!, 1000)),
    store.unpack({ parent: base1.chainId, expectedDiffId: diffIds[2] }, stream(tars[2]!, 3000)),
    store.unpack({ parent: l0.chainId, expectedDiffId: diffIds[3] }, stream(tars[3]!)),
  ]);
  assert.equal(a.chainId, chains[2]);
  assert.deepEqual(a, b);
  assert.equal(c.parent, l0.chainId);
  await assertOnly(root, [l0.chainId, base1.chainId, a.chainId, c.chainId]);
});

test("a gzipped layer through decompressStream", async (t) => {
  const { store } = await newStore(t);
  const tar = makeTar(baseEntries);
  const info = await store.unpack({ expectedDiffId: sha(tar) }, decompressStream(stream(gzipSync(tar))));
  assert.equal(info.diffId, sha(tar));
  await assert.rejects(
    store.unpack({}, decompressStream(stream(Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(100)])))),
    (e) => isEngineError(e, "InvalidArgument") && /unsupported layer compression: zstd/.test(e.message),
  );
});

test("remove: refuses a parent, removes top first, no error when missing", async (t) => {
  const { store, root } = await newStore(t);
  const base = await store.unpack({}, stream(makeTar(baseEntries)));
  const top = await store.unpack({ parent: base.chainId }, stream(makeTar(topEntries)));
  await assert.rejects(store.remove(base.chainId), (e) => isEngineError(e, "Conflict") && e.message.includes(top.chainId));
  await store.remove(top.chainId);
  await assertOnly(root, [base.chainId]);
  await assert.rejects(lstat(join(root, "l", top.link)), { code: "ENOENT" });
  await store.remove(base.chainId);
  await store.remove(base.chainId);
  await assertOnly(root, []);
  await assert.rejects(store.remove("sha256:nope"), (e) => isEngineError(e, "InvalidArgument"));
});

test("a layer may be unpacked before its parent (parallel pulls); lowerDirs needs the whole chain", async (t) => {
  const { store } = await newStore(t);
  const missingParent = `sha256:${"9".repeat(64)}`;
  const child = await store.unpack({ parent: missingParent }, stream(makeTar(baseEntries)));
  assert.equal(child.parent, missingParent);
  await assert.rejects(store.lowerDirs(child.chainId), (e) => isEngineError(e, "NotFound"));
  await assert.rejects(store.unpack({ expectedDiffId: "md5:abc" }, stream(Buffer.alloc(0))), (e) => isEngineError(e, "InvalidArgument"));
  await assert.rejects(store.lowerDirs(`sha256:${"9".repeat(64)}`), (e) => isEngineError(e, "NotFound"));
  await store.remove(child.chainId);
});

test("lowerDirs repairs a short link lost in a crash", async (t) => {
  const { store, root } = await newStore(t);
  const base = await store.unpack({}, stream(makeTar(baseEntries)));
  await rm(join(root, "l", base.link));
  assert.deepEqual((await store.lowerDirs(base.chainId)).lowers, [`l/${base.link}`]);
  assert.equal(await readlink(join(root, "l", base.link)), `../${base.chainId.slice(7)}/diff`);
});

test("removeStale deletes leftovers of interrupted unpacks and removals", async (t) => {
  const { store, root } = await newStore(t);
  assert.equal(await store.removeStale(), 0); // nothing there yet
  const kept = await store.unpack({}, stream(makeTar(baseEntries)));
  await mkdir(join(root, "tmp", "unpack-deadbeef", "diff", "etc"), { recursive: true });
  await mkdir(join(root, "tmp", "remove-0123-aa"), { recursive: true });
  await symlink(`../${"f".repeat(64)}/diff`, join(root, "l", "AAAAAAAAAAAAAAAAAAAAAAAAAA")); // dangling
  await mkdir(join(root, "e".repeat(64), "diff"), { recursive: true }); // no meta.json
  assert.equal(await store.removeStale(), 4);
  await assertOnly(root, [kept.chainId]);
  assert.deepEqual(await store.get(kept.chainId), kept);
});

test("an abort signal cancels an unpack and leaves nothing", async (t) => {
  const { store, root } = await newStore(t);
  const ac = new AbortController();
  const slow = new Readable({ read() {} });
  slow.push(makeTar([{ name: "a", data: "a" }], { noEnd: true }));
  setTimeout(() => ac.abort(), 30);
  await assert.rejects(store.unpack({}, slow, ac.signal), (e) => isEngineError(e, "Canceled"));
  await assertOnly(root, []);
});
