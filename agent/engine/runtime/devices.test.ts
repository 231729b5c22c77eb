import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { isEngineError } from "../errors.ts";
import { deviceNodes, hostDevices } from "./devices.ts";

// Real device nodes (made with mknod as root) in a scratch directory: /dev/null's 1:3 and /dev/zero's 1:5.
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "berth-devices-"));
  await mkdir(join(dir, "snd", "sub"), { recursive: true });
  await mkdir(join(dir, "pts"));
  execFileSync("mknod", ["-m", "0640", join(dir, "snd", "a"), "c", "1", "3"]);
  execFileSync("mknod", [join(dir, "snd", "sub", "b"), "c", "1", "5"]);
  execFileSync("mknod", [join(dir, "pts", "0"), "c", "136", "0"]);
  execFileSync("mknod", [join(dir, "console"), "c", "5", "1"]);
  await writeFile(join(dir, "snd", "not-a-device"), "x");
  await symlink(join(dir, "snd", "a"), join(dir, "link"));
});
after(() => rm(dir, { recursive: true, force: true }));

test("a device node, through a symlink, at the path asked for", async () => {
  assert.deepEqual(await deviceNodes({ pathOnHost: "/dev/null", pathInContainer: "/dev/mynull", cgroupPermissions: "rw" }), [
    { path: "/dev/mynull", type: "c", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0, access: "rw" },
  ]);
  const [n] = await deviceNodes({ pathOnHost: join(dir, "link"), pathInContainer: "/dev/a", cgroupPermissions: "r" });
  assert.deepEqual([n!.major, n!.minor, n!.fileMode, n!.path], [1, 3, 0o640, "/dev/a"]);
});

test("a directory gives every node below it, at the same place under the container path", async () => {
  const nodes = await deviceNodes({ pathOnHost: join(dir, "snd"), pathInContainer: "/dev/snd", cgroupPermissions: "rwm" });
  assert.deepEqual(nodes.map((n) => [n.path, n.major, n.minor]).sort(), [
    ["/dev/snd/a", 1, 3],
    ["/dev/snd/sub/b", 1, 5],
  ]);
});

test("what is no device, or missing, or badly written, is refused with Docker's message", async () => {
  const refused = (d: { pathOnHost: string; pathInContainer: string; cgroupPermissions: string }, message: string | RegExp) =>
    assert.rejects(
      deviceNodes(d),
      (e) => isEngineError(e, "InvalidArgument") && (typeof message === "string" ? e.message === message : message.test(e.message)),
    );
  const file = join(dir, "snd", "not-a-device");
  await refused(
    { pathOnHost: file, pathInContainer: "/dev/x", cgroupPermissions: "rwm" },
    `error gathering device information while adding custom device ${JSON.stringify(file)}: not a device node`,
  );
  await refused(
    { pathOnHost: "/dev/no-such", pathInContainer: "/dev/x", cgroupPermissions: "rwm" },
    'error gathering device information while adding custom device "/dev/no-such": no such file or directory',
  );
  await refused({ pathOnHost: join(dir, "pts-less"), pathInContainer: "/dev/x", cgroupPermissions: "rwm" }, /no such file or directory/);
  await refused({ pathOnHost: "/dev/null", pathInContainer: "/dev/x", cgroupPermissions: "rwx" }, "invalid device mode: rwx");
  await refused({ pathOnHost: "/dev/null", pathInContainer: "/dev/x", cgroupPermissions: "rr" }, "invalid device mode: rr");
  await refused({ pathOnHost: "/dev/null", pathInContainer: "dev/x", cgroupPermissions: "r" }, /must be absolute/);
});

test("the host's devices for --privileged skip pts, shm… and the console", async () => {
  const nodes = await hostDevices(dir);
  assert.deepEqual(nodes.map((n) => n.path).sort(), [join(dir, "snd", "a"), join(dir, "snd", "sub", "b")]);
  assert.ok(
    (await hostDevices()).some((n) => n.path === "/dev/null" && n.major === 1 && n.minor === 3),
    "the real /dev",
  );
});
