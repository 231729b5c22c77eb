import { test } from "node:test";
import assert from "node:assert/strict";
import { lstat, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { guardRuntimeDirs } from "./rootfs-guard.ts";

test("guardRuntimeDirs replaces a /dev symlink and a /proc file with directories, creates a missing /sys, leaves the link target alone", async (t) => {
  const base = await mkdtemp(join(tmpdir(), "rootfs-guard-"));
  t.after(() => rm(base, { recursive: true, force: true }));
  const rootfs = join(base, "rootfs");
  const outside = join(base, "outside");
  await mkdir(rootfs);
  await mkdir(outside);
  await writeFile(join(outside, "keep"), "x");
  await symlink(outside, join(rootfs, "dev"));
  await writeFile(join(rootfs, "proc"), "not a directory");
  assert.deepEqual(await guardRuntimeDirs(rootfs), ["dev", "proc"]);
  for (const name of ["dev", "proc", "sys"]) {
    const st = await lstat(join(rootfs, name));
    assert.ok(st.isDirectory() && !st.isSymbolicLink(), name);
    assert.deepEqual(await readdir(join(rootfs, name)), [], name);
  }
  assert.deepEqual(await readdir(outside), ["keep"]);
  // Idempotent: real directories are kept as they are.
  await writeFile(join(rootfs, "dev", "null-placeholder"), "");
  assert.deepEqual(await guardRuntimeDirs(rootfs), []);
  assert.deepEqual(await readdir(join(rootfs, "dev")), ["null-placeholder"]);
});
