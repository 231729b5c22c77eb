import { spawn, execFile, type ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { randomBytes, randomInt } from "node:crypto";
import { chainPrefixOf } from "../../agent/config.ts";

const execFileP = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "../..");

/**
 * Agents of this test process. If the process ends without destroy() (a failed
 * hook, a runner time-out), they are killed with it rather than left running.
 */
const liveAgents = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of liveAgents) c.kill("SIGKILL");
});

export interface AgentHandle {
  dataRoot: string;
  socket: string;
  /** DOCKER_HOST value for the docker CLI. */
  dockerHost: string;
  /** A private DOCKER_CONFIG dir so `docker login` does not touch the machine's config. */
  dockerConfig: string;
  /** The node credential file the agent uses (inside its temporary directory unless given). */
  credentialFile: string;
  process: ChildProcess;
  logs: () => string;
  /** SIGTERM and wait; keeps the data root. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would; keeps the data root. */
  kill(): Promise<void>;
  /** Starts the agent again on the same data root and socket. */
  restart(): Promise<void>;
  /** Stops the agent and removes its data root. Idempotent. */
  destroy(): Promise<void>;
}

export interface StartAgentOptions {
  insecureRegistries?: string[];
  registryMirrors?: string[];
  dataRoot?: string;
  /** Dial this console (`--console-url`). */
  consoleUrl?: string;
  joinToken?: string;
  /** Default: `node-credential` in the agent's temporary directory. */
  credentialFile?: string;
  consoleFingerprint?: string;
  /** Further agent flags, e.g. ["--registry-stall-timeout", "1"]. */
  extraArgs?: string[];
  /** Run another build of the agent under another Node.js (default: bin/berth-agent.mjs under this Node). */
  runtime?: { node: string; entry: string };
  /** More environment for the agent (kept across restart()), e.g. the test-only BERTH_TEST_CRASH_ON. */
  env?: Record<string, string>;
  /**
   * Play systemd's Restart=always: the agent runs with --supervised and is started again
   * (after 200 ms) whenever it exits on its own; stop(), kill(), restart() and destroy() are not exits on its own.
   */
  supervised?: boolean;
}

/**
 * A /24 for a test agent's bridge, at random in 10.200.0.0–10.249.255.0 but never inside the
 * default agent's 10.209.0.0/16: a machine that ran bin/berth-up keeps that bridge, and an
 * overlapping subnet would route the test's containers to it.
 */
export function testBridgeSubnet(): string {
  const second = 200 + randomInt(49);
  return `10.${second >= 209 ? second + 1 : second}.${randomInt(256)}.0/24`;
}

/** Starts a real berth-agent (bin/berth-agent.mjs) on a temporary data root and socket. */
export async function startAgent(opts: StartAgentOptions = {}): Promise<AgentHandle> {
  const base = await mkdtemp(join(tmpdir(), "berth-agent-"));
  const dataRoot = opts.dataRoot ?? join(base, "data");
  const socket = join(base, "docker.sock");
  const dockerConfig = join(base, "docker-config");
  const credentialFile = opts.credentialFile ?? join(base, "node-credential");
  let output = "";
  let child!: ChildProcess;
  // Each test agent gets its own exec root, bridge, subnet and firewall chains, so
  // agents never see (or clean up) each other's containers.
  const tag = randomBytes(2).toString("hex");
  const subnet = testBridgeSubnet();
  const args = [
    opts.runtime?.entry ?? join(ROOT, "bin/berth-agent.mjs"),
    "--data-root",
    dataRoot,
    "--docker-socket",
    socket,
    "--log-level",
    "debug",
    "--exec-root",
    join(base, "run"),
    "--bridge",
    `bt${tag}`,
    "--bridge-subnet",
    subnet,
  ];
  for (const r of opts.insecureRegistries ?? []) args.push("--insecure-registry", r);
  for (const m of opts.registryMirrors ?? []) args.push("--registry-mirror", m);
  args.push(...(opts.extraArgs ?? []));
  if (opts.supervised) args.push("--supervised");
  /** Set while the test itself stops the agent: the supervisor then leaves it down. */
  let intended = false;
  let respawns = 0;
  if (opts.consoleUrl !== undefined) {
    args.push("--console-url", opts.consoleUrl, "--credential-file", credentialFile);
    if (opts.joinToken !== undefined) args.push("--join-token", opts.joinToken);
    if (opts.consoleFingerprint !== undefined) args.push("--console-fingerprint", opts.consoleFingerprint);
  }

  const launch = async () => {
    child = spawn(opts.runtime?.node ?? process.execPath, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, UV_THREADPOOL_SIZE: "16", ...opts.env },
    });
    liveAgents.add(child);
    const self = child;
    child.once("exit", () => {
      liveAgents.delete(self);
      if (!opts.supervised || intended || destroyed) return;
      respawns += 1;
      output += `\n[test supervisor] berth-agent exited (${self.exitCode ?? self.signalCode}); starting it again (${respawns})\n`;
      setTimeout(() => {
        if (intended || destroyed) return;
        launch().catch((e: unknown) => (output += `\n[test supervisor] could not start berth-agent again: ${(e as Error).message}\n`));
      }, 200);
    });
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    const deadline = Date.now() + 30_000;
    const from = output.length; // a supervised agent's output goes on across its restarts
    while (!output.slice(from).includes("berth-agent started")) {
      if (child.exitCode !== null) throw new Error(`berth-agent exited with ${child.exitCode}:\n${output}`);
      if (Date.now() > deadline) throw new Error(`berth-agent did not start in 30 s:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    handle.process = child;
  };
  const waitExit = () => new Promise<void>((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once("exit", () => r())));

  let destroyed = false;
  const handle: AgentHandle = {
    dataRoot,
    socket,
    dockerHost: `unix://${socket}`,
    dockerConfig,
    credentialFile,
    process: undefined as unknown as ChildProcess,
    logs: () => output,
    stop: async () => {
      intended = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await waitExit();
      }
    },
    kill: async () => {
      intended = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await waitExit();
      }
    },
    restart: async () => {
      await handle.stop();
      output = "";
      await launch();
      intended = false;
    },
    destroy: async () => {
      if (destroyed) return;
      destroyed = true;
      await handle.kill();
      await removeContainersAndNetwork(join(base, "run", "runc"), `bt${tag}`, chainPrefixOf(`bt${tag}`));
      await umountUnder(base);
      await rm(base, { recursive: true, force: true });
    },
  };
  try {
    await launch();
  } catch (e) {
    await handle.destroy(); // an agent that did not start leaves nothing behind either
    throw e;
  }
  return handle;
}

/**
 * What a test agent leaves on the host by design (as Docker leaves docker0 and its
 * chains): its containers' runc state, its bridge, its firewall chains. Tests remove
 * them so the next test starts from a clean host.
 */
export async function removeContainersAndNetwork(runcRoot: string, bridge: string, chainPrefix: string): Promise<void> {
  const runc = (args: string[]) => execFileP("runc", ["--root", runcRoot, ...args]).catch(() => ({ stdout: "" }));
  const ids = (await runc(["list", "-q"])).stdout.split("\n").filter(Boolean);
  for (const id of ids) {
    await runc(["kill", "--all", id, "KILL"]);
    await runc(["delete", "--force", id]);
  }
  // The DNS server of its user networks (agent/engine/network/dns.ts), in the exec root beside runc's.
  const dnsDir = join(dirname(runcRoot), "dns", "networks");
  const pid = Number((await readFile(join(dnsDir, "aardvark.pid"), "utf8").catch(() => "")).trim());
  if (pid > 0 && (await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "")).split("\0").includes(dnsDir)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  await execFileP("ip", ["link", "del", bridge]).catch(() => undefined);
  for (const table of ["filter", "nat"]) {
    const rules = (await execFileP("iptables", ["-t", table, "-S"]).catch(() => ({ stdout: "" }))).stdout.split("\n");
    const chains = rules.filter((l) => l.startsWith(`-N ${chainPrefix}`)).map((l) => l.slice(3).trim());
    for (const l of rules) {
      if (!l.startsWith("-A ") || !chains.some((c) => l.includes(`-j ${c}`))) continue;
      // The shell re-reads the rule as iptables -S printed it (quoted comments included).
      await execFileP("sh", ["-c", `iptables -t ${table} -D ${l.slice(3)}`]).catch(() => undefined);
    }
    for (const c of chains) await execFileP("iptables", ["-t", table, "-F", c]).catch(() => undefined);
    for (const c of chains) await execFileP("iptables", ["-t", table, "-X", c]).catch(() => undefined);
  }
}

/** Unmounts anything still mounted below `dir` (deepest first), so a test never leaves mounts. */
async function umountUnder(dir: string): Promise<void> {
  if (!existsSync("/proc/self/mountinfo")) return;
  const { readFile } = await import("node:fs/promises");
  const lines = (await readFile("/proc/self/mountinfo", "utf8")).split("\n");
  const mounts = lines.map((l) => l.split(" ")[4]).filter((m): m is string => !!m && m.startsWith(dir + "/"));
  for (const m of mounts.sort((a, b) => b.length - a.length)) await execFileP("umount", ["-l", m]).catch(() => undefined);
}

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real docker CLI against an agent. Never throws on a non-zero exit: tests assert on it. */
export async function docker(
  agent: AgentHandle,
  args: string[],
  opts: { input?: Buffer | string; timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<DockerResult> {
  return new Promise((resolvePromise) => {
    const child = spawn("docker", args, {
      env: { ...process.env, DOCKER_HOST: agent.dockerHost, DOCKER_CONFIG: agent.dockerConfig, DOCKER_CLI_HINTS: "false", ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.on("error", () => undefined); // the CLI may exit before reading its input
    child.stdin.end(opts.input ?? "");
  });
}

/** docker(...) that must succeed; the error names the command and what the CLI printed. */
export async function dockerOk(agent: AgentHandle, args: string[], opts: { input?: Buffer | string; timeoutMs?: number } = {}): Promise<string> {
  const r = await docker(agent, args, opts);
  if (r.code !== 0)
    throw new Error(
      `docker ${args.join(" ")} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\nagent log tail:\n${agent.logs().split("\n").slice(-20).join("\n")}`,
    );
  return r.stdout;
}

/** `docker run -d --name NAME busybox sh -c SCRIPT`: a background container that runs a shell script. */
export const runShellDetached = (agent: AgentHandle, name: string, script: string): Promise<string> =>
  dockerOk(agent, ["run", "-d", "--name", name, "busybox", "sh", "-c", script]);

/** A docker CLI process left running (attach, events, streaming stats): its output so far, and a way to end it. */
export function dockerBackground(agent: Pick<AgentHandle, "dockerHost" | "dockerConfig">, args: string[]) {
  const child = spawn("docker", args, {
    env: { ...process.env, DOCKER_HOST: agent.dockerHost, DOCKER_CONFIG: agent.dockerConfig, DOCKER_CLI_HINTS: "false" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.once("close", (code) => r(code)));
  return {
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    exited,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}
