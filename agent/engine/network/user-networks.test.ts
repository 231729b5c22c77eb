// Integration tests of user-defined bridge networks (root only): name resolution through the
// hosts files the manager maintains, connect/disconnect, isolation, and the network lifecycle.
// Each test has its own manager, bridge, subnet pool and chain prefix (testing.ts).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createSocket } from "node:dgram";
import { promisify } from "node:util";
import { lookup } from "node:dns/promises";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { isEngineError } from "../errors.ts";
import { overlaps, parseSubnet } from "./ipam.ts";
import { listLinks } from "./netns.ts";
import { NetworkManager } from "./network-manager.ts";
import { AARDVARK_BINS } from "./dns.ts";
import { existsSync } from "node:fs";
import { eventually, netTestEnv, type NetTestEnv } from "./testing.ts";

const run = promisify(execFile);
const is = (kind: string, re?: RegExp) => (e: unknown) => isEngineError(e) && e.kind === kind && (!re || re.test(e.message));

/** busybox ping inside a namespace with `hostsPath` bind-mounted on /etc/hosts (private mount namespace). */
async function pingByName(env: NetTestEnv, netnsPath: string, hostsPath: string, name: string): Promise<boolean> {
  const r = await env.execIn(netnsPath, ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec busybox ping -c 1 -W 2 "$1"', hostsPath, name]);
  return r.exitCode === 0;
}

async function ping(env: NetTestEnv, netnsPath: string, ip: string): Promise<boolean> {
  return (await env.execIn(netnsPath, ["busybox", "ping", "-c", "1", "-W", "1", ip])).exitCode === 0;
}

test("members of a user network resolve each other by name; connect and disconnect update everyone's hosts file", async (t) => {
  const env = await netTestEnv(t);
  const net = await env.m.createNetwork({ name: "appnet", labels: { team: "ops" } });
  assert.equal(net.driver, "bridge");
  assert.ok(overlaps(parseSubnet(net.subnet!), parseSubnet(env.opts.subnetPool!)), "subnet from the pool");
  assert.match(net.bridge!, /^berth-[0-9a-f]{9}$/);
  assert.ok((await listLinks()).some((l) => l.ifname === net.bridge));
  assert.equal((await env.m.inspect(net.id)).name, "appnet");
  assert.equal((await env.m.inspect(net.id.slice(0, 12))).name, "appnet");
  assert.deepEqual((await env.m.inspect("appnet")).labels, { team: "ops" });

  const alphaReq = await env.request("alpha", { networkMode: "appnet", aliases: ["a1"] });
  const betaReq = await env.request("beta", { networkMode: net.id });
  const alpha = await env.m.attach(alphaReq);
  const beta = await env.m.attach(betaReq);
  const [ipA, ipB] = [alpha.endpoints[0]!.ipAddress, beta.endpoints[0]!.ipAddress];
  assert.deepEqual(alpha.endpoints[0]!.aliases, ["a1"]);
  assert.equal(alpha.endpoints[0]!.networkName, "appnet");

  const hostsA = await readFile(alphaReq.hostsPath, "utf8");
  const hostsB = await readFile(betaReq.hostsPath, "utf8");
  assert.match(hostsA, new RegExp(`^${ipB}\\tbeta `, "m"), hostsA);
  assert.match(hostsB, new RegExp(`^${ipA}\\talpha a1 `, "m"), hostsB);
  assert.ok(await pingByName(env, alpha.netnsPath!, alphaReq.hostsPath, "beta"), "alpha → beta by name");
  assert.ok(await pingByName(env, beta.netnsPath!, betaReq.hostsPath, "a1"), "beta → alpha by alias");

  await assert.rejects(
    env.m.removeNetwork("appnet"),
    is("Conflict", new RegExp(`error while removing network: network appnet id ${net.id} has active endpoints`)),
  );

  // A container on the default bridge is isolated from the user network until it connects.
  const gammaReq = await env.request("gamma");
  const gamma = await env.m.attach(gammaReq);
  assert.equal(await ping(env, gamma.netnsPath!, ipA), false, "networks are isolated");
  const ep = await env.m.connect(gammaReq.containerId, { network: "appnet", aliases: ["g"] });
  assert.equal(ep.networkId, net.id);
  const eth1 = await env.execIn(gamma.netnsPath!, ["ip", "-4", "-o", "addr", "show", "dev", "eth1"]);
  assert.match(eth1.stdout, new RegExp(`inet ${ep.ipAddress}/`));
  assert.match((await env.execIn(gamma.netnsPath!, ["ip", "route", "show", "default"])).stdout, /dev eth0/, "the default route stays on eth0");
  assert.ok(await pingByName(env, gamma.netnsPath!, gammaReq.hostsPath, "alpha"), "gamma → alpha by name after connect");
  assert.match(await readFile(alphaReq.hostsPath, "utf8"), new RegExp(`^${ep.ipAddress}\\tgamma g `, "m"));
  assert.equal(Object.keys((await env.m.inspect("appnet")).containers).length, 3);
  await assert.rejects(env.m.connect(gammaReq.containerId, { network: "appnet" }), is("AlreadyExists"));
  await assert.rejects(env.m.connect(gammaReq.containerId, { network: "host" }), is("Conflict"));
  await assert.rejects(env.m.connect(gammaReq.containerId, { network: "nonexistent" }), is("NotFound", /network nonexistent not found/));

  await env.m.disconnect(gammaReq.containerId, "appnet");
  assert.notEqual((await env.execIn(gamma.netnsPath!, ["ip", "link", "show", "eth1"])).exitCode, 0, "eth1 is gone");
  assert.doesNotMatch(await readFile(alphaReq.hostsPath, "utf8"), /gamma/);
  assert.doesNotMatch(await readFile(gammaReq.hostsPath, "utf8"), /alpha/);
  assert.equal(await ping(env, gamma.netnsPath!, ipA), false);
  await assert.rejects(env.m.disconnect(gammaReq.containerId, "appnet"), is("Conflict", /is not connected to network appnet/));
  await env.m.disconnect(env.containerId(), "appnet", true);

  // A member leaving disappears from the others' files.
  await env.m.detach(alphaReq.containerId);
  assert.doesNotMatch(await readFile(betaReq.hostsPath, "utf8"), /alpha/);
  await env.m.detach(betaReq.containerId);
  await env.m.detach(gammaReq.containerId);
  await env.m.removeNetwork("appnet");
  await eventually(async () => assert.ok(!(await listLinks()).some((l) => l.ifname === net.bridge)));
  assert.ok(!(await env.ourRules()).some((r) => r.includes(net.bridge!)));
  await assert.rejects(env.m.inspect("appnet"), is("NotFound"));
});

test("network lifecycle: predefined networks, validation, internal networks, prune, persistence", async (t) => {
  const env = await netTestEnv(t);
  const names = (await env.m.list()).map((n) => `${n.name}/${n.driver}`);
  assert.deepEqual(names.sort(), ["bridge/bridge", "host/host", "none/null"]);
  for (const n of ["bridge", "host", "none"])
    await assert.rejects(env.m.removeNetwork(n), is("Conflict", new RegExp(`^${n} is a pre-defined network and cannot be removed$`)));

  const a = await env.m.createNetwork({ name: "one" });
  const b = await env.m.createNetwork({ name: "two" });
  assert.equal(overlaps(parseSubnet(a.subnet!), parseSubnet(b.subnet!)), false);
  await assert.rejects(env.m.createNetwork({ name: "one" }), is("AlreadyExists", /network with name one already exists/));
  await assert.rejects(env.m.createNetwork({ name: "three", subnet: a.subnet! }), is("Conflict", /Pool overlaps/));
  await assert.rejects(env.m.createNetwork({ name: "three", subnet: "10.1.2.3/24" }), is("InvalidArgument"));
  await assert.rejects(env.m.createNetwork({ name: "three", subnet: "10.1.2.0/24", gateway: "10.1.3.1" }), is("InvalidArgument"));
  // Docker takes any non-empty name, spaces too.
  await assert.rejects(env.m.createNetwork({ name: " " }), is("InvalidArgument"));
  await assert.rejects(env.m.createNetwork({ name: "bridge" }), is("Conflict", /pre-defined/));
  const spaced = await env.m.createNetwork({ name: "my net!" });
  assert.equal((await env.m.inspect("my net!")).id, spaced.id);
  await env.m.removeNetwork("my net!");
  await assert.rejects(env.m.createNetwork({ name: "three", driver: "overlay" as "bridge" }), is("NotFound", /plugin "overlay" not found/));
  await assert.rejects(env.m.inspect("nope"), is("NotFound", /network nope not found/));

  // Explicit subnet and gateway; internal: no outbound NAT, no default route, no traffic out.
  const base = parseSubnet(env.opts.subnetPool!);
  const third = (base.base + 255 * 256) >>> 0;
  const subnet = `${third >>> 24}.${(third >>> 16) & 255}.${(third >>> 8) & 255}.0/24`;
  const gateway = subnet.replace(/0\/24$/, "254");
  const internal = await env.m.createNetwork({ name: "secret", subnet, gateway, internal: true });
  assert.equal(internal.gateway, gateway);
  const rules = await env.ourRules();
  const P = env.opts.chainPrefix;
  assert.ok(!rules.includes(`-A ${P}-POSTROUTING -s ${subnet} ! -o ${internal.bridge} -j MASQUERADE`));
  assert.ok(rules.includes(`-A ${P}-FORWARD -i ${internal.bridge} -j DROP`));
  assert.ok(rules.includes(`-A ${P}-POSTROUTING -s ${a.subnet} ! -o ${a.bridge} -j MASQUERADE`));
  const inner = await env.request("inner", { networkMode: "secret", ports: [{ containerPort: 80, protocol: "tcp", hostIp: "", hostPort: 0 }] });
  const c = await env.m.attach(inner);
  assert.deepEqual(c.ports, [], "nothing is published from an internal network");
  assert.equal((await env.execIn(c.netnsPath!, ["ip", "route", "show", "default"])).stdout.trim(), "");
  assert.ok(await ping(env, c.netnsPath!, gateway), "the gateway (the host) is reachable");
  await assert.rejects(env.m.attach(await env.request("aliased", { aliases: ["x"] })), is("InvalidArgument", /only for containers in user defined networks/));

  // A new manager (agent restart) finds the same networks; prune removes the unused ones only.
  const m2 = env.newManager();
  await m2.init([inner.containerId]);
  assert.equal((await m2.inspect("one")).id, a.id);
  assert.equal((await m2.inspect("bridge")).id, (await env.m.inspect("bridge")).id);
  assert.deepEqual((await m2.prune()).sort(), ["one", "two"]);
  assert.deepEqual((await m2.list()).map((n) => n.name).sort(), ["bridge", "host", "none", "secret"]);
  await m2.detach(inner.containerId);
  assert.deepEqual(await m2.prune(), ["secret"]);
  await eventually(async () =>
    assert.ok(!(await listLinks()).some((l) => l.ifname.startsWith("berth-") && [a.bridge, b.bridge, internal.bridge].includes(l.ifname))),
  );
});

test("user networks: DNS by name, alias and short ID, one alias for several, other names forwarded; --ip, ip-range, options", async (t) => {
  assert.ok(
    AARDVARK_BINS.some((b) => existsSync(b)),
    "aardvark-dns is installed (scripts/debian-packages.txt)",
  );
  const env = await netTestEnv(t);
  const dnsDir = join(env.dir, "dns");
  const m = new NetworkManager({ ...env.opts, dnsDir });
  // By its command line, not its pid file: the environment's own clean-up may have removed the directory first.
  t.after(async () => {
    const found = await run("pgrep", ["-f", `--config ${join(dnsDir, "networks")} `]).catch(() => ({ stdout: "" }));
    for (const pid of found.stdout.split("\n").filter(Boolean)) process.kill(Number(pid), "SIGKILL");
  });
  await m.init([]);
  const subnet = env.opts.subnetPool!.replace(/\.\d+\/20$/, ".0/24").replace(/^(\d+\.\d+\.)(\d+)/, (_, a: string, b: string) => `${a}${Number(b) + 15}`);
  const gateway = subnet.replace(/0\/24$/, "1");
  const range = subnet.replace(/0\/24$/, "128/25");
  const net = await m.createNetwork({ name: "dns net", subnet, ipRange: range, options: { "com.example.opt": "1" } });
  assert.deepEqual(net.options, { "com.example.opt": "1" }, "only the user's options");
  assert.equal(net.ipRange, range);
  // Queries to the server pass the host's INPUT chain even where its policy is DROP (rules exactly as iptables-save prints them).
  const P = env.opts.chainPrefix;
  for (const proto of ["udp", "tcp"])
    assert.ok((await env.ourRules()).includes(`-A ${P}-INPUT -d ${gateway}/32 -i ${net.bridge} -p ${proto} -m ${proto} --dport 53 -j ACCEPT`), proto);

  const aReq = await env.request("alpha", { networkMode: "dns net", networks: [{ network: "dns net", aliases: ["pool"] }] });
  const bReq = await env.request("beta", {
    networkMode: "dns net",
    networks: [{ network: net.id, aliases: ["pool"], ipv4Address: subnet.replace(/0\/24$/, "10") }],
  });
  const a = await m.attach(aReq);
  const b = await m.attach(bReq);
  assert.ok(Number(a.endpoints[0]!.ipAddress.split(".")[3]) >= 128, "dynamic addresses from the ip-range");
  assert.equal(b.endpoints[0]!.ipAddress, subnet.replace(/0\/24$/, "10"), "--ip anywhere in the subnet");
  await assert.rejects(
    m.attach(await env.request("gamma", { networkMode: "dns net", networks: [{ network: "dns net", ipv4Address: b.endpoints[0]!.ipAddress }] })),
    is("Conflict", /Address already in use/),
  );
  await assert.rejects(
    m.attach(await env.request("delta", { networks: [{ network: "bridge", ipv4Address: "10.0.0.9" }] })),
    is("InvalidArgument", /user defined networks only/),
  );
  assert.equal(await readFile(aReq.resolvConfPath, "utf8").then((r) => /^nameserver (\S+)$/m.exec(r)?.[1]), gateway, "resolv.conf names the DNS server");

  const ask = async (name: string) => {
    const r = await env.execIn(a.netnsPath!, ["busybox", "nslookup", "-type=a", name, gateway]);
    return r.exitCode === 0 ? [...r.stdout.matchAll(/^Address:\s+(\d+\.\d+\.\d+\.\d+)$/gm)].map((x) => x[1]!).sort() : [];
  };
  const ipA = a.endpoints[0]!.ipAddress;
  const ipB = b.endpoints[0]!.ipAddress;
  assert.deepEqual(
    await eventually(async () => {
      const r = await ask("beta");
      assert.equal(r.length, 1);
      return r;
    }),
    [ipB],
  );
  assert.deepEqual(await ask(bReq.containerId.slice(0, 12)), [ipB], "by short ID");
  assert.deepEqual(await ask("pool"), [ipA, ipB].sort(), "one alias, both members");
  assert.deepEqual(await ask("nothing-here"), []);
  // Other names go to the host's resolvers, as the host resolves them.
  const upstream = await lookup("deb.debian.org", { family: 4, all: true }).then(
    (r) => r.map((x) => x.address).sort(),
    () => [],
  );
  assert.deepEqual((await ask("deb.debian.org")).length > 0, upstream.length > 0, "forwarded like the host resolves it");

  // Port 53 of a network's gateway held by another server: its members get the host's resolvers, not a silent nameserver.
  const taken = await m.createNetwork({ name: "taken" });
  const squatter = createSocket("udp4");
  t.after(() => new Promise<void>((r) => squatter.close(() => r())));
  await new Promise<void>((r, j) => squatter.once("error", j).bind(53, taken.gateway, () => r()));
  const cReq = await env.request("gamma", { networkMode: "taken" });
  await m.attach(cReq);
  assert.doesNotMatch(await readFile(cReq.resolvConfPath, "utf8"), new RegExp(`nameserver ${taken.gateway}`));
  await m.detach(cReq.containerId);
  await m.removeNetwork("taken");

  // An agent restart (a new manager on the same state, the containers alive) keeps the server and its answers.
  const pidFile = join(dnsDir, "networks", "aardvark.pid");
  const pid = await readFile(pidFile, "utf8");
  const m2 = new NetworkManager({ ...env.opts, dnsDir });
  await m2.init([aReq.containerId, bReq.containerId]);
  assert.equal(await readFile(pidFile, "utf8"), pid, "the running server is adopted");
  assert.deepEqual(await ask("pool"), [ipA, ipB].sort());

  // A member that leaves is no longer answered for; the server ends with the last member.
  await m2.detach(bReq.containerId);
  await eventually(async () => assert.deepEqual(await ask("pool"), [ipA]));
  await m2.detach(aReq.containerId);
  await eventually(async () => assert.equal(await readFile(pidFile, "utf8").catch(() => "gone"), "gone"));
  await m2.removeNetwork("dns net");
});
