/**
 * A real Docker Engine 20.10 (Debian `docker.io`) for interoperability tests and
 * benchmarks, fully private to the caller:
 *
 * - its own containerd (Debian `containerd`, started here with its own root,
 *   state dir and sockets, CRI plugin off), passed to dockerd with `--containerd`.
 *   dockerd 20.10 can supervise a containerd of its own, but only when nothing
 *   listens on /run/containerd/containerd.sock: if a system containerd runs there
 *   it silently shares it. Starting ours makes the daemon independent of the host.
 * - dockerd on its own socket, data root, exec root, pidfile and empty config file,
 *   `--bridge=none --iptables=false --ip6tables=false --ip-forward=false
 *   --ip-masq=false`: no docker0, no iptables rules, no sysctl changes; the
 *   built-in `none` and `host` networks still exist, so `docker run --network none` works.
 *   With `bridge` (the benchmarks, bench/dockerd-bridge.ts) the default network is that bridge
 *   instead, with Docker's own iptables rules.
 * - containers under a cgroup parent of their own (`/berth-dockerd-XXXX`).
 * - registries on 127.0.0.0/8 are insecure (plain HTTP) by default in dockerd;
 *   `insecureRegistries` adds others.
 *
 * What it still touches outside its directory (dockerd 20.10 has no option for
 * these): it creates /etc/docker/key.json once (the libtrust key), and containerd
 * shims put their sockets in /run/containerd/s/ (removed when they exit).
 *
 * Ownership: `stop()` (idempotent) stops dockerd, any container left, containerd
 * and its shims, unmounts everything under the daemon's directory and removes it.
 * A watchdog shell (stdin = a pipe from this process) does the same if this Node
 * process dies without calling stop(), even on SIGKILL.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface DockerdHandle {
  /** Private directory holding everything of this daemon. */
  base: string;
  dataRoot: string;
  execRoot: string;
  socket: string;
  /** DOCKER_HOST value for the docker CLI. */
  dockerHost: string;
  /** A private DOCKER_CONFIG dir for the docker CLI. */
  dockerConfig: string;
  /** containerd's gRPC socket. */
  containerdSocket: string;
  /** The cgroup parent of containers (a path below each cgroup controller). */
  cgroupParent: string;
  dockerdPid(): number | undefined;
  containerdPid(): number | undefined;
  /** Recent dockerd and containerd output (last 256 KiB each). */
  logs(): string;
  /** Stops everything, unmounts and removes `base`. Idempotent. */
  stop(): Promise<void>;
}

export interface StartDockerdOptions {
  /** Extra `--insecure-registry` values (127.0.0.0/8 is insecure already). */
  insecureRegistries?: string[];
  /** Milliseconds to wait for /_ping. Default 60 s. */
  startTimeoutMs?: number;
  /**
   * A Linux bridge the caller created (with its gateway address): dockerd's default network
   * goes on it with Docker's own iptables rules (`--iptables=true --ip-masq=true`), instead of
   * no bridge and no rules. The watchdog deletes it if this process dies; stop() leaves it to
   * its creator.
   */
  bridge?: string;
  /** Prefix of the temporary directory and cgroup parent. Default "berth-dockerd". */
  name?: string;
}

const LOG_LIMIT = 256 * 1024;
const DOCKERD_BIN = "/usr/sbin/dockerd";
const CONTAINERD_BIN = "/usr/bin/containerd";

/**
 * Watchdog: waits for EOF on its stdin (a pipe from Node), then stops dockerd
 * and containerd, kills what is left in the containers' cgroup, unmounts and
 * removes the base directory (and the bridge given). Arguments: $1 base dir, $2 cgroup
 * parent name, $3 dockerd pid, $4 containerd pid, $5 bridge or "". Normal stop() SIGKILLs it first.
 */
const WATCHDOG = `
base="$1"; cg="$2"; dpid="$3"; cpid="$4"; br="$5"
read -r _ || true
kill -TERM "$dpid" 2>/dev/null
i=0; while kill -0 "$dpid" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL "$dpid" 2>/dev/null
for f in /sys/fs/cgroup/*/"$cg"/*/cgroup.procs /sys/fs/cgroup/*/"$cg"/cgroup.procs; do
  [ -f "$f" ] && for p in $(cat "$f"); do kill -KILL "$p" 2>/dev/null; done
done
for p in /proc/[0-9]*; do
  tr '\\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q -- "-address $base/" && kill -KILL "\${p#/proc/}" 2>/dev/null
done
kill -TERM "$cpid" 2>/dev/null; sleep 1; kill -KILL "$cpid" 2>/dev/null
awk -v b="$base/" 'index($5, b) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
rm -rf "$base"
[ -n "$br" ] && ip link del "$br" 2>/dev/null
for d in /sys/fs/cgroup/*/"$cg"/* /sys/fs/cgroup/*/"$cg"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
`;

export class LogBuffer {
  private text = "";
  append(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > LOG_LIMIT) this.text = this.text.slice(this.text.length - LOG_LIMIT);
  }
  toString(): string {
    return this.text;
  }
}

/** Starts containerd + dockerd in a fresh temporary directory; resolves once /_ping answers OK. */
export async function startDockerd(opts: StartDockerdOptions = {}): Promise<DockerdHandle> {
  for (const bin of [DOCKERD_BIN, CONTAINERD_BIN, "/usr/bin/containerd-shim-runc-v2", "/usr/sbin/runc"]) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: install the Debian package docker.io (it brings containerd and runc)`);
  }
  const name = opts.name ?? "berth-dockerd";
  const base = await mkdtemp(join(tmpdir(), `${name}-`));
  const id = base.slice(base.lastIndexOf("-") + 1);
  const dataRoot = join(base, "data");
  const execRoot = join(base, "exec");
  const socket = join(base, "docker.sock");
  const dockerConfig = join(base, "docker-config");
  const containerdSocket = join(base, "containerd", "containerd.sock");
  const cgroupParent = `${name}-${id}`;
  const pidfile = join(base, "dockerd.pid");
  const dockerdLog = new LogBuffer();
  const containerdLog = new LogBuffer();
  let containerd: ChildProcess | undefined;
  let dockerd: ChildProcess | undefined;
  let watchdog: ChildProcess | undefined;
  const logs = () => `--- dockerd ---\n${dockerdLog}\n--- containerd ---\n${containerdLog}`;

  // Cleanup exists before anything starts, so a failed start leaves nothing behind.
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (watchdog?.pid !== undefined) {
        killQuietly(-watchdog.pid, "SIGKILL");
        watchdog.stdin?.destroy();
      }
      await terminate(dockerd, 20_000);
      killCgroup(cgroupParent);
      killShimsOf(base);
      await terminate(containerd, 10_000);
      await umountUnder(base);
      await rm(base, { recursive: true, force: true });
      removeCgroup(cgroupParent);
    })());

  try {
    await mkdir(dockerConfig, { recursive: true });
    await mkdir(join(base, "containerd"), { recursive: true });
    const containerdConfig = join(base, "containerd.toml");
    await writeFile(
      containerdConfig,
      [
        "version = 2",
        `root = ${JSON.stringify(join(base, "containerd", "root"))}`,
        `state = ${JSON.stringify(join(base, "containerd", "state"))}`,
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
        "[grpc]",
        `  address = ${JSON.stringify(containerdSocket)}`,
        "[ttrpc]",
        `  address = ${JSON.stringify(containerdSocket + ".ttrpc")}`,
        "[debug]",
        '  address = ""',
        "[metrics]",
        '  address = ""',
        '[plugins."io.containerd.internal.v1.opt"]',
        `  path = ${JSON.stringify(join(base, "containerd", "opt"))}`,
        "",
      ].join("\n"),
    );
    const daemonJson = join(base, "daemon.json");
    await writeFile(daemonJson, "{}\n"); // never read the host's /etc/docker/daemon.json

    containerd = spawn(CONTAINERD_BIN, ["--config", containerdConfig, "--log-level", "info"], {
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    pipeLogs(containerd, containerdLog);
    await waitFor(
      () => existsSync(containerdSocket),
      containerd,
      30_000,
      () => `containerd did not create ${containerdSocket}`,
      logs,
    );

    const args = [
      "--config-file",
      daemonJson,
      "--host",
      `unix://${socket}`,
      "--data-root",
      dataRoot,
      "--exec-root",
      execRoot,
      "--pidfile",
      pidfile,
      "--containerd",
      containerdSocket,
      ...(opts.bridge
        ? ["--bridge", opts.bridge, "--iptables=true", "--ip-masq=true", "--ip6tables=false"]
        : ["--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false", "--userland-proxy=false"]),
      "--cgroup-parent",
      `/${cgroupParent}`,
      "--exec-opt",
      "native.cgroupdriver=cgroupfs",
      "--storage-driver",
      "overlay2",
      "--log-level",
      "info",
    ];
    for (const r of opts.insecureRegistries ?? []) args.push("--insecure-registry", r);
    dockerd = spawn(DOCKERD_BIN, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    pipeLogs(dockerd, dockerdLog);

    // The safety net, armed as soon as both pids exist.
    watchdog = spawn("/bin/sh", ["-c", WATCHDOG, `${name}-watchdog`, base, cgroupParent, String(dockerd.pid), String(containerd.pid), opts.bridge ?? ""], {
      stdio: ["pipe", "ignore", "ignore"],
      detached: true,
    });
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();

    await waitFor(
      () => ping(socket),
      dockerd,
      opts.startTimeoutMs ?? 60_000,
      () => `dockerd did not answer /_ping on ${socket}`,
      logs,
    );
  } catch (err) {
    await stop();
    throw err instanceof Error ? err : new Error(String(err));
  }

  return {
    base,
    dataRoot,
    execRoot,
    socket,
    dockerHost: `unix://${socket}`,
    dockerConfig,
    containerdSocket,
    cgroupParent,
    dockerdPid: () => dockerd?.pid,
    containerdPid: () => containerd?.pid,
    logs,
    stop,
  };
}

/** Collects a daemon's output; neither the daemon nor its pipes keep this process alive (the watchdog cleans up). */
function pipeLogs(child: ChildProcess, log: LogBuffer): void {
  child.stdout?.on("data", (d: Buffer) => log.append(d));
  child.stderr?.on("data", (d: Buffer) => log.append(d));
  child.on("error", (e) => log.append(`spawn error: ${e.message}\n`));
  child.unref();
  for (const s of [child.stdout, child.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function waitFor(ready: () => boolean | Promise<boolean>, child: ChildProcess, timeoutMs: number, what: () => string, logs: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ready()) return;
    if (exited(child)) throw new Error(`${what()}: it exited (code ${child.exitCode}, signal ${child.signalCode})\n${logs()}`);
    if (Date.now() > deadline) throw new Error(`${what()} within ${timeoutMs / 1000} s\n${logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** GET /_ping on a unix socket; true on 200 "OK". */
function ping(socket: string): Promise<boolean> {
  if (!existsSync(socket)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const req = request({ socketPath: socket, path: "/_ping", method: "GET", timeout: 2000 }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve(res.statusCode === 200 && body === "OK"));
      res.on("error", () => resolve(false));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
    req.end();
  });
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
async function terminate(child: ChildProcess | undefined, graceMs: number): Promise<void> {
  if (!child || child.pid === undefined || exited(child)) return;
  const done = new Promise<void>((r) => child.once("exit", () => r()));
  killQuietly(child.pid, "SIGTERM");
  const timer = setTimeout(() => killQuietly(child.pid!, "SIGKILL"), graceMs);
  await done;
  clearTimeout(timer);
  child.stdout?.destroy();
  child.stderr?.destroy();
}

function cgroupDirs(name: string): string[] {
  const out: string[] = [];
  let controllers: string[] = [];
  try {
    controllers = readdirSync("/sys/fs/cgroup");
  } catch {
    return out;
  }
  for (const c of controllers) {
    const dir = join("/sys/fs/cgroup", c, name);
    if (!existsSync(dir)) continue;
    for (const sub of readdirSync(dir, { withFileTypes: true })) if (sub.isDirectory()) out.push(join(dir, sub.name));
    out.push(dir);
  }
  return out;
}

/** SIGKILLs every process left in the containers' cgroups (dockerd normally stops them itself). */
function killCgroup(name: string): void {
  for (const dir of cgroupDirs(name)) {
    let procs = "";
    try {
      procs = readFileSync(join(dir, "cgroup.procs"), "utf8");
    } catch {
      continue;
    }
    for (const p of procs.split("\n").filter(Boolean)) killQuietly(Number(p), "SIGKILL");
  }
}

function removeCgroup(name: string): void {
  for (const dir of cgroupDirs(name)) {
    try {
      rmdirSync(dir);
    } catch {
      // busy or gone
    }
  }
}

/** SIGKILLs containerd shims serving our containerd (their command line names its socket). */
function killShimsOf(base: string): void {
  let pids: string[] = [];
  try {
    pids = readdirSync("/proc").filter((p) => /^\d+$/.test(p));
  } catch {
    return;
  }
  for (const p of pids) {
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${p}/cmdline`, "utf8");
    } catch {
      continue;
    }
    const argv = cmdline.split("\0");
    const i = argv.indexOf("-address");
    if (i >= 0 && argv[i + 1]?.startsWith(base + "/")) killQuietly(Number(p), "SIGKILL");
  }
}

/** Unmounts anything mounted at or below `dir` (deepest first, lazily). */
export async function umountUnder(dir: string): Promise<void> {
  let info = "";
  try {
    info = await readFile("/proc/self/mountinfo", "utf8");
  } catch {
    return;
  }
  const mounts = info
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((m): m is string => !!m && (m === dir || m.startsWith(dir + "/")))
    .map((m) => m.replace(/\\040/g, " "));
  for (const m of [...new Set(mounts)].sort((a, b) => b.length - a.length)) {
    await new Promise<void>((resolve) => {
      const c = spawn("umount", ["-l", m], { stdio: "ignore" });
      c.on("close", () => resolve());
      c.on("error", () => resolve());
    });
  }
}

export interface CliTarget {
  dockerHost: string;
  dockerConfig: string;
  logs(): string;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  input?: Buffer | string;
  timeoutMs?: number;
  /** More client environment (e.g. for `-e FOO`, which the CLI takes from its own). */
  env?: Record<string, string>;
}

/** The docker CLI (/usr/local/bin/docker, 28.x) against any daemon (Berth's agent or dockerd). Never throws. */
export function dockerCli(target: CliTarget, args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn("docker", args, {
      // No DOCKER_BUILDKIT: the CLI without buildx uses the classic builder, as a user's would.
      env: { ...process.env, DOCKER_HOST: target.dockerHost, DOCKER_CONFIG: target.dockerConfig, DOCKER_CLI_HINTS: "false", ...opts.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 180_000);
    child.on("error", (e) => (stderr += `spawn error: ${e.message}\n`));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
    child.stdin.on("error", () => undefined); // the CLI may exit before reading its input (EPIPE)
    child.stdin.end(opts.input ?? "");
  });
}

/** dockerCli that must succeed; the error names the command, what the CLI printed and the daemon's log tail. */
export async function dockerCliOk(target: CliTarget, args: string[], opts: CliOptions = {}): Promise<string> {
  const r = await dockerCli(target, args, opts);
  if (r.code !== 0)
    throw new Error(
      `docker ${args.join(" ")} (DOCKER_HOST=${target.dockerHost}) exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}\ndaemon log tail:\n${target.logs().split("\n").slice(-30).join("\n")}`,
    );
  return r.stdout;
}
