/**
 * Test support for the networking integration tests (root only): an isolated
 * network manager per test (its own bridge name, subnet, subnet pool, chain
 * prefix, netns and state directories, all with a random suffix, so tests
 * never collide with a running agent or with each other), processes run inside
 * namespaces, an "external host" namespace wired to the host by a veth, and a
 * cleanup registered with `t.after` before anything is created, which removes
 * everything the test made, also on failure.
 */
import { settled } from "../../../shared/best-effort.ts";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { get } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { run, runRaw, type RunResult } from "./exec.ts";
import { coveredSubnet, overlaps, parseSubnet } from "./ipam.ts";
import { deleteLinks, HOST_NETNS, listAddresses, listLinks, listRoutes, removeNetns } from "./netns.ts";
import { type AttachRequest, NetworkManager, type NetworkManagerOptions } from "./network-manager.ts";
import { removeNetworking } from "./teardown.ts";

export interface External {
  netnsPath: string;
  /** The host's address on the link to the external namespace. */
  hostSideIp: string;
  /** The external namespace's own address. */
  ip: string;
}

export interface NetTestEnv {
  dir: string;
  opts: NetworkManagerOptions & { stateDir: string; bridgeName: string; chainPrefix: string; netnsDir: string; defaultSubnet: string };
  /** Already initialised with no live containers. */
  m: NetworkManager;
  newManager(): NetworkManager;
  containerId(): string;
  /** A request on the default bridge with hosts and resolv.conf paths in the test directory. */
  request(name: string, extra?: Partial<AttachRequest>): Promise<AttachRequest>;
  /** Starts a long-running process in a namespace; killed by the cleanup. */
  spawnIn(netnsPath: string, cmd: string[]): ChildProcess;
  /** Runs a command in a namespace and collects its output. */
  execIn(netnsPath: string, cmd: string[]): Promise<RunResult>;
  external(): Promise<External>;
  /** Interfaces enslaved to one of our bridges. */
  bridgePorts(): Promise<string[]>;
  /** Every iptables-save line that names our chain prefix. */
  ourRules(): Promise<string[]>;
  netnsFiles(): Promise<string[]>;
  stateFiles(): Promise<string[]>;
}

const hex = (n: number) => randomBytes(n).toString("hex");
const rnd = (n: number) => randomBytes(2).readUInt16BE() % n;

async function freeSubnet(make: () => string): Promise<string> {
  const routes = await listRoutes();
  for (let i = 0; i < 50; i++) {
    const s = make();
    const sub = parseSubnet(s);
    if (
      !routes.some((r) => {
        const covered = coveredSubnet(r.dst);
        return covered && covered.prefixLen > 0 && overlaps(covered, sub);
      })
    )
      return s;
  }
  throw new Error("no free test subnet");
}

export async function netTestEnv(t: TestContext): Promise<NetTestEnv> {
  const procs: ChildProcess[] = [];
  const externals: { netnsPath: string; veth: string }[] = [];
  let dir = "";
  let opts: NetTestEnv["opts"] | undefined;
  t.after(async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    await Promise.all(procs.map((p) => (p.exitCode === null && p.signalCode === null ? new Promise((r) => p.once("close", r)) : undefined)));
    for (const x of externals) {
      // Gone already when the test removed them itself.
      await settled(deleteLinks([x.veth]));
      await settled(removeNetns(x.netnsPath));
    }
    if (opts) await removeNetworking(opts);
    if (dir) await rm(dir, { recursive: true, force: true });
  });
  const tag = hex(3);
  dir = await mkdtemp(join(tmpdir(), "berth-net-"));
  opts = {
    stateDir: join(dir, "state"),
    netnsDir: join(dir, "netns"),
    bridgeName: `berthT${tag}`,
    chainPrefix: `BT${tag}`,
    defaultSubnet: await freeSubnet(() => `10.${244 + rnd(4)}.${rnd(256)}.0/24`),
    subnetPool: await freeSubnet(() => `10.${248 + rnd(4)}.${16 * rnd(16)}.0/20`),
    durable: false,
  };
  const o = opts;
  const m = new NetworkManager(o);
  await m.init([]);

  const env: NetTestEnv = {
    dir,
    opts: o,
    m,
    newManager: () => new NetworkManager(o),
    containerId: () => hex(32),
    async request(name, extra) {
      const cdir = join(dir, "containers", `${name}-${hex(2)}`);
      await mkdir(cdir, { recursive: true });
      return {
        containerId: hex(32),
        name,
        hostname: name,
        networkMode: "bridge",
        ports: [],
        hostsPath: join(cdir, "hosts"),
        resolvConfPath: join(cdir, "resolv.conf"),
        ...extra,
      };
    },
    spawnIn(netnsPath, cmd) {
      const p = spawn("nsenter", [`--net=${netnsPath}`, ...cmd], { stdio: ["ignore", "pipe", "pipe"] });
      p.stdout!.resume();
      p.stderr!.resume();
      procs.push(p);
      return p;
    },
    execIn: (netnsPath, cmd) => runRaw("nsenter", [`--net=${netnsPath}`, ...cmd]),
    async external() {
      const etag = hex(3);
      const base = `10.243.${rnd(256)}.${4 * rnd(64)}`;
      const [a, b, c, d] = base.split(".").map(Number) as [number, number, number, number];
      const hostSideIp = `${a}.${b}.${c}.${d + 1}`;
      const ip = `${a}.${b}.${c}.${d + 2}`;
      const x = { netnsPath: join(dir, `ext-${etag}`), veth: `berthX${etag}` };
      externals.push(x);
      await writeFile(x.netnsPath, "");
      await run(
        "unshare",
        [`--net=${x.netnsPath}`, "ip", "-batch", "-"],
        [
          "link set lo up",
          `link add eth0 type veth peer name ${x.veth} netns ${HOST_NETNS}`,
          `addr add ${ip}/30 dev eth0`,
          "link set eth0 up",
          `route add default via ${hostSideIp}`,
        ].join("\n") + "\n",
      );
      await run("ip", ["-batch", "-"], `addr add ${hostSideIp}/30 dev ${x.veth}\nlink set ${x.veth} up\n`);
      return { netnsPath: x.netnsPath, hostSideIp, ip };
    },
    async bridgePorts() {
      const nets = await readdir(join(o.stateDir, "networks")).catch(() => []);
      const bridges = new Set([o.bridgeName]);
      for (const n of nets) if (n.endsWith(".json")) bridges.add(`berth-${n.slice(0, 9)}`);
      return (await listLinks()).filter((l) => l.master && bridges.has(l.master)).map((l) => l.ifname);
    },
    async ourRules() {
      const out = await run("iptables-save", []);
      return out.split("\n").filter((l) => l.includes(`${o.chainPrefix}-`));
    },
    netnsFiles: () => readdir(o.netnsDir),
    async stateFiles() {
      return readdir(join(o.stateDir, "containers"));
    },
  };
  return env;
}

/** Retries `fn` until it resolves or `ms` pass. */
export async function eventually<T>(fn: () => Promise<T>, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** GET http://host:port/ from the host; resolves with the body. */
export function httpGet(host: string, port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host, port, path: "/", timeout: timeoutMs, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve(body));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`timeout GET ${host}:${port}`)));
    req.on("error", reject);
  });
}

/** Sends one UDP datagram from the host and waits for an answer. */
export function udpAsk(host: string, port: number, msg: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createSocket("udp4");
    const timer = setTimeout(() => {
      s.close();
      reject(new Error(`no UDP answer from ${host}:${port}`));
    }, timeoutMs);
    s.on("message", (b) => {
      clearTimeout(timer);
      s.close();
      resolve(b.toString());
    });
    s.on("error", (e) => {
      clearTimeout(timer);
      s.close();
      reject(e);
    });
    s.send(msg, port, host);
  });
}

/** A host port nothing listens on right now (tcp). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "0.0.0.0", () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/** A non-loopback IPv4 address of the host that is not on one of our test links (e.g. eth0's). */
export async function hostAddress(): Promise<string | undefined> {
  for (const a of await listAddresses()) {
    if (a.ifname === "lo" || a.ifname.startsWith("berth")) continue;
    const addr = a.addr_info?.find((i) => i.family === "inet");
    if (addr) return addr.local;
  }
  return undefined;
}

/** Node one-liner: a UDP echo server on 0.0.0.0:PORT answering "echo:<msg>". */
export function udpEchoScript(port: number): string[] {
  return [
    process.execPath,
    "-e",
    `const s=require("dgram").createSocket("udp4");s.on("message",(m,r)=>s.send("echo:"+m,r.port,r.address));s.bind(${port},"0.0.0.0");`,
  ];
}
