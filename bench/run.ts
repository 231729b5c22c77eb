/**
 * Container benchmarks, side by side in one run, on the fixture busybox image
 * (pushed to a local registry, pulled by every engine before anything is timed):
 *
 * 1. `run --rm busybox true`, wall time of the client from spawn to exit, with the
 *    default bridge network and with `--network none`:
 *      berth   the docker CLI (/usr/local/bin/docker) against a Berth agent of the bench's own
 *              (own data root, exec root, bridge bb<hex> on a 10.19x.y.0/20, firewall chains)
 *      docker  the same CLI against Docker Engine 20.10 (bench/dockerd-bridge.ts: its own
 *              containerd, data root, and a bridge bd<hex> with 172.31.N.0/24, iptables on)
 *      podman  `podman run --rm` (Debian podman, netavark: its default `podman` network), private
 *              --root/--runroot
 *      runc    `runc run` of a prepared bundle: the image's rootfs, `runc spec`'s config with
 *              terminal off and args ["true"] (new network namespace, no interface: the floor)
 *    One untimed warm-up of each, then N rounds in which they take turns. After every run the
 *    engine must list no container.
 * 2. COUNT (100) containers `run -d busybox sleep 3600` on the default bridge, then `rm -f` of each:
 *    one CLI call at a time, sequentially from this script, the same for every engine; wall time
 *    of each phase; every container must be running before the removal and none left after.
 *    Memory the engine adds per running container: PSS (/proc/PID/smaps_rollup; VmRSS where
 *    missing) of the engine's processes with COUNT running minus with none, divided by COUNT:
 *      berth   the agent + every conmon of its containers
 *      docker  dockerd + containerd + every containerd-shim-runc-v2 of its containerd
 *      podman  every conmon of its containers (podman has no daemon)
 *    The containers' own processes (sleep) are not counted.
 * 3. With --thousand: 1,000 running `sleep` containers on Berth (same method), the count and
 *    per-container memory checked, then removed.
 * 4. With --scale N: N running `sleep` containers on Berth and on Docker Engine 20.10, one
 *    engine after the other (same method): the wall time of the 1st, N/2-th and N-th
 *    `run -d` (each also as the median of the ten starts from there), of all N starts and of
 *    all N removals; whether a start costs more as the running count grows.
 *
 * Usage: bench/run [--runs N] [--count N] [--thousand] [--scale N] [--engines berth,docker,podman]
 *   (defaults 5, 100, every engine; --runs 0 skips 1. and 2.). Exits 1 if anything failed.
 * Everything it starts (daemons, containers, bridges, firewall chains and rules, mounts,
 * temporary directories) is removed at the end, on failure and on SIGINT/SIGTERM.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startRegistry } from "../test/fixtures/registry.ts";
import { pushFixtureImages } from "../test/fixtures/images.ts";
import { umountUnder } from "../test/helpers/dockerd.ts";
import { startBridgedDockerd, type BridgedDockerd } from "./dockerd-bridge.ts";
import {
  checkInterrupted,
  cliEnv,
  cpuCount,
  deleteLink,
  failure,
  gitRev,
  hasSmapsRollup,
  interrupted,
  iptablesChains,
  linkExists,
  mb,
  median,
  onCleanup,
  podmanFlags,
  privateEnv,
  processes,
  processMemory,
  removeFirewallLeftovers,
  runMain,
  table,
  timed,
  type Agent,
  type RunResult,
  startBerth,
} from "./lib.ts";

const TARGETS = { runRmVsDocker: 0.35, startVsDocker: 0.5, removeVsDocker: 0.5, perContainerMiB: 3 };
const CLI_TIMEOUT_MS = 120_000;
const SETTLE_MS = 2000;

type EngineName = "berth" | "docker" | "podman";
type Variant = { engine: EngineName | "runc"; network: "bridge" | "none" | "netns" };
const RUN_RM_VARIANTS: Variant[] = [
  { engine: "berth", network: "bridge" },
  { engine: "berth", network: "none" },
  { engine: "docker", network: "bridge" },
  { engine: "docker", network: "none" },
  { engine: "podman", network: "bridge" },
  { engine: "podman", network: "none" },
  { engine: "runc", network: "netns" },
];
const ENGINES: EngineName[] = ["berth", "docker", "podman"];

interface Context {
  ref: string;
  agent: Agent;
  dockerd: BridgedDockerd;
  podmanDir: string;
  podmanEnv: NodeJS.ProcessEnv;
  runcRoot: string;
  bundle: string;
  seq: number;
}

// ---------------------------------------------------------------------------
// Engines behind one interface: a client command line, a container list, memory

function clientCommand(ctx: Context, engine: EngineName, args: string[]): [string, string[], NodeJS.ProcessEnv] {
  switch (engine) {
    case "berth":
      return ["docker", args, cliEnv(ctx.agent)];
    case "docker":
      return ["docker", args, cliEnv(ctx.dockerd)];
    case "podman":
      return ["podman", [...podmanFlags(ctx.podmanDir), ...args], ctx.podmanEnv];
  }
}

function client(ctx: Context, engine: EngineName, args: string[], timeoutMs = CLI_TIMEOUT_MS): Promise<RunResult> {
  checkInterrupted();
  const [cmd, argv, env] = clientCommand(ctx, engine, args);
  return timed(cmd, argv, env, timeoutMs);
}

async function clientOk(ctx: Context, engine: EngineName, args: string[], timeoutMs = CLI_TIMEOUT_MS): Promise<string> {
  const r = await client(ctx, engine, args, timeoutMs);
  if (r.code !== 0) throw new Error(failure(`${engine}: ${args.join(" ")}`, r) + daemonTail(ctx, engine));
  return r.stdout;
}

function daemonTail(ctx: Context, engine: EngineName): string {
  const t = engine === "berth" ? ctx.agent : engine === "docker" ? ctx.dockerd : undefined;
  return t ? `\n${engine} log tail:\n${t.logs().trimEnd().split("\n").slice(-5).join("\n")}` : "";
}

async function containerIds(ctx: Context, engine: EngineName, running: boolean): Promise<string[]> {
  const out = await clientOk(ctx, engine, ["ps", "-q", "--no-trunc", ...(running ? [] : ["-a"])]);
  return out.split("\n").filter(Boolean);
}

/** The engine's processes as [pid, what]. */
async function engineProcesses(ctx: Context, engine: EngineName): Promise<Array<{ pid: number; what: string }>> {
  const all = await processes();
  const conmonOf = (dir: string) =>
    all
      .filter((p) => p.argv[0]?.endsWith("conmon") && p.argv.some((a) => a.startsWith(dir + "/") || a.includes(`=${dir}/`)))
      .map((p) => ({ pid: p.pid, what: "conmon" }));
  switch (engine) {
    case "berth":
      return [{ pid: ctx.agent.pid, what: "agent" }, ...conmonOf(ctx.agent.base)];
    case "docker": {
      const own = [
        { pid: ctx.dockerd.dockerdPid()!, what: "dockerd" },
        { pid: ctx.dockerd.containerdPid()!, what: "containerd" },
      ];
      const shims = all
        .filter((p) => {
          const i = p.argv.indexOf("-address");
          return i >= 0 && p.argv[i + 1]?.startsWith(ctx.dockerd.base + "/");
        })
        .map((p) => ({ pid: p.pid, what: "shim" }));
      return [...own, ...shims];
    }
    case "podman":
      return conmonOf(ctx.podmanDir);
  }
}

interface MemoryReading {
  pss: number;
  rss: number;
  counts: Record<string, number>;
  /** PSS by kind of process (agent, conmon, dockerd, containerd, shim). */
  pssBy: Record<string, number>;
}

async function engineMemory(ctx: Context, engine: EngineName): Promise<MemoryReading> {
  const procs = await engineProcesses(ctx, engine);
  let pss = 0;
  let rss = 0;
  const counts: Record<string, number> = {};
  const pssBy: Record<string, number> = {};
  for (const p of procs) {
    const m = await processMemory(p.pid);
    pss += m.pss;
    rss += m.rss;
    counts[p.what] = (counts[p.what] ?? 0) + 1;
    pssBy[p.what] = (pssBy[p.what] ?? 0) + m.pss;
  }
  return { pss, rss, counts, pssBy };
}

// ---------------------------------------------------------------------------
// 1. run --rm busybox true

async function runRm(ctx: Context, v: Variant): Promise<number> {
  if (v.engine === "runc") {
    checkInterrupted();
    const id = `berth-bench-${process.pid}-${++ctx.seq}`;
    const r = await timed("runc", ["--root", ctx.runcRoot, "run", "-b", ctx.bundle, id], process.env, CLI_TIMEOUT_MS);
    if (r.code !== 0) throw new Error(failure("runc run", r));
    const left = await timed("runc", ["--root", ctx.runcRoot, "list", "-q"]);
    if (left.stdout.trim()) throw new Error(`runc still lists ${left.stdout.trim()}`);
    return r.seconds;
  }
  const args = ["run", "--rm", ...(v.network === "none" ? ["--network", "none"] : []), ctx.ref, "true"];
  const r = await client(ctx, v.engine, args);
  if (r.code !== 0) throw new Error(failure(`${v.engine} ${args.join(" ")}`, r) + daemonTail(ctx, v.engine));
  const left = await containerIds(ctx, v.engine, false);
  if (left.length) throw new Error(`${v.engine}: ${left.length} container(s) left after run --rm`);
  return r.seconds;
}

// ---------------------------------------------------------------------------
// 2. and 3. COUNT running sleep containers

interface BatchResult {
  start: number;
  /** Wall time of each `run -d`, in order (s). */
  starts: number[];
  remove: number;
  perContainer: number;
  perContainerRss: number;
  before: MemoryReading;
  after: MemoryReading;
}

async function batch(ctx: Context, engine: EngineName, count: number, progress: (s: string) => void): Promise<BatchResult> {
  if ((await containerIds(ctx, engine, false)).length) throw new Error(`${engine}: containers exist before the batch`);
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const before = await engineMemory(ctx, engine);
  const ids: string[] = [];
  const starts: number[] = [];
  const t0 = performance.now();
  try {
    for (let i = 0; i < count; i++) {
      const r = await client(ctx, engine, ["run", "-d", ctx.ref, "sleep", "3600"]);
      starts.push(r.seconds);
      if (r.code !== 0) throw new Error(`container ${i + 1}/${count}: ${failure(`${engine} run -d`, r)}${daemonTail(ctx, engine)}`);
      ids.push(r.stdout.trim().split("\n").pop()!);
      if ((i + 1) % 100 === 0 && count > 100) progress(`${i + 1}/${count} started, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    const start = (performance.now() - t0) / 1000;
    const running = await containerIds(ctx, engine, true);
    const missing = ids.filter((id) => !running.some((r) => r.startsWith(id) || id.startsWith(r)));
    if (running.length !== count || missing.length)
      throw new Error(`${engine}: ${running.length} running after ${count} starts (${missing.length} of ours missing)`);
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const after = await engineMemory(ctx, engine);
    const t1 = performance.now();
    while (ids.length) {
      const id = ids[ids.length - 1]!;
      const r = await client(ctx, engine, ["rm", "-f", ...(engine === "podman" ? ["--time", "0"] : []), id]);
      if (r.code !== 0) throw new Error(failure(`${engine} rm -f ${id.slice(0, 12)}`, r) + daemonTail(ctx, engine));
      ids.pop();
      if (ids.length % 100 === 0 && count > 100 && ids.length)
        progress(`${count - ids.length}/${count} removed, ${((performance.now() - t1) / 1000).toFixed(1)} s`);
    }
    const remove = (performance.now() - t1) / 1000;
    const left = await containerIds(ctx, engine, false);
    if (left.length) throw new Error(`${engine}: ${left.length} container(s) left after rm -f`);
    return { start, starts, remove, perContainer: (after.pss - before.pss) / count, perContainerRss: (after.rss - before.rss) / count, before, after };
  } finally {
    // A failed batch must not leave containers for the next one.
    if (ids.length && !interrupted()) await client(ctx, engine, ["rm", "-f", ...ids], 600_000);
  }
}

/** "1 agent 80.1 → 85.3 MiB, 100 conmon 0 → 45.0 MiB": PSS by kind of process, without → with the containers. */
function memoryBreakdown(b: BatchResult, count: number): string {
  const kinds = [...new Set([...Object.keys(b.before.pssBy), ...Object.keys(b.after.pssBy)])];
  return (
    kinds.map((k) => `${b.after.counts[k] ?? 0} ${k} ${mb(b.before.pssBy[k] ?? 0)} → ${mb(b.after.pssBy[k] ?? 0)}`).join(", ") +
    ` MiB; total ${mb(b.before.pss)} → ${mb(b.after.pss)} MiB = ${mb(b.perContainer)} MiB × ${count}`
  );
}

// ---------------------------------------------------------------------------

interface Cell {
  samples: number[];
  errors: string[];
}

const stats = (xs: number[], digits = 3) => (xs.length ? [median(xs), Math.min(...xs), Math.max(...xs)].map((x) => x.toFixed(digits)) : ["-", "-", "-"]);

const USAGE = "usage: bench/run [--runs N] [--count N] [--thousand] [--scale N] [--engines berth,docker,podman]";

function parseArgs(argv: string[]): { runs: number; count: number; thousand: boolean; scale: number; engines: EngineName[] } {
  let runs = 5;
  let count = 100;
  let thousand = false;
  let scale = 0;
  let engines = ENGINES;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--runs") runs = Number(argv[++i]);
    else if (a === "--count") count = Number(argv[++i]);
    else if (a === "--thousand") thousand = true;
    else if (a === "--scale") scale = Number(argv[++i]);
    else if (a === "--engines") {
      const names = (argv[++i] ?? "").split(",").filter(Boolean);
      const bad = names.filter((n) => !(ENGINES as string[]).includes(n));
      if (!names.length || bad.length)
        throw new Error(`--engines wants a list of ${ENGINES.join(", ")}${bad.length ? `, not ${bad.join(", ")}` : ""}\n${USAGE}`);
      engines = ENGINES.filter((e) => names.includes(e));
    } else throw new Error(`unknown argument ${a}\n${USAGE}`);
  }
  if (!Number.isInteger(runs) || runs < 0) throw new Error("--runs wants a whole number (0 skips run --rm and the batches)");
  if (!Number.isInteger(count) || count < 1) throw new Error("--count wants a positive integer");
  if (!Number.isInteger(scale) || scale < 0 || scale === 1) throw new Error("--scale wants an integer of at least 2");
  return { runs, count, thousand, scale, engines };
}

/** "0.412 s (median of 10 from there 0.398 s)": the `i`-th start (0-based) and the ten from there. */
function startAt(starts: number[], i: number): string {
  const window = starts.slice(Math.max(0, Math.min(i, starts.length - 10)), Math.max(0, Math.min(i, starts.length - 10)) + 10);
  return `${starts[i]!.toFixed(3)} s (median of ${window.length} from there ${median(window).toFixed(3)} s)`;
}

async function main(): Promise<number> {
  const { runs, count, thousand, scale, engines } = parseArgs(process.argv.slice(2));
  const runVariants = RUN_RM_VARIANTS.filter((v) => v.engine === "runc" || engines.includes(v.engine));
  const scaleEngines = engines.filter((e) => e !== "podman");
  if (process.getuid?.() !== 0) throw new Error("bench/run needs root (containers, bridges, iptables)");
  for (const [bin, pkg] of [
    ["/usr/sbin/dockerd", "docker.io"],
    ["/usr/bin/podman", "podman"],
    ["/usr/bin/skopeo", "skopeo"],
    ["/usr/bin/umoci", "umoci"],
    ["/usr/sbin/runc", "runc"],
    ["/usr/bin/conmon", "conmon"],
    ["/usr/local/bin/docker", "the docker CLI"],
  ] as const)
    if (!existsSync(bin)) throw new Error(`${bin} is missing: install ${pkg}`);
  const log = (s: string) => process.stderr.write(`${s}\n`);

  const work = await mkdtemp(join(tmpdir(), "berth-bench-run-"));
  onCleanup(async () => {
    await umountUnder(work);
    await rm(work, { recursive: true, force: true });
  });
  const chainsAtStart = await iptablesChains();
  const revision = await gitRev(); // what the agent runs: the tree at its start
  // Runs last: Docker's and netavark's chains that appeared during the bench (both keep them
  // after their networks are gone), and rules jumping to them.
  onCleanup(() => removeFirewallLeftovers(chainsAtStart, /^(DOCKER|NETAVARK)/, []));

  log("setting up: registry, busybox image, runc bundle, Berth agent, dockerd, podman...");
  const reg = await startRegistry({ auth: "none" });
  onCleanup(() => reg.stop());
  const busybox = (await pushFixtureImages(reg, { only: ["busybox"] })).busybox;
  const ref = busybox.ref;

  // The runc bundle: the image's rootfs, runc's default spec without a terminal, running `true`.
  await writeFile(join(work, "no-auth.json"), '{"auths":{}}\n');
  const env = privateEnv(work);
  const bundle = join(work, "bundle");
  for (const [cmd, args] of [
    ["skopeo", ["copy", "--quiet", "--insecure-policy", "--src-tls-verify=false", "--src-no-creds", `docker://${ref}`, `oci:${join(work, "oci")}:latest`]],
    ["umoci", ["unpack", "--image", `${join(work, "oci")}:latest`, bundle]],
  ] as const) {
    const r = await timed(cmd, [...args], env);
    if (r.code !== 0) throw new Error(failure(cmd, r));
  }
  await rm(join(bundle, "config.json"));
  const specR = await timed("runc", ["spec", "--bundle", bundle]);
  if (specR.code !== 0) throw new Error(failure("runc spec", specR));
  const spec = JSON.parse(await readFile(join(bundle, "config.json"), "utf8")) as {
    process: { terminal: boolean; args: string[] };
    linux: { namespaces: Array<{ type: string }> };
  };
  if (!spec.linux.namespaces.some((n) => n.type === "network")) throw new Error("runc spec has no network namespace");
  spec.process.terminal = false;
  spec.process.args = ["true"];
  await writeFile(join(bundle, "config.json"), JSON.stringify(spec, null, 2));
  const runcRoot = join(work, "runc-root");
  await mkdir(runcRoot);
  onCleanup(async () => {
    const ids = (await timed("runc", ["--root", runcRoot, "list", "-q"])).stdout.split("\n").filter(Boolean);
    for (const id of ids) await timed("runc", ["--root", runcRoot, "delete", "--force", id]);
  });

  // Berth: a /20 so that 1,000 containers fit.
  const r = Math.floor(Math.random() * 10);
  const agent = await startBerth({ subnet: `10.${190 + r}.${16 * Math.floor(Math.random() * 16)}.0/20` });
  const dockerd = await startBridgedDockerd();
  onCleanup(() => dockerd.stop());

  // podman: private storage; its default network (bridge podman0, 10.88.0.0/16) is netavark's.
  // Its containers get RLIMIT_NOFILE and RLIMIT_NPROC of 1048576 by default for root, which fails
  // here (EPERM: this host's hard limits are lower and root lacks CAP_SYS_RESOURCE). A
  // containers.conf of its own sets the host's hard limits instead (those Docker's and Berth's
  // containers inherit); RLIMIT_NPROC at most kernel.pid_max, which podman's conmon runs with.
  const podmanDir = join(work, "podman");
  const limits = readFileSync("/proc/self/limits", "utf8");
  const hard = (label: string) => /^(\d+|unlimited)$/.exec(new RegExp(`^${label}\\s+\\S+\\s+(\\S+)`, "m").exec(limits)?.[1] ?? "")?.[1];
  const pidMax = Number(readFileSync("/proc/sys/kernel/pid_max", "utf8"));
  const nofile = hard("Max open files");
  const nproc = hard("Max processes");
  const nprocMax = nproc === undefined ? undefined : Math.min(pidMax, nproc === "unlimited" ? Infinity : Number(nproc));
  const ulimits = [
    ...(nofile && nofile !== "unlimited" ? [`"nofile=${nofile}:${nofile}"`] : []),
    ...(nprocMax !== undefined ? [`"nproc=${nprocMax}:${nprocMax}"`] : []),
  ];
  const systemConf = await readFile("/usr/share/containers/containers.conf", "utf8").catch(() => "[containers]\n");
  const podmanConf = join(work, "containers.conf");
  await writeFile(podmanConf, systemConf.replace(/^\[containers\]$/m, `[containers]\ndefault_ulimits = [${ulimits.join(", ")}]`));
  env.CONTAINERS_CONF = podmanConf;
  const podmanBridgeExisted = await linkExists("podman0");
  onCleanup(async () => {
    await timed("podman", [...podmanFlags(podmanDir), "rm", "-a", "-f"], env);
    await timed("podman", [...podmanFlags(podmanDir), "rmi", "-a", "-f"], env);
    // conmon's exit commands (`podman container cleanup`) may still be tearing networks down.
    for (let i = 0; i < 100 && (await processes()).some((p) => p.argv[0]?.endsWith("podman") && p.argv.includes(join(podmanDir, "root"))); i++)
      await new Promise((r) => setTimeout(r, 100));
    await umountUnder(podmanDir);
    if (!podmanBridgeExisted) await deleteLink("podman0");
    await removeFirewallLeftovers(chainsAtStart, /^NETAVARK/, podmanBridgeExisted ? [] : ["podman0", "10.88.0.0/16"]);
  });

  const ctx: Context = { ref, agent, dockerd, podmanDir, podmanEnv: env, runcRoot, bundle, seq: 0 };
  for (const engine of engines) {
    const pull = engine === "podman" ? ["pull", "-q", "--tls-verify=false", ref] : ["pull", "-q", ref];
    await clientOk(ctx, engine, pull, 300_000);
  }

  // 1. run --rm
  const cells = new Map<string, Cell>();
  const cell = (k: string) => {
    let c = cells.get(k);
    if (!c) cells.set(k, (c = { samples: [], errors: [] }));
    return c;
  };
  const key = (v: Variant) => `${v.engine}|${v.network}`;
  log("warm-up: one run --rm of each");
  for (const v of runs > 0 ? runVariants : []) {
    try {
      const s = await runRm(ctx, v);
      log(`  warm-up ${v.engine} ${v.network}: ${s.toFixed(3)} s`);
    } catch (e) {
      checkInterrupted();
      cell(key(v)).errors.push(`warm-up: ${(e as Error).message}`);
      log(`  warm-up ${v.engine} ${v.network}: FAILED ${(e as Error).message.split("\n")[0]}`);
    }
  }
  for (let run = 1; run <= runs; run++) {
    for (const v of runVariants) {
      const c = cell(key(v));
      try {
        const s = await runRm(ctx, v);
        c.samples.push(s);
        log(`  run --rm ${run}/${runs} ${v.engine} ${v.network}: ${s.toFixed(3)} s`);
      } catch (e) {
        checkInterrupted();
        c.errors.push((e as Error).message);
        log(`  run --rm ${run}/${runs} ${v.engine} ${v.network}: FAILED ${(e as Error).message.split("\n")[0]}`);
      }
    }
  }

  // 2. COUNT sleep containers
  const batches = new Map<EngineName, { results: BatchResult[]; errors: string[] }>(engines.map((e) => [e, { results: [], errors: [] }]));
  for (let run = 1; run <= runs; run++) {
    for (const engine of engines) {
      const b = batches.get(engine)!;
      try {
        const res = await batch(ctx, engine, count, (s) => log(`    ${engine}: ${s}`));
        b.results.push(res);
        log(
          `  ${count} containers ${run}/${runs} ${engine}: start ${res.start.toFixed(2)} s, remove ${res.remove.toFixed(2)} s, ${mb(res.perContainer)} MiB PSS per container`,
        );
      } catch (e) {
        checkInterrupted();
        b.errors.push((e as Error).message);
        log(`  ${count} containers ${run}/${runs} ${engine}: FAILED ${(e as Error).message.split("\n")[0]}`);
      }
    }
  }

  // 3. 1,000 on Berth
  let thousandResult: BatchResult | undefined;
  let thousandError: string | undefined;
  if (thousand) {
    log("1,000 containers on Berth");
    try {
      thousandResult = await batch(ctx, "berth", 1000, (s) => log(`    berth: ${s}`));
    } catch (e) {
      checkInterrupted();
      thousandError = (e as Error).message;
      log(`  1,000 containers: FAILED ${thousandError.split("\n")[0]}`);
    }
  }

  // 4. N on Berth and Docker
  const scaled = new Map<EngineName, BatchResult | string>();
  if (scale) {
    for (const engine of scaleEngines) {
      log(`${scale} containers on ${engine}`);
      try {
        const res = await batch(ctx, engine, scale, (s) => log(`    ${engine}: ${s}`));
        scaled.set(engine, res);
        log(`  ${scale} containers ${engine}: start ${res.start.toFixed(1)} s, remove ${res.remove.toFixed(1)} s`);
      } catch (e) {
        checkInterrupted();
        scaled.set(engine, (e as Error).message);
        log(`  ${scale} containers ${engine}: FAILED ${(e as Error).message.split("\n")[0]}`);
      }
    }
  }

  // The report.
  const [dockerVersion, podmanVersion, runcVersion] = await Promise.all([
    client(ctx, "docker", ["version", "--format", "{{.Server.Version}}"]),
    timed("podman", ["--version"]),
    timed("runc", ["--version"]),
  ]);
  const clientVersion = await timed("docker", ["version", "--format", "{{.Client.Version}}"], cliEnv(dockerd));
  const out: string[] = [];
  out.push(
    `Container benchmarks: ${runs} runs each (after one warm-up for run --rm); ${process.version}, ${cpuCount()} CPUs, load average at the end ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`,
  );
  out.push(
    `berth ${revision} | docker engine ${dockerVersion.stdout.trim()} (CLI ${clientVersion.stdout.trim()} for both) | ${podmanVersion.stdout.trim()} | runc ${runcVersion.stdout.split("\n")[0]?.replace(/^runc version /, "")}`,
  );
  out.push(
    `image ${ref} (fixture busybox, 1 layer); bridges: berth ${agent.bridge} ${agent.subnet}, docker ${dockerd.bridge} ${dockerd.subnet}, podman podman0 10.88.0.0/16 (netavark)`,
  );
  out.push("");
  if (runs > 0) {
    out.push("1. `run --rm busybox true`: wall time of the client, spawn to exit (s)");
    out.push(
      ...table(
        ["engine", "network", "client", "median", "min", "max"],
        runVariants.map((v) => {
          const c = cell(key(v));
          const line = [
            v.engine,
            v.network,
            v.engine === "runc" ? "runc run (bundle)" : v.engine === "podman" ? "podman run --rm" : "docker run --rm",
            ...stats(c.samples),
          ];
          if (c.errors.length) line.push(`(${c.errors.length} FAILED: ${c.errors[0]!.split("\n")[0]})`);
          return line;
        }),
        [false, false, false, true, true, true],
      ),
    );
    out.push("");
    out.push(
      `2. ${count} × \`run -d busybox sleep 3600\` then ${count} × \`rm -f ID\`, default bridge network, one client call at a time (sequential, from one script, same for every engine); wall time of each phase (s); memory per running container: (${hasSmapsRollup ? "PSS" : "RSS"} with ${count} running − with none) / ${count}`,
    );
    const memNote: Record<EngineName, string> = { berth: "agent + conmon", docker: "dockerd + containerd + shims", podman: "conmon (no daemon)" };
    out.push(
      ...table(
        [
          "engine",
          `start ${count} median`,
          "min",
          "max",
          `remove ${count} median`,
          "min",
          "max",
          "MiB/container median",
          "min",
          "max",
          "RSS MiB/ctr",
          "processes measured (at count)",
        ],
        engines.map((engine) => {
          const b = batches.get(engine)!;
          const rs = b.results;
          const mem = rs.map((x) => x.perContainer / 1024 / 1024);
          const last = rs[rs.length - 1];
          const line = [
            engine,
            ...stats(
              rs.map((x) => x.start),
              2,
            ),
            ...stats(
              rs.map((x) => x.remove),
              2,
            ),
            ...stats(mem, 2),
            rs.length ? median(rs.map((x) => x.perContainerRss / 1024 / 1024)).toFixed(2) : "-",
            last ? `${memNote[engine]} (last run): ${memoryBreakdown(last, count)}` : memNote[engine],
          ];
          if (b.errors.length) line.push(`(${b.errors.length}/${runs} FAILED: ${b.errors[0]!.split("\n")[0]})`);
          return line;
        }),
        [false, true, true, true, true, true, true, true, true, true, true, false],
      ),
    );
    out.push("");
  }
  if (scale) {
    out.push(
      `4. ${scale} × \`run -d busybox sleep 3600\` then ${scale} × \`rm -f ID\` (same method as 2.): wall time of single starts as the count grows, and of each phase`,
    );
    out.push(
      ...table(
        ["engine", "1st start", `${Math.floor(scale / 2)}th start`, `${scale}th start`, `start ${scale}`, `remove ${scale}`],
        scaleEngines.map((engine) => {
          const r = scaled.get(engine);
          if (r === undefined || typeof r === "string") return [engine, `FAILED: ${(r ?? "not run").split("\n")[0]}`];
          return [
            engine,
            startAt(r.starts, 0),
            startAt(r.starts, Math.floor(scale / 2) - 1),
            startAt(r.starts, scale - 1),
            `${r.start.toFixed(1)} s`,
            `${r.remove.toFixed(1)} s`,
          ];
        }),
        [false, true, true, true, true, true],
      ),
    );
    out.push("");
  }
  if (thousand) {
    if (thousandResult) {
      const t = thousandResult;
      out.push(
        `3. 1,000 running sleep containers on Berth: all running, none left after removal. start 1,000: ${t.start.toFixed(1)} s, remove 1,000: ${t.remove.toFixed(1)} s; ` +
          `memory (PSS): ${memoryBreakdown(t, 1000)} per container (RSS ${mb(t.perContainerRss)} MiB per container)`,
      );
    } else out.push(`3. 1,000 running sleep containers on Berth: FAILED: ${thousandError?.split("\n")[0]}`);
    out.push("");
  }

  // Targets
  const med = (k: string) => (cell(k).samples.length ? median(cell(k).samples) : undefined);
  const verdict = (ratio: number | undefined, target: number, what: string) =>
    ratio === undefined ? `${what}: n/a (a run failed)` : `${what}: ${ratio.toFixed(2)}× ${ratio <= target ? "met" : "MISSED"} (target ≤ ${target}×)`;
  const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : a / b);
  const bm = (e: EngineName, f: (x: BatchResult) => number) => {
    const rs = batches.get(e)?.results ?? [];
    return rs.length ? median(rs.map(f)) : undefined;
  };
  out.push("Targets (Berth / Docker Engine, medians):");
  out.push(`  ${verdict(ratio(med("berth|bridge"), med("docker|bridge")), TARGETS.runRmVsDocker, "run --rm, bridge")}`);
  out.push(`  run --rm, --network none: ${ratio(med("berth|none"), med("docker|none"))?.toFixed(2) ?? "n/a"}× (no target)`);
  out.push(
    `  ${verdict(
      ratio(
        bm("berth", (x) => x.start),
        bm("docker", (x) => x.start),
      ),
      TARGETS.startVsDocker,
      `start ${count}`,
    )}`,
  );
  out.push(
    `  ${verdict(
      ratio(
        bm("berth", (x) => x.remove),
        bm("docker", (x) => x.remove),
      ),
      TARGETS.removeVsDocker,
      `remove ${count}`,
    )}`,
  );
  const perC = bm("berth", (x) => x.perContainer);
  out.push(
    `  memory per running container: ${perC === undefined ? "n/a" : `${mb(perC)} MiB ${perC <= TARGETS.perContainerMiB * 1024 * 1024 ? "met" : "MISSED"}`} (target ≤ ${TARGETS.perContainerMiB} MiB; Docker: ${mb(bm("docker", (x) => x.perContainer) ?? NaN)} MiB)`,
  );
  if (scale) {
    const got = (e: EngineName) => {
      const r = scaled.get(e);
      return r === undefined || typeof r === "string" ? undefined : r;
    };
    const [b, d] = [got("berth"), got("docker")];
    out.push(`  ${verdict(ratio(b?.start, d?.start), TARGETS.startVsDocker, `start ${scale}`)}`);
    out.push(`  ${verdict(ratio(b?.remove, d?.remove), TARGETS.removeVsDocker, `remove ${scale}`)}`);
    const growth = (r: BatchResult | undefined) => (r ? median(r.starts.slice(-10)) / median(r.starts.slice(0, 10)) : undefined);
    out.push(`  a start at ${scale} running / at none (medians of 10): berth ${growth(b)?.toFixed(2) ?? "n/a"}×, docker ${growth(d)?.toFixed(2) ?? "n/a"}×`);
  }
  if (thousand)
    out.push(
      `  1,000 running containers: ${thousandResult ? "met" : "MISSED"}${thousandResult ? ` (${mb(thousandResult.perContainer)} MiB per container)` : ""}`,
    );
  process.stdout.write(out.join("\n") + "\n");

  let failed = false;
  for (const [k, c] of cells) if (c.errors.length) ((failed = true), log(`\n${k} failures:\n${c.errors.map((e) => `- ${e}`).join("\n")}`));
  for (const [k, b] of batches) if (b.errors.length) ((failed = true), log(`\n${k} ${count}-container failures:\n${b.errors.map((e) => `- ${e}`).join("\n")}`));
  if (thousandError) ((failed = true), log(`\n1,000 containers: ${thousandError}`));
  for (const [e, r] of scaled) if (typeof r === "string") ((failed = true), log(`\n${e} ${scale} containers: ${r}`));
  return failed ? 1 : 0;
}

await runMain("bench/run", main);
