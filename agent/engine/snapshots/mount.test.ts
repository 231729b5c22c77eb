// mount.ts against the real mount(8) (root only). Cleanup registered before setup.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { isMounted, mountAll, mountInfo, unmountAll } from "./mount.ts";

test("bind mounts, read-only, stacked mounts and a mount point with spaces", async (t) => {
  let base = "";
  const targets: string[] = [];
  t.after(async () => {
    for (const m of targets) await unmountAll(m, { detach: true }).catch(() => undefined);
    if (base) await rm(base, { recursive: true, force: true });
  });
  base = await mkdtemp(join(tmpdir(), "berth-mount-"));
  const src = join(base, "src");
  const target = join(base, "a dir\twith spaces");
  targets.push(target);
  await mkdir(src);
  await mkdir(target);
  await writeFile(join(src, "f"), "from src");

  await mountAll([{ type: "bind", source: src, options: ["ro"] }], target);
  assert.equal(await isMounted(target), true);
  const entry = (await mountInfo()).find((m) => m.mountPoint === target);
  assert.ok(entry, "mountinfo's octal escapes are decoded");
  assert.ok(entry.mountOptions.includes("ro"));
  assert.equal(await readFile(join(target, "f"), "utf8"), "from src");
  await assert.rejects(writeFile(join(target, "g"), "x"), (e) => (e as NodeJS.ErrnoException).code === "EROFS");

  // A second mount stacked on the same target: unmountAll takes both off.
  await mountAll([{ type: "tmpfs", source: "tmpfs", options: ["size=1m"] }], target);
  await writeFile(join(target, "on-tmpfs"), "x");
  await unmountAll(target);
  assert.equal(await isMounted(target), false);
  assert.equal(await isMounted(join(base, "missing")), false);
});
