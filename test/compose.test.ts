// A docker-compose 1.29 project (Debian's docker-compose) run against a real agent, step by step as
// a user would: a web server with a published port and a named volume, a client that reaches it by
// name over the project's network (DNS, not only /etc/hosts), a scaled worker. Each step asserts
// what a user sees (compose's messages, the state it reports), and at the end nothing is left: no
// container, network, volume or firewall rule. The lifecycle steps then run against Docker Engine
// 20.10 (test/helpers/dockerd.ts) on the same project, and compose's output must be the same.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "./fixtures/registry.ts";
import { request } from "node:http";
import { docker, dockerOk } from "./helpers/agent.ts";
import { dockerCliOk, startDockerd, type DockerdHandle } from "./helpers/dockerd.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";
import { until } from "./helpers/wait.ts";

const execFileP = promisify(execFile);

// Health checks are another change's (the stack below declares one; this test does not wait on it).
const COMPOSE_FILE = `version: "2.4"
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && date > /data/started && exec httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1:\${WEB_PORT}:80"]
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      retries: 30
    stop_grace_period: 1s
  client:
    image: busybox
    command: ["sh", "-c", "while true; do wget -q -O - http://web/ && echo reached-web; sleep 1; done"]
    depends_on:
      web:
        condition: service_started
    stop_grace_period: 1s
  worker:
    image: busybox
    command: ["sh", "-c", "echo worker-up; trap 'exit 0' TERM; while true; do sleep 1; done"]
    stop_grace_period: 1s
volumes:
  data: {}
`;

interface Run {
  code: number;
  out: string;
  stdout: string;
}

let suite: BusyboxAgent;
let dockerd: DockerdHandle | undefined;
let project: string;
let port: number;
/** compose's output of each lifecycle step on the agent, compared with Docker's at the end. */
const berthSteps = new Map<string, string>();

interface Target {
  dockerHost: string;
  dockerConfig: string;
  project: string;
  port: number;
}

function compose(args: string[], timeoutMs = 120_000, target?: Target): Promise<Run> {
  const to = target ?? { dockerHost: suite.agent.dockerHost, dockerConfig: suite.agent.dockerConfig, project, port };
  return new Promise((done) => {
    const child = spawn("docker-compose", ["-p", to.project, "-f", join(suite.work, "docker-compose.yml"), "--ansi", "never", ...args], {
      env: { ...process.env, DOCKER_HOST: to.dockerHost, DOCKER_CONFIG: to.dockerConfig, WEB_PORT: String(to.port) },
      cwd: suite.work,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => ((out += d.toString()), (stdout += d.toString())));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (e) => (out += `spawn error: ${e.message}\n`));
    child.on("close", (code) => {
      clearTimeout(timer);
      done({ code: code ?? -1, out, stdout });
    });
  });
}

async function composeOk(args: string[], timeoutMs?: number, target?: Target): Promise<Run> {
  const r = await compose(args, timeoutMs, target);
  const logs = target ? dockerd!.logs() : suite.agent.logs();
  assert.equal(r.code, 0, `docker-compose ${args.join(" ")} exited ${r.code}:\n${r.out}\ndaemon log tail:\n${logs.split("\n").slice(-30).join("\n")}`);
  return r;
}

/** The lifecycle steps whose output is compared with Docker's, in order. */
const STEPS: Array<[string, string[]]> = [
  ["up", ["up", "-d"]],
  ["scale 3", ["up", "-d", "--scale", "worker=3"]],
  ["scale 1", ["up", "-d", "--scale", "worker=1"]],
  ["pause", ["pause"]],
  ["unpause", ["unpause"]],
  ["restart", ["restart"]],
  ["stop", ["stop"]],
  ["start", ["start"]],
  ["down", ["down", "-v"]],
];

/** Runs a step on the agent, keeping its output for the comparison with Docker. */
async function step(name: string): Promise<Run> {
  const r = await composeOk(STEPS.find(([n]) => n === name)![1]);
  berthSteps.set(name, r.out);
  return r;
}

/** compose prints in completion order with padding: compare the set of lines, project name neutral. */
function normalized(out: string, projectName: string): string[] {
  return out
    .replaceAll(projectName, "P")
    .split(/\r?\n/)
    .map((l) => l.replace(/\s+\.\.\. /, " ... ").trimEnd())
    .filter((l) => l && !/\.\.\. ?$/.test(l)) // "Creating x ... " before its "done" line
    .sort();
}

/** `docker-compose ps` rows: name → state column. */
async function psStates(): Promise<Map<string, string>> {
  const rows = (await composeOk(["ps"])).stdout
    .split("\n")
    .slice(2)
    .filter((l) => l.trim());
  return new Map(rows.map((l) => [l.split(/\s+/)[0]!, /\s(Up(?: \([a-z: ]+\))?|Exit \d+|Paused)\s/.exec(l)?.[1] ?? l]));
}

const fetchWeb = async () => (await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(3000) })).text();

before(async () => {
  await execFileP("which", ["docker-compose"]).catch(() => {
    throw new Error("docker-compose is not installed: apt-get install docker-compose (scripts/debian-packages-test.txt)");
  });
  suite = await startBusyboxAgent("compose");
  project = `cmp${Date.now().toString(36)}`;
  port = await freePort();
  await writeFile(join(suite.work, "docker-compose.yml"), COMPOSE_FILE);
});

after(async () => {
  await dockerd?.stop();
  if (suite) {
    await compose(["down", "-v", "--remove-orphans"]).catch(() => undefined);
    await suite.stop();
  }
});

test("a 3-service compose project: up, ps, port, by-name reach, exec, logs, scale, pause, restart, stop/start, down -v", { timeout: 10 * 60_000 }, async () => {
  const web = `${project}_web_1`;
  const client = `${project}_client_1`;

  // ---- up -d: network, volume, three containers (compose disconnects and reconnects each
  // just-created container to give it its aliases).
  const up = await step("up");
  assert.match(up.out, new RegExp(`Creating network "${project}_default" with the default driver`));
  assert.match(up.out, new RegExp(`Creating volume "${project}_data" with default driver`));
  for (const c of [web, client, `${project}_worker_1`]) assert.match(up.out, new RegExp(`Creating ${c}\\s+\\.\\.\\. done`));

  // ---- ps: all three up.
  const states = await until("all three services up", async () => {
    const s = await psStates();
    return s.size === 3 && [...s.values()].every((v) => v.startsWith("Up")) ? s : undefined;
  });
  assert.deepEqual([...states.keys()].sort(), [client, web, `${project}_worker_1`].sort());

  // ---- the network and the aliases compose gave (service name and short ID), as Docker shows them.
  const webId = (await composeOk(["ps", "-q", "web"])).stdout.trim();
  const aliases = JSON.parse(
    await dockerOk(suite.agent, ["inspect", "--format", `{{json (index .NetworkSettings.Networks "${project}_default").Aliases}}`, web]),
  ) as string[];
  assert.deepEqual([...aliases].sort(), ["web", webId.slice(0, 12)].sort());
  const netOptions = (await dockerOk(suite.agent, ["network", "inspect", "--format", "{{json .Options}}", `${project}_default`])).trim();
  assert.equal(netOptions, "{}", "a network's options are only what the user gave");

  // ---- the published port, from the host.
  assert.equal((await until("the web server on the published port", fetchWeb)).trim(), "hello-from-web");

  // ---- by name, through the DNS server (nslookup asks it directly) and through the resolver (wget).
  const webIp = (await dockerOk(suite.agent, ["inspect", "--format", `{{(index .NetworkSettings.Networks "${project}_default").IPAddress}}`, web])).trim();
  const lookup = await composeOk(["exec", "-T", "client", "nslookup", "web"]);
  assert.match(lookup.stdout, new RegExp(`Address:\\s+${webIp.replace(/\./g, "\\.")}\\b`), lookup.stdout);
  const byShortId = await composeOk(["exec", "-T", "client", "nslookup", webId.slice(0, 12)]);
  assert.match(byShortId.stdout, new RegExp(`Address:\\s+${webIp.replace(/\./g, "\\.")}\\b`), byShortId.stdout);
  const missing = await compose(["exec", "-T", "client", "nslookup", "no-such-service"]);
  assert.notEqual(missing.code, 0, "an unknown name is not found");
  const got = await composeOk(["exec", "-T", "client", "wget", "-q", "-O", "-", "http://web/"]);
  assert.equal(got.stdout.trim(), "hello-from-web");
  const resolv = await composeOk(["exec", "-T", "client", "cat", "/etc/resolv.conf"]);
  assert.match(resolv.stdout, /^nameserver \d+\.\d+\.\d+\.\d+$/m);

  // ---- exec in the web container; its volume holds what it wrote.
  assert.match((await composeOk(["exec", "-T", "web", "cat", "/www/index.html"])).stdout, /hello-from-web/);
  assert.notEqual((await composeOk(["exec", "-T", "web", "cat", "/data/started"])).stdout.trim(), "");

  // ---- logs: the client reached web by name on its own.
  await until("the client's log shows it reached web", async () => /reached-web/.test((await composeOk(["logs", "--no-color", "client"])).stdout));
  assert.match((await composeOk(["logs", "--no-color", "worker"])).stdout, /worker-up/);

  // ---- scale up and down: the network is unchanged, so nothing is recreated.
  const scaleUp = await step("scale 3");
  assert.doesNotMatch(scaleUp.out, /needs to be recreated|Recreating/, scaleUp.out);
  assert.match(scaleUp.out, new RegExp(`Creating ${project}_worker_2\\s+\\.\\.\\. done`));
  assert.match(scaleUp.out, new RegExp(`Creating ${project}_worker_3\\s+\\.\\.\\. done`));
  const workers = (await composeOk(["ps", "-q", "worker"])).stdout.trim().split("\n");
  assert.equal(workers.length, 3);
  // One name, three containers: the DNS server answers with all their addresses.
  const workerLookup = await until("the three workers behind the name worker", async () => {
    const r = await composeOk(["exec", "-T", "client", "nslookup", "worker"]);
    return (r.stdout.match(/Address:\s+\d+\.\d+\.\d+\.\d+/g) ?? []).length >= 4 ? r.stdout : undefined; // the server's own line + 3
  });
  assert.equal(new Set(workerLookup.match(/^Address:\s+\d+\.\d+\.\d+\.\d+$/gm)).size, 3, workerLookup); // not the server's "Address: IP:53"
  const scaleDown = await step("scale 1");
  assert.doesNotMatch(scaleDown.out, /needs to be recreated|Recreating/, scaleDown.out);
  assert.equal((await composeOk(["ps", "-q", "worker"])).stdout.trim().split("\n").length, 1);

  // ---- pause / unpause.
  const paused = await step("pause");
  assert.match(paused.out, new RegExp(`Pausing ${web}\\s+\\.\\.\\. done`));
  assert.ok(
    [...(await psStates()).values()].every((s) => s === "Paused"),
    "all paused",
  );
  const unpaused = await step("unpause");
  assert.match(unpaused.out, new RegExp(`Unpausing ${web}\\s+\\.\\.\\. done`));
  assert.ok(
    [...(await psStates()).values()].every((s) => s.startsWith("Up")),
    "all up again",
  );

  // ---- restart.
  const restarted = await step("restart");
  assert.match(restarted.out, new RegExp(`Restarting ${web}\\s+\\.\\.\\. done`));
  assert.equal((await until("the web server after restart", fetchWeb)).trim(), "hello-from-web");
  await until("web by name after restart", async () =>
    (await compose(["exec", "-T", "client", "wget", "-q", "-O", "-", "http://web/"])).stdout.includes("hello-from-web"),
  );

  // ---- stop / start: the containers keep their network settings and join again.
  const stopped = await step("stop");
  assert.match(stopped.out, new RegExp(`Stopping ${web}\\s+\\.\\.\\. done`));
  assert.ok(
    [...(await psStates()).values()].every((s) => /^Exit \d+$/.test(s)),
    "all exited",
  );
  const started = await step("start");
  assert.match(started.out, /Starting web\s+\.\.\. done/);
  assert.ok(
    [...(await psStates()).values()].every((s) => s.startsWith("Up")),
    "all up after start",
  );
  await until("web by name after stop/start", async () =>
    (await compose(["exec", "-T", "client", "wget", "-q", "-O", "-", "http://web/"])).stdout.includes("hello-from-web"),
  );
  const aliasesAfter = JSON.parse(
    await dockerOk(suite.agent, ["inspect", "--format", `{{json (index .NetworkSettings.Networks "${project}_default").Aliases}}`, web]),
  ) as string[];
  assert.deepEqual([...aliasesAfter].sort(), ["web", webId.slice(0, 12)].sort());

  // ---- down -v: nothing left.
  const bridge = `berth-${(await dockerOk(suite.agent, ["network", "inspect", "--format", "{{.Id}}", `${project}_default`])).trim().slice(0, 9)}`;
  const down = await step("down");
  assert.match(down.out, new RegExp(`Removing network ${project}_default`));
  assert.match(down.out, new RegExp(`Removing volume ${project}_data`));
  assert.equal((await dockerOk(suite.agent, ["ps", "-aq"])).trim(), "");
  assert.deepEqual((await dockerOk(suite.agent, ["network", "ls", "--format", "{{.Name}}"])).trim().split("\n").sort(), ["bridge", "host", "none"]);
  assert.equal((await dockerOk(suite.agent, ["volume", "ls", "-q"])).trim(), "");
  const rules = (await execFileP("iptables-save")).stdout;
  assert.doesNotMatch(rules, new RegExp(bridge), "no firewall rule for the project's bridge");
  assert.doesNotMatch(rules, new RegExp(`--dport ${port}\\b`), "no rule for the published port");
  const links = (await execFileP("ip", ["-o", "link", "show"])).stdout;
  assert.doesNotMatch(links, new RegExp(bridge), "the project's bridge is gone");
  // The DNS server stops once no user network has members.
  await until(
    "the DNS server stopped",
    async () =>
      !(
        await execFileP("pgrep", ["-af", "aardvark-dns"]).then(
          (r) => r.stdout,
          () => "",
        )
      ).includes(suite.agent.dataRoot.replace(/data$/, "run")),
  );
});

/** One Docker API call on the agent's socket: status and parsed body. */
function api(method: string, path: string, body?: unknown): Promise<{ status: number; body: { message?: string; Id?: string } }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: suite.agent.socket, method, path, headers: { "Content-Type": "application/json" } }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text ? (JSON.parse(text) as { message?: string }) : {} }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

test(
  "networks as compose and the SDKs use them: connect/disconnect before start, EndpointSettings, --ip, IPAM config, names with spaces",
  { timeout: 5 * 60_000 },
  async (t) => {
    const tag = Date.now().toString(36);
    const ipnet = `ipnet-${tag}`;
    const spaced = `spaced net ${tag}`;
    const nogw = `nogw-${tag}`;
    const c1 = `c1-${tag}`;
    t.after(async () => {
      await docker(suite.agent, ["rm", "-f", c1]);
      await docker(suite.agent, ["network", "rm", ipnet, spaced, nogw]);
    });
    // A subnet no route of the host (other test agents' bridges) uses: outside 10.200-10.249, and checked.
    const routes = (await execFileP("ip", ["-4", "route"])).stdout;
    let sub = "";
    do sub = `10.${150 + Math.floor(Math.random() * 40)}.${Math.floor(Math.random() * 256)}`;
    while (routes.includes(`${sub}.`));
    await dockerOk(suite.agent, [
      "network",
      "create",
      "--subnet",
      `${sub}.0/24`,
      "--ip-range",
      `${sub}.128/25`,
      "--gateway",
      `${sub}.254`,
      "-o",
      "com.example.opt=1",
      ipnet,
    ]);
    const ipam = JSON.parse(await dockerOk(suite.agent, ["network", "inspect", "--format", "{{json .IPAM.Config}}", ipnet])) as unknown;
    assert.deepEqual(ipam, [{ Subnet: `${sub}.0/24`, IPRange: `${sub}.128/25`, Gateway: `${sub}.254` }]);
    assert.equal((await dockerOk(suite.agent, ["network", "inspect", "--format", "{{json .Options}}", ipnet])).trim(), '{"com.example.opt":"1"}');
    await dockerOk(suite.agent, ["network", "create", spaced]);
    // As Docker 20.10: with --subnet alone, the IPAM config shows no gateway (compose compares it).
    let sub2 = "";
    do sub2 = `10.${150 + Math.floor(Math.random() * 40)}.${Math.floor(Math.random() * 256)}`;
    while (routes.includes(`${sub2}.`) || sub2 === sub);
    await dockerOk(suite.agent, ["network", "create", "--subnet", `${sub2}.0/24`, nogw]);
    const nogwIpam = JSON.parse(await dockerOk(suite.agent, ["network", "inspect", "--format", "{{json .IPAM}}", nogw])) as {
      Options: unknown;
      Config: Array<Record<string, string>>;
    };
    assert.deepEqual(nogwIpam, { Driver: "default", Options: {}, Config: [{ Subnet: `${sub2}.0/24` }] });
    assert.equal((await dockerOk(suite.agent, ["network", "inspect", "--format", "{{.Name}}", spaced])).trim(), spaced);

    // Created, not started: --ip and --network-alias recorded as given.
    await dockerOk(suite.agent, ["create", "--name", c1, "--network", ipnet, "--ip", `${sub}.7`, "--network-alias", "first", "busybox", "sleep", "600"]);
    const settings = async () =>
      JSON.parse(await dockerOk(suite.agent, ["inspect", "--format", "{{json .NetworkSettings.Networks}}", c1])) as Record<
        string,
        {
          IPAMConfig: { IPv4Address: string } | null;
          Aliases: string[] | null;
          IPAddress: string;
          NetworkID: string;
          EndpointID: string;
          Gateway: string;
          IPPrefixLen: number;
          MacAddress: string;
          Links: unknown;
          DriverOpts: unknown;
        }
      >;
    const created = await settings();
    assert.deepEqual(Object.keys(created), [ipnet]);
    assert.deepEqual(created[ipnet]!.IPAMConfig, { IPv4Address: `${sub}.7` });
    assert.deepEqual(created[ipnet]!.Aliases, ["first"]);
    assert.equal(created[ipnet]!.IPAddress, "");
    assert.equal(created[ipnet]!.NetworkID, "", "no network ID before the container was ever on it (Docker 20.10)");
    for (const k of [
      "IPAMConfig",
      "Links",
      "Aliases",
      "NetworkID",
      "EndpointID",
      "Gateway",
      "IPAddress",
      "IPPrefixLen",
      "IPv6Gateway",
      "GlobalIPv6Address",
      "GlobalIPv6PrefixLen",
      "MacAddress",
      "DriverOpts",
    ])
      assert.ok(k in created[ipnet]!, `EndpointSettings.${k}`);

    // connect/disconnect while created (compose's sequence), then start: both networks joined.
    await dockerOk(suite.agent, ["network", "connect", "--alias", "second", spaced, c1]);
    await dockerOk(suite.agent, ["network", "disconnect", ipnet, c1]);
    const notOn = await docker(suite.agent, ["network", "disconnect", ipnet, c1]);
    assert.notEqual(notOn.code, 0);
    assert.match(notOn.stderr, /is not connected to the network/);
    await dockerOk(suite.agent, ["network", "connect", "--ip", `${sub}.7`, "--alias", "first", ipnet, c1]);
    const id = (await dockerOk(suite.agent, ["inspect", "--format", "{{.Id}}", c1])).trim();
    assert.deepEqual((await settings())[ipnet]!.Aliases, ["first", id.slice(0, 12)], "Docker adds the short ID on connect");
    await dockerOk(suite.agent, ["start", c1]);
    const running = await settings();
    assert.deepEqual(Object.keys(running).sort(), [ipnet, spaced].sort());
    assert.equal(running[ipnet]!.IPAddress, `${sub}.7`);
    assert.equal(running[ipnet]!.Gateway, `${sub}.254`);
    assert.equal(running[ipnet]!.IPPrefixLen, 24);
    assert.match(running[ipnet]!.EndpointID, /^[0-9a-f]{64}$/);
    const members = JSON.parse(await dockerOk(suite.agent, ["network", "inspect", "--format", "{{json .Containers}}", ipnet])) as Record<
      string,
      { EndpointID: string }
    >;
    assert.equal(members[id]!.EndpointID, running[ipnet]!.EndpointID, "one endpoint ID in both inspects");
    assert.match(running[spaced]!.IPAddress, /^\d+\.\d+\.\d+\.\d+$/);
    assert.deepEqual(running[spaced]!.Aliases, ["second", id.slice(0, 12)]);
    const addrs = await dockerOk(suite.agent, ["exec", c1, "ip", "-4", "-o", "addr"]);
    assert.match(addrs, new RegExp(`inet ${sub.replace(/\./g, "\\.")}\\.7/24`));

    // Stop and start again: the same networks, the same --ip.
    await dockerOk(suite.agent, ["stop", "-t", "0", c1]);
    const stopped = await settings();
    assert.equal(stopped[ipnet]!.IPAddress, "");
    assert.notEqual(stopped[ipnet]!.NetworkID, "", "the network's ID stays after stop");
    await dockerOk(suite.agent, ["start", c1]);
    assert.equal((await settings())[ipnet]!.IPAddress, `${sub}.7`);
    // A running container: disconnect is at once and for good; --ip where Docker refuses it.
    await dockerOk(suite.agent, ["network", "disconnect", spaced, c1]);
    assert.deepEqual(Object.keys(await settings()), [ipnet]);
    const noSubnet = await docker(suite.agent, ["network", "connect", "--ip", "10.1.2.3", spaced, c1]);
    assert.notEqual(noSubnet.code, 0);
    assert.match(noSubnet.stderr, /user specified IP address is supported only when connecting to networks with user configured subnets/);

    // Docker's refusals: an unknown network (NetworkMode's or one only NetworkingConfig names) at
    // start, with a 404 the docker CLI shows as is; several networks before API 1.44 at create.
    const img = { Image: "busybox", Cmd: ["true"] };
    for (const [mode, endpoint] of [
      ["nosuch", "nosuch"],
      [ipnet, "nosuch2"],
    ]) {
      const made = await api("POST", "/v1.41/containers/create", {
        ...img,
        HostConfig: { NetworkMode: mode },
        NetworkingConfig: { EndpointsConfig: { [endpoint!]: {} } },
      });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      t.after(() => api("DELETE", `/v1.41/containers/${made.body.Id}?force=1`));
      const start = await api("POST", `/v1.41/containers/${made.body.Id}/start`);
      assert.equal(start.status, 404);
      assert.equal(start.body.message, `network ${endpoint} not found`);
    }
    const several = await api("POST", "/v1.41/containers/create", { ...img, NetworkingConfig: { EndpointsConfig: { [ipnet]: {}, [spaced]: {} } } });
    assert.equal(several.status, 400);
    assert.match(several.body.message ?? "", /^Container cannot be connected to network endpoints: /);
    const ipOnBridge = await docker(suite.agent, ["run", "--rm", "--ip", "10.209.9.9", "busybox", "true"]);
    assert.notEqual(ipOnBridge.code, 0);
    assert.match(ipOnBridge.stderr, /user specified IP address is supported on user defined networks only/);
  },
);

test("Docker Engine 20.10 gives the same compose output for each lifecycle step", { timeout: 10 * 60_000 }, async () => {
  assert.equal(berthSteps.size, STEPS.length, "the compose project ran on the agent first");
  dockerd = await startDockerd({ name: "berth-compose" });
  assert.match((await dockerCliOk(dockerd, ["version", "--format", "{{.Server.Version}}"])).trim(), /^20\.10\./);
  const ref = `${suite.reg.host}/library/busybox:latest`;
  await dockerCliOk(dockerd, ["pull", ref]);
  await dockerCliOk(dockerd, ["tag", ref, "busybox"]);
  const target: Target = { dockerHost: dockerd.dockerHost, dockerConfig: dockerd.dockerConfig, project: `${project}d`, port: await freePort() };
  const differences: string[] = [];
  for (const [name, args] of STEPS) {
    const docker = normalized((await composeOk(args, undefined, target)).out, target.project);
    const berth = normalized(berthSteps.get(name)!, project);
    if (JSON.stringify(docker) !== JSON.stringify(berth)) differences.push(`${name}:\n  Docker: ${JSON.stringify(docker)}\n  Berth:  ${JSON.stringify(berth)}`);
  }
  assert.deepEqual(differences, [], differences.join("\n"));
});
