// IPv6 user networks (issue 12): `docker network create --ipv6 --subnet 2001:db8:1::/64` gives
// the bridge the subnet's first address and every member an address of the subnet next to its
// IPv4 one; members reach each other over IPv6 (ping, nc); inspect shows both. What Berth does
// not do (an IPv6 network without a subnet, --ip6) is refused with a clear message.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { docker, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";

const uniq = (prefix: string) => `${prefix}-${randomBytes(3).toString("hex")}`;

describe("IPv6 networks", () => {
  let bb: BusyboxAgent;
  let agent: AgentHandle;
  before(async () => {
    bb = await startBusyboxAgent("ipv6");
    agent = bb.agent;
  });
  after(async () => {
    await bb?.stop();
  });

  test("members get addresses of the IPv6 subnet and reach each other over it", async (t) => {
    const net = uniq("v6");
    const a = uniq("v6a");
    const b = uniq("v6b");
    const prefix = `2001:db8:${randomBytes(2).readUInt16BE(0).toString(16)}::`;
    t.after(async () => {
      await docker(agent, ["rm", "-f", a, b]);
      await docker(agent, ["network", "rm", net]);
    });
    await dockerOk(agent, ["network", "create", "--ipv6", "--subnet", `${prefix}/64`, net]);
    const info = JSON.parse(await dockerOk(agent, ["network", "inspect", net])) as Array<{
      EnableIPv6: boolean;
      IPAM: { Config: Array<{ Subnet: string; Gateway?: string }> };
    }>;
    assert.equal(info[0]!.EnableIPv6, true);
    assert.deepEqual(
      info[0]!.IPAM.Config.find((c) => c.Subnet.includes(":")),
      { Subnet: `${prefix}/64`, Gateway: `${prefix}1` },
    );
    await dockerOk(agent, ["run", "-d", "--name", a, "--network", net, "busybox", "nc", "-l", "-p", "8080", "-e", "echo", "over-v6"]);
    await dockerOk(agent, ["run", "-d", "--name", b, "--network", net, "busybox", "sleep", "300"]);
    const ipA = (await dockerOk(agent, ["inspect", "--format", `{{(index .NetworkSettings.Networks "${net}").GlobalIPv6Address}}`, a])).trim();
    assert.ok(ipA.startsWith(prefix), ipA);
    assert.equal((await dockerOk(agent, ["inspect", "--format", `{{(index .NetworkSettings.Networks "${net}").IPv6Gateway}}`, a])).trim(), `${prefix}1`);
    assert.match(await dockerOk(agent, ["exec", a, "ip", "-6", "addr", "show", "eth0"]), new RegExp(`inet6 ${ipA}/64`));
    const ping = await docker(agent, ["exec", b, "ping", "-6", "-c", "1", "-W", "5", ipA]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    assert.equal((await dockerOk(agent, ["exec", b, "nc", "-w", "5", ipA, "8080"])).trim(), "over-v6");
    const members = JSON.parse(await dockerOk(agent, ["network", "inspect", "--format", "{{json .Containers}}", net])) as Record<
      string,
      { IPv6Address: string }
    >;
    // b still runs (a's nc ended with the one connection it served).
    const ipB = (await dockerOk(agent, ["inspect", "--format", `{{(index .NetworkSettings.Networks "${net}").GlobalIPv6Address}}`, b])).trim();
    assert.ok(ipB.startsWith(prefix) && ipB !== ipA, ipB);
    assert.ok(
      Object.values(members).some((m) => m.IPv6Address === `${ipB}/64`),
      JSON.stringify(members),
    );
  });

  test("refusals: --ipv6 without an IPv6 subnet, an IPv6 subnet without --ipv6, an overlapping one", async (t) => {
    const n1 = uniq("v6");
    const n2 = uniq("v6");
    t.after(async () => void (await docker(agent, ["network", "rm", n1, n2])));
    const noSubnet = await docker(agent, ["network", "create", "--ipv6", n1]);
    assert.notEqual(noSubnet.code, 0);
    assert.match(noSubnet.stderr, /IPv6 networks need an IPv6 --subnet/);
    const noFlag = await docker(agent, ["network", "create", "--subnet", "2001:db8:99::/64", n1]);
    assert.notEqual(noFlag.code, 0);
    assert.match(noFlag.stderr, /needs IPv6 enabled/);
    await dockerOk(agent, ["network", "create", "--ipv6", "--subnet", "2001:db8:98::/64", n1]);
    const overlap = await docker(agent, ["network", "create", "--ipv6", "--subnet", "2001:db8:98::/80", n2]);
    assert.notEqual(overlap.code, 0);
    assert.match(overlap.stderr, /Pool overlaps/);
  });
});
