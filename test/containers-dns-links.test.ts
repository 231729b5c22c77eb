// HostConfig.NetworkMode, `--dns*` and `--link` as Docker applies them (issue 12): inspect says
// "default" when no network was given and "bridge" when it was; on the default bridge `--dns`,
// `--dns-search` and `--dns-option` replace the host's lines of /etc/resolv.conf (`--dns-search .`
// means none); on a user network the embedded server stays the only nameserver and search and
// options apply; `--link name:alias` gives a hosts entry and Docker's legacy variables, and a
// link to a container that does not run is refused at start with Docker's words.
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { docker, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";

const uniq = (prefix: string) => `${prefix}-${randomBytes(3).toString("hex")}`;

describe("network mode, --dns* and --link", () => {
  let bb: BusyboxAgent;
  let agent: AgentHandle;
  const removeAfter = (t: TestContext, ...names: string[]) => t.after(async () => void (await docker(agent, ["rm", "-f", ...names])));
  const inspect = async (name: string, format: string) => (await dockerOk(agent, ["inspect", "--format", format, name])).trim();

  before(async () => {
    bb = await startBusyboxAgent("dns-links");
    agent = bb.agent;
  });
  after(async () => {
    await bb?.stop();
  });

  test('NetworkMode is "default" without --network and "bridge" with it; both are on the bridge network', async (t) => {
    const a = uniq("mode");
    const b = uniq("mode");
    removeAfter(t, a, b);
    await dockerOk(agent, ["create", "--name", a, "busybox", "true"]);
    await dockerOk(agent, ["create", "--name", b, "--network", "bridge", "busybox", "true"]);
    assert.equal(await inspect(a, "{{.HostConfig.NetworkMode}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}"), "default bridge");
    assert.equal(await inspect(b, "{{.HostConfig.NetworkMode}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}"), "bridge bridge");
    const ps = await dockerOk(agent, ["ps", "-a", "--filter", "network=bridge", "--format", "{{.Names}}"]);
    assert.ok(ps.includes(a) && ps.includes(b), ps);
  });

  test("default bridge: --dns, --dns-search, --dns-option replace the host's lines; inspect shows them", async (t) => {
    const c = uniq("dns");
    removeAfter(t, c);
    const out = await dockerOk(agent, [
      "run",
      "--name",
      c,
      "--dns",
      "192.0.2.53",
      "--dns",
      "192.0.2.54",
      "--dns-search",
      "corp.example",
      "--dns-option",
      "ndots:3",
      "--dns-option",
      "timeout:2",
      "busybox",
      "cat",
      "/etc/resolv.conf",
    ]);
    assert.equal(out, "nameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example\noptions ndots:3 timeout:2\n");
    assert.equal(
      await inspect(c, "{{json .HostConfig.Dns}} {{json .HostConfig.DnsSearch}} {{json .HostConfig.DnsOptions}}"),
      '["192.0.2.53","192.0.2.54"] ["corp.example"] ["ndots:3","timeout:2"]',
    );
  });

  test("default bridge: only --dns-search given keeps the host's nameservers; `--dns-search .` drops the search line", async (t) => {
    const a = uniq("dns");
    const b = uniq("dns");
    removeAfter(t, a, b);
    const host = await readFile("/etc/resolv.conf", "utf8");
    const hostServers = host
      .split("\n")
      .filter((l) => /^\s*nameserver\s/.test(l) && !/\s(127\.|::1)/.test(l))
      .map((l) => l.trim().replace(/\s+/, " "));
    const withSearch = (await dockerOk(agent, ["run", "--name", a, "--dns-search", "x.example", "busybox", "cat", "/etc/resolv.conf"])).split("\n");
    assert.ok(withSearch.includes("search x.example"), withSearch.join("\n"));
    for (const s of hostServers.length ? hostServers : ["nameserver 8.8.8.8"]) assert.ok(withSearch.includes(s), `${s} in\n${withSearch.join("\n")}`);
    const none = await dockerOk(agent, ["run", "--name", b, "--dns", "192.0.2.1", "--dns-search", ".", "busybox", "cat", "/etc/resolv.conf"]);
    assert.doesNotMatch(none, /^search/m);
    assert.match(none, /^nameserver 192\.0\.2\.1$/m);
  });

  test("user network: the embedded server stays the only nameserver; search and options apply, ndots:0 added", async (t) => {
    const net = uniq("dnsnet");
    const c = uniq("dns");
    t.after(async () => {
      await docker(agent, ["rm", "-f", c]);
      await docker(agent, ["network", "rm", net]);
    });
    await dockerOk(agent, ["network", "create", net]);
    const gateway = (await dockerOk(agent, ["network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", net])).trim();
    const out = (
      await dockerOk(agent, [
        "run",
        "--name",
        c,
        "--network",
        net,
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "corp.example",
        "--dns-option",
        "timeout:2",
        "busybox",
        "cat",
        "/etc/resolv.conf",
      ])
    ).split("\n");
    const servers = out.filter((l) => l.startsWith("nameserver"));
    assert.equal(servers.length, 1, out.join("\n"));
    assert.ok(servers[0] === `nameserver ${gateway}` || servers[0] === "nameserver 192.0.2.53", out.join("\n")); // the latter when aardvark-dns is missing
    assert.ok(out.includes("search corp.example"), out.join("\n"));
    if (servers[0] === `nameserver ${gateway}`) assert.ok(out.includes("options timeout:2 ndots:0"), out.join("\n"));
  });

  test("--link name:alias: hosts entry and Docker's legacy variables; the container's own variables win", async (t) => {
    const db = uniq("db");
    const web = uniq("web");
    removeAfter(t, web, db);
    await dockerOk(agent, ["run", "-d", "--name", db, "--expose", "6379", "--expose", "53/udp", "-e", "SECRET=s3", "-e", "OTHER=o", "busybox", "sleep", "300"]);
    const ip = await inspect(db, "{{.NetworkSettings.IPAddress}}");
    const out = await dockerOk(agent, [
      "run",
      "--name",
      web,
      "--link",
      `${db}:cache`,
      "-e",
      "CACHE_ENV_OTHER=mine",
      "busybox",
      "sh",
      "-c",
      "env; echo ---; cat /etc/hosts",
    ]);
    const [envText = "", hosts = ""] = out.split("---\n");
    const env = envText.split("\n");
    for (const v of [
      `CACHE_PORT=tcp://${ip}:6379`,
      `CACHE_PORT_6379_TCP=tcp://${ip}:6379`,
      `CACHE_PORT_6379_TCP_ADDR=${ip}`,
      "CACHE_PORT_6379_TCP_PORT=6379",
      "CACHE_PORT_6379_TCP_PROTO=tcp",
      `CACHE_PORT_53_UDP=udp://${ip}:53`,
      `CACHE_NAME=/${web}/cache`,
      "CACHE_ENV_SECRET=s3",
      "CACHE_ENV_OTHER=mine",
    ])
      assert.ok(env.includes(v), `${v} in\n${envText}`);
    assert.ok(!env.some((e) => e.startsWith("CACHE_ENV_PATH=")), envText);
    assert.equal(await inspect(web, "{{json .HostConfig.Links}}"), JSON.stringify([`/${db}:/${web}/cache`]));
    const lines = hosts.split("\n");
    for (const name of ["cache", db]) assert.ok(lines.includes(`${ip}\t${name}`), `${name} in\n${hosts}`);
  });

  test("--link to a container that is not running: refused at start with Docker's words", async (t) => {
    const db = uniq("db");
    const web = uniq("web");
    removeAfter(t, web, db);
    await dockerOk(agent, ["create", "--name", db, "busybox", "true"]);
    const r = await docker(agent, ["run", "--name", web, "--link", `${db}:d`, "busybox", "true"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`Cannot link to a non running container: /${db} AS /${web}/d`));
  });
});
