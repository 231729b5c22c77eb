// Resolving container paths from the host (docker cp): symlinks stay inside the container's
// root, mounts are taken into account; on a tree the test builds.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { goFileMode, resolveComponents, type FsView } from "./filesystem.ts";
import { lstatSync } from "node:fs";

test("resolveComponents: absolute and relative links stay in the root, .. stops at /, mounts switch trees", async (t) => {
  const base = await mkdtemp(join(tmpdir(), "berth-fs-"));
  t.after(() => rm(base, { recursive: true, force: true }));
  const root = join(base, "root");
  const vol = join(base, "vol");
  await mkdir(join(root, "etc"), { recursive: true });
  await mkdir(join(root, "data"), { recursive: true });
  await mkdir(join(vol, "sub"), { recursive: true });
  await writeFile(join(root, "etc/passwd"), "container\n");
  await symlink("/", join(root, "escape"));
  await symlink("../../../../..", join(root, "up"));
  await symlink("/etc/shadow", join(root, "x"));
  await symlink("/", join(vol, "back")); // inside a volume, still the container's /
  const view: FsView = { rootfs: root, mounts: [{ destination: "/data", source: vol, readonly: false }], readonlyRootfs: false };
  assert.deepEqual(await resolveComponents(view, "/escape/etc/passwd", true), ["etc", "passwd"]);
  assert.deepEqual(await resolveComponents(view, "/up/etc/passwd", true), ["etc", "passwd"]);
  assert.deepEqual(await resolveComponents(view, "/../../etc", true), ["etc"]);
  assert.deepEqual(await resolveComponents(view, "/x", false), ["x"], "a final link is kept when not followed");
  assert.deepEqual(await resolveComponents(view, "/x", true), ["etc", "shadow"]);
  assert.deepEqual(await resolveComponents(view, "/data/sub", true), ["data", "sub"]);
  assert.deepEqual(await resolveComponents(view, "/data/back/etc", true), ["etc"]);
  assert.deepEqual(await resolveComponents(view, "/missing/../etc", true), ["etc"]);
  await symlink("loop2", join(root, "loop1"));
  await symlink("loop1", join(root, "loop2"));
  await assert.rejects(resolveComponents(view, "/loop1/x", true), /too many levels of symbolic links/);
});

test("goFileMode: Go's os.FileMode bits the docker CLI reads", () => {
  assert.equal(goFileMode(lstatSync("/", { bigint: true })) >>> 31, 1, "a directory has ModeDir (1<<31)");
  assert.equal(goFileMode(lstatSync("/proc/self", { bigint: true })) & (1 << 27), 1 << 27, "a symlink has ModeSymlink");
  assert.equal(
    goFileMode(lstatSync("/dev/null", { bigint: true })) & ((1 << 26) | (1 << 21)),
    (1 << 26) | (1 << 21),
    "a char device has ModeDevice|ModeCharDevice",
  );
});
