// Integration tests: real runc containers on an overlay snapshot of a busybox layer,
// with config.json from buildRuntimeSpec (root only). Each test's t.after, registered
// before any setup, force-deletes its containers, unmounts its rootfs, removes its
// cgroups and deletes its directory, also when the test fails.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { lstat, mkdir, mkdtemp, readFile, rm, rmdir, writeFile, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { test, type TestContext } from "node:test";
import { isEngineError } from "../errors.ts";
import type { ContainerConfig } from "../images/image-config.ts";
import { OverlayLayerStore } from "../layers/overlay-layer-store.ts";
import { mountAll, unmountAll } from "../snapshots/mount.ts";
import { OverlaySnapshotter } from "../snapshots/overlay.ts";
import { mkdirInRoot } from "./mkdir-in-root.ts";
import { Runc, RuncError, signalNumber } from "./runc.ts";
import { buildRuntimeSpec, type RunOptions, type SpecInput } from "./spec.ts";
import { readSpecHost } from "./spec-host.ts";
import { resolveUser } from "./user.ts";
import { busyboxLayerTar } from "../../../test/helpers/raw-images.ts";
import { until } from "../../../test/helpers/wait.ts";

const CGROUP_ROOT = "/sys/fs/cgroup";
const APPLETS = ["sh", "id", "echo", "cat", "pwd", "sleep", "ls", "true"];

interface Env {
  base: string;
  runc: Runc;
  /** A unique cgroup parent of this test, e.g. "/berth-test-ab12cd34". */
  cgroupParent: string;
  /** A fresh bundle with a mounted overlay rootfs; the container ID is registered for cleanup. */
  bundle: (name: string) => Promise<{ id: string; dir: string; rootfs: string; upper: string }>;
}

async function setup(t: TestContext): Promise<Env> {
  const ids: string[] = [];
  const mounted: string[] = [];
  const cgroupParent = `/berth-test-${randomBytes(4).toString("hex")}`;
  let base = "";
  let runc: Runc | undefined;
  t.after(async () => {
    for (const id of ids) await runc?.delete(id, { force: true }).catch(() => undefined);
    for (const m of mounted.reverse()) await unmountAll(m, { detach: true }).catch(() => undefined);
    await removeCgroups(cgroupParent, ids);
    if (base) await rm(base, { recursive: true, force: true });
  });
  base = await mkdtemp(join(tmpdir(), "berth-runc-"));
  runc = new Runc({ root: join(base, "runc-state") });
  const layers = new OverlayLayerStore(join(base, "layers"), { durable: false });
  const snaps = new OverlaySnapshotter(join(base, "snapshots"), layers);
  const layer = await layers.unpack({}, Readable.from([await busyboxLayerTar(APPLETS)]));
  const r = runc;
  return {
    base,
    runc: r,
    cgroupParent,
    bundle: async (name) => {
      const id = `berth-t-${name}-${randomBytes(3).toString("hex")}`;
      ids.push(id);
      const dir = join(base, "bundles", id);
      const rootfs = join(dir, "rootfs");
      await mkdir(rootfs, { recursive: true });
      const mounts = await snaps.prepare(id, layer.chainId);
      mounted.push(rootfs);
      await mountAll(mounts, rootfs);
      return { id, dir, rootfs, upper: await snaps.upperDir(id) };
    },
  };
}

/** rmdir (cgroup directories cannot be emptied with rm -r) of PARENT/<id> then PARENT in every hierarchy. */
async function removeCgroups(parent: string, ids: string[]): Promise<void> {
  for (const h of await readdir(CGROUP_ROOT).catch(() => [] as string[])) {
    for (const id of ids) await rmdir(join(CGROUP_ROOT, h, parent, id)).catch(() => undefined);
    await rmdir(join(CGROUP_ROOT, h, parent)).catch(() => undefined);
  }
}

/** Writes config.json for the bundle; returns the spec. */
async function writeSpec(
  env: Env,
  b: { id: string; dir: string; rootfs: string },
  image: ContainerConfig,
  run: Partial<RunOptions>,
  more?: Partial<SpecInput>,
) {
  const user = await resolveUser(b.rootfs, run.user ?? image.User ?? "");
  const spec = buildRuntimeSpec({
    image,
    run: { hostname: hostnameOf(b.id), ...run },
    rootfs: "rootfs",
    user,
    namespaces: { network: "new" },
    cgroupsPath: `${env.cgroupParent}/${b.id}`,
    host: await readSpecHost(),
    ...more,
  });
  // Docker creates a missing WORKDIR before the start; so does the caller of buildRuntimeSpec.
  await mkdirInRoot(b.rootfs, spec.process.cwd);
  await writeFile(join(b.dir, "config.json"), JSON.stringify(spec, null, 2));
  return spec;
}

/** Like Docker's short ID as hostname. */
const hostnameOf = (id: string) => `h${id.slice(-6)}`;

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

test("runc run: sh -c 'echo hi; id -u' as --user 1000, with /etc/hosts bound in and the exit code passed on", async (t) => {
  const env = await setup(t);
  const b = await env.bundle("run");
  const hosts = join(b.dir, "hosts");
  await writeFile(hosts, "127.0.0.1\tlocalhost\n10.0.0.2\tberth-test\n");
  await writeSpec(
    env,
    b,
    { Cmd: ["sh"] },
    { user: "1000", cmd: ["sh", "-c", "echo hi; id -u; id -G; cat /etc/hosts; echo $HOSTNAME; pwd; echo err >&2"] },
    { files: { hosts } },
  );
  const r = await env.runc.run(b.id, b.dir);
  assert.equal(r.stderr.toString(), "err\n");
  assert.equal(r.stdout.toString(), `hi\n1000\n1000 50\n127.0.0.1\tlocalhost\n10.0.0.2\tberth-test\n${hostnameOf(b.id)}\n/\n`);
  assert.equal(r.exitCode, 0);
  await assert.rejects(env.runc.state(b.id), (e) => isEngineError(e, "NotFound"), "run deletes the container");

  await writeSpec(env, b, { Cmd: ["sh", "-c", "exit 3"] }, {});
  assert.equal((await env.runc.run(b.id, b.dir)).exitCode, 3);
  await writeSpec(env, b, { Cmd: ["cat"] }, {});
  assert.equal((await env.runc.run(b.id, b.dir, { stdin: "from stdin\n" })).stdout.toString(), "from stdin\n");

  await writeSpec(env, b, { Cmd: ["/no/such/binary"] }, {});
  await assert.rejects(
    env.runc.run(b.id, b.dir),
    (e) => e instanceof RuncError && e.kind === "Internal" && /no\/such\/binary/.test(e.message) && e.stderr.length > 0,
  );
});

test("runc create/start with limits: memory, pids and CPU quota land in the container's cgroup; ps, exec, pause, resume, kill, delete", async (t) => {
  const env = await setup(t);
  const b = await env.bundle("life");
  const spec = await writeSpec(env, b, { Cmd: ["sleep", "30"] }, { memory: 64 << 20, pidsLimit: 50, cpus: 0.5, cpuShares: 512 });
  const cg = (ctrl: string, file: string) => readFile(join(CGROUP_ROOT, ctrl, env.cgroupParent, b.id, file), "utf8").then((s) => s.trim());

  assert.equal(await env.runc.hasState(b.id), false);
  await env.runc.create(b.id, b.dir);
  assert.equal(await env.runc.hasState(b.id), true);
  await assert.rejects(env.runc.create(b.id, b.dir), (e) => isEngineError(e, "AlreadyExists"));
  const created = await env.runc.state(b.id);
  assert.equal(created.status, "created");
  assert.equal(created.id, b.id);
  assert.ok(created.pid > 0);
  assert.equal(await cg("memory", "memory.limit_in_bytes"), String(64 << 20));
  assert.equal(await cg("pids", "pids.max"), "50");
  assert.equal(await cg("cpu", "cpu.cfs_quota_us"), "50000");
  assert.equal(await cg("cpu", "cpu.cfs_period_us"), "100000");
  assert.equal(await cg("cpu", "cpu.shares"), "512");

  await env.runc.start(b.id);
  assert.equal((await env.runc.state(b.id)).status, "running");
  assert.ok((await env.runc.list()).some((s) => s.id === b.id && s.status === "running"));
  const pids = await env.runc.ps(b.id);
  assert.deepEqual(pids, [created.pid]);

  const ex = await env.runc.exec(b.id, { ...spec.process, args: ["sh", "-c", "echo in-exec; id -u; exit 5"], user: { uid: 1000, gid: 1000 } });
  assert.equal(ex.stdout.toString(), "in-exec\n1000\n");
  assert.equal(ex.exitCode, 5);

  await env.runc.pause(b.id);
  assert.equal((await env.runc.state(b.id)).status, "paused");
  assert.equal(await cg("freezer", "freezer.state"), "FROZEN");
  await assert.rejects(env.runc.pause(b.id), (e) => isEngineError(e, "Conflict"));
  await env.runc.resume(b.id);
  assert.equal((await env.runc.state(b.id)).status, "running");
  await assert.rejects(env.runc.resume(b.id), (e) => isEngineError(e, "Conflict"));

  await assert.rejects(env.runc.delete(b.id), (e) => isEngineError(e, "Conflict") && /not stopped/.test(e.message));
  await assert.rejects(env.runc.kill(b.id, "SIGNOPE"), (e) => isEngineError(e, "InvalidArgument") && e.message === "Invalid signal: SIGNOPE");
  await env.runc.kill(b.id, "KILL");
  await until("stopped", async () => ((await env.runc.state(b.id)).status === "stopped" ? true : undefined));
  await assert.rejects(env.runc.kill(b.id, "TERM"), (e) => isEngineError(e, "Conflict"));
  await env.runc.delete(b.id);
  await assert.rejects(env.runc.state(b.id), (e) => isEngineError(e, "NotFound") && /does not exist/.test(e.message));
  await assert.rejects(env.runc.delete(b.id), (e) => isEngineError(e, "NotFound"));
  assert.equal(await env.runc.hasState(b.id), false, "no state left, so no delete is needed");
  assert.equal(await exists(join(CGROUP_ROOT, "memory", env.cgroupParent, b.id)), false, "runc delete removed the cgroup");
});

test("a WORKDIR that does not exist is created inside the rootfs before the start", async (t) => {
  const env = await setup(t);
  const b = await env.bundle("wd");
  const spec = await writeSpec(env, b, { Cmd: ["pwd"], WorkingDir: "/srv/app/data" }, {});
  assert.equal(spec.process.cwd, "/srv/app/data");
  const r = await env.runc.run(b.id, b.dir);
  assert.equal(r.stdout.toString(), "/srv/app/data\n");
  assert.ok(await exists(join(b.upper, "srv/app/data")), "created in the container's own layer");
});

test("signalNumber: names, numbers and refusals", () => {
  assert.equal(signalNumber("TERM"), 15);
  assert.equal(signalNumber("sigkill"), 9);
  assert.equal(signalNumber("SIGUSR1"), 10);
  assert.equal(signalNumber(2), 2);
  assert.equal(signalNumber("15"), 15);
  assert.equal(signalNumber("SIGRTMIN+2"), 36);
  for (const bad of ["NOPE", "0", "65", "", "SIG"])
    assert.throws(
      () => signalNumber(bad),
      (e) => isEngineError(e, "InvalidArgument") && e.message === `Invalid signal: ${bad}`,
    );
});

test("WORKDIR /proc/self/fd/N (the runc CVE-2024-21626 class) is refused, not reached", async (t) => {
  const env = await setup(t);
  for (const fd of [3, 4, 5, 7, 8]) {
    const b = await env.bundle(`cve${fd}`);
    await writeSpec(env, b, { Cmd: ["sh", "-c", "ls ../../../../../etc; echo escaped"], WorkingDir: `/proc/self/fd/${fd}` }, {});
    await assert.rejects(
      env.runc.run(b.id, b.dir),
      (e) => e instanceof RuncError && e.kind === "Internal" && e.message.includes(`/proc/self/fd/${fd}`),
      `fd ${fd}`,
    );
  }
});
