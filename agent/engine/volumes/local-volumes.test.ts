import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { link, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile, chown, chmod } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { isEngineError } from "../errors.ts";
import { LocalVolumeStore } from "./local-volumes.ts";

async function newStore(t: TestContext): Promise<{ store: LocalVolumeStore; base: string; root: string }> {
  const base = await mkdtemp(join(tmpdir(), "berth-volumes-"));
  t.after(() => rm(base, { recursive: true, force: true }));
  const root = join(base, "volumes");
  return { store: new LocalVolumeStore(root), base, root };
}

const rejects = (p: Promise<unknown>, kind: string, message: string | RegExp) =>
  assert.rejects(p, (e: unknown) => {
    assert.ok(isEngineError(e), String(e));
    assert.equal(e.kind, kind);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });

test("create, get, list with filters, remove in use, prune anonymous", async (t) => {
  const { store, root } = await newStore(t);

  const web = await store.create({ name: "web-data", labels: { app: "web", tier: "front" } });
  assert.deepEqual(
    { ...web, createdAt: "" },
    {
      name: "web-data",
      driver: "local",
      mountpoint: join(root, "web-data", "_data"),
      createdAt: "",
      labels: { app: "web", tier: "front" },
      options: {},
      scope: "local",
      anonymous: false,
    },
  );
  assert.match(web.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.ok((await lstat(web.mountpoint)).isDirectory());
  assert.deepEqual(await store.create({ name: "web-data", labels: { other: "x" } }), web, "existing name: the existing volume");
  assert.deepEqual(await store.get("web-data"), web);

  const anon = await store.create({});
  assert.match(anon.name, /^[0-9a-f]{64}$/);
  assert.equal(anon.anonymous, true);
  assert.deepEqual(anon.labels, { "com.docker.volume.anonymous": "" });
  const db = await store.create({ name: "db", labels: { app: "db" }, options: { type: "tmpfs", device: "tmpfs", o: "size=1m" } });
  assert.deepEqual(db.options, { type: "tmpfs", device: "tmpfs", o: "size=1m" });

  await rejects(store.create({ name: "a" }), "InvalidArgument", "create a: volume name is too short, names should be at least two alphanumeric characters");
  await rejects(
    store.create({ name: "../x" }),
    "InvalidArgument",
    'create ../x: "../x" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path',
  );
  await rejects(store.create({ name: "vv", options: { foo: "1" } }), "InvalidArgument", 'create vv: invalid option: "foo"');
  await rejects(store.create({ name: "vv", options: { type: "nfs" } }), "InvalidArgument", 'create vv: missing required option: "device"');
  await rejects(store.get("nope"), "NotFound", "get nope: no such volume");
  await rejects(store.get("../etc"), "NotFound", "get ../etc: no such volume");

  const inUse = (n: string) => n === "db";
  const names = async (f?: Parameters<LocalVolumeStore["list"]>[0]) => (await store.list(f, inUse)).map((v) => v.name);
  // Sorted by name; the anonymous volume's random hex name may fall on either side of "db".
  assert.deepEqual(await names(), [anon.name, "db", "web-data"].sort());
  assert.deepEqual(await names({ dangling: true }), [anon.name, "web-data"].sort());
  assert.deepEqual(await names({ dangling: false }), ["db"]);
  assert.deepEqual(await names({ name: ["^web"] }), ["web-data"]);
  // Anchored: a bare "db" would also match the random hex name of the anonymous volume.
  assert.deepEqual(await names({ name: ["^db$", "data"] }), ["db", "web-data"]);
  assert.deepEqual(await names({ label: ["app"] }), ["db", "web-data"]);
  assert.deepEqual(await names({ label: ["app=web", "tier"] }), ["web-data"]);
  assert.deepEqual(await names({ label: ["app=nope"] }), []);

  await rejects(
    store.remove("db", {}, (n) => (n === "db" ? ["c1", "c2"] : [])),
    "Conflict",
    "remove db: volume is in use - [c1, c2]",
  );
  await rejects(
    store.remove("db", { force: true }, () => ["c1"]),
    "Conflict",
    "remove db: volume is in use - [c1]",
  );
  await rejects(store.remove("nope", {}), "NotFound", "get nope: no such volume");
  await store.remove("nope", { force: true });

  // Prune: only anonymous volumes by default, never one in use.
  await writeFile(join(anon.mountpoint, "f"), "12345");
  const inUseAnon = await store.create({ name: "anon-in-use", anonymous: true });
  const pruneInUse = (n: string) => n === inUseAnon.name || n === "db";
  assert.deepEqual(await store.prune(pruneInUse), { deleted: [anon.name], spaceReclaimed: 5 });
  assert.deepEqual(await names(), ["anon-in-use", "db", "web-data"]);
  assert.deepEqual(await store.prune(pruneInUse, { all: true, label: ["app=web"] }), { deleted: ["web-data"], spaceReclaimed: 0 });
  await store.remove("db", {}, () => []);
  assert.deepEqual(await names(), ["anon-in-use"]);
  assert.deepEqual(await readdir(join(root, ".tmp")), [], "nothing left behind");
});

test("populate: copies image content with owners, modes, xattrs and links; once; never host files", async (t) => {
  const { store, base } = await newStore(t);
  const rootfs = join(base, "rootfs");
  const data = join(rootfs, "var/lib/app");
  await mkdir(join(data, "sub"), { recursive: true });
  await writeFile(join(data, "conf"), "setting=1\n");
  await chown(join(data, "conf"), 1000, 1001);
  await chmod(join(data, "conf"), 0o640);
  await writeFile(join(data, "sub/tool"), "#!x\n");
  await chmod(join(data, "sub/tool"), 0o4755);
  execFileSync("setfattr", ["-n", "user.origin", "-v", "image", join(data, "sub/tool")]);
  await link(join(data, "conf"), join(data, "conf.hard"));
  await symlink("../conf", join(data, "sub/conf-link"));
  await chown(join(data, "sub"), 1000, 1001);
  await chmod(join(data, "sub"), 0o750);
  await chown(data, 1000, 1001);
  await chmod(data, 0o711);
  // The container path goes through a symlink inside the image: followed, inside the rootfs.
  await symlink("/var/lib/app", join(rootfs, "app"));

  const v = await store.create({ name: "appdata" });
  await store.populate("appdata", rootfs, "/app");
  const mp = v.mountpoint;
  const st = await lstat(mp);
  assert.deepEqual([st.mode & 0o7777, st.uid, st.gid], [0o711, 1000, 1001], "the volume root takes the source's owner and mode");
  const conf = await lstat(join(mp, "conf"));
  assert.deepEqual([conf.mode & 0o7777, conf.uid, conf.gid], [0o640, 1000, 1001]);
  assert.equal(await readFile(join(mp, "conf"), "utf8"), "setting=1\n");
  assert.equal((await lstat(join(mp, "conf.hard"))).ino, conf.ino, "hard link kept");
  const sub = await lstat(join(mp, "sub"));
  assert.deepEqual([sub.mode & 0o7777, sub.uid, sub.gid], [0o750, 1000, 1001]);
  assert.equal((await lstat(join(mp, "sub/tool"))).mode & 0o7777, 0o4755);
  assert.equal(execFileSync("getfattr", ["--absolute-names", "--only-values", "-n", "user.origin", join(mp, "sub/tool")]).toString(), "image");
  assert.equal(await readlink(join(mp, "sub/conf-link")), "../conf");
  assert.equal(await store.usage("appdata"), 10 + 4 + 7, "files and symlinks, the hard link once");

  // Not empty any more: a second populate (another image, another path) changes nothing.
  await writeFile(join(data, "later"), "x");
  await store.populate("appdata", rootfs, "/var/lib/app");
  assert.deepEqual((await readdir(mp)).sort(), ["conf", "conf.hard", "sub"]);

  // A mount path that is a symlink to a host directory resolves inside the rootfs, never on the host.
  const host = join(base, "host-secret");
  await mkdir(host);
  await writeFile(join(host, "secret"), "host data");
  await symlink(host, join(rootfs, "abs-escape"));
  await symlink("../../../../../../../../.." + host, join(rootfs, "rel-escape"));
  for (const p of ["/abs-escape", "/rel-escape", "/missing/path"]) {
    const empty = await store.create({ name: `empty-${p.slice(1).replace("/", "-")}` });
    await store.populate(empty.name, rootfs, p);
    assert.deepEqual(await readdir(empty.mountpoint), [], `${p}: nothing copied`);
  }

  // A copy-up cut short by a crash is redone.
  const crashed = await store.create({ name: "crashed" });
  await writeFile(join(crashed.mountpoint, "partial"), "half");
  await writeFile(join(crashed.mountpoint, "..", "populating"), "{}\n");
  await store.populate("crashed", rootfs, "/var/lib/app/sub");
  assert.deepEqual((await readdir(crashed.mountpoint)).sort(), ["conf-link", "tool"]);
  await assert.rejects(lstat(join(crashed.mountpoint, "..", "populating")));
});
