// Integration tests of the overlay snapshotter with real overlay mounts (root only).
// Every test owns a temporary directory; its t.after (registered before any setup)
// unmounts whatever the test mounted and deletes the directory, also on failure.
import assert from "node:assert/strict";
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { test, type TestContext } from "node:test";
import { isEngineError } from "../errors.ts";
import type { LayerInfo } from "../layers/layer-store.ts";
import { OverlayLayerStore } from "../layers/overlay-layer-store.ts";
import { isMounted, mountAll, unmountAll } from "./mount.ts";
import { MAX_MOUNT_DATA, OverlaySnapshotter } from "./overlay.ts";
import { makeTar, type RawEntry } from "../../../test/helpers/raw-images.ts";

interface Env {
  base: string;
  layers: OverlayLayerStore;
  snaps: OverlaySnapshotter;
  /** Mount points of this test; unmounted by the cleanup. */
  target: (name: string) => Promise<string>;
}

/** Registers cleanup first, then makes a layer store and a snapshotter under a fresh directory. */
async function setup(t: TestContext, opts?: { nest?: string }): Promise<Env> {
  const targets: string[] = [];
  let base = "";
  t.after(async () => {
    for (const m of targets.reverse()) await unmountAll(m, { detach: true }).catch(() => undefined);
    if (base) await rm(base, { recursive: true, force: true });
  });
  base = await mkdtemp(join(tmpdir(), "berth-snap-"));
  const home = opts?.nest ? join(base, opts.nest) : base;
  const layers = new OverlayLayerStore(join(home, "layers"), { durable: false });
  const snaps = new OverlaySnapshotter(join(home, "snapshots"), layers);
  return {
    base,
    layers,
    snaps,
    target: async (name) => {
      const p = join(base, "mnt", name);
      await mkdir(p, { recursive: true });
      targets.push(p);
      return p;
    },
  };
}

async function unpack(layers: OverlayLayerStore, parent: string | undefined, entries: RawEntry[]): Promise<LayerInfo> {
  return layers.unpack(parent ? { parent } : {}, Readable.from([await makeTar(entries)]));
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

test("2-layer chain: merged view, writes land in upper, lower layers untouched", async (t) => {
  const { layers, snaps, target, base } = await setup(t);
  const l0 = await unpack(layers, undefined, [
    { name: "etc/", type: "directory" },
    { name: "etc/motd", content: "base motd\n" },
    { name: "etc/gone", content: "removed by the top layer\n" },
    { name: "bin/", type: "directory" },
    { name: "bin/tool", content: "v1\n" },
  ]);
  const l1 = await unpack(layers, l0.chainId, [
    { name: "etc/", type: "directory" },
    { name: "etc/.wh.gone", content: "" },
    { name: "bin/", type: "directory" },
    { name: "bin/tool", content: "v2\n" },
  ]);

  const mounts = await snaps.prepare("c1", l1.chainId);
  assert.equal(mounts.length, 1);
  const m = mounts[0]!;
  assert.equal(m.type, "overlay");
  assert.equal(m.cwd, layers.root);
  const lower = m.options.find((o) => o.startsWith("lowerdir="))!;
  assert.equal(lower, `lowerdir=l/${l1.link}:l/${l0.link}`, "short links, topmost first");
  assert.ok(m.options.includes(`upperdir=${join(snaps.root, "c1", "upper")}`));
  assert.ok(m.options.includes(`workdir=${join(snaps.root, "c1", "work")}`));
  assert.deepEqual(await snaps.mounts("c1"), mounts, "mounts() gives the same mounts again");

  const rootfs = await target("c1");
  await mountAll(mounts, rootfs);
  assert.equal(await isMounted(rootfs), true);
  assert.equal(await readFile(join(rootfs, "etc/motd"), "utf8"), "base motd\n");
  assert.equal(await readFile(join(rootfs, "bin/tool"), "utf8"), "v2\n");
  assert.equal(await exists(join(rootfs, "etc/gone")), false, "whiteout hides the base file");

  await writeFile(join(rootfs, "new-file"), "hello");
  await writeFile(join(rootfs, "etc/motd"), "changed\n");
  const upper = await snaps.upperDir("c1");
  assert.equal(upper, join(snaps.root, "c1", "upper"));
  assert.equal(await readFile(join(upper, "new-file"), "utf8"), "hello");
  assert.equal(await readFile(join(upper, "etc/motd"), "utf8"), "changed\n", "copied up");
  assert.equal(await readFile(join(l0.diffDir, "etc/motd"), "utf8"), "base motd\n", "lower untouched");
  assert.equal(await exists(join(l0.diffDir, "new-file")), false);
  assert.equal(await exists(join(l1.diffDir, "new-file")), false);
  const usage = await snaps.usage("c1");
  assert.equal(usage.size, 5 + 8);
  assert.equal(usage.inodes, 3, "new-file, etc/, etc/motd");

  await assert.rejects(snaps.remove("c1"), (e) => isEngineError(e, "Conflict") && /mounted on .*c1/.test(e.message));
  assert.ok(await exists(upper), "refused remove touched nothing");
  await unmountAll(rootfs);
  assert.equal(await isMounted(rootfs), false);
  await unmountAll(rootfs); // idempotent

  assert.deepEqual(
    (await snaps.list()).map((s) => [s.key, s.parent]),
    [["c1", l1.chainId]],
  );
  await snaps.remove("c1");
  await snaps.remove("c1"); // idempotent
  assert.deepEqual(await readdir(snaps.root), ["tmp"]);
  assert.deepEqual(await readdir(join(snaps.root, "tmp")), []);
  assert.deepEqual(await snaps.list(), []);
  await assert.rejects(snaps.mounts("c1"), (e) => isEngineError(e, "NotFound"));
  await assert.rejects(snaps.upperDir("c1"), (e) => isEngineError(e, "NotFound"));
  assert.ok(base);
});

test("single-layer image and scratch: still an overlay with a lower and an upper", async (t) => {
  const { layers, snaps, target } = await setup(t);
  const only = await unpack(layers, undefined, [{ name: "hello", content: "one layer\n" }]);
  const one = await snaps.prepare("single", only.chainId);
  assert.ok(one[0]!.options.includes(`lowerdir=l/${only.link}`));
  const r1 = await target("single");
  await mountAll(one, r1);
  assert.equal(await readFile(join(r1, "hello"), "utf8"), "one layer\n");
  await writeFile(join(r1, "w"), "x");
  assert.equal(await readFile(join(only.diffDir, "hello"), "utf8"), "one layer\n");
  assert.equal(await exists(join(only.diffDir, "w")), false);

  const scratch = await snaps.prepare("scratch", undefined);
  assert.equal(scratch[0]!.cwd, undefined);
  assert.ok(scratch[0]!.options.includes(`lowerdir=${join(snaps.root, "scratch", "lower")}`));
  const r2 = await target("scratch");
  await mountAll(scratch, r2);
  assert.deepEqual(await readdir(r2), []);
  await writeFile(join(r2, "f"), "x");
  assert.deepEqual(await readdir(join(snaps.root, "scratch", "upper")), ["f"]);
  assert.deepEqual(await readdir(join(snaps.root, "scratch", "lower")), []);
  assert.deepEqual((await snaps.list()).map((s) => s.key).sort(), ["scratch", "single"]);
  assert.equal((await snaps.stat("scratch"))?.parent, undefined);

  await unmountAll(r1);
  await unmountAll(r2);
  await snaps.remove("single");
  await snaps.remove("scratch");
  assert.deepEqual(await readdir(snaps.root), ["tmp"]);
});

test("120-layer chain mounts within one page of options; 140 layers is refused naming the limit", async (t) => {
  // A long common directory makes the absolute upper/work paths too long: the
  // snapshotter must fall back to paths relative to the layer store's root.
  const { layers, snaps, target } = await setup(t, { nest: join("d".repeat(200), "e".repeat(200)) });
  const chain: LayerInfo[] = [];
  for (let i = 0; i < 140; i++) {
    chain.push(
      await unpack(layers, chain.at(-1)?.chainId, [
        { name: `layer-${i}`, content: `${i}\n` },
        { name: "top", content: `top ${i}\n` },
      ]),
    );
  }
  const l120 = chain[119]!;
  const mounts = await snaps.prepare("deep", l120.chainId);
  const data = mounts[0]!.options.join(",");
  assert.ok(data.length <= MAX_MOUNT_DATA, `${data.length} bytes of mount options`);
  assert.ok(mounts[0]!.options.includes("upperdir=../snapshots/deep/upper"), "relative upper dir");
  assert.ok(mounts[0]!.options.includes("workdir=../snapshots/deep/work"));
  assert.equal(mounts[0]!.options.find((o) => o.startsWith("lowerdir="))!.split(":").length, 120);

  const rootfs = await target("deep");
  await mountAll(mounts, rootfs);
  assert.equal(await readFile(join(rootfs, "layer-0"), "utf8"), "0\n");
  assert.equal(await readFile(join(rootfs, "layer-119"), "utf8"), "119\n");
  assert.equal(await exists(join(rootfs, "layer-120")), false);
  assert.equal(await readFile(join(rootfs, "top"), "utf8"), "top 119\n");
  await writeFile(join(rootfs, "written"), "w");
  assert.equal(await readFile(join(snaps.root, "deep", "upper", "written"), "utf8"), "w");
  await assert.rejects(snaps.remove("deep"), (e) => isEngineError(e, "Conflict"), "mounted with a relative upperdir is still seen as mounted");
  await unmountAll(rootfs);
  await snaps.remove("deep");

  await assert.rejects(
    snaps.prepare("too-deep", chain[139]!.chainId),
    (e) => isEngineError(e, "InvalidArgument") && /140 layers .* over the kernel's limit of 4095/.test(e.message),
  );
  assert.deepEqual(await readdir(snaps.root), ["tmp"], "nothing left of the refused prepare");
});

test("refusals: existing key, missing chain, bad key, bad chain ID — nothing left behind", async (t) => {
  const { layers, snaps } = await setup(t);
  const l = await unpack(layers, undefined, [{ name: "a", content: "a" }]);
  await snaps.prepare("c", l.chainId);
  await assert.rejects(snaps.prepare("c", l.chainId), (e) => isEngineError(e, "AlreadyExists") && /snapshot c already exists/.test(e.message));
  const missing = `sha256:${"ab".repeat(32)}`;
  await assert.rejects(snaps.prepare("d", missing), (e) => isEngineError(e, "NotFound"));
  for (const bad of ["", "../x", "a/b", "tmp", ".hidden", "x".repeat(129)]) {
    await assert.rejects(snaps.prepare(bad, l.chainId), (e) => isEngineError(e, "InvalidArgument"), bad);
  }
  await assert.rejects(snaps.prepare("e", "sha256:nothex"), (e) => isEngineError(e, "InvalidArgument"));
  assert.deepEqual((await readdir(snaps.root)).sort(), ["c", "tmp"]);
  assert.deepEqual(await readdir(join(snaps.root, "tmp")), []);
  await assert.rejects(snaps.usage("nope"), (e) => isEngineError(e, "NotFound"));
});

test("removeStale deletes crash leftovers and keeps live snapshots", async (t) => {
  const { layers, snaps, target } = await setup(t);
  const l = await unpack(layers, undefined, [{ name: "a", content: "a" }]);
  const live = await snaps.prepare("live", l.chainId);
  const rootfs = await target("live");
  await mountAll(live, rootfs);
  await snaps.prepare("idle", l.chainId);
  // What a crash leaves: a prepare's temporary directory, a removal's, and a
  // snapshot directory that never got its meta.json.
  await mkdir(join(snaps.root, "tmp", "prepare-x-0123456789ab", "upper"), { recursive: true });
  await mkdir(join(snaps.root, "tmp", "remove-y-0123456789ab", "work", "work"), { recursive: true });
  await mkdir(join(snaps.root, "half", "upper"), { recursive: true });
  assert.equal(await snaps.removeStale(), 3);
  assert.deepEqual((await readdir(snaps.root)).sort(), ["idle", "live", "tmp"]);
  assert.deepEqual(await readdir(join(snaps.root, "tmp")), []);
  assert.equal(await isMounted(rootfs), true, "the mounted snapshot is untouched");
  assert.equal((await stat(join(rootfs, "a"))).size, 1);
  assert.equal(await snaps.removeStale(), 0);
  await unmountAll(rootfs);
  await snaps.remove("live");
  await snaps.remove("idle");
});

test("mountAll is all or nothing", async (t) => {
  const { layers, snaps, target } = await setup(t);
  const l = await unpack(layers, undefined, [{ name: "a", content: "a" }]);
  const good = await snaps.prepare("g", l.chainId);
  const rootfs = await target("g");
  await assert.rejects(
    mountAll([...good, { type: "overlay", source: "overlay", target: "sub", options: ["lowerdir=/nonexistent-berth-lower"] }], rootfs),
    (e) => isEngineError(e, "Unavailable") && /mount overlay overlay on .*sub/.test(e.message),
  );
  assert.equal(await isMounted(rootfs), false, "the first mount was undone");
  await assert.rejects(mountAll([{ ...good[0]!, target: "../escape" }], rootfs), (e) => isEngineError(e, "InvalidArgument"));
  assert.equal(await isMounted(rootfs), false);
  await snaps.remove("g");
});
