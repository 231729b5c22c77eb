/**
 * What the benchmarks in bench/ share: timed child processes, a cleanup list run on
 * exit, failure and SIGINT/SIGTERM/SIGHUP, a Berth agent of their own, podman with
 * private storage, /proc memory readings and table helpers.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { umountUnder, type CliTarget } from "../test/helpers/dockerd.ts";
import { removeContainersAndNetwork } from "../test/helpers/agent.ts";

export const ROOT = resolve(import.meta.dirname, "..");
const execFileP = promisify(execFile);

// ---------------------------------------------------------------------------
// Processes

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** Runs a command to completion, timing it from spawn to exit. Never throws. */
export function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 600_000): Promise<RunResult> {
  return new Promise((resolvePromise) => {
    const start = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (e) => (stderr += `spawn error: ${e.message}\n`));
    child.on("close", (code, signal) => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      clearTimeout(timer);
      resolvePromise({ code: code ?? (signal ? 128 : -1), stdout, stderr, seconds });
    });
  });
}

export function failure(what: string, r: { code: number; stdout: string; stderr: string }): string {
  return `${what} exited ${r.code}: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}`;
}

/** The environment of the docker CLI against one daemon. */
export function cliEnv(target: CliTarget): NodeJS.ProcessEnv {
  return { ...process.env, DOCKER_HOST: target.dockerHost, DOCKER_CONFIG: target.dockerConfig, DOCKER_CLI_HINTS: "false" };
}

// ---------------------------------------------------------------------------
// Cleanup: whatever a bench starts is registered here and undone in reverse order,
// on a normal end, on an exception and on SIGINT/SIGTERM/SIGHUP.

const cleanups: Array<() => Promise<void>> = [];
let cleaningUp: Promise<void> | undefined;
let signalled = false;

/** True once a signal has started the cleanup: a bench must not start anything new then. */
export function interrupted(): boolean {
  return signalled;
}

/** Throws if a signal has started the cleanup. */
export function checkInterrupted(): void {
  if (signalled) throw new Error("interrupted");
}

export function onCleanup(fn: () => Promise<void>): void {
  cleanups.push(fn);
}

export function cleanupAll(): Promise<void> {
  return (cleaningUp ??= (async () => {
    for (const c of cleanups.reverse()) {
      try {
        await c();
      } catch (e) {
        process.stderr.write(`cleanup: ${(e as Error).message}\n`);
      }
    }
  })());
}

/** Runs a bench's main: cleans up on every way out and exits with its code (1 on an exception, 130 on a signal). */
export async function runMain(name: string, main: () => Promise<number>): Promise<never> {
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => {
      signalled = true;
      process.stderr.write(`\n${sig}: cleaning up\n`);
      void cleanupAll().then(() => process.exit(130));
    });
  }
  let code = 1;
  try {
    code = await main();
  } catch (e) {
    if (signalled) code = 130;
    process.stderr.write(`${name}: ${signalled ? "interrupted" : ((e as Error).stack ?? String(e))}\n`);
  } finally {
    await cleanupAll();
  }
  process.exit(code);
}

// ---------------------------------------------------------------------------
// Berth: an agent of the bench's own

export interface Agent extends CliTarget {
  pid: number;
  base: string;
  dataRoot: string;
  /** The agent's default bridge and its subnet. */
  bridge: string;
  subnet: string;
  /** Stops the agent, removes its containers, bridge, firewall chains, mounts and directory. Idempotent. */
  stop(): Promise<void>;
}

export interface StartBerthOptions {
  logLevel?: "debug" | "info" | "warn";
  /** The default bridge's subnet (default a random 10.19x.y.0/24); 1,000 containers want a /22 or wider. */
  subnet?: string;
  /** Output kept for logs() (default 64 KiB). */
  logLimit?: number;
}

/**
 * Starts bin/berth-agent.mjs in a fresh temporary directory (data root, socket, exec root)
 * with a bridge and firewall chains of its own (`bb<4 hex>`, chains `BB<4 HEX>-…`), so it never
 * meets another agent on this host. stop() leaves nothing behind: running containers are killed
 * through runc, then the bridge, chains, mounts and the directory go.
 */
export async function startBerth(opts: StartBerthOptions = {}): Promise<Agent> {
  const base = await mkdtemp(join(tmpdir(), "berth-bench-agent-"));
  const socket = join(base, "docker.sock");
  const tag = randomBytes(2).toString("hex");
  const bridge = `bb${tag}`;
  const subnet = opts.subnet ?? `10.${190 + (parseInt(tag, 16) % 10)}.${parseInt(tag, 16) % 256}.0/24`;
  const limit = opts.logLimit ?? 65536;
  let output = "";
  const child: ChildProcess = spawn(
    process.execPath,
    [
      join(ROOT, "bin/berth-agent.mjs"),
      "--data-root",
      join(base, "data"),
      "--docker-socket",
      socket,
      "--exec-root",
      join(base, "run"),
      "--bridge",
      bridge,
      "--bridge-subnet",
      subnet,
      "--log-level",
      opts.logLevel ?? "info",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const collect = (d: Buffer) => {
    output += d.toString();
    if (output.length > 2 * limit) output = output.slice(-limit);
  };
  child.stdout!.on("data", collect);
  child.stderr!.on("data", collect);
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise<void>((r) => child.once("exit", () => r()));
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await gone;
        clearTimeout(t);
      }
      // Containers outlive the agent by design: kill them, then the bridge and chains go.
      await removeContainersAndNetwork(join(base, "run", "runc"), bridge, bridge.toUpperCase());
      await umountUnder(base);
      await rm(base, { recursive: true, force: true });
    })());
  onCleanup(stop);
  const deadline = Date.now() + 30_000;
  while (!output.includes("berth-agent started")) {
    if (child.exitCode !== null) throw new Error(`berth-agent exited with ${child.exitCode}:\n${output}`);
    if (Date.now() > deadline) throw new Error(`berth-agent did not start in 30 s:\n${output}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  await mkdir(join(base, "docker-config"), { recursive: true });
  return {
    pid: child.pid!,
    base,
    dataRoot: join(base, "data"),
    bridge,
    subnet,
    dockerHost: `unix://${socket}`,
    dockerConfig: join(base, "docker-config"),
    logs: () => output.slice(-limit),
    stop,
  };
}

// ---------------------------------------------------------------------------
// podman with storage of its own

/**
 * Global flags giving podman a private root, run root, tmp dir and network config dir under `dir`.
 * The runtime is runc, as for Berth and Docker: podman prefers crun when it is installed, and crun
 * 1.8 refuses hybrid cgroup hosts.
 */
export function podmanFlags(dir: string): string[] {
  return [
    "--runtime",
    "runc",
    "--root",
    join(dir, "root"),
    "--runroot",
    join(dir, "runroot"),
    "--tmpdir",
    join(dir, "tmp"),
    "--network-config-dir",
    join(dir, "networks"),
    "--storage-driver",
    "overlay",
    "--cgroup-manager",
    "cgroupfs",
    "--events-backend",
    "file",
  ];
}

/** Keeps skopeo and podman away from the host's login files (`work` must hold no-auth.json). */
export function privateEnv(work: string): NodeJS.ProcessEnv {
  return { ...process.env, REGISTRY_AUTH_FILE: join(work, "no-auth.json"), DOCKER_CONFIG: join(work, "no-docker-config") };
}

// ---------------------------------------------------------------------------
// /proc

/** PSS of a process in bytes (/proc/PID/smaps_rollup), or VmRSS where there is no smaps_rollup; 0 if gone. */
export async function processMemory(pid: number): Promise<{ pss: number; rss: number }> {
  const kb = (text: string, field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(text);
    return m?.[1] ? Number(m[1]) * 1024 : undefined;
  };
  const rollup = await readFile(`/proc/${pid}/smaps_rollup`, "utf8").catch(() => "");
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const rss = kb(status, "VmRSS") ?? kb(rollup, "Rss") ?? 0;
  return { pss: kb(rollup, "Pss") ?? rss, rss };
}

export const hasSmapsRollup = (() => {
  try {
    readFileSync("/proc/self/smaps_rollup");
    return true;
  } catch {
    return false;
  }
})();

/** Every process as [pid, argv]. */
export async function processes(): Promise<Array<{ pid: number; argv: string[] }>> {
  const out: Array<{ pid: number; argv: string[] }> = [];
  for (const p of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(p)) continue;
    const cmdline = await readFile(`/proc/${p}/cmdline`, "utf8").catch(() => "");
    if (!cmdline) continue;
    const argv = cmdline.split("\0");
    if (argv[argv.length - 1] === "") argv.pop();
    out.push({ pid: Number(p), argv });
  }
  return out;
}

// ---------------------------------------------------------------------------
// Firewall: what engines leave behind (Docker and netavark keep their chains after they stop)

export type ChainSet = Record<"filter" | "nat", Set<string>>;

export async function iptablesChains(): Promise<ChainSet> {
  const out: ChainSet = { filter: new Set(), nat: new Set() };
  for (const table of ["filter", "nat"] as const) {
    const { stdout } = await execFileP("iptables", ["-t", table, "-S"]).catch(() => ({ stdout: "" }));
    for (const l of stdout.split("\n")) if (l.startsWith("-N ")) out[table].add(l.slice(3).trim());
  }
  return out;
}

/**
 * Removes, in the filter and nat tables, the chains matching `chainPattern` that were not in
 * `before` (with every rule jumping to them), and every rule that names one of `words` as a
 * whole argument (an interface or a subnet of the bench's own).
 */
export async function removeFirewallLeftovers(before: ChainSet, chainPattern: RegExp, words: string[]): Promise<void> {
  for (const table of ["filter", "nat"] as const) {
    const { stdout } = await execFileP("iptables", ["-t", table, "-S"]).catch(() => ({ stdout: "" }));
    const lines = stdout.split("\n");
    const chains = lines
      .filter((l) => l.startsWith("-N "))
      .map((l) => l.slice(3).trim())
      .filter((c) => chainPattern.test(c) && !before[table].has(c));
    for (const l of lines) {
      if (!l.startsWith("-A ")) continue;
      const args = l.split(/\s+/);
      const jumps = chains.some((c) => args.includes(c) && (args[args.indexOf(c) - 1] === "-j" || args[args.indexOf(c) - 1] === "-g"));
      const ours = words.some((w) => args.includes(w));
      const inOurChain = chains.includes(args[1] ?? "");
      if ((jumps || ours) && !inOurChain) await execFileP("sh", ["-c", `iptables -t ${table} -D ${l.slice(3)}`]).catch(() => undefined);
    }
    for (const c of chains) await execFileP("iptables", ["-t", table, "-F", c]).catch(() => undefined);
    for (const c of chains) await execFileP("iptables", ["-t", table, "-X", c]).catch(() => undefined);
  }
}

export async function linkExists(name: string): Promise<boolean> {
  return execFileP("ip", ["link", "show", name]).then(
    () => true,
    () => false,
  );
}

export async function deleteLink(name: string): Promise<void> {
  await execFileP("ip", ["link", "del", name]).catch(() => undefined);
}

// ---------------------------------------------------------------------------
// Reports

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

export function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

/** Rows of cells as a table with ` | ` between columns; `right` columns are right-aligned. */
export function table(header: string[], rows: string[][], right: boolean[] = []): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => pad(c, widths[i]!, right[i]))
      .join(" | ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.map(line)];
}

export async function gitRev(): Promise<string> {
  const r = await timed("git", ["-C", ROOT, "describe", "--always", "--dirty"]);
  return r.code === 0 ? r.stdout.trim() : "(unknown revision)";
}

export function cpuCount(): number | string {
  return readFileSync("/proc/cpuinfo", "utf8").match(/^processor/gm)?.length ?? "?";
}
