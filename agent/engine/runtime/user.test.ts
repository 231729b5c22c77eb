import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { isEngineError } from "../errors.ts";
import { mkdirInRoot } from "./mkdir-in-root.ts";
import { secureJoin } from "./secure-join.ts";
import { resolveUser } from "./user.ts";

const PASSWD = `root:x:0:0:root:/root:/bin/sh
# a comment

daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
web:x:33:33::/var/www:/bin/false
broken:x:notanumber:1::/:/bin/sh
`;
const GROUP = `root:x:0:
wheel:x:10:root,app
app:x:1000:
staff:x:50:app,web
audio:x:29:web
`;

/** A temporary directory (deleted after the test) with a rootfs inside and room for "host" files beside it. */
async function tempDir(t: TestContext): Promise<string> {
  let dir = "";
  t.after(() => (dir ? rm(dir, { recursive: true, force: true }) : undefined));
  dir = await mkdtemp(join(tmpdir(), "berth-user-"));
  return dir;
}

async function rootfsWith(dir: string, files: Record<string, string>): Promise<string> {
  const rootfs = join(dir, "rootfs");
  await mkdir(join(rootfs, "etc"), { recursive: true });
  for (const [name, text] of Object.entries(files)) await writeFile(join(rootfs, name), text);
  return rootfs;
}

test("resolveUser: name, uid, uid:gid, name:group and Docker's errors", async (t) => {
  const rootfs = await rootfsWith(await tempDir(t), { "etc/passwd": PASSWD, "etc/group": GROUP });
  const cases: [string, { uid: number; gid: number; additionalGids: number[] }][] = [
    ["", { uid: 0, gid: 0, additionalGids: [10] }],
    ["root", { uid: 0, gid: 0, additionalGids: [10] }],
    ["app", { uid: 1000, gid: 1000, additionalGids: [10, 50] }],
    ["1000", { uid: 1000, gid: 1000, additionalGids: [10, 50] }],
    ["web", { uid: 33, gid: 33, additionalGids: [50, 29] }],
    ["4242", { uid: 4242, gid: 0, additionalGids: [] }],
    ["app:staff", { uid: 1000, gid: 50, additionalGids: [] }],
    ["app:50", { uid: 1000, gid: 50, additionalGids: [] }],
    ["1000:777", { uid: 1000, gid: 777, additionalGids: [] }],
    ["4242:4343", { uid: 4242, gid: 4343, additionalGids: [] }],
    ["daemon:wheel", { uid: 1, gid: 10, additionalGids: [] }],
  ];
  for (const [user, want] of cases) assert.deepEqual(await resolveUser(rootfs, user), want, JSON.stringify(user));

  const rejects = (user: string, message: string) =>
    assert.rejects(resolveUser(rootfs, user), (e) => isEngineError(e, "InvalidArgument") && e.message === message, user);
  await rejects("nobody", "unable to find user nobody: no matching entries in passwd file");
  await rejects("broken", "unable to find user broken: no matching entries in passwd file");
  await rejects("app:nogroup", "unable to find group nogroup: no matching entries in group file");
  await rejects("99999999999", "uids and gids must be in range 0-2147483647");
});

test("resolveUser without /etc/passwd or /etc/group: numeric IDs only", async (t) => {
  const rootfs = await rootfsWith(await tempDir(t), {});
  assert.deepEqual(await resolveUser(rootfs, ""), { uid: 0, gid: 0, additionalGids: [] });
  assert.deepEqual(await resolveUser(rootfs, "1000"), { uid: 1000, gid: 0, additionalGids: [] });
  assert.deepEqual(await resolveUser(rootfs, "1000:1000"), { uid: 1000, gid: 1000, additionalGids: [] });
  await assert.rejects(resolveUser(rootfs, "app"), /unable to find user app: no matching entries in passwd file/);
});

test("resolveUser never reads the host's files through a symlink", async (t) => {
  const dir = await tempDir(t);
  // Stand-ins for the host's files, outside the rootfs, with a user only the host has.
  const hostEtc = join(dir, "host-etc");
  await mkdir(hostEtc);
  await writeFile(join(hostEtc, "passwd"), "hostonly:x:4000:4000::/:/bin/sh\n");
  await writeFile(join(hostEtc, "group"), "hostgroup:x:4001:hostonly\n");

  // 1. /etc/passwd → absolute host path: resolved inside the rootfs, where it does not exist.
  const r1 = join(dir, "r1");
  await mkdir(join(r1, "etc"), { recursive: true });
  await symlink(join(hostEtc, "passwd"), join(r1, "etc/passwd"));
  await symlink(join(hostEtc, "group"), join(r1, "etc/group"));
  await assert.rejects(resolveUser(r1, "hostonly"), /unable to find user hostonly: no matching entries in passwd file/);
  await assert.rejects(resolveUser(r1, "0:hostgroup"), /unable to find group hostgroup/);
  // …and if the rootfs has a file at that path, that one is read.
  await mkdir(join(r1, hostEtc), { recursive: true });
  await writeFile(join(r1, hostEtc, "passwd"), "inside:x:5000:5000::/:/bin/sh\n");
  assert.deepEqual(await resolveUser(r1, "inside"), { uid: 5000, gid: 5000, additionalGids: [] });

  // 2. /etc/passwd → ../../../../… relative escape: clamped at the rootfs.
  const r2 = join(dir, "r2");
  await mkdir(join(r2, "etc"), { recursive: true });
  await symlink("../".repeat(30) + hostEtc.slice(1) + "/passwd", join(r2, "etc/passwd"));
  await assert.rejects(resolveUser(r2, "hostonly"), /unable to find user hostonly/);

  // 3. /etc itself → the host's directory.
  const r3 = join(dir, "r3");
  await mkdir(r3);
  await symlink(hostEtc, join(r3, "etc"));
  await assert.rejects(resolveUser(r3, "hostonly"), /unable to find user hostonly/);

  // 4. The real host /etc/passwd has root; a rootfs linking to it must not see it.
  //    Inside the root, /etc/passwd → /etc/passwd is a loop, as it would be in a chroot.
  const r4 = join(dir, "r4");
  await mkdir(join(r4, "etc"), { recursive: true });
  await symlink("/etc/passwd", join(r4, "etc/passwd"));
  await assert.rejects(resolveUser(r4, "root"), (e) => isEngineError(e, "InvalidArgument") && /too many levels of symbolic links/.test(e.message));
  await rm(join(r4, "etc/passwd"));
  await symlink("/etc/../etc/./passwd", join(r4, "etc/passwd"));
  await assert.rejects(resolveUser(r4, "root"), /too many levels/);

  // 5. A FIFO as /etc/group is refused without blocking.
  const r5 = await rootfsWith(join(dir, "r5-parent"), { "etc/passwd": PASSWD });
  execFileSync("mkfifo", [join(r5, "etc/group")]);
  await assert.rejects(
    resolveUser(r5, "app"),
    (e) => isEngineError(e, "InvalidArgument") && /\/etc\/group in the container is not a regular file/.test(e.message),
  );
});

test("secureJoin: symlinks resolved inside the root, .. clamped, missing parts kept, loops refused", async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, "root");
  await mkdir(join(root, "a/b"), { recursive: true });
  await symlink("/a", join(root, "abs"));
  await symlink("../../../../..", join(root, "a/up"));
  await symlink("b", join(root, "a/rel"));
  await symlink("/etc", join(root, "hostetc"));
  await symlink("loop2", join(root, "loop1"));
  await symlink("loop1", join(root, "loop2"));
  const j = (p: string) => secureJoin(root, p);
  assert.equal(await j("/"), root);
  assert.equal(await j(""), root);
  assert.equal(await j("/a/b"), join(root, "a/b"));
  assert.equal(await j("a/./b/"), join(root, "a/b"));
  assert.equal(await j("/../../.."), root);
  assert.equal(await j("/abs/b"), join(root, "a/b"));
  assert.equal(await j("/a/up/x"), join(root, "x"));
  assert.equal(await j("/a/rel/c/d"), join(root, "a/b/c/d"));
  assert.equal(await j("/hostetc/passwd"), join(root, "etc/passwd"));
  assert.equal(await j("/missing/../a"), join(root, "a"));
  assert.equal(await j(join(dir, "x")), join(root, dir, "x"), "an absolute host path is taken inside the root");
  await assert.rejects(j("/loop1"), (e) => isEngineError(e, "InvalidArgument") && /too many levels of symbolic links/.test(e.message));
  await assert.rejects(j("/a\0b"), (e) => isEngineError(e, "InvalidArgument"));
});

test("mkdirInRoot creates WORKDIR inside the root even through symlinks to host paths", async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, "root");
  const host = join(dir, "host");
  await mkdir(root);
  await mkdir(host);
  await symlink(host, join(root, "srv")); // the image's /srv → a host directory
  await writeFile(join(root, "file"), "x");

  const made = await mkdirInRoot(root, "/srv/app/data");
  assert.equal(made, join(root, host, "app/data"));
  assert.deepEqual(await readdir(host), [], "nothing created on the host side");
  assert.deepEqual(await readdir(join(root, host, "app")), ["data"]);
  assert.equal(await mkdirInRoot(root, "/srv/app/data"), made, "idempotent");
  assert.equal(await mkdirInRoot(root, "/"), root);
  await assert.rejects(mkdirInRoot(root, "/file/sub"), (e) => isEngineError(e, "InvalidArgument") && e.message === "Cannot mkdir: /file is not a directory");
});

test("resolveUser with --group-add: names from the container's /etc/group, numbers as given, appended once; an unknown name is Docker's error", async (t) => {
  const rootfs = await rootfsWith(await tempDir(t), { "etc/passwd": PASSWD, "etc/group": GROUP });
  assert.deepEqual(await resolveUser(rootfs, "", ["audio", "4242", "wheel"]), { uid: 0, gid: 0, additionalGids: [10, 29, 4242] });
  assert.deepEqual(await resolveUser(rootfs, "app:staff", ["29"]), { uid: 1000, gid: 50, additionalGids: [29] });
  await assert.rejects(
    resolveUser(rootfs, "", ["nosuch"]),
    (e: unknown) => isEngineError(e, "InvalidArgument") && e.message === "Unable to find group nosuch: no matching entries in group file",
  );
  // Without /etc/group only numbers resolve.
  const bare = await rootfsWith(await tempDir(t), {});
  assert.deepEqual(await resolveUser(bare, "", ["7"]), { uid: 0, gid: 0, additionalGids: [7] });
  await assert.rejects(resolveUser(bare, "", ["audio"]), /Unable to find group audio/);
});
