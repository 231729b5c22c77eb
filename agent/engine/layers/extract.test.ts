import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { test, type TestContext } from "node:test";
import { isEngineError } from "../errors.ts";
import { extractLayer } from "./extract.ts";
import { evilCases, makeTar, type TarEntry } from "./testing-tar.ts";

interface Sandbox {
  root: string;
  layer: string;
  outside: string;
}

/** ROOT/layer is extracted into; ROOT/outside holds a sentinel that must stay untouched. */
async function sandbox(t: TestContext): Promise<Sandbox> {
  const root = await mkdtemp(join(tmpdir(), "berth-extract-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  const layer = join(root, "layer");
  const outside = join(root, "outside");
  await mkdir(layer);
  await mkdir(outside);
  await writeFile(join(outside, "sentinel"), "untouched");
  return { root, layer, outside };
}

async function assertOutsideUntouched(sb: Sandbox): Promise<void> {
  assert.deepEqual((await readdir(sb.root)).sort(), ["layer", "outside"]);
  assert.deepEqual(await readdir(sb.outside), ["sentinel"]);
  assert.equal(await readFile(join(sb.outside, "sentinel"), "utf8"), "untouched");
}

/** Feeds a tar in small, odd-sized chunks to exercise stream boundaries. */
function chunked(buf: Buffer, size = 1000): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return Readable.from(parts, { objectMode: false });
}

function extract(entries: TarEntry[], dir: string, chunkSize?: number) {
  return extractLayer(chunked(makeTar(entries), chunkSize), dir);
}

function getXattrHex(path: string, name: string): string | undefined {
  try {
    const out = execFileSync("getfattr", ["-h", "--absolute-names", "-n", name, "-e", "hex", path], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    const m = /=0x([0-9a-f]*)/.exec(out);
    return m?.[1];
  } catch {
    return undefined;
  }
}

const T1 = new Date("2021-03-04T05:06:07Z");
const T2 = new Date("2019-01-01T00:00:00Z");

test("extracts every entry kind with owners, modes (setuid/setgid/sticky), times and xattrs", async (t) => {
  const sb = await sandbox(t);
  const big = Buffer.alloc(3 * 1024 * 1024 + 123);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  // vfs_cap_data v2: cap_setgid, cap_setuid, cap_net_bind_service permitted + effective (0xc0 is not UTF-8).
  const cap = Buffer.from("01000002c004000000000000000000000000000000".slice(0, 40), "hex");
  const entries: TarEntry[] = [
    { name: "./", type: "directory", mode: 0o755, mtime: T2 },
    { name: "./etc/", type: "directory", mode: 0o750, uid: 1000, gid: 1001, mtime: T1 },
    { name: "./etc/passwd", data: "root:x:0:0::/root:/bin/sh\n", mode: 0o644, mtime: T1 },
    { name: "./bin/", type: "directory", mode: 0o755 },
    { name: "./bin/su", data: "#!/bin/sh\n", mode: 0o4755, uid: 0, gid: 0 },
    { name: "./bin/wall", data: "binary", mode: 0o2755, uid: 1234, gid: 5678 },
    { name: "./bin/ping", data: "ping", mode: 0o755, xattrs: { "security.capability": cap } },
    { name: "./bin/sh", type: "symlink", linkname: "/bin/busybox", uid: 42, gid: 43, mtime: T1 },
    { name: "./bin/rel", type: "symlink", linkname: "../etc/passwd" },
    { name: "./bin/busybox", data: "bb", mode: 0o755 },
    { name: "./bin/hard", type: "link", linkname: "./bin/busybox" },
    { name: "/tmp/", type: "directory", mode: 0o1777 },
    { name: "/srv/shared/", type: "directory", mode: 0o2775, uid: 3, gid: 4 },
    { name: "run/pipe", type: "fifo", mode: 0o620, uid: 7, gid: 8, mtime: T1 },
    { name: "data/big.bin", data: big, mode: 0o600, uid: 65534, gid: 65534 },
    { name: "data/empty", data: "", mode: 0o000 },
    { name: "data/user-attr", data: "u", xattrs: { "user.berth.test": "hello", "trusted.berth": Buffer.from([0, 255, 1]) } },
    { name: "data/overlay-attr", data: "o", xattrs: { "trusted.overlay.opaque": "y", "security.selinux": "system_u" } },
    { name: "deep/a/b/c/file", data: "deep" },
  ];
  const { size } = await extract(entries, sb.layer, 777);
  const L = (p: string) => join(sb.layer, p);

  assert.equal(size, 26 + 10 + 6 + 4 + 2 + big.length + 0 + 1 + 1 + 4);
  const etc = await lstat(L("etc"));
  assert.ok(etc.isDirectory());
  assert.equal(etc.mode & 0o7777, 0o750);
  assert.deepEqual([etc.uid, etc.gid], [1000, 1001]);
  assert.equal(etc.mtime.getTime(), T1.getTime());
  assert.equal((await lstat(sb.layer)).mtime.getTime(), T2.getTime());

  const su = await lstat(L("bin/su"));
  assert.equal(su.mode & 0o7777, 0o4755, "setuid kept after chown");
  const wall = await lstat(L("bin/wall"));
  assert.equal(wall.mode & 0o7777, 0o2755);
  assert.deepEqual([wall.uid, wall.gid], [1234, 5678]);
  assert.equal((await lstat(L("tmp"))).mode & 0o7777, 0o1777);
  const shared = await lstat(L("srv/shared"));
  assert.equal(shared.mode & 0o7777, 0o2775);
  assert.deepEqual([shared.uid, shared.gid], [3, 4]);
  assert.equal((await lstat(L("srv"))).mode & 0o7777, 0o755, "implicit parents are 0755");

  const sh = await lstat(L("bin/sh"));
  assert.ok(sh.isSymbolicLink());
  assert.equal(await readlink(L("bin/sh")), "/bin/busybox");
  assert.deepEqual([sh.uid, sh.gid], [42, 43]);
  assert.equal(sh.mtime.getTime(), T1.getTime());
  assert.equal(await readlink(L("bin/rel")), "../etc/passwd");

  const bb = await lstat(L("bin/busybox"));
  const hard = await lstat(L("bin/hard"));
  assert.equal(hard.ino, bb.ino);
  assert.equal(bb.nlink, 2);

  const pipe = await lstat(L("run/pipe"));
  assert.ok(pipe.isFIFO());
  assert.equal(pipe.mode & 0o7777, 0o620);
  assert.deepEqual([pipe.uid, pipe.gid], [7, 8]);
  assert.equal(pipe.mtime.getTime(), T1.getTime());

  assert.deepEqual(await readFile(L("data/big.bin")), big);
  const bigSt = await stat(L("data/big.bin"));
  assert.deepEqual([bigSt.uid, bigSt.gid, bigSt.mode & 0o7777], [65534, 65534, 0o600]);
  assert.equal((await stat(L("data/empty"))).mode & 0o7777, 0);
  assert.equal(await readFile(L("etc/passwd"), "utf8"), "root:x:0:0::/root:/bin/sh\n");
  assert.equal((await stat(L("etc/passwd"))).mtime.getTime(), T1.getTime());
  assert.equal(await readFile(L("deep/a/b/c/file"), "utf8"), "deep");

  assert.equal(getXattrHex(L("bin/ping"), "security.capability"), cap.toString("hex"), "binary capability survives");
  assert.equal(getXattrHex(L("data/user-attr"), "user.berth.test"), Buffer.from("hello").toString("hex"));
  assert.equal(getXattrHex(L("data/user-attr"), "trusted.berth"), "00ff01");
  assert.equal(getXattrHex(L("data/overlay-attr"), "trusted.overlay.opaque"), undefined, "overlay's own xattrs are not taken from tars");
  assert.equal(getXattrHex(L("data/overlay-attr"), "security.selinux"), undefined);
});

test("later entries replace earlier ones; an existing directory keeps its content", async (t) => {
  const sb = await sandbox(t);
  await extract(
    [
      { name: "d/", type: "directory", mode: 0o755 },
      { name: "d/keep", data: "kept" },
      { name: "d/", type: "directory", mode: 0o700, uid: 5, gid: 6 },
      { name: "f", data: "first" },
      { name: "f", data: "second" },
      { name: "x/", type: "directory" },
      { name: "x/inner", data: "gone" },
      { name: "x", data: "now a file" },
      { name: "y", data: "was a file" },
      { name: "y/", type: "directory" },
      { name: "y/z", data: "z" },
      // A symlink to the outside replaced by a regular file: the outside is not written.
      { name: "s", type: "symlink", linkname: join(sb.outside, "sentinel") },
      { name: "s", data: "inside" },
      // A symlink replaced by a directory, then written into.
      { name: "s2", type: "symlink", linkname: sb.outside },
      { name: "s2/", type: "directory" },
      { name: "s2/f", data: "inside too" },
      // A hard link to a symlink links the symlink itself.
      { name: "s3", type: "symlink", linkname: join(sb.outside, "sentinel") },
      { name: "h3", type: "link", linkname: "s3" },
    ],
    sb.layer,
  );
  const L = (p: string) => join(sb.layer, p);
  assert.equal(await readFile(L("d/keep"), "utf8"), "kept");
  const d = await lstat(L("d"));
  assert.equal(d.mode & 0o7777, 0o700);
  assert.deepEqual([d.uid, d.gid], [5, 6]);
  assert.equal(await readFile(L("f"), "utf8"), "second");
  assert.equal(await readFile(L("x"), "utf8"), "now a file");
  assert.equal(await readFile(L("y/z"), "utf8"), "z");
  assert.ok((await lstat(L("s"))).isFile());
  assert.equal(await readFile(L("s"), "utf8"), "inside");
  assert.ok((await lstat(L("s2"))).isDirectory());
  assert.equal(await readFile(L("s2/f"), "utf8"), "inside too");
  assert.ok((await lstat(L("h3"))).isSymbolicLink());
  await assertOutsideUntouched(sb);
});

test("absolute names are stripped and stay inside, as Docker does", async (t) => {
  const sb = await sandbox(t);
  await extract(
    [
      { name: "/abs/evil", data: "inside" },
      { name: "///x//./y/../z", data: "z" },
    ],
    sb.layer,
  );
  assert.equal(await readFile(join(sb.layer, "abs/evil"), "utf8"), "inside");
  assert.equal(await readFile(join(sb.layer, "x/z"), "utf8"), "z");
  await assertOutsideUntouched(sb);
});

test("whiteouts become 0/0 char devices, .wh..wh..opq an opaque xattr, aufs metadata is skipped", async (t) => {
  const sb = await sandbox(t);
  await extract(
    [
      { name: "etc/", type: "directory" },
      { name: "etc/.wh.motd", data: "" },
      { name: "var/", type: "directory", mode: 0o755, mtime: T1 },
      { name: "var/cache/", type: "directory", mtime: T1 },
      { name: "var/cache/.wh..wh..opq", data: "" },
      { name: "var/cache/new", data: "n" },
      { name: ".wh.top", data: "" },
      { name: ".wh..wh.plnk/", type: "directory" },
      { name: ".wh..wh.plnk/123.456", data: "aufs" },
      { name: "dev-whiteout", type: "character-device", devmajor: 0, devminor: 0 },
      { name: "later/.wh.x", data: "" },
      { name: "later/x", data: "the later entry wins" },
    ],
    sb.layer,
  );
  const L = (p: string) => join(sb.layer, p);
  for (const p of ["etc/motd", "top", "dev-whiteout"]) {
    const st = await lstat(L(p));
    assert.ok(st.isCharacterDevice(), p);
    assert.equal(st.rdev, 0, p);
  }
  await assert.rejects(lstat(L("etc/.wh.motd")), { code: "ENOENT" });
  assert.equal(getXattrHex(L("var/cache"), "trusted.overlay.opaque"), Buffer.from("y").toString("hex"));
  assert.equal(await readFile(L("var/cache/new"), "utf8"), "n");
  assert.equal((await lstat(L("var/cache"))).mtime.getTime(), T1.getTime(), "directory times are set after the whiteouts");
  await assert.rejects(lstat(L(".wh..wh.plnk")), { code: "ENOENT" });
  assert.equal(await readFile(L("later/x"), "utf8"), "the later entry wins");
});

for (const c of evilCases("/placeholder")) {
  test(`refuses evil tar: ${c.title}`, async (t) => {
    const sb = await sandbox(t);
    const { entries, message } = evilCases(sb.outside).find((x) => x.title === c.title)!;
    await assert.rejects(extract(entries, sb.layer), (e) => {
      assert.ok(isEngineError(e, "InvalidArgument"), `${(e as Error).name}: ${(e as Error).message}`);
      assert.match(e.message, message);
      return true;
    });
    await assertOutsideUntouched(sb);
    // No device node was ever created.
    const walk = async (dir: string): Promise<void> => {
      for (const n of await readdir(dir)) {
        const st = await lstat(join(dir, n));
        assert.ok(!st.isBlockDevice() && !(st.isCharacterDevice() && st.rdev !== 0), `device node ${n}`);
        if (st.isDirectory()) await walk(join(dir, n));
      }
    };
    await walk(sb.layer);
  });
}

test("hostile host files are never linked: /etc/passwd link count unchanged", async (t) => {
  const sb = await sandbox(t);
  const before = (await stat("/etc/passwd")).nlink;
  for (const linkname of ["/etc/passwd", "../../../../../../etc/passwd"]) {
    await assert.rejects(extract([{ name: "hl", type: "link", linkname }], sb.layer), (e) => isEngineError(e, "InvalidArgument"));
  }
  assert.equal((await stat("/etc/passwd")).nlink, before);
  await assert.rejects(lstat(join(sb.layer, "hl")), { code: "ENOENT" });
});

test("truncated tars are DataLoss, garbage is InvalidArgument", async (t) => {
  const sb = await sandbox(t);
  const tar = makeTar([
    { name: "a", data: Buffer.alloc(5000, 1) },
    { name: "b", data: "bb" },
  ]);
  // Cut inside the data of "a".
  await assert.rejects(extractLayer(chunked(tar.subarray(0, 3000)), sb.layer), (e) => isEngineError(e, "DataLoss") && /truncated/.test(e.message));
  // Cut exactly after an entry, before the end-of-archive marker.
  const noEnd = makeTar([{ name: "a", data: "a" }], { noEnd: true });
  await assert.rejects(extractLayer(chunked(noEnd), sb.layer), (e) => isEngineError(e, "DataLoss") && /end-of-archive/.test(e.message));
  await assert.rejects(extractLayer(chunked(Buffer.alloc(0)), sb.layer), (e) => isEngineError(e, "DataLoss"));
  await assert.rejects(
    extractLayer(chunked(Buffer.from("this is not a tar file".repeat(100))), sb.layer),
    (e) => isEngineError(e, "InvalidArgument") && /invalid layer tar/.test(e.message),
  );
  // An input stream that fails passes its error on.
  const broken = Readable.from(
    (async function* () {
      yield tar.subarray(0, 1024);
      throw new Error("network went away");
    })(),
    { objectMode: false },
  );
  await assert.rejects(extractLayer(broken, sb.layer), /network went away/);
});

test("entries after the end-of-archive marker are ignored; a lone zero block before a header is refused", async (t) => {
  const sb = await sandbox(t);
  const first = makeTar([{ name: "a", data: "a" }]);
  const second = makeTar([{ name: "b", data: "b" }]);
  await extractLayer(chunked(Buffer.concat([first, second])), sb.layer);
  assert.deepEqual(await readdir(sb.layer), ["a"]);
  const a = makeTar([{ name: "c", data: "c" }], { noEnd: true });
  const lone = Buffer.concat([a, Buffer.alloc(512), second]);
  await assert.rejects(extractLayer(chunked(lone), sb.layer), (e) => isEngineError(e, "InvalidArgument"));
});

test("long names via PAX work and chunk boundaries do not matter", async (t) => {
  const sb = await sandbox(t);
  const long = `${"d".repeat(120)}/${"f".repeat(150)}`;
  const entries: TarEntry[] = [
    { name: long, data: "long", xattrs: { "user.k": Buffer.from([0xc0, 0xff]) } },
    { name: "ln", type: "symlink", linkname: "/" + "t".repeat(200) },
  ];
  for (const size of [1, 511, 512, 513, 4096]) {
    const dir = join(sb.root, `layer-${size}`);
    await mkdir(dir);
    await extract(entries, dir, size);
    assert.equal(await readFile(join(dir, long), "utf8"), "long");
    assert.equal(getXattrHex(join(dir, long), "user.k"), "c0ff");
    assert.equal(await readlink(join(dir, "ln")), "/" + "t".repeat(200));
    await rm(dir, { recursive: true });
  }
});

test("an abort signal cancels extraction", async (t) => {
  const sb = await sandbox(t);
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(extractLayer(chunked(makeTar([{ name: "a", data: "a" }])), sb.layer, { signal: ac.signal }), (e) => isEngineError(e, "Canceled"));
  const ac2 = new AbortController();
  const slow = new Readable({ read() {} });
  slow.push(makeTar([{ name: "a", data: "a" }], { noEnd: true }));
  setTimeout(() => ac2.abort(), 30);
  await assert.rejects(extractLayer(slow, sb.layer, { signal: ac2.signal }), (e) => isEngineError(e, "Canceled"));
});

test("a filesystem error names the entry (and does not hang)", async (t) => {
  const sb = await sandbox(t);
  const tooLong = "n".repeat(300);
  await assert.rejects(
    extract(
      [
        { name: "ok", data: "1" },
        { name: tooLong, data: "x" },
        { name: "after", data: "2" },
      ],
      sb.layer,
    ),
    (e) => {
      assert.ok(isEngineError(e, "Internal"));
      assert.match(e.message, new RegExp(`extracting layer tar entry ${tooLong}: .*name too long`));
      return true;
    },
  );
});
