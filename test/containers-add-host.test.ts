// `--add-host` (HostConfig.ExtraHosts) as Docker writes it: the entries in /etc/hosts after
// the localhost lines and before the container's own, `host-gateway` as the default bridge's
// gateway, kept when a user network's peers rewrite the file, on the none and host networks
// too, in inspect, and for RUN steps of `docker build --add-host`. A malformed entry is
// refused at create with Docker's words.
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { docker, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";

const execFileP = promisify(execFile);
const uniq = (prefix: string) => `${prefix}-${randomBytes(3).toString("hex")}`;

describe("--add-host", () => {
  let bb: BusyboxAgent;
  let agent: AgentHandle;
  const removeAfter = (t: TestContext, ...names: string[]) => t.after(async () => void (await docker(agent, ["rm", "-f", ...names])));

  before(async () => {
    bb = await startBusyboxAgent("add-host");
    agent = bb.agent;
  });
  after(async () => {
    await bb?.stop();
  });

  test("the entries come after localhost and before the container's own line; host-gateway is the bridge's gateway; inspect shows them", async (t) => {
    const name = uniq("addhost");
    removeAfter(t, name);
    await dockerOk(agent, [
      "run",
      "-d",
      "--name",
      name,
      "--add-host",
      "db.internal:10.1.2.3",
      "--add-host",
      "gw:host-gateway",
      "--add-host",
      "v6:fd00::1",
      "busybox",
      "sleep",
      "300",
    ]);
    const hosts = (await dockerOk(agent, ["exec", name, "cat", "/etc/hosts"])).split("\n");
    const gateway = (await dockerOk(agent, ["network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", "bridge"])).trim();
    const ip = (await dockerOk(agent, ["inspect", "--format", "{{.NetworkSettings.IPAddress}}", name])).trim();
    const at = (line: string) => hosts.indexOf(line);
    assert.ok(at("10.1.2.3\tdb.internal") > at("ff02::2\tip6-allrouters"), hosts.join("\n"));
    assert.ok(at(`${gateway}\tgw`) > 0, hosts.join("\n"));
    assert.ok(at("fd00::1\tv6") > 0, hosts.join("\n"));
    const own = hosts.findIndex((l) => l.startsWith(`${ip}\t`));
    assert.ok(own > at("fd00::1\tv6"), `the container's own line comes last:\n${hosts.join("\n")}`);
    assert.equal(
      (await dockerOk(agent, ["inspect", "--format", "{{json .HostConfig.ExtraHosts}}", name])).trim(),
      '["db.internal:10.1.2.3","gw:host-gateway","v6:fd00::1"]',
    );
    assert.equal((await dockerOk(agent, ["exec", name, "ping", "-c", "1", "-W", "2", "gw"])).includes("1 packets received"), true);
  });

  test("kept when a peer on a user network comes and the file is rewritten; present on --network none and host", async (t) => {
    const net = uniq("net");
    const [a, b] = [uniq("a"), uniq("b")];
    removeAfter(t, a, b);
    t.after(async () => void (await docker(agent, ["network", "rm", net])));
    await dockerOk(agent, ["network", "create", net]);
    await dockerOk(agent, ["run", "-d", "--name", a, "--network", net, "--add-host", "cache:10.9.9.9", "busybox", "sleep", "300"]);
    await dockerOk(agent, ["run", "-d", "--name", b, "--network", net, "busybox", "sleep", "300"]);
    const hosts = await dockerOk(agent, ["exec", a, "cat", "/etc/hosts"]);
    assert.match(hosts, /^10\.9\.9\.9\tcache$/m);
    assert.match(hosts, new RegExp(`\\t${b}\\b`), "the peer is listed too");

    assert.match(await dockerOk(agent, ["run", "--rm", "--network", "none", "--add-host", "n:10.0.0.7", "busybox", "cat", "/etc/hosts"]), /^10\.0\.0\.7\tn$/m);
    assert.match(await dockerOk(agent, ["run", "--rm", "--network", "host", "--add-host", "h:10.0.0.8", "busybox", "cat", "/etc/hosts"]), /^10\.0\.0\.8\th$/m);
  });

  test("a malformed entry is refused at create by the engine (not only by the CLI), naming it; nothing is created", async () => {
    const name = uniq("bad");
    // Straight to the API: the docker CLI checks --add-host itself before sending.
    const { stdout } = await execFileP("curl", [
      "-s",
      "-w",
      "\n%{http_code}",
      "--unix-socket",
      agent.socket,
      "-H",
      "Content-Type: application/json",
      "-d",
      JSON.stringify({ Image: "busybox", Cmd: ["true"], HostConfig: { ExtraHosts: ["db:not-an-ip"] } }),
      `http://localhost/v1.41/containers/create?name=${name}`,
    ]);
    const [body, status] = stdout.split("\n");
    assert.equal(status, "400", stdout);
    assert.match(body!, /invalid IP address in add-host: \\?"not-an-ip\\?"/);
    assert.equal((await docker(agent, ["inspect", name])).code, 1, "no container was made");
  });

  test("docker build --add-host: RUN steps see the entries", async () => {
    const dir = join(bb.work, "build-add-host");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "Dockerfile"), "FROM busybox\nRUN grep -E '^10\\.4\\.4\\.4\\s+artifacts$' /etc/hosts > /found\n");
    const tag = uniq("addhost-build");
    await dockerOk(agent, ["build", "--add-host", "artifacts:10.4.4.4", "-t", tag, dir]);
    assert.match(await dockerOk(agent, ["run", "--rm", tag, "cat", "/found"]), /10\.4\.4\.4\s+artifacts/);
    await dockerOk(agent, ["rmi", tag]);
  });
});
