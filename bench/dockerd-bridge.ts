/**
 * Docker Engine 20.10 (Debian `docker.io`) with real container networking, for the
 * container benchmarks: like test/helpers/dockerd.ts (its own containerd, socket, data
 * root, exec root, pidfile, empty daemon.json, cgroup parent), but instead of
 * `--bridge=none --iptables=false` its default network is a bridge of its own:
 *
 * - a bridge `bd<4 hex>` with 172.31.N.1/24 (N in 200..254, a /24 no interface holds),
 *   created here and passed as `--bridge`; dockerd puts every `bridge` container on it
 *   with a veth pair and an address from that /24;
 * - `--iptables=true --ip-masq=true` (Docker's defaults): the DOCKER, DOCKER-USER and
 *   DOCKER-ISOLATION-STAGE-1/2 chains, the FORWARD jumps and the MASQUERADE rule of the
 *   subnet; `--ip-forward` stays at its default (true): it sets net.ipv4.ip_forward=1 and,
 *   only if forwarding was off, the FORWARD policy to DROP.
 *
 * stop() (idempotent): dockerd, its containers, containerd and shims stop; mounts and the
 * directory go; then the bridge, the Docker chains that did not exist before the start (and
 * every rule naming the bridge or subnet) and the FORWARD policy if it changed. If this
 * process is SIGKILLed, a watchdog shell stops the daemons, unmounts, removes the directory
 * and the bridge (the emptied Docker chains stay).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { umountUnder, type DockerdHandle } from "../test/helpers/dockerd.ts";
import { deleteLink, iptablesChains, removeFirewallLeftovers } from "./lib.ts";

const execFileP = promisify(execFile);
const DOCKERD_BIN = "/usr/sbin/dockerd";
const CONTAINERD_BIN = "/usr/bin/containerd";
const LOG_LIMIT = 256 * 1024;

export interface BridgedDockerd extends DockerdHandle {
  bridge: string;
  subnet: string;
  containerdPid(): number | undefined;
}

const WATCHDOG = `
base="$1"; cg="$2"; dpid="$3"; cpid="$4"; br="$5"
read -r _ || true
kill -TERM "$dpid" 2>/dev/null
i=0; while kill -0 "$dpid" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
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
ip link del "$br" 2>/dev/null
for d in /sys/fs/cgroup/*/"$cg"/* /sys/fs/cgroup/*/"$cg"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
`;

export async function startBridgedDockerd(): Promise<BridgedDockerd> {
  for (const bin of [DOCKERD_BIN, CONTAINERD_BIN, "/usr/bin/containerd-shim-runc-v2", "/usr/sbin/runc"]) {
    if (!existsSync(bin)) throw new Error(`${bin} is missing: install the Debian package docker.io (it brings containerd and runc)`);
  }
  const base = await mkdtemp(join(tmpdir(), "berth-bench-dockerd-"));
  const id = base.slice(base.lastIndexOf("-") + 1);
  const bridge = `bd${randomBytes(2).toString("hex")}`;
  const subnet = await freeSubnet();
  const dataRoot = join(base, "data");
  const execRoot = join(base, "exec");
  const socket = join(base, "docker.sock");
  const dockerConfig = join(base, "docker-config");
  const containerdSocket = join(base, "containerd", "containerd.sock");
  const cgroupParent = `berth-bench-dockerd-${id}`;
  let dockerdLog = "";
  let containerdLog = "";
  const logs = () => `--- dockerd ---\n${dockerdLog}\n--- containerd ---\n${containerdLog}`;
  let containerd: ChildProcess | undefined;
  let dockerd: ChildProcess | undefined;
  let watchdog: ChildProcess | undefined;
  const chainsBefore = await iptablesChains();
  const forwardPolicyBefore = await forwardPolicy();

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      if (watchdog?.pid !== undefined) {
        killQuietly(-watchdog.pid, "SIGKILL");
        watchdog.stdin?.destroy();
      }
      await terminate(dockerd, 30_000);
      killCgroup(cgroupParent);
      killShimsOf(base);
      await terminate(containerd, 10_000);
      await umountUnder(base);
      await rm(base, { recursive: true, force: true });
      removeCgroup(cgroupParent);
      await deleteLink(bridge);
      await removeFirewallLeftovers(chainsBefore, /^DOCKER/, [bridge, subnet]);
      if (forwardPolicyBefore && (await forwardPolicy()) !== forwardPolicyBefore) await execFileP("iptables", ["-P", "FORWARD", forwardPolicyBefore]).catch(() => undefined);
    })());

  try {
    await execFileP("ip", ["link", "add", bridge, "type", "bridge"]);
    await execFileP("ip", ["addr", "add", subnet.replace(/\.0\/24$/, ".1/24"), "dev", bridge]);
    await execFileP("ip", ["link", "set", bridge, "up"]);
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
    await writeFile(daemonJson, "{}\n");

    containerd = spawn(CONTAINERD_BIN, ["--config", containerdConfig, "--log-level", "warn"], { stdio: ["ignore", "pipe", "pipe"], detached: true });
    pipeLogs(containerd, (s) => (containerdLog = (containerdLog + s).slice(-LOG_LIMIT)));
    await waitFor(() => existsSync(containerdSocket), containerd, 30_000, `containerd did not create ${containerdSocket}`, logs);

    const args = [
      "--config-file", daemonJson,
      "--host", `unix://${socket}`,
      "--data-root", dataRoot,
      "--exec-root", execRoot,
      "--pidfile", join(base, "dockerd.pid"),
      "--containerd", containerdSocket,
      "--bridge", bridge,
      "--iptables=true",
      "--ip-masq=true",
      "--ip6tables=false",
      "--cgroup-parent", `/${cgroupParent}`,
      "--exec-opt", "native.cgroupdriver=cgroupfs",
      "--storage-driver", "overlay2",
      "--log-level", "warn",
    ];
    dockerd = spawn(DOCKERD_BIN, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
    pipeLogs(dockerd, (s) => (dockerdLog = (dockerdLog + s).slice(-LOG_LIMIT)));
    watchdog = spawn("/bin/sh", ["-c", WATCHDOG, "berth-bench-dockerd-watchdog", base, cgroupParent, String(dockerd.pid), String(containerd.pid), bridge], {
      stdio: ["pipe", "ignore", "ignore"],
      detached: true,
    });
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    await waitFor(() => ping(socket), dockerd, 60_000, `dockerd did not answer /_ping on ${socket}`, logs);
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
    bridge,
    subnet,
    dockerdPid: () => dockerd?.pid,
    containerdPid: () => containerd?.pid,
    logs,
    stop,
  };
}

/** 172.31.N.0/24 for N in 200..254 that no interface address or route of this host is in. */
async function freeSubnet(): Promise<string> {
  const { stdout: addrs } = await execFileP("ip", ["-4", "-o", "addr"]);
  const { stdout: routes } = await execFileP("ip", ["-4", "route"]);
  const taken = addrs + routes;
  const start = 200 + Math.floor(Math.random() * 55);
  for (let i = 0; i < 55; i++) {
    const n = 200 + ((start - 200 + i) % 55);
    if (!taken.includes(`172.31.${n}.`)) return `172.31.${n}.0/24`;
  }
  throw new Error("no free 172.31.200-254.0/24 for dockerd's bridge");
}

async function forwardPolicy(): Promise<string | undefined> {
  const { stdout } = await execFileP("iptables", ["-S", "FORWARD"]).catch(() => ({ stdout: "" }));
  return /^-P FORWARD (\w+)/m.exec(stdout)?.[1];
}

function pipeLogs(child: ChildProcess, append: (s: string) => void): void {
  child.stdout?.on("data", (d: Buffer) => append(d.toString()));
  child.stderr?.on("data", (d: Buffer) => append(d.toString()));
  child.on("error", (e) => append(`spawn error: ${e.message}\n`));
  child.unref();
  for (const s of [child.stdout, child.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();
}

const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;

async function waitFor(ready: () => boolean | Promise<boolean>, child: ChildProcess, timeoutMs: number, what: string, logs: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ready()) return;
    if (exited(child)) throw new Error(`${what}: it exited (code ${child.exitCode}, signal ${child.signalCode})\n${logs()}`);
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs / 1000} s\n${logs()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

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
    // gone
  }
}

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
  for (const c of (() => {
    try {
      return readdirSync("/sys/fs/cgroup");
    } catch {
      return [];
    }
  })()) {
    const dir = join("/sys/fs/cgroup", c, name);
    if (!existsSync(dir)) continue;
    for (const sub of readdirSync(dir, { withFileTypes: true })) if (sub.isDirectory()) out.push(join(dir, sub.name));
    out.push(dir);
  }
  return out;
}

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
  for (const p of readdirSync("/proc").filter((x) => /^\d+$/.test(x))) {
    let argv: string[] = [];
    try {
      argv = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    const i = argv.indexOf("-address");
    if (i >= 0 && argv[i + 1]?.startsWith(base + "/")) killQuietly(Number(p), "SIGKILL");
  }
}
