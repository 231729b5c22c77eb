// Integration tests of ConmonMonitor (root only): real conmon and runc, busybox on an
// overlay snapshot, config.json from buildRuntimeSpec, a cgroup parent per test. Each
// test's t.after, registered before any setup, force-deletes its containers, stops
// leftover monitors, unmounts, removes its cgroups and deletes its directory, also when
// the test fails.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { test, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { isEngineError } from "../errors.ts";
import { OverlayLayerStore } from "../layers/overlay-layer-store.ts";
import { Runc } from "../runtime/runc.ts";
import { buildRuntimeSpec, type RunOptions, type SpecProcess } from "../runtime/spec.ts";
import { readSpecHost } from "../runtime/spec-host.ts";
import { resolveUser } from "../runtime/user.ts";
import { mountAll, unmountAll } from "../snapshots/mount.ts";
import { OverlaySnapshotter } from "../snapshots/overlay.ts";
import { ConmonMonitor } from "./conmon.ts";
import { readLogs, type CreateOptions, type MonitorPaths, type OutputChunk } from "./monitor.ts";
import type { ChildInput } from "./testing-child.ts";
import { busyboxLayerTar } from "../../../test/helpers/raw-images.ts";
import { until } from "../../../test/helpers/wait.ts";

const CGROUP_ROOT = "/sys/fs/cgroup";
const APPLETS = ["sh", "echo", "cat", "sleep", "yes", "head", "stty", "printf", "true"];

interface Ctr {
  id: string;
  paths: MonitorPaths;
  /** The container's process (from config.json), a base for exec processes. */
  process: SpecProcess;
  createOptions: (o?: Partial<CreateOptions>) => CreateOptions;
}

interface Env {
  base: string;
  runcRoot: string;
  runc: Runc;
  monitor: ConmonMonitor;
  cgroupParent: string;
  /** A bundle with a mounted rootfs and config.json for `args`; registered for cleanup. */
  container: (args: string[], run?: Partial<RunOptions>) => Promise<Ctr>;
}

async function setup(t: TestContext): Promise<Env> {
  const ctrs: Ctr[] = [];
  const mounted: string[] = [];
  const cgroupParent = `/berth-test-${randomBytes(4).toString("hex")}`;
  let base = "";
  let runc: Runc | undefined;
  let monitor: ConmonMonitor | undefined;
  t.after(async () => {
    for (const c of ctrs) await runc?.delete(c.id, { force: true }).catch(() => undefined);
    for (const c of ctrs) await monitor?.cleanup(c.paths).catch(() => undefined);
    for (const m of mounted.reverse()) await unmountAll(m, { detach: true }).catch(() => undefined);
    await removeCgroups(cgroupParent, [...ctrs.map((c) => c.id), "conmon"]);
    if (base) await rm(base, { recursive: true, force: true });
  });
  base = await mkdtemp(join(tmpdir(), "berth-monitor-"));
  const runcRoot = join(base, "runc");
  runc = new Runc({ root: runcRoot });
  monitor = new ConmonMonitor({ runcRoot });
  const layers = new OverlayLayerStore(join(base, "layers"), { durable: false });
  const snaps = new OverlaySnapshotter(join(base, "snapshots"), layers);
  const layer = await layers.unpack({}, Readable.from([await busyboxLayerTar(APPLETS)]));
  const host = await readSpecHost();
  return {
    base,
    runcRoot,
    runc,
    monitor,
    cgroupParent,
    container: async (args, run) => {
      const id = randomBytes(32).toString("hex");
      // Long paths on purpose: the attach socket's path exceeds sun_path (108 bytes).
      const dir = join(base, "containers", id);
      const paths: MonitorPaths = { stateDir: join(dir, "monitor"), bundle: join(dir, "bundle"), logPath: join(dir, "ctr.log") };
      const rootfs = join(paths.bundle, "rootfs");
      const spec = buildRuntimeSpec({
        image: { Cmd: args },
        run: { hostname: id.slice(0, 12), ...run },
        rootfs: "rootfs",
        user: await resolveUser("/nonexistent", ""),
        namespaces: { network: "none" },
        cgroupsPath: `${cgroupParent}/${id}`,
        host,
      });
      const c: Ctr = {
        id,
        paths,
        process: spec.process,
        createOptions: (o) => ({ ...paths, id, name: `test-${id.slice(0, 6)}`, tty: !!run?.tty, stdin: false, ...o }),
      };
      ctrs.push(c);
      await mkdir(rootfs, { recursive: true });
      const mounts = await snaps.prepare(id, layer.chainId);
      mounted.push(rootfs);
      await mountAll(mounts, rootfs);
      await writeFile(join(paths.bundle, "config.json"), JSON.stringify(spec));
      return c;
    },
  };
}

/** rmdir PARENT/<child> then PARENT in every hierarchy (also the nested unified one). */
async function removeCgroups(parent: string, children: string[]): Promise<void> {
  const hierarchies = (await readdir(CGROUP_ROOT).catch(() => [] as string[])).map((h) => join(CGROUP_ROOT, h));
  for (const h of [...hierarchies, CGROUP_ROOT]) {
    for (const c of children) await rmdir(join(h, parent, c)).catch(() => undefined);
    await rmdir(join(h, parent)).catch(() => undefined);
  }
}

/** Reads `output` until `done(text per stream)` holds or it ends; fails after `ms`. */
async function readUntil(
  output: Readable,
  done: (o: { stdout: string; stderr: string }) => boolean,
  ms = 10_000,
): Promise<{ stdout: string; stderr: string; ended: boolean }> {
  const got = { stdout: "", stderr: "" };
  if (done(got)) return { ...got, ended: false };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`timed out; got ${JSON.stringify(got)}`)), ms);
    const onData = (c: OutputChunk) => {
      got[c.stream] += c.data.toString("utf8");
      if (done(got)) finish();
    };
    const onEnd = () => finish(undefined, true);
    const finish = (err?: Error, ended = false) => {
      clearTimeout(timer);
      output.off("data", onData);
      output.off("end", onEnd);
      output.pause();
      if (err) reject(err);
      else resolve({ ...got, ended });
    };
    output.on("data", onData);
    output.once("end", onEnd);
    output.resume();
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test("create + start: both streams logged in order with timestamps, exit code 3; a missing executable fails at create with runc's message", async (t) => {
  const env = await setup(t);
  const c = await env.container(["sh", "-c", "echo out; sleep 0.1; echo err >&2; sleep 0.1; printf 'no newline'; exit 3"]);
  const before = Date.now();
  const { pid, monitorPid } = await env.monitor.create(c.createOptions());
  const created = Date.now();
  assert.ok(pid > 0 && monitorPid > 0 && pid !== monitorPid);
  assert.equal((await env.runc.state(c.id)).status, "created");
  assert.equal(await env.monitor.monitorAlive(c.paths), true);
  assert.equal(await env.monitor.exitStatus(c.paths), undefined);
  const starting = Date.now();
  await env.monitor.start(c.id, c.paths);
  t.diagnostic(`create ${created - before} ms, start ${Date.now() - starting} ms`);
  const status = await env.monitor.waitExit(c.paths, AbortSignal.timeout(10_000));
  assert.equal(status.exitCode, 3);
  assert.equal(status.oomKilled, false);
  assert.ok(Date.parse(status.finishedAt) >= before - 1000 && Date.parse(status.finishedAt) <= Date.now() + 1000, status.finishedAt);
  assert.deepEqual(await env.monitor.exitStatus(c.paths), status);

  const entries = [];
  for await (const e of readLogs(c.paths.logPath)) entries.push(e);
  assert.deepEqual(
    entries.map((e) => [e.stream, e.data.toString()]),
    [
      ["stdout", "out\n"],
      ["stderr", "err\n"],
      ["stdout", "no newline"],
    ],
  );
  const times = entries.map((e) => e.time);
  for (const time of times) assert.match(time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  assert.deepEqual([...times].sort(), times, "timestamps in order");
  assert.ok(Date.parse(times[0]!) >= before - 1000);

  await until("the monitor to end", async () => ((await env.monitor.monitorAlive(c.paths)) ? undefined : true));
  await assert.rejects(
    env.monitor.attach(c.paths, { stdin: false, stdout: true, stderr: true }),
    (e) => isEngineError(e, "Conflict") && /not running/.test(e.message),
  );

  // A new run on the same paths replaces the old exit record.
  await env.runc.delete(c.id);
  await env.monitor.create(c.createOptions());
  assert.equal(await env.monitor.exitStatus(c.paths), undefined);
  await env.runc.delete(c.id, { force: true });

  const bad = await env.container(["nosuchcmd"]);
  await assert.rejects(
    env.monitor.create(bad.createOptions()),
    (e) => isEngineError(e, "InvalidArgument") && e.message.includes('exec: "nosuchcmd": executable file not found in $PATH'),
  );
  await assert.rejects(env.runc.state(bad.id), (e) => isEngineError(e, "NotFound"), "nothing left in runc");

  // A script whose interpreter is missing: runc 1.1 creates it and fails only at execve, after start.
  const script = await env.container(["/bin/script"]);
  await writeFile(join(script.paths.bundle, "rootfs/bin/script"), "#!/nonexistent\necho hi\n", { mode: 0o755 });
  await env.monitor.create(script.createOptions());
  await assert.rejects(
    env.monitor.start(script.id, script.paths),
    (e) => isEngineError(e, "InvalidArgument") && e.message.endsWith("exec /bin/script: no such file or directory"),
  );
});

test("a container outlives the SIGKILLed process that started it; a new monitor follows its logs, attaches and sees its exit", async (t) => {
  const env = await setup(t);
  const c = await env.container(["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"]);
  const input: ChildInput = { runcRoot: env.runcRoot, monitorCgroup: `${env.cgroupParent}/conmon`, create: c.createOptions() };
  const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("./testing-child.ts", import.meta.url)), JSON.stringify(input)], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  t.after(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
      if (out.includes("\n")) resolve(out);
    });
    child.once("exit", (code) => reject(new Error(`child exited with ${code}: ${out}`)));
  });
  const { pid, monitorPid } = JSON.parse(line) as { pid: number; monitorPid: number };
  child.kill("SIGKILL");
  await new Promise((r) => child.once("exit", r));
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(alive(pid), "the container runs on");
  assert.ok(alive(monitorPid), "its monitor runs on");
  assert.match(await readFile(`/proc/${monitorPid}/cgroup`, "utf8"), new RegExp(`${env.cgroupParent}/conmon`), "the monitor left the agent's cgroup");

  // Idle monitor memory, for the record.
  const status = await readFile(`/proc/${monitorPid}/status`, "utf8");
  const rollup = await readFile(`/proc/${monitorPid}/smaps_rollup`, "utf8").catch(() => "");
  const kb = (re: RegExp) => Number(re.exec(rollup)?.[1] ?? 0);
  const uss = kb(/^Private_Clean:\s+(\d+)/m) + kb(/^Private_Dirty:\s+(\d+)/m);
  t.diagnostic(`conmon idle: ${/^VmRSS:.*$/m.exec(status)?.[0]} ${/^Pss:.*$/m.exec(rollup)?.[0] ?? ""} USS: ${uss} kB`.replace(/\s+/g, " "));

  const fresh = new ConmonMonitor({ runcRoot: env.runcRoot });
  assert.equal(await fresh.monitorAlive(c.paths), true);
  assert.equal(await fresh.exitStatus(c.paths), undefined);

  const session = await fresh.attach(c.paths, { stdin: false, stdout: true, stderr: true });
  const attached = await readUntil(session.output, (o) => /tick \d+\n/.test(o.stdout));
  assert.match(attached.stdout, /tick \d+/);
  session.close();

  const ac = new AbortController();
  t.after(() => ac.abort());
  const seen: number[] = [];
  let killed = false;
  for await (const e of readLogs(c.paths.logPath, {
    follow: true,
    tail: 5,
    signal: ac.signal,
    isRunning: async () => (await fresh.exitStatus(c.paths)) === undefined,
  })) {
    seen.push(Number(/tick (\d+)/.exec(e.data.toString())?.[1]));
    if (!killed && seen.length >= 15) {
      killed = true;
      await env.runc.kill(c.id, "KILL");
    }
  }
  assert.ok(seen.length >= 15, `followed ${seen.length} lines`);
  for (let i = 1; i < seen.length; i++) assert.equal(seen[i], seen[0]! + i, "no line lost or repeated");
  const end = await fresh.waitExit(c.paths, AbortSignal.timeout(10_000));
  assert.equal(end.exitCode, 137);
  await until("the monitor to end", async () => ((await fresh.monitorAlive(c.paths)) ? undefined : true));
  await env.runc.delete(c.id);
  await fresh.cleanup(c.paths);
  assert.deepEqual((await readdir(c.paths.stateDir)).sort(), [], "cleanup left nothing of the monitor");
  assert.deepEqual((await readdir(c.paths.bundle)).sort(), ["config.json", "rootfs"]);
});

test("tty with stdin: an interactive sh through the attach socket, resize, exit code 5", async (t) => {
  const env = await setup(t);
  const c = await env.container(["sh"], { tty: true });
  await env.monitor.create(c.createOptions({ tty: true, stdin: true }));
  const s = await env.monitor.attach(c.paths, { stdin: true, stdout: true, stderr: true });
  t.after(() => s.close());
  await env.monitor.start(c.id, c.paths);
  await s.resize(100, 40);
  s.stdin!.write("stty size; echo hel''lo\n");
  const out = await readUntil(s.output, (o) => /40 100\r\n/.test(o.stdout) && /\nhello\r\n/.test(o.stdout));
  assert.equal(out.stderr, "", "a terminal has one stream");
  s.stdin!.write("exit 5\n");
  const rest = await readUntil(s.output, () => false);
  assert.ok(rest.ended, "the output ends with the process");
  assert.equal((await env.monitor.waitExit(c.paths, AbortSignal.timeout(10_000))).exitCode, 5);
  await assert.rejects(s.resize(80, 24), (e) => isEngineError(e, "Conflict"));
});

test("stdin without tty: cat echoes, closing stdin (stdinOnce) ends it", async (t) => {
  const env = await setup(t);
  const c = await env.container(["cat"]);
  await env.monitor.create(c.createOptions({ stdin: true, stdinOnce: true }));
  const s = await env.monitor.attach(c.paths, { stdin: true, stdout: true, stderr: true });
  t.after(() => s.close());
  await env.monitor.start(c.id, c.paths);
  s.stdin!.write("ping\n");
  await readUntil(s.output, (o) => o.stdout === "ping\n");
  s.stdin!.write(Buffer.alloc(100_000, "z")); // more than one stdin packet
  await readUntil(s.output, (o) => o.stdout.length >= 100_000);
  s.stdin!.end();
  const st = await env.monitor.waitExit(c.paths, AbortSignal.timeout(10_000));
  assert.equal(st.exitCode, 0);
  const logged = [];
  for await (const e of readLogs(c.paths.logPath)) logged.push(e.data.toString());
  assert.equal(logged[0], "ping\n");
  assert.equal(logged.join("").length, 5 + 100_000);
});

test("exec: output and exit code, stdin, tty with resize, detached; refused into a stopped container", async (t) => {
  const env = await setup(t);
  const c = await env.container(["sleep", "1000"]);
  await env.monitor.create(c.createOptions());
  await env.monitor.start(c.id, c.paths);
  const proc = (args: string[]): SpecProcess => ({ ...c.process, args });

  const e1 = await env.monitor.exec(c.id, c.paths, proc(["sh", "-c", "echo exec-out; echo exec-err >&2; exit 7"]), { tty: false, stdin: false });
  assert.ok(e1.pid > 0);
  const o1 = await readUntil(e1.output, () => false);
  assert.deepEqual([o1.stdout, o1.stderr, o1.ended], ["exec-out\n", "exec-err\n", true]);
  assert.equal(await e1.wait(), 7);

  const e2 = await env.monitor.exec(c.id, c.paths, proc(["cat"]), { tty: false, stdin: true });
  e2.stdin!.write("to exec\n");
  await readUntil(e2.output, (o) => o.stdout === "to exec\n");
  e2.stdin!.end();
  assert.equal(await e2.wait(), 0);

  const e3 = await env.monitor.exec(c.id, c.paths, proc(["sh"]), { tty: true, stdin: true });
  await e3.resize(90, 30);
  e3.stdin!.write("stty size; exit 4\n");
  const o3 = await readUntil(e3.output, () => false);
  assert.match(o3.stdout, /30 90\r\n/);
  assert.equal(await e3.wait(), 4);

  const e4 = await env.monitor.exec(c.id, c.paths, proc(["sh", "-c", "sleep 0.2; exit 2"]), { tty: false, stdin: false, detach: true });
  assert.ok(e4.pid > 0);
  assert.equal(await e4.wait(), 2);

  await assert.rejects(
    env.monitor.exec(c.id, c.paths, proc(["nosuchcmd"]), { tty: false, stdin: false }),
    (e) => isEngineError(e, "InvalidArgument") && /nosuchcmd/.test(e.message),
  );
  await until("exec sessions to be cleaned up", async () => ((await readdir(join(c.paths.stateDir, "exec"))).length === 0 ? true : undefined));

  await env.runc.kill(c.id, "KILL");
  assert.equal((await env.monitor.waitExit(c.paths, AbortSignal.timeout(10_000))).exitCode, 137);
  await assert.rejects(
    env.monitor.exec(c.id, c.paths, proc(["true"]), { tty: false, stdin: false }),
    (e) => isEngineError(e, "Conflict") && e.message === `Container ${c.id} is not running`,
  );
});

test("OOM: a process over an 8 MB limit is killed and the monitor records it", async (t) => {
  const env = await setup(t);
  const c = await env.container(["sh", "-c", "x=aaaaaaaa; while true; do x=$x$x; done"], { memory: 8 * 1024 * 1024 });
  await env.monitor.create(c.createOptions());
  await env.monitor.start(c.id, c.paths);
  const st = await env.monitor.waitExit(c.paths, AbortSignal.timeout(30_000));
  assert.deepEqual([st.exitCode, st.oomKilled], [137, true]);
});

test("a fast writer nobody reads is not blocked: the log rotates at logMaxSize and the container finishes", async (t) => {
  const env = await setup(t);
  const max = 1024 * 1024;
  const c = await env.container(["sh", "-c", "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 50000000; echo; echo done"]);
  const started = Date.now();
  await env.monitor.create(c.createOptions({ logMaxSize: max }));
  await env.monitor.start(c.id, c.paths);
  const st = await env.monitor.waitExit(c.paths, AbortSignal.timeout(120_000));
  t.diagnostic(`50 MB through conmon in ${Date.now() - started} ms`);
  assert.equal(st.exitCode, 0);
  const size = (await stat(c.paths.logPath)).size;
  assert.ok(size <= max, `log file ${size} bytes`);
  const lines = [];
  for await (const e of readLogs(c.paths.logPath, { tail: 1 })) lines.push(e.data.toString());
  assert.deepEqual(lines, ["done\n"]);
});

test("a monitor killed with SIGKILL: waitExit of the container and of an exec session fail as Unavailable at once, several waits sharing one watch", async (t) => {
  const env = await setup(t);
  const c = await env.container(["sleep", "300"]);
  const { monitorPid } = await env.monitor.create(c.createOptions());
  await env.monitor.start(c.id, c.paths);
  const session = await env.monitor.exec(c.id, c.paths, { ...c.process, args: ["sleep", "300"] }, { tty: false, stdin: false, detach: true });
  const waits = [env.monitor.waitExit(c.paths), env.monitor.waitExit(c.paths), env.monitor.waitExit(c.paths)];
  const execWait = session.wait();
  process.kill(monitorPid, "SIGKILL");
  for (const r of await Promise.allSettled(waits)) {
    assert.equal(r.status, "rejected");
    const e = (r as PromiseRejectedResult).reason as Error;
    assert.ok(isEngineError(e, "Unavailable") && /the container's monitor died and recorded no exit status/.test(e.message), String(e));
  }
  assert.equal(await env.monitor.monitorAlive(c.paths), false);
  // The container's processes outlive their monitor: the caller ends them (runc delete --force),
  // and then the exec session's own monitor records how its process ended.
  assert.equal((await env.runc.state(c.id)).status, "running");
  await env.runc.delete(c.id, { force: true });
  assert.equal(await execWait, 137);
});

test("a monitor's end is noticed within a second through its fifo, by a waiter that did not start it, and by the poll where the fifo is gone", async (t) => {
  const env = await setup(t);
  const [a, b, c] = [await env.container(["sleep", "300"]), await env.container(["sleep", "300"]), await env.container(["sh", "-c", "sleep 1; exit 9"])];
  const pids: number[] = [];
  for (const x of [a, b, c]) {
    pids.push((await env.monitor.create(x.createOptions())).monitorPid);
    await env.monitor.start(x.id, x.paths);
  }
  // A monitor of another agent process: only the files on disk are shared.
  const fresh = new ConmonMonitor({ runcRoot: env.runcRoot });
  const timed = async (p: Promise<unknown>) => {
    const t0 = Date.now();
    const r = await p.then(
      (v) => ({ ok: true, v }),
      (e: unknown) => ({ ok: false, v: e }),
    );
    return { ...r, ms: Date.now() - t0 };
  };
  const waitA = timed(fresh.waitExit(a.paths, AbortSignal.timeout(10_000)));
  await new Promise((r) => setTimeout(r, 100));
  process.kill(pids[0]!, "SIGKILL");
  const ra = await waitA;
  assert.equal(ra.ok, false);
  assert.ok(isEngineError(ra.v, "Unavailable"), String(ra.v));
  assert.ok(ra.ms < 1000, `noticed after ${ra.ms} ms`);

  // Without the fifo (gone from the bundle), the shared poll notices it.
  await rm(join(b.paths.bundle, "winsz"));
  const waitB = fresh.waitExit(b.paths, AbortSignal.timeout(10_000));
  await new Promise((r) => setTimeout(r, 100));
  const killedAt = Date.now();
  process.kill(pids[1]!, "SIGKILL");
  await assert.rejects(waitB, (e) => isEngineError(e, "Unavailable"));
  assert.ok(Date.now() - killedAt < 1500, `polled: noticed after ${Date.now() - killedAt} ms`);

  // A normal exit: the recorded status, soon after it was recorded.
  const st = await fresh.waitExit(c.paths, AbortSignal.timeout(10_000));
  assert.equal(st.exitCode, 9);
  const lag = Date.now() - Date.parse(st.finishedAt);
  assert.ok(lag < 500, `the exit was seen ${lag} ms after it was recorded`);
});
