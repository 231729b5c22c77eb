// Integration tests of the network manager on the default bridge (root only): real network
// namespaces, veths, iptables rules and traffic with busybox. Every test has its own bridge,
// subnet, chain prefix and directories (testing.ts) and a cleanup registered before setup.
import assert from "node:assert/strict";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { isEngineError } from "../errors.ts";
import { run } from "./exec.ts";
import { deleteLinks, listLinks } from "./netns.ts";
import { eventually, freePort, hostAddress, httpGet, netTestEnv, udpAsk, udpEchoScript, type NetTestEnv } from "./testing.ts";

/** Starts busybox httpd on port 80 inside a namespace, serving `body`. */
async function serveHttp(env: NetTestEnv, netnsPath: string, body: string): Promise<void> {
  const www = join(env.dir, `www-${Math.random().toString(16).slice(2)}`);
  await mkdir(www);
  await writeFile(join(www, "index.html"), body);
  env.spawnIn(netnsPath, ["busybox", "httpd", "-f", "-p", "80", "-h", www]);
  await eventually(async () => {
    const r = await env.execIn(netnsPath, ["timeout", "2", "busybox", "wget", "-q", "-O", "-", "http://127.0.0.1/"]);
    if (r.stdout !== body) throw new Error(`httpd not up: ${r.stderr}`);
  });
}

/** busybox wget inside a namespace (its -T option crashes this busybox build: `timeout` instead). */
async function wgetIn(env: NetTestEnv, netnsPath: string, url: string, seconds = 5): Promise<string> {
  const r = await env.execIn(netnsPath, ["timeout", String(seconds), "busybox", "wget", "-q", "-O", "-", url]);
  if (r.exitCode !== 0) throw new Error(`wget ${url} failed: ${r.stderr.trim()}`);
  return r.stdout;
}

async function ping(env: NetTestEnv, netnsPath: string, target: string): Promise<boolean> {
  return (await env.execIn(netnsPath, ["busybox", "ping", "-c", "1", "-W", "2", target])).exitCode === 0;
}

test("two containers on the default bridge: distinct addresses, reach each other and the host; NAT, forwarding, jumps in place", async (t) => {
  const env = await netTestEnv(t);
  const a = await env.m.attach(await env.request("a"));
  const b = await env.m.attach(await env.request("b"));
  const [ea, eb] = [a.endpoints[0]!, b.endpoints[0]!];
  assert.notEqual(ea.ipAddress, eb.ipAddress);
  const net = await env.m.inspect("bridge");
  assert.equal(net.subnet, env.opts.defaultSubnet);
  assert.equal(ea.gateway, net.gateway);
  assert.equal(ea.networkName, "bridge");
  assert.match(ea.macAddress, /^02:42:/);
  assert.deepEqual(Object.keys(net.containers).length, 2);

  // Interfaces: eth0 with the lease inside, host ends on our bridge, default route.
  const addr = await env.execIn(a.netnsPath!, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
  assert.match(addr.stdout, new RegExp(`inet ${ea.ipAddress.replace(/\./g, "\\.")}/${ea.prefixLen}`));
  assert.match((await env.execIn(a.netnsPath!, ["ip", "route", "show", "default"])).stdout, new RegExp(`default via ${ea.gateway}`));
  assert.equal((await env.bridgePorts()).length, 2);

  assert.ok(await ping(env, a.netnsPath!, eb.ipAddress), "a pings b");
  assert.ok(await ping(env, b.netnsPath!, ea.ipAddress), "b pings a");
  assert.ok(await ping(env, a.netnsPath!, ea.gateway), "a pings the host's bridge address");

  // A service on the host, reached from the container through the gateway and the host's own address.
  const srv = createServer((s) => s.end("hello from host\n"));
  t.after(() => new Promise((r) => srv.close(r)));
  await new Promise<void>((r) => srv.listen(0, "0.0.0.0", () => r()));
  const port = (srv.address() as { port: number }).port;
  const nc = await env.execIn(a.netnsPath!, ["busybox", "nc", "-w", "3", ea.gateway, String(port)]);
  assert.equal(nc.stdout, "hello from host\n");
  const hostIp = await hostAddress();
  if (hostIp) assert.equal((await env.execIn(b.netnsPath!, ["busybox", "nc", "-w", "3", hostIp, String(port)])).stdout, "hello from host\n");

  const rules = await env.ourRules();
  const P = env.opts.chainPrefix;
  assert.ok(rules.includes(`-A ${P}-POSTROUTING -s ${env.opts.defaultSubnet} ! -o ${env.opts.bridgeName} -j MASQUERADE`), "outbound NAT");
  for (const jump of [
    `-A PREROUTING -m addrtype --dst-type LOCAL -j ${P}-PREROUTING`,
    `-A OUTPUT -m addrtype --dst-type LOCAL -j ${P}-OUTPUT`,
    `-A POSTROUTING -j ${P}-POSTROUTING`,
    `-A FORWARD -j ${P}-FORWARD`,
    `-A INPUT -j ${P}-INPUT`,
  ]) {
    assert.ok(rules.includes(jump), jump);
  }
  assert.equal((await readFile("/proc/sys/net/ipv4/ip_forward", "utf8")).trim(), "1");
  assert.equal((await readFile(`/proc/sys/net/ipv4/conf/${env.opts.bridgeName}/route_localnet`, "utf8")).trim(), "1");

  // hosts and resolv.conf: own entry, no peers on the default bridge (as in Docker); no 127.x nameserver.
  const req = await env.request("c", { hostname: "web.example.com" });
  const c = await env.m.attach(req);
  const hosts = await readFile(req.hostsPath, "utf8");
  assert.match(hosts, /^127\.0\.0\.1\tlocalhost$/m);
  assert.ok(hosts.endsWith(`${c.endpoints[0]!.ipAddress}\tweb.example.com web\n`), hosts);
  assert.doesNotMatch(hosts, new RegExp(ea.ipAddress.replace(/\./g, "\\.")));
  assert.doesNotMatch(await readFile(req.resolvConfPath, "utf8"), /nameserver 127\./);
});

test("a published tcp port serves busybox httpd to the host (127.0.0.1 and its addresses), an external namespace and other containers", async (t) => {
  const env = await netTestEnv(t);
  const ext = await env.external();
  const fixed = await freePort();
  const web = await env.m.attach(
    await env.request("web", {
      ports: [
        { containerPort: 80, protocol: "tcp", hostIp: "", hostPort: 0 },
        { containerPort: 80, protocol: "tcp", hostIp: ext.hostSideIp, hostPort: fixed },
      ],
    }),
  );
  const [any, bound] = web.ports as [(typeof web.ports)[0], (typeof web.ports)[0]];
  assert.ok(any.hostPort > 0, "hostPort 0 resolved");
  assert.equal(bound.hostPort, fixed);
  assert.equal(bound.hostIp, ext.hostSideIp);
  await serveHttp(env, web.netnsPath!, "it works\n");

  assert.equal(await httpGet("127.0.0.1", any.hostPort), "it works\n", "host via 127.0.0.1");
  assert.equal(await httpGet(ext.hostSideIp, any.hostPort), "it works\n", "host via one of its addresses");
  const hostIp = await hostAddress();
  if (hostIp) assert.equal(await httpGet(hostIp, any.hostPort), "it works\n", "host via its main address");
  assert.equal(await wgetIn(env, ext.netnsPath, `http://${ext.hostSideIp}:${any.hostPort}/`), "it works\n", "external namespace");
  assert.equal(await wgetIn(env, ext.netnsPath, `http://${ext.hostSideIp}:${fixed}/`), "it works\n", "external namespace, ip:host:container");
  await assert.rejects(httpGet("127.0.0.1", fixed, 1000), "a port bound to one address is not published on 127.0.0.1");

  // Hairpin: another container, and the container itself, through a host address.
  const other = await env.m.attach(await env.request("other"));
  assert.equal(await wgetIn(env, other.netnsPath!, `http://${ext.hostSideIp}:${any.hostPort}/`), "it works\n", "another container");
  assert.equal(await wgetIn(env, web.netnsPath!, `http://${ext.hostSideIp}:${any.hostPort}/`), "it works\n", "the container itself");

  const rules = await env.ourRules();
  const ip = web.endpoints[0]!.ipAddress;
  const P = env.opts.chainPrefix;
  assert.ok(rules.includes(`-A ${P}-PREROUTING -p tcp -m tcp --dport ${any.hostPort} -j DNAT --to-destination ${ip}:80`));
  assert.ok(rules.includes(`-A ${P}-OUTPUT -d ${ext.hostSideIp}/32 -p tcp -m tcp --dport ${fixed} -j DNAT --to-destination ${ip}:80`));
});

test("a published udp port answers from the host", async (t) => {
  const env = await netTestEnv(t);
  const c = await env.m.attach(await env.request("dns", { ports: [{ containerPort: 5353, protocol: "udp", hostIp: "", hostPort: 0 }] }));
  const hostPort = c.ports[0]!.hostPort;
  env.spawnIn(c.netnsPath!, udpEchoScript(5353));
  assert.equal(await eventually(() => udpAsk("127.0.0.1", hostPort, "ping")), "echo:ping");
  const hostIp = await hostAddress();
  if (hostIp) assert.equal(await eventually(() => udpAsk(hostIp, hostPort, "pong")), "echo:pong");
  assert.ok(
    (await env.ourRules()).includes(
      `-A ${env.opts.chainPrefix}-PREROUTING -p udp -m udp --dport ${hostPort} -j DNAT --to-destination ${c.endpoints[0]!.ipAddress}:5353`,
    ),
  );
});

test("a port published on 127.0.0.1 is reachable from the host only", async (t) => {
  const env = await netTestEnv(t);
  const ext = await env.external();
  const port = await freePort();
  const c = await env.m.attach(await env.request("local", { ports: [{ containerPort: 80, protocol: "tcp", hostIp: "127.0.0.1", hostPort: port }] }));
  await serveHttp(env, c.netnsPath!, "local only\n");
  assert.equal(await httpGet("127.0.0.1", port), "local only\n");
  await assert.rejects(wgetIn(env, ext.netnsPath, `http://${ext.hostSideIp}:${port}/`, 2), "not through the host's other addresses");
  // Even a packet addressed to 127.0.0.1 arriving from the external namespace is not forwarded.
  await run("nsenter", [`--net=${ext.netnsPath}`, "ip", "route", "add", "127.0.0.99/32", "via", ext.hostSideIp, "dev", "eth0", "onlink"]).catch(
    () => undefined,
  );
  await assert.rejects(wgetIn(env, ext.netnsPath, `http://127.0.0.99:${port}/`, 2));
  const rules = await env.ourRules();
  assert.ok(
    !rules.some((r) => r.startsWith(`-A ${env.opts.chainPrefix}-PREROUTING`) && r.includes(`--dport ${port}`)),
    "no PREROUTING DNAT for a loopback binding",
  );
});

test("a host port in use is a clear Conflict and leaves nothing behind", async (t) => {
  const env = await netTestEnv(t);
  const srv = createServer();
  t.after(() => new Promise((r) => srv.close(r)));
  await new Promise<void>((r) => srv.listen(0, "0.0.0.0", () => r()));
  const busy = (srv.address() as { port: number }).port;
  const req = await env.request("clash", { ports: [{ containerPort: 80, protocol: "tcp", hostIp: "", hostPort: busy }] });
  await assert.rejects(
    env.m.attach(req),
    (e: unknown) => isEngineError(e, "Conflict") && e.message.includes(`Bind for 0.0.0.0:${busy} failed: port is already allocated`),
  );
  assert.deepEqual(await env.bridgePorts(), []);
  assert.deepEqual(await env.netnsFiles(), []);
  assert.deepEqual(await env.stateFiles(), []);
  assert.ok(!(await env.ourRules()).some((r) => r.includes(`--dport ${busy}`)));
  assert.deepEqual((await env.m.inspect("bridge")).containers, {});

  // Taken by another container: same error, the first container untouched; a failure after the
  // first port was held releases it.
  const port = await freePort();
  const first = await env.m.attach(await env.request("first", { ports: [{ containerPort: 80, protocol: "tcp", hostIp: "", hostPort: port }] }));
  const second = await env.request("second", { ports: [{ containerPort: 80, protocol: "tcp", hostIp: "127.0.0.1", hostPort: port }] });
  await assert.rejects(
    env.m.attach(second),
    (e: unknown) => isEngineError(e, "Conflict") && e.message.includes(`Bind for 127.0.0.1:${port} failed: port is already allocated`),
  );
  const spare = await freePort();
  const third = await env.request("third", {
    ports: [
      { containerPort: 81, protocol: "tcp", hostIp: "", hostPort: spare },
      { containerPort: 82, protocol: "tcp", hostIp: "", hostPort: busy },
    ],
  });
  await assert.rejects(env.m.attach(third), (e: unknown) => isEngineError(e, "Conflict"));
  const probe = createServer();
  await new Promise<void>((resolve, reject) => probe.once("error", reject).listen(spare, "0.0.0.0", () => resolve()));
  await new Promise((r) => probe.close(r));
  assert.equal((await env.bridgePorts()).length, 1);
  assert.deepEqual(await env.netnsFiles(), [first.netnsPath!.split("/").pop()]);
  assert.equal((await env.stateFiles()).length, 1);
  // Bad input is InvalidArgument.
  await assert.rejects(env.m.attach(await env.request("bad", { ports: [{ containerPort: 0, protocol: "tcp", hostIp: "", hostPort: 1 }] })), (e: unknown) =>
    isEngineError(e, "InvalidArgument"),
  );
  await assert.rejects(
    env.m.attach(await env.request("bad", { ports: [{ containerPort: 80, protocol: "sctp" as "tcp", hostIp: "", hostPort: 1 }] })),
    (e: unknown) => isEngineError(e, "InvalidArgument"),
  );
  await assert.rejects(env.m.attach({ ...(await env.request("bad")), containerId: "xyz" }), (e: unknown) => isEngineError(e, "InvalidArgument"));
});

test("detach removes rules, veth, namespace and lease, and is idempotent", async (t) => {
  const env = await netTestEnv(t);
  const req = await env.request("gone", { ports: [{ containerPort: 80, protocol: "tcp", hostIp: "", hostPort: 0 }] });
  const c = await env.m.attach(req);
  const before = await env.ourRules();
  assert.ok(before.some((r) => r.includes(`--dport ${c.ports[0]!.hostPort}`)));
  await env.m.detach(req.containerId);
  const after = await env.ourRules();
  assert.ok(!after.some((r) => r.includes(c.endpoints[0]!.ipAddress)), "no rule names the address");
  // The kernel deletes the veth with its namespace, in the background.
  await eventually(async () => assert.deepEqual(await env.bridgePorts(), []), 2000);
  assert.deepEqual(await env.netnsFiles(), []);
  assert.deepEqual(await env.stateFiles(), []);
  assert.deepEqual((await env.m.inspect("bridge")).containers, {});
  // The host port is free again.
  const srv = createServer();
  await new Promise<void>((resolve, reject) => srv.once("error", reject).listen(c.ports[0]!.hostPort, "0.0.0.0", () => resolve()));
  await new Promise((r) => srv.close(r));
  await env.m.detach(req.containerId);
  await env.m.detach(env.containerId());
});

test("reconcileRules() puts back flushed chains, deleted chains and jump rules", async (t) => {
  const env = await netTestEnv(t);
  const c = await env.m.attach(await env.request("r", { ports: [{ containerPort: 80, protocol: "tcp", hostIp: "", hostPort: 0 }] }));
  await serveHttp(env, c.netnsPath!, "back\n");
  const want = (await env.ourRules()).sort();
  const P = env.opts.chainPrefix;
  await run("iptables", ["-t", "nat", "-F", `${P}-PREROUTING`]);
  await run("iptables", ["-t", "nat", "-F", `${P}-OUTPUT`]);
  await run("iptables", ["-F", `${P}-FORWARD`]);
  await run("iptables", ["-t", "nat", "-D", "POSTROUTING", "-j", `${P}-POSTROUTING`]);
  await run("iptables", ["-D", "INPUT", "-j", `${P}-INPUT`]);
  await run("iptables", ["-F", `${P}-INPUT`]);
  await run("iptables", ["-X", `${P}-INPUT`]);
  assert.notDeepEqual((await env.ourRules()).sort(), want);
  await assert.rejects(httpGet("127.0.0.1", c.ports[0]!.hostPort, 1000));
  await env.m.reconcileRules();
  assert.deepEqual((await env.ourRules()).sort(), want);
  assert.equal(await httpGet("127.0.0.1", c.ports[0]!.hostPort), "back\n");
  // Nothing to do the second time: the rules are compared, not rewritten.
  await env.m.reconcileRules();
  assert.deepEqual((await env.ourRules()).sort(), want);
});

test("init() after a crash: dead containers lose everything, live ones keep their lease and get veth and rules back", async (t) => {
  const env = await netTestEnv(t);
  const dead = await env.m.attach(await env.request("dead", { ports: [{ containerPort: 80, protocol: "tcp", hostIp: "", hostPort: 0 }] }));
  const liveReq = await env.request("live", { ports: [{ containerPort: 80, protocol: "tcp", hostIp: "", hostPort: 0 }] });
  const live = await env.m.attach(liveReq);
  await serveHttp(env, live.netnsPath!, "survivor\n");
  const deadIp = dead.endpoints[0]!.ipAddress;
  const liveIp = live.endpoints[0]!.ipAddress;
  // The crash: the manager is dropped without detach; then the firewall is flushed and the live
  // container's veth disappears too.
  const P = env.opts.chainPrefix;
  await run("iptables", ["-t", "nat", "-F", `${P}-PREROUTING`]);
  await run("iptables", ["-t", "nat", "-F", `${P}-OUTPUT`]);
  assert.equal((await env.bridgePorts()).length, 2);

  const m2 = env.newManager();
  await m2.init([liveReq.containerId]);
  assert.equal((await env.stateFiles()).length, 1);
  assert.deepEqual(await env.netnsFiles(), [liveReq.containerId]);
  assert.equal((await env.bridgePorts()).length, 1);
  const rules = await env.ourRules();
  assert.ok(!rules.some((r) => r.includes(deadIp)), "the dead container's rules are gone");
  assert.ok(rules.includes(`-A ${P}-PREROUTING -p tcp -m tcp --dport ${live.ports[0]!.hostPort} -j DNAT --to-destination ${liveIp}:80`));
  assert.equal(await httpGet("127.0.0.1", live.ports[0]!.hostPort), "survivor\n");
  const net = await m2.inspect("bridge");
  assert.deepEqual(Object.keys(net.containers), [liveReq.containerId]);
  // The live lease is kept: a new container gets another address.
  const fresh = await m2.attach(await env.request("fresh"));
  assert.notEqual(fresh.endpoints[0]!.ipAddress, liveIp);

  // A lost veth of a live container is re-created from its record.
  const record = JSON.parse(await readFile(join(env.opts.stateDir, "containers", `${liveReq.containerId}.json`), "utf8")) as {
    endpoints: { hostVeth: string }[];
  };
  await run("ip", ["link", "del", record.endpoints[0]!.hostVeth]);
  assert.equal((await env.bridgePorts()).length, 1);
  await assert.rejects(httpGet("127.0.0.1", live.ports[0]!.hostPort, 1000));
  const m3 = env.newManager();
  await m3.init([liveReq.containerId]);
  assert.equal((await env.bridgePorts()).length, 1, "only the live container's veth (fresh is not live)");
  assert.equal(await eventually(() => httpGet("127.0.0.1", live.ports[0]!.hostPort)), "survivor\n");

  // And with no live container at all, nothing of ours is left but the bridge and its chains.
  const m4 = env.newManager();
  await m4.init([]);
  assert.deepEqual(await env.bridgePorts(), []);
  assert.deepEqual(await env.netnsFiles(), []);
  assert.deepEqual(await env.stateFiles(), []);
  assert.ok(!(await env.ourRules()).some((r) => r.includes("-j DNAT")));
});

test("50 attach/detach cycles leak no interface, namespace, rule, lease or port", async (t) => {
  const env = await netTestEnv(t);
  const rulesBefore = (await env.ourRules()).length;
  const fdsBefore = (await readdir("/proc/self/fd")).length;
  const seen = new Set<string>();
  for (let i = 0; i < 50; i++) {
    const req = await env.request(`cycle${i}`, { ports: [{ containerPort: 80, protocol: i % 2 ? "udp" : "tcp", hostIp: "", hostPort: 0 }] });
    const c = await env.m.attach(req);
    seen.add(c.endpoints[0]!.ipAddress);
    await env.m.detach(req.containerId);
  }
  assert.ok(seen.size > 1);
  assert.equal((await env.ourRules()).length, rulesBefore);
  await eventually(async () => {
    // This manager's veths are the ports of its own bridge; other agents on the host may have theirs.
    assert.deepEqual(await env.bridgePorts(), []);
  }, 3000);
  assert.deepEqual(await env.netnsFiles(), []);
  assert.deepEqual(await env.stateFiles(), []);
  assert.deepEqual((await env.m.inspect("bridge")).containers, {});
  assert.ok((await readdir("/proc/self/fd")).length <= fdsBefore + 2, "no held host port (socket) is left open");
  // Every address is free again: a /24 has room for all of them at once.
  const many = [];
  for (let i = 0; i < 20; i++) many.push(await env.m.attach(await env.request(`again${i}`)));
  assert.equal(new Set(many.map((c) => c.endpoints[0]!.ipAddress)).size, 20);
});

test("init() removes namespaces and veths that no record names (a crash in the middle of attach)", async (t) => {
  const env = await netTestEnv(t);
  const live = await env.m.attach(await env.request("keep"));
  const stray = join(env.opts.netnsDir, env.containerId());
  await writeFile(stray, "");
  await run("unshare", [`--net=${stray}`, "true"]);
  const veth = `berth${Math.random().toString(16).slice(2, 12).padEnd(10, "0")}`;
  t.after(() => deleteLinks([veth]));
  await run("ip", ["link", "add", veth, "type", "veth", "peer", "name", `${veth.slice(0, 13)}p`]);
  await run("ip", ["link", "set", veth, "master", env.opts.bridgeName]);
  assert.equal((await env.bridgePorts()).length, 2);
  const m2 = env.newManager();
  await m2.init([live.netnsPath!.split("/").pop()!]);
  assert.deepEqual(await env.netnsFiles(), [live.netnsPath!.split("/").pop()]);
  assert.equal((await env.bridgePorts()).length, 1);
  assert.ok(!(await listLinks()).some((l) => l.ifname === veth));
});

test("none mode: a namespace with only lo; host mode: no namespace, the host's files", async (t) => {
  const env = await netTestEnv(t);
  const reqNone = await env.request("isolated", { networkMode: "none", ports: [{ containerPort: 80, protocol: "tcp", hostIp: "", hostPort: 0 }] });
  const none = await env.m.attach(reqNone);
  assert.ok(none.netnsPath);
  assert.deepEqual(none.ports, []);
  assert.equal(none.endpoints[0]!.networkName, "none");
  const links = JSON.parse((await env.execIn(none.netnsPath, ["ip", "-j", "link", "show"])).stdout) as { ifname: string; flags: string[] }[];
  assert.deepEqual(
    links.map((l) => l.ifname),
    ["lo"],
  );
  assert.ok(links[0]!.flags.includes("UP"));
  assert.equal(await readFile(reqNone.hostsPath, "utf8").then((h) => h.split("\n").filter(Boolean).length), 6, "localhost lines only");

  const reqHost = await env.request("hosty", { networkMode: "host" });
  const host = await env.m.attach(reqHost);
  assert.equal(host.netnsPath, undefined);
  assert.equal(host.endpoints[0]!.networkName, "host");
  assert.equal(await readFile(reqHost.resolvConfPath, "utf8"), await readFile("/etc/resolv.conf", "utf8"));
  assert.equal(await readFile(reqHost.hostsPath, "utf8"), await readFile("/etc/hosts", "utf8"));
  assert.deepEqual(Object.keys((await env.m.inspect("host")).containers), [reqHost.containerId]);
  assert.deepEqual(Object.keys((await env.m.inspect("none")).containers), [reqNone.containerId]);

  await env.m.detach(reqNone.containerId);
  await env.m.detach(reqHost.containerId);
  assert.deepEqual(await env.netnsFiles(), []);
  assert.deepEqual(await env.stateFiles(), []);
});
