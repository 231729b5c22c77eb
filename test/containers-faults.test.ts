// Faults and hostile input for the container engine (issue 3, §4), through the real docker
// CLI against a real agent:
// - kill -9 of the agent right after it received `docker run -d`'s create or start request,
//   and `docker rm -f`'s delete request: after a restart, nothing is left over — no overlay
//   mount under the agent's directories, no veth on its bridge, no firewall rule, cgroup or
//   address lease for a container that is not running, no runc container or conmon of it;
// - 50 containers across 5 agent restarts leak nothing;
// - escapes: WORKDIR /proc/self/fd/N (runc CVE-2024-21626), /dev and mount targets that are
//   symlinks to host paths;
// - bad input answered with Docker's status and message.
//
// The agent is killed at the right moment by a tap: a unix socket in front of the agent's,
// given to the CLI as DOCKER_HOST, that sees each request line as it arrives.
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "./fixtures/registry.ts";
import { docker, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";
import { sleep, until } from "./helpers/wait.ts";

const execFileP = promisify(execFile);
const uniq = (prefix: string) => `${prefix}-${randomBytes(3).toString("hex")}`;

// ─── the agent's own resources on the host ─────────────────────────────────────────────

/** Where a test agent keeps things, read from its command line (see test/helpers/agent.ts). */
function agentPlaces(agent: AgentHandle) {
  const args = agent.process.spawnargs;
  const arg = (name: string) => {
    const i = args.indexOf(name);
    if (i < 0) throw new Error(`the agent was started without ${name}`);
    return args[i + 1]!;
  };
  const bridge = arg("--bridge");
  const execRoot = arg("--exec-root");
  return {
    dataRoot: agent.dataRoot,
    /** The agent's temporary directory: data root, exec root and socket are below it. */
    base: dirname(agent.dataRoot),
    execRoot,
    runcRoot: join(execRoot, "runc"),
    bridge,
    chainPrefix: bridge.toUpperCase().replace(/[^A-Z0-9]/g, ""),
    subnet: arg("--bridge-subnet"),
  };
}

function inSubnet(ip: string, cidr: string): boolean {
  const toInt = (a: string) => a.split(".").reduce((n, o) => n * 256 + Number(o), 0);
  const [base, len] = cidr.split("/") as [string, string];
  const mask = Number(len) === 0 ? 0 : 2 ** 32 - 2 ** (32 - Number(len));
  return (toInt(ip) & mask) >>> 0 === (toInt(base) & mask) >>> 0;
}

interface LiveContainer {
  id: string;
  ips: string[];
  hostPorts: number[];
}

/** Containers the agent says are running (or paused), with their addresses and published host ports. */
async function liveContainers(agent: AgentHandle): Promise<Map<string, LiveContainer>> {
  const ids = (await dockerOk(agent, ["ps", "-q", "--no-trunc"])).trim().split("\n").filter(Boolean);
  const out = new Map<string, LiveContainer>();
  if (ids.length === 0) return out;
  const r = await docker(agent, ["inspect", ...ids]);
  // A container may exit between ps and inspect: inspect prints what it found.
  const list = JSON.parse(r.stdout || "[]") as Array<{
    Id: string;
    State: { Status: string };
    NetworkSettings: { Networks: Record<string, { IPAddress: string }>; Ports: Record<string, Array<{ HostPort: string }> | null> };
  }>;
  for (const c of list) {
    if (c.State.Status !== "running" && c.State.Status !== "paused") continue;
    out.set(c.Id, {
      id: c.Id,
      ips: Object.values(c.NetworkSettings.Networks ?? {})
        .map((n) => n.IPAddress)
        .filter(Boolean),
      hostPorts: Object.values(c.NetworkSettings.Ports ?? {}).flatMap((b) => (b ?? []).map((x) => Number(x.HostPort))),
    });
  }
  return out;
}

async function allContainerIds(agent: AgentHandle): Promise<string[]> {
  return (await dockerOk(agent, ["ps", "-a", "-q", "--no-trunc"])).trim().split("\n").filter(Boolean);
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** PIDs and argv of every conmon on the host. */
async function conmons(): Promise<Array<{ pid: number; argv: string[] }>> {
  const out: Array<{ pid: number; argv: string[] }> = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const argv = (await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "")).split("\0").filter(Boolean);
    if (argv[0] && /(^|\/)conmon$/.test(argv[0])) out.push({ pid: Number(name), argv });
  }
  return out;
}

/**
 * Everything the agent holds on the host for a container that is not running: each line
 * names one leftover. `known` adds IDs the test saw (the agent may have forgotten them).
 * Empty: nothing leaked.
 */
async function leftovers(agent: AgentHandle, known: Iterable<string>): Promise<string[]> {
  const where = agentPlaces(agent);
  const live = await liveContainers(agent);
  const existing = new Set(await allContainerIds(agent));
  const ids = new Set<string>([...known, ...existing]);
  const problems: string[] = [];

  // Mounts below the agent's directories: only running containers' rootfs and network namespace.
  const allowedMounts = new Set([...live.keys()].flatMap((id) => [join(where.dataRoot, "containers", id, "rootfs"), join(where.execRoot, "netns", id)]));
  for (const line of (await readFile("/proc/self/mountinfo", "utf8")).split("\n")) {
    const fields = line.split(" ");
    const mountPoint = fields[4] ? unescapeMountPath(fields[4]) : undefined;
    if (!mountPoint || !mountPoint.startsWith(where.base + "/")) continue;
    if (!allowedMounts.has(mountPoint)) problems.push(`mount ${mountPoint} (${fields.slice(fields.indexOf("-") + 1, fields.indexOf("-") + 2).join("")})`);
  }

  // Address leases and veths: the network state of running containers only.
  const leaseDir = join(where.dataRoot, "network", "containers");
  const ownedVeths = new Set<string>();
  const leasedIps = new Map<string, string>();
  for (const f of existsSync(leaseDir) ? await readdir(leaseDir) : []) {
    if (!f.endsWith(".json")) continue;
    const id = f.slice(0, -5);
    ids.add(id);
    const rec = JSON.parse(await readFile(join(leaseDir, f), "utf8").catch(() => "{}")) as { endpoints?: Array<{ hostVeth: string; ipAddress: string }> };
    if (!live.has(id)) problems.push(`address lease ${f} (${(rec.endpoints ?? []).map((e) => e.ipAddress).join(", ")}) of a container that is not running`);
    for (const e of rec.endpoints ?? []) {
      ownedVeths.add(e.hostVeth);
      const other = leasedIps.get(e.ipAddress);
      if (other) problems.push(`address ${e.ipAddress} leased twice (${other.slice(0, 12)}, ${id.slice(0, 12)})`);
      leasedIps.set(e.ipAddress, id);
    }
  }
  const links = (await execFileP("ip", ["-o", "link", "show", "master", where.bridge]).catch(() => ({ stdout: "" }))).stdout;
  for (const line of links.split("\n").filter(Boolean)) {
    const veth = line.split(":")[1]!.trim().split("@")[0]!;
    if (!ownedVeths.has(veth)) problems.push(`veth ${veth} on ${where.bridge} without a running container`);
  }

  // Firewall: a rule naming a container address or host port must be a running container's.
  const liveIps = new Set([...live.values()].flatMap((c) => c.ips));
  const livePorts = new Set([...live.values()].flatMap((c) => c.hostPorts));
  const save = (await execFileP("iptables-save")).stdout;
  for (const rule of save.split("\n").filter((l) => l.startsWith(`-A ${where.chainPrefix}-`))) {
    for (const m of rule.matchAll(/(?:--to-destination |-d |-s )(\d+\.\d+\.\d+\.\d+)(?:\/32)?\b/g)) {
      const ip = m[1]!;
      if (inSubnet(ip, where.subnet) && !ip.endsWith(".0") && !liveIps.has(ip) && /--to-destination|\/32/.test(m[0]))
        problems.push(`iptables rule for ${ip}, no running container has it: ${rule}`);
    }
    for (const m of rule.matchAll(/--dport (\d+)/g)) {
      if (!livePorts.has(Number(m[1]))) problems.push(`iptables rule for host port ${m[1]}, no running container publishes it: ${rule}`);
    }
  }

  // cgroups of containers that are not running.
  for (const id of ids) {
    if (live.has(id)) continue;
    for (const controller of ["memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "devices", "blkio"]) {
      const dir = `/sys/fs/cgroup/${controller}/berth/${id}`;
      if (existsSync(dir)) problems.push(`cgroup ${dir} of a container that is not running`);
    }
  }

  // runc containers and monitors.
  const runcList = JSON.parse(
    (await execFileP("runc", ["--root", where.runcRoot, "list", "-f", "json"]).catch(() => ({ stdout: "null" }))).stdout || "null",
  ) as Array<{ id: string; status: string; pid: number }> | null;
  for (const r of runcList ?? []) {
    ids.add(r.id);
    if (!live.has(r.id)) problems.push(`runc container ${r.id.slice(0, 12)} (${r.status}, pid ${r.pid}) of a container that is not running`);
  }
  for (const c of await conmons()) {
    if (!c.argv.includes(`--root=${where.runcRoot}`)) continue;
    const id = c.argv[c.argv.indexOf("-c") + 1] ?? "";
    if (!live.has(id)) problems.push(`conmon ${c.pid} of ${id.slice(0, 12)}, which is not running`);
  }

  // Containers the agent forgot must leave no directory or snapshot.
  for (const d of await readdir(join(where.dataRoot, "containers")).catch(() => [] as string[])) {
    if (!existing.has(d)) problems.push(`container directory ${d} without a container`);
  }
  for (const d of await readdir(join(where.dataRoot, "snapshots")).catch(() => [] as string[])) {
    if (/^[0-9a-f]{64}$/.test(d) && !existing.has(d)) problems.push(`snapshot ${d} without a container`);
  }
  return problems;
}

/** leftovers(), polled for a while: the kernel deletes veths and cgroups in the background. */
async function expectNoLeftovers(agent: AgentHandle, known: Iterable<string>, context: string): Promise<void> {
  const ids = [...known];
  let problems = await leftovers(agent, ids);
  for (let i = 0; i < 40 && problems.length > 0; i++) {
    await sleep(250);
    problems = await leftovers(agent, ids);
  }
  assert.deepEqual(
    problems,
    [],
    `${context}: leftovers\n${problems.join("\n")}\nagent log tail:\n${agent
      .logs()
      .split("\n")
      .filter((l) => !l.includes('"level":20'))
      .slice(-15)
      .join("\n")}`,
  );
}

// ─── a tap in front of the agent's socket ─────────────────────────────────────────────

interface Tap {
  /** DOCKER_HOST for the CLI. */
  dockerHost: string;
  /** The next request whose line matches `line` makes the tap SIGKILL the agent `delayMs` after it arrived. */
  killOn(line: RegExp, delayMs: number): void;
  /** Settles once the armed kill happened (at once if none is armed or it already happened). */
  killed(): Promise<void>;
  /** Request lines seen, oldest first. */
  seen: string[];
  close(): Promise<void>;
}

async function startTap(agent: AgentHandle, dir: string): Promise<Tap> {
  const path = join(dir, `tap-${randomBytes(3).toString("hex")}.sock`);
  const seen: string[] = [];
  let armed: { line: RegExp; delayMs: number } | undefined;
  let killing: Promise<void> = Promise.resolve();
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(agent.socket);
    sockets.add(client).add(upstream);
    let buffered = "";
    client.on("data", (d: Buffer) => {
      // Request lines as they arrive (a connection may carry several requests).
      buffered = (buffered + d.toString("latin1")).slice(-8192);
      for (;;) {
        const m = /(GET|HEAD|POST|PUT|DELETE) (\/\S*) HTTP\/1\.[01]\r\n/.exec(buffered);
        if (!m) break;
        buffered = buffered.slice(m.index + m[0].length);
        const line = `${m[1]} ${m[2]}`;
        seen.push(line);
        if (armed && armed.line.test(line)) {
          const { delayMs } = armed;
          armed = undefined;
          killing = (async () => {
            if (delayMs > 0) await sleep(delayMs);
            await agent.kill();
          })();
        }
      }
    });
    client.pipe(upstream);
    upstream.pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    dockerHost: `unix://${path}`,
    killOn: (line, delayMs) => void (armed = { line, delayMs }),
    killed: () => killing,
    seen,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A raw Docker API call on the agent's socket: the status code and the JSON body. */
function api(
  agent: AgentHandle,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: { message?: string } & Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      { socketPath: agent.socket, method, path: `/v1.47${path}`, headers: data ? { "Content-Type": "application/json", "Content-Length": data.length } : {} },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => {
          let json = {};
          try {
            json = text ? JSON.parse(text) : {};
          } catch {
            json = { message: text };
          }
          resolve({ status: res.statusCode ?? 0, json });
        });
      },
    );
    req.on("error", reject);
    req.end(data);
  });
}

// ─── the tests ─────────────────────────────────────────────────────────────────────

describe("container faults, escapes and bad input through the docker CLI", () => {
  let agent: AgentHandle;
  let work: string;
  /** Every container ID any test saw, so the leak checks also cover containers the agent forgot. */
  const seenIds = new Set<string>();

  const removeAfter = (t: TestContext, ...names: string[]) => t.after(async () => void (await docker(agent, ["rm", "-fv", ...names])));
  const noteIds = async () => {
    for (const id of await allContainerIds(agent)) seenIds.add(id);
  };

  /** A tap that kills the agent on a request line; the test's containers (`names`) are removed after it, the agent restarted first if it is down. */
  const killingTap = async (t: TestContext) => {
    const tap = await startTap(agent, work);
    t.after(() => tap.close());
    const names: string[] = [];
    t.after(async () => {
      if (agent.process.exitCode !== null || agent.process.signalCode !== null) await agent.restart();
      await docker(agent, ["rm", "-f", ...names]);
    });
    return { tap, names };
  };

  let suite: BusyboxAgent | undefined;
  before(async () => void ({ agent, work } = suite = await startBusyboxAgent("containers-faults")));
  after(() => suite?.stop());

  test("kill -9 of the agent in the middle of docker run -d leaves no orphan mount, veth, rule, cgroup or lease", async (t) => {
    const { tap, names } = await killingTap(t);
    const create = /^POST \/v[\d.]+\/containers\/create/;
    const start = /^POST \/v[\d.]+\/containers\/[0-9a-f]{64}\/start$/;
    const tries: Array<[RegExp, number]> = [
      [create, 0],
      [create, 3],
      [start, 0],
      [start, 5],
      [start, 20],
      [start, 50],
      [start, 90],
      [start, 150],
      [start, 250],
    ];
    for (const [line, delay] of tries) {
      const name = uniq("midrun");
      names.push(name);
      const port = await freePort();
      tap.killOn(line, delay);
      const run = await docker(agent, ["run", "-d", "--name", name, "-p", `${port}:80`, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"], {
        env: { DOCKER_HOST: tap.dockerHost },
        timeoutMs: 30_000,
      });
      await tap.killed();
      assert.ok(agent.process.signalCode === "SIGKILL", `the agent was not killed (${line} +${delay} ms); run: ${run.code} ${run.stderr}`);
      await agent.restart();
      await noteIds();
      const context = `killed ${delay} ms after ${line.source.includes("create") ? "create" : "start"} (run said: ${run.code} ${(run.stdout + run.stderr).trim().slice(0, 200)})`;
      await expectNoLeftovers(agent, seenIds, context);
      // Whatever state the container is in, it can be removed, and then nothing of it is left.
      const rmr = await docker(agent, ["rm", "-f", name]);
      assert.ok(rmr.code === 0 || /No such container/.test(rmr.stderr), `${context}: rm -f: ${rmr.stderr}`);
      await expectNoLeftovers(agent, seenIds, `${context}, then removed`);
      // The published port is free again: a new container can take it.
      const again = uniq("reuse");
      names.push(again);
      await dockerOk(agent, ["run", "-d", "--name", again, "-p", `${port}:80`, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
      await dockerOk(agent, ["rm", "-f", again]);
    }
    const runcLeft = (await execFileP("runc", ["--root", agentPlaces(agent).runcRoot, "list", "-q"])).stdout.trim();
    assert.equal(runcLeft, "", "runc containers left");
  });

  test("kill -9 of the agent in the middle of docker rm -f leaves no orphan mount, veth, rule, cgroup or lease", async (t) => {
    const { tap, names } = await killingTap(t);
    for (const delay of [0, 5, 15, 30, 60, 100, 200]) {
      const name = uniq("midrm");
      names.push(name);
      const port = await freePort();
      const id = (
        await dockerOk(agent, ["run", "-d", "--name", name, "-p", `${port}:80`, "-v", "/anon", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"])
      ).trim();
      seenIds.add(id);
      tap.killOn(/^DELETE \/v[\d.]+\/containers\//, delay);
      const rmr = await docker(agent, ["rm", "-f", name], { env: { DOCKER_HOST: tap.dockerHost }, timeoutMs: 30_000 });
      await tap.killed();
      assert.ok(agent.process.signalCode === "SIGKILL", `the agent was not killed (+${delay} ms): ${rmr.code} ${rmr.stderr}`);
      await agent.restart();
      const context = `killed ${delay} ms after DELETE (rm said: ${rmr.code} ${(rmr.stdout + rmr.stderr).trim().slice(0, 200)})`;
      await expectNoLeftovers(agent, seenIds, context);
      const state = (await docker(agent, ["inspect", "--format", "{{.State.Status}}", id])).stdout.trim();
      assert.ok(["", "running", "exited"].includes(state), `${context}: the container is ${state}`);
      const again = await docker(agent, ["rm", "-f", id]);
      assert.ok(again.code === 0 || /No such container/.test(again.stderr), `${context}: rm -f again: ${again.stderr}`);
      await expectNoLeftovers(agent, seenIds, `${context}, then removed`);
      assert.ok(!(await allContainerIds(agent)).includes(id));
    }
  });

  test("50 containers across 5 agent restarts leak nothing", async (t) => {
    const names: string[] = [];
    t.after(async () => void (await docker(agent, ["rm", "-f", ...names])));
    const where = agentPlaces(agent);
    const ids: string[] = [];
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 10; i++) {
        const name = uniq(`many${round}`);
        names.push(name);
        const port = await freePort();
        const id = (await dockerOk(agent, ["run", "-d", "--name", name, "-p", `${port}:80`, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"])).trim();
        ids.push(id);
        seenIds.add(id);
      }
      // Odd rounds crash, even rounds stop cleanly.
      if (round % 2 === 1) await agent.kill();
      await agent.restart();
      const live = await liveContainers(agent);
      assert.equal(ids.filter((id) => live.has(id)).length, ids.length, `round ${round}: every container is still running after the restart`);
      const ips = ids.map((id) => live.get(id)!.ips[0]);
      assert.equal(new Set(ips).size, ids.length, `round ${round}: an address was handed out twice: ${ips.join(" ")}`);
      await expectNoLeftovers(agent, seenIds, `round ${round}`);
    }
    const conmonsBefore = (await conmons()).filter((c) => c.argv.includes(`--root=${where.runcRoot}`)).length;
    assert.equal(conmonsBefore, 50, "one conmon per running container");
    // The seeds' idiom.
    await dockerOk(agent, ["rm", "-f", ...(await allContainerIds(agent))], { timeoutMs: 300_000 });
    assert.deepEqual(await allContainerIds(agent), []);
    await expectNoLeftovers(agent, seenIds, "after removing the 50");
    assert.equal((await execFileP("runc", ["--root", where.runcRoot, "list", "-q"])).stdout.trim(), "", "runc containers left");
    assert.deepEqual(
      (await conmons()).filter((c) => c.argv.includes(`--root=${where.runcRoot}`)).map((c) => c.pid),
      [],
      "conmon processes left",
    );
    assert.deepEqual(await readdir(join(where.dataRoot, "network", "containers")), [], "address leases left");
    assert.deepEqual(
      (await readdir(join(where.dataRoot, "snapshots"))).filter((d) => d !== "tmp"),
      [],
      "snapshots left",
    );
    assert.deepEqual(await readdir(join(where.dataRoot, "containers")), [], "container directories left");
    for (const id of ids) {
      for (const controller of ["memory", "pids", "cpu", "cpuacct", "freezer"])
        assert.ok(!existsSync(`/sys/fs/cgroup/${controller}/berth/${id}`), `cgroup ${controller}/berth/${id} left`);
    }
  });

  // ─── escapes ───────────────────────────────────────────────────────────────

  /** A busybox root filesystem as a directory, from `docker export` of a busybox container. */
  async function busyboxRootfs(t: TestContext): Promise<string> {
    const src = uniq("rootfs-src");
    removeAfter(t, src);
    await dockerOk(agent, ["create", "--name", src, "busybox", "true"]);
    const dir = await mkdtemp(join(work, "rootfs-"));
    await dockerOk(agent, ["export", "-o", join(dir, "..", `${src}.tar`), src]);
    await mkdir(join(dir, "root"), { recursive: true });
    await execFileP("tar", ["-C", join(dir, "root"), "-xf", join(dir, "..", `${src}.tar`)]);
    return join(dir, "root");
  }

  /** `docker import` of a directory, with Dockerfile instructions. */
  async function importDir(t: TestContext, dir: string, changes: string[]): Promise<string> {
    const image = uniq("evil");
    t.after(async () => void (await docker(agent, ["rmi", "-f", image])));
    const tarPath = `${dir}-${image}.tar`;
    await execFileP("tar", ["-C", dir, "-cf", tarPath, "."]);
    await dockerOk(agent, ["import", ...changes.flatMap((c) => ["-c", c]), tarPath, image]);
    return image;
  }

  test("an image with WORKDIR /proc/self/fd/N does not reach the host (runc CVE-2024-21626); nor does exec -w", async (t) => {
    const marker = `berth-escape-marker-${randomBytes(4).toString("hex")}`;
    t.after(() => rm(join("/", marker), { force: true }));
    await writeFile(join("/", marker), "host\n");
    const rootfs = await busyboxRootfs(t);
    const probe = `pwd; ls ../../../ ../../../../../../; cat ../../../${marker} ../../../../../../${marker}`;
    for (let fd = 3; fd <= 10; fd++) {
      const image = await importDir(t, rootfs, [`WORKDIR /proc/self/fd/${fd}`, 'CMD ["sh"]']);
      const r = await docker(agent, ["run", "--rm", image, "sh", "-c", probe], { timeoutMs: 30_000 });
      assert.notEqual(r.code, -1, `fd ${fd}: docker run --rm hung after a failed start`);
      assert.ok(!r.stdout.includes(marker) && !r.stdout.includes("host\n"), `fd ${fd}: the host's root is visible from the container:\n${r.stdout}`);
      if (r.code !== 0) assert.match(r.stderr, /Error response from daemon|error|not a directory|no such file/i, `fd ${fd}`);
    }
    // docker run --rm removed the containers whose start failed (as Docker does).
    assert.deepEqual(
      (await dockerOk(agent, ["ps", "-a", "--format", "{{.Image}}"]))
        .trim()
        .split("\n")
        .filter((i) => i.startsWith("evil-")),
      [],
    );
    const c = uniq("execfd");
    removeAfter(t, c);
    await dockerOk(agent, ["run", "-d", "--name", c, "busybox", "sleep", "300"]);
    for (let fd = 3; fd <= 10; fd++) {
      const r = await docker(agent, ["exec", "-w", `/proc/self/fd/${fd}`, c, "sh", "-c", probe], { timeoutMs: 30_000 });
      assert.ok(!r.stdout.includes(marker) && !r.stdout.includes("host\n"), `exec -w fd ${fd}: the host's root is visible:\n${r.stdout}`);
    }
  });

  test("an image whose /dev (or /proc, /sys) is a symlink to a host directory does not touch it", async (t) => {
    const rootfs = await busyboxRootfs(t);
    for (const path of ["dev", "proc", "sys"]) {
      const hostDir = await mkdtemp(join(tmpdir(), `berth-marker-${path}-`));
      t.after(() => rm(hostDir, { recursive: true, force: true }));
      await writeFile(join(hostDir, "keep"), "host file\n");
      await rm(join(rootfs, path), { recursive: true, force: true });
      await symlink(hostDir, join(rootfs, path));
      const image = await importDir(t, rootfs, ['CMD ["sh"]']);
      const r = await docker(
        agent,
        ["run", "--rm", image, "sh", "-c", `ls /${path}/ >/dev/null; echo ok > /dev/null; ls /dev/null /proc/self/status /sys/kernel >/dev/null && echo fine`],
        { timeoutMs: 30_000 },
      );
      assert.notEqual(r.code, -1, `/${path}: docker run --rm hung`);
      const tty = await docker(agent, ["run", "--rm", "-t", image, "true"], { timeoutMs: 30_000 });
      assert.notEqual(tty.code, -1, `/${path}: docker run --rm -t hung`);
      assert.deepEqual(
        await readdir(hostDir),
        ["keep"],
        `/${path} -> ${hostDir}: the host directory was changed (run: ${r.code} ${r.stdout} ${r.stderr}; -t: ${tty.code} ${tty.stderr})`,
      );
      assert.equal(await readFile(join(hostDir, "keep"), "utf8"), "host file\n");
      // Docker masks these paths with real directories: the container works.
      assert.equal(r.code, 0, `/${path}: ${r.stderr}`);
      assert.equal(r.stdout, "fine\n");
      await rm(join(rootfs, path));
      await mkdir(join(rootfs, path));
    }
  });

  test("an image whose mount targets are symlinks to host paths does not touch them", async (t) => {
    const rootfs = await busyboxRootfs(t);
    const hostDir = await mkdtemp(join(tmpdir(), "berth-marker-mounts-"));
    t.after(() => rm(hostDir, { recursive: true, force: true }));
    await writeFile(join(hostDir, "keep"), "host file\n");
    for (const f of ["hosts", "hostname", "resolv.conf"]) {
      await rm(join(rootfs, "etc", f), { force: true });
      await symlink(join(hostDir, f), join(rootfs, "etc", f));
    }
    await symlink(hostDir, join(rootfs, "data"));
    await symlink(join(hostDir, "vol"), join(rootfs, "vol"));
    await symlink(join(hostDir, "bound"), join(rootfs, "bound"));
    const image = await importDir(t, rootfs, ['CMD ["sh"]']);
    const bindSrc = await mkdtemp(join(work, "bindsrc-"));
    await writeFile(join(bindSrc, "from-bind"), "bind\n");
    const vol = uniq("evilvol");
    t.after(async () => void (await docker(agent, ["volume", "rm", "-f", vol])));
    const c = uniq("evilmounts");
    removeAfter(t, c);
    const r = await docker(
      agent,
      [
        "run",
        "--name",
        c,
        "-v",
        `${vol}:/vol`,
        "-v",
        `${bindSrc}:/bound`,
        "-v",
        `${join(bindSrc, "from-bind")}:/data/file-bind`,
        image,
        "sh",
        "-c",
        "cat /etc/hostname /bound/from-bind /data/file-bind; grep -q ip6-localhost /etc/hosts && echo hosts-ok; echo in-vol > /vol/x; echo in-data > /data/y",
      ],
      { timeoutMs: 30_000 },
    );
    assert.deepEqual(await readdir(hostDir), ["keep"], `the host directory was changed (run: ${r.code} ${r.stdout} ${r.stderr})`);
    assert.equal(r.code, 0, r.stderr);
    const id = (await dockerOk(agent, ["inspect", "--format", "{{.Id}}", c])).trim();
    assert.equal(r.stdout, `${id.slice(0, 12)}\nbind\nbind\nhosts-ok\n`);
    const mp = (await dockerOk(agent, ["volume", "inspect", "--format", "{{.Mountpoint}}", vol])).trim();
    assert.equal(await readFile(join(mp, "x"), "utf8"), "in-vol\n");
    assert.deepEqual((await readdir(bindSrc)).sort(), ["from-bind"], "nothing but the file bind's source in the bound directory");
    // The symlink is the container's: it still points where the image said, inside the container.
    assert.equal((await dockerOk(agent, ["start", "-a", c])).includes("bind"), true);
    assert.equal(await readlink(join(rootfs, "data")), hostDir);
    assert.deepEqual(await readdir(hostDir), ["keep"]);
  });

  // ─── a dead monitor ──────────────────────────────────────────────────────────

  /** The conmon of a container (not of an exec session), by its `-c ID` and its own `-u ID`. */
  async function monitorOf(id: string): Promise<number> {
    const found = (await conmons()).find((c) => c.argv[c.argv.indexOf("-c") + 1] === id && c.argv[c.argv.indexOf("-u") + 1] === id);
    assert.ok(found, `no conmon of ${id.slice(0, 12)} is running`);
    return found.pid;
  }

  /** Whether `pid` is a live process (a zombie is not: it only waits for its reaper). */
  async function processAlive(pid: number): Promise<boolean> {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    if (!stat) return false;
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  }

  test("kill -9 of a container's conmon: Exited (255) at once, 'its monitor died'; stop, exec and rm act as on any exited container; nothing is left", async (t) => {
    const name = uniq("deadmon");
    removeAfter(t, name);
    const port = await freePort();
    const agentPid = agent.process.pid;
    const id = (
      await dockerOk(agent, ["run", "-d", "--name", name, "-p", `${port}:80`, "-v", "/anon", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"])
    ).trim();
    seenIds.add(id);
    const containerPid = Number((await dockerOk(agent, ["inspect", "--format", "{{.State.Pid}}", id])).trim());
    assert.ok(containerPid > 0 && (await processAlive(containerPid)));

    process.kill(await monitorOf(id), "SIGKILL");
    const status = await until(
      "docker ps -a to show the container as Exited (255)",
      async () => {
        const s = (await dockerOk(agent, ["ps", "-a", "--filter", `id=${id}`, "--format", "{{.Status}}"])).trim();
        return /^Exited \(255\)/.test(s) ? s : undefined;
      },
      15_000,
      agent,
    );
    assert.match(status, /^Exited \(255\)/);
    const state = JSON.parse(await dockerOk(agent, ["inspect", "--format", "{{json .State}}", id])) as {
      Status: string;
      ExitCode: number;
      Error: string;
      Running: boolean;
      Pid: number;
    };
    assert.equal(state.Status, "exited");
    assert.equal(state.ExitCode, 255);
    assert.equal(state.Running, false);
    assert.match(state.Error, /its monitor died/);
    // The container's processes did not outlive their monitor.
    await until("the container's process to end", async () => !(await processAlive(containerPid)), 10_000, agent);

    // As for any exited container: exec is refused with 409, stop is a no-op, rm (no -f) works.
    const ex = await docker(agent, ["exec", name, "true"], { timeoutMs: 20_000 });
    assert.notEqual(ex.code, 0);
    assert.match(ex.stderr, new RegExp(`[Cc]ontainer ${id} is not running`));
    assert.equal((await api(agent, "POST", `/containers/${id}/exec`, { Cmd: ["true"] })).status, 409);
    await dockerOk(agent, ["stop", name], { timeoutMs: 20_000 });
    await expectNoLeftovers(agent, seenIds, "after the monitor died");
    await dockerOk(agent, ["rm", "-v", name], { timeoutMs: 20_000 });
    await expectNoLeftovers(agent, seenIds, "after the container of the dead monitor was removed");
    assert.ok(!(await allContainerIds(agent)).includes(id));
    // The port is free again, and the agent is the same process.
    const again = uniq("deadmon-port");
    removeAfter(t, again);
    await dockerOk(agent, ["run", "-d", "--name", again, "-p", `${port}:80`, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    assert.equal(agent.process.pid, agentPid);
    assert.equal(agent.process.exitCode, null);
  });

  test("kill -9 of a container's conmon, then docker rm -f at once: the removal completes and nothing is left", async (t) => {
    const name = uniq("deadmon-rm");
    removeAfter(t, name);
    const id = (await dockerOk(agent, ["run", "-d", "--name", name, "busybox", "sleep", "300"])).trim();
    seenIds.add(id);
    process.kill(await monitorOf(id), "SIGKILL");
    const rmr = await docker(agent, ["rm", "-f", name], { timeoutMs: 20_000 });
    assert.equal(rmr.code, 0, `docker rm -f: ${rmr.stderr}`);
    assert.ok(!(await allContainerIds(agent)).includes(id));
    await expectNoLeftovers(agent, seenIds, "after rm -f of the container of a dead monitor");
  });

  test("a conmon killed while the agent is down: after the restart the container is Exited (255), its monitor died, and nothing is left", async (t) => {
    const name = uniq("deadmon-away");
    removeAfter(t, name);
    const id = (await dockerOk(agent, ["run", "-d", "--name", name, "busybox", "sleep", "300"])).trim();
    seenIds.add(id);
    const containerPid = Number((await dockerOk(agent, ["inspect", "--format", "{{.State.Pid}}", id])).trim());
    await agent.kill();
    process.kill(await monitorOf(id), "SIGKILL");
    await agent.restart();
    const state = JSON.parse(await dockerOk(agent, ["inspect", "--format", "{{json .State}}", id])) as { Status: string; ExitCode: number; Error: string };
    assert.deepEqual([state.Status, state.ExitCode], ["exited", 255]);
    assert.match(state.Error, /its monitor died/);
    await until("the container's process to end", async () => !(await processAlive(containerPid)), 10_000, agent);
    await expectNoLeftovers(agent, seenIds, "after the restart");
    await dockerOk(agent, ["rm", name]);
    await expectNoLeftovers(agent, seenIds, "after the removal");
  });

  test("kill -9 of conmon gives Exited (255) within a second, for a container this agent started and for one it adopted after a restart", async (t) => {
    const adopted = uniq("deadmon-adopted");
    const own = uniq("deadmon-own");
    const idle = uniq("deadmon-idle");
    removeAfter(t, adopted, own, idle);
    const run = async (name: string) => {
      const id = (await dockerOk(agent, ["run", "-d", "--name", name, "busybox", "sleep", "300"])).trim();
      seenIds.add(id);
      return id;
    };
    const adoptedId = await run(adopted);
    const idleId = await run(idle);
    await agent.kill();
    await agent.restart();
    const ownId = await run(own);
    for (const id of [adoptedId, ownId]) {
      const killedAt = Date.now();
      process.kill(await monitorOf(id), "SIGKILL");
      await until(
        `docker inspect to show ${id.slice(0, 12)} exited 255`,
        async () => {
          const s = JSON.parse(await dockerOk(agent, ["inspect", "--format", "{{json .State}}", id])) as { Status: string; ExitCode: number };
          return s.Status === "exited" && s.ExitCode === 255;
        },
        15_000,
        agent,
      );
      const state = JSON.parse(await dockerOk(agent, ["inspect", "--format", "{{json .State}}", id])) as { FinishedAt: string; Error: string };
      assert.match(state.Error, /its monitor died/);
      // FinishedAt is when the agent noticed (the monitor recorded nothing): the agent's clock, as the kill's.
      const noticedAfter = Date.parse(state.FinishedAt) - killedAt;
      t.diagnostic(`${id === ownId ? "own" : "adopted"} container: the monitor's death noticed ${noticedAfter} ms after the kill`);
      assert.ok(noticedAfter < 1000, `${id === ownId ? "own" : "adopted"} container: the monitor's death noticed after ${noticedAfter} ms`);
    }
    // The other adopted container is untouched and still watched: its normal end is recorded.
    assert.equal((await dockerOk(agent, ["inspect", "--format", "{{.State.Status}}", idleId])).trim(), "running");
    await dockerOk(agent, ["kill", idle]);
    assert.equal((await dockerOk(agent, ["wait", idle], { timeoutMs: 20_000 })).trim(), "137");
    await dockerOk(agent, ["rm", "-f", adopted, own, idle]);
    await expectNoLeftovers(agent, seenIds, "after the dead monitors' containers were removed");
  });

  test("a container with --restart always whose conmon is killed is started again under a new monitor", async (t) => {
    const name = uniq("deadmon-always");
    removeAfter(t, name);
    const id = (await dockerOk(agent, ["run", "-d", "--restart", "always", "--name", name, "busybox", "sleep", "300"])).trim();
    seenIds.add(id);
    const firstMonitor = await monitorOf(id);
    process.kill(firstMonitor, "SIGKILL");
    await until(
      "the container to run again under a new monitor",
      async () => {
        const s = JSON.parse(await dockerOk(agent, ["inspect", "--format", "{{json .State}}", id])) as { Status: string; Pid: number };
        if (s.Status !== "running" || !(await processAlive(s.Pid))) return undefined;
        const monitor = await monitorOf(id).catch(() => undefined);
        return monitor !== undefined && monitor !== firstMonitor;
      },
      15_000,
      agent,
    );
    assert.equal((await dockerOk(agent, ["inspect", "--format", "{{.RestartCount}}", id])).trim(), "1");
    await dockerOk(agent, ["exec", name, "true"]);
    await dockerOk(agent, ["rm", "-f", name]);
    await expectNoLeftovers(agent, seenIds, "after rm -f of the restarted container");
  });

  // ─── bad input ─────────────────────────────────────────────────────────────

  test("bad input gets Docker's status and message", async (t) => {
    const stopped = uniq("stopped");
    const running = uniq("running");
    removeAfter(t, stopped, running);
    const stoppedId = (await dockerOk(agent, ["create", "--name", stopped, "busybox", "true"])).trim();
    const runningId = (await dockerOk(agent, ["run", "-d", "--name", running, "busybox", "sleep", "300"])).trim();

    // exec into a stopped container: 409.
    let r = await docker(agent, ["exec", stopped, "true"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`Error response from daemon: [Cc]ontainer ${stoppedId} is not running`));
    let a = await api(agent, "POST", `/containers/${stopped}/exec`, { Cmd: ["true"] });
    assert.equal(a.status, 409);

    // Removing a running container: 409.
    r = await docker(agent, ["rm", running]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`You cannot remove a running container ${runningId}\\. Stop the container before attempting removal or force remove`));
    a = await api(agent, "DELETE", `/containers/${running}`);
    assert.equal(a.status, 409);

    // An unknown signal: 400, and the container keeps running.
    for (const sig of ["SIGNOPE", "99", "-1"]) {
      r = await docker(agent, ["kill", "-s", sig, running]);
      assert.notEqual(r.code, 0, sig);
      assert.match(r.stderr, new RegExp(`Invalid signal: ${sig}`));
    }
    a = await api(agent, "POST", `/containers/${running}/kill?signal=SIGNOPE`);
    assert.equal(a.status, 400);
    assert.equal((await dockerOk(agent, ["inspect", "--format", "{{.State.Status}}", running])).trim(), "running");

    // A bad --memory: too small (400, from the daemon) or not a size (refused by the CLI).
    r = await docker(agent, ["run", "--rm", "--memory", "1k", "busybox", "true"]);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /Error response from daemon: Minimum memory limit allowed is 6MB/);
    a = await api(agent, "POST", "/containers/create", { Image: "busybox", HostConfig: { Memory: 1024 } });
    assert.equal(a.status, 400);
    assert.equal(a.json.message, "Minimum memory limit allowed is 6MB");
    r = await docker(agent, ["run", "--rm", "--memory", "abc", "busybox", "true"]);
    assert.equal(r.code, 125);
    assert.match(r.stderr, /invalid argument "abc" for "-m, --memory" flag/);
    r = await docker(agent, ["run", "--rm", "--memory", "64m", "--memory-swap", "32m", "busybox", "true"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Minimum memoryswap limit should be larger than memory limit/);

    // A name already taken: 409.
    r = await docker(agent, ["create", "--name", stopped, "busybox", "true"]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `Conflict\\. The container name "/${stopped}" is already in use by container "${stoppedId}"\\. You have to remove \\(or rename\\) that container to be able to reuse that name\\.`,
      ),
    );
    a = await api(agent, "POST", `/containers/create?name=${stopped}`, { Image: "busybox" });
    assert.equal(a.status, 409);

    // --cpus: 0 means no limit (as in Docker); beyond the host's CPUs, or negative: 400.
    const ncpu = availableParallelism();
    const range = `Range of CPUs is from 0.01 to ${ncpu}.00, as there are only ${ncpu} CPUs available`;
    const zero = uniq("cpus0");
    removeAfter(t, zero);
    await dockerOk(agent, ["run", "-d", "--name", zero, "--cpus", "0", "busybox", "sleep", "300"]);
    assert.equal((await dockerOk(agent, ["inspect", "--format", "{{.HostConfig.NanoCpus}}", zero])).trim(), "0");
    const zeroId = (await dockerOk(agent, ["inspect", "--format", "{{.Id}}", zero])).trim();
    assert.equal((await readFile(`/sys/fs/cgroup/cpu/berth/${zeroId}/cpu.cfs_quota_us`, "utf8")).trim(), "-1");
    for (const cpus of [String(ncpu + 1), "-1"]) {
      r = await docker(agent, ["run", "--rm", "--cpus", cpus, "busybox", "true"]);
      assert.equal(r.code, 125, `--cpus ${cpus}`);
      assert.ok(r.stderr.includes(`Error response from daemon: ${range}`), `--cpus ${cpus}: ${r.stderr}`);
    }
    a = await api(agent, "POST", "/containers/create", { Image: "busybox", HostConfig: { NanoCpus: (ncpu + 1) * 1e9 } });
    assert.equal(a.status, 400);
    assert.equal(a.json.message, range);

    // Unknown containers and images: 404.
    r = await docker(agent, ["start", "no-such-container-here"]);
    assert.match(r.stderr, /No such container: no-such-container-here/);
    a = await api(agent, "POST", "/containers/no-such-container-here/stop");
    assert.equal(a.status, 404);
    a = await api(agent, "POST", "/containers/create", { Image: "no-such-image-here:1" });
    assert.equal(a.status, 404);
    // Nothing was created by the refused requests.
    const names = (await dockerOk(agent, ["ps", "-a", "--format", "{{.Names}}"])).trim().split("\n");
    assert.deepEqual(names.filter((n) => n === stopped || n === running || n === zero).sort(), [running, stopped, zero].sort());
    assert.equal(names.length, 3, names.join(" "));
  });
});
