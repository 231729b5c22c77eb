// The manual install (server/installer/manual-script.ts) through the real console's routes
// (server/installer-routes.ts): it serves /install.sh with an embedded join token and the
// artifact at /downloads/berth-agent.tar.gz; on the node, `curl -fsSL …/install.sh?token=… | bash`
// installs the agent (here under BERTH_PREFIX, as root, on this machine), which then enrolls;
// re-running upgrades; a failure rolls back; dead tokens get no script.
import { after, before, describe, test } from "node:test";
import { testBridgeSubnet } from "./helpers/agent.ts";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import type { DbNodeRegistry } from "../server/db/node-registry-db.ts";
import type { PrismaClient } from "../server/db/generated/client.ts";
import { manualInstallCommand, nodeWaiter, readArtifact, type AgentArtifact } from "../server/installer/index.ts";
import { tree, startFromUnit, type UnitProcess } from "./helpers/unit.ts";
import { startTestConsole, type TestConsole } from "./helpers/console.ts";
import { removeContainersAndNetwork } from "./helpers/agent.ts";

const execFileP = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "..");
const V1 = "0.9.0-s1";
const V2 = "0.9.0-s2";

/** `curl -fsSL URL | BERTH_PREFIX=… bash`, as an admin would paste it (plus the prefix). */
function runPasted(url: string, prefix: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const c = spawn("bash", ["-c", `${manualInstallCommand(url).replace(/\| sudo bash$/, '| BERTH_PREFIX="$P" bash')}`], {
      env: { ...process.env, P: prefix },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    c.on("close", (code) => res({ code: code ?? -1, stdout, stderr }));
  });
}

/** A script already fetched, run as root with BERTH_PREFIX (what `curl … | bash` does with it). */
function runScript(script: string, prefix: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const c = spawn("bash", [], { env: { ...process.env, BERTH_PREFIX: prefix }, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    c.on("close", (code) => res({ code: code ?? -1, stdout, stderr }));
    c.stdin.end(script);
  });
}

describe("manual install script", () => {
  let work: string;
  let db: { prisma: PrismaClient };
  let registry: DbNodeRegistry;
  let cons: TestConsole;
  const artifacts: Record<string, AgentArtifact> = {};
  const savedArtifactEnv = process.env.BERTH_AGENT_ARTIFACT;
  /** The console serves the artifact BERTH_AGENT_ARTIFACT names (read on every request). */
  const serve = (a: AgentArtifact) => {
    process.env.BERTH_AGENT_ARTIFACT = a.path;
  };
  /**
   * The served script installs with the agent's defaults; each test agent gets its own bridge
   * and subnet so that it cannot meet another agent's berth0 on this machine. Added before the
   * agent first starts, as an admin would edit /etc/berth/agent.json.
   */
  const giveOwnBridge = async (prefix: string) => {
    const path = join(prefix, "etc/berth/agent.json");
    const config = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
    await writeFile(path, JSON.stringify({ ...config, ...agentConfig }, null, 2) + "\n", { mode: 0o600 });
  };
  const tag = randomBytes(2).toString("hex");
  const bridge = `bs${tag}`;
  const agentConfig = { bridge, "bridge-subnet": testBridgeSubnet() };
  const agents: UnitProcess[] = [];
  const prefixes: string[] = [];
  let nodeId = "";

  const newPrefix = async () => {
    const p = join(work, `prefix${prefixes.length}`);
    await mkdir(p);
    prefixes.push(p);
    return p;
  };
  const agentLog = () => agents.map((a) => a.logs().split("\n").slice(-20).join("\n")).join("\n---\n");

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-install-script-"));
    for (const v of [V1, V2]) {
      await execFileP(process.execPath, [join(ROOT, "scripts/build-agent.mjs"), "--out", join(work, v), "--version", v]);
      artifacts[v] = await readArtifact(join(work, v, "berth-agent.tar.gz"));
    }
    serve(artifacts[V1]!);
    // The real console, API only: /install.sh and /downloads are its own routes.
    cons = await startTestConsole("installer-script");
    db = { prisma: cons.services.prisma };
    registry = cons.services.nodeRegistry;
  });

  after(async () => {
    for (const a of agents) {
      a.child.kill("SIGKILL");
      await a.stop().catch(() => undefined);
    }
    for (const p of prefixes) await removeContainersAndNetwork(join(p, "run/berth/runc"), bridge, bridge.toUpperCase());
    if (work) {
      const mounts = (await readFile("/proc/self/mountinfo", "utf8")).split("\n").map((l) => l.split(" ")[4] ?? "");
      for (const m of mounts.filter((m) => m.startsWith(work + "/")).sort((a, b) => b.length - a.length))
        await execFileP("umount", ["-l", m]).catch(() => undefined);
    }
    await cons?.stop();
    if (savedArtifactEnv === undefined) delete process.env.BERTH_AGENT_ARTIFACT;
    else process.env.BERTH_AGENT_ARTIFACT = savedArtifactEnv;
    if (work) await rm(work, { recursive: true, force: true });
  });

  test("the pasted one-liner installs the agent; started by its unit's ExecStart it enrolls with the embedded token", async () => {
    const prefix = await newPrefix();
    const issued = await registry.createJoinToken({ note: "manual" });
    const r = await runPasted(`${cons.url}/install.sh?token=${issued.token}`, prefix);
    assert.equal(r.code, 0, `install.sh failed:\n${r.stderr}`);
    assert.match(r.stderr, new RegExp(`berth-install: berth-agent ${V1} installed`));
    assert.match(r.stderr, /systemd left alone; start the agent with the ExecStart line/);
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(issued.token), "the token is not printed");

    const lib = join(prefix, "usr/lib/berth-agent");
    assert.equal(await readlink(join(lib, "current")), V1);
    const configPath = join(prefix, "etc/berth/agent.json");
    assert.equal((await stat(configPath)).mode & 0o777, 0o600);
    assert.equal((await stat(join(prefix, "etc/berth"))).mode & 0o777, 0o700);
    const config = JSON.parse(await readFile(configPath, "utf8")) as Record<string, unknown>;
    assert.deepEqual(config, {
      "join-token": issued.token,
      "credential-file": join(prefix, "etc/berth/node-credential"),
      "data-root": join(prefix, "var/lib/berth"),
      "exec-root": join(prefix, "run/berth"),
      "docker-socket": join(prefix, "run/berth/docker.sock"),
      "console-url": cons.url,
    });
    const unitPath = join(prefix, "etc/systemd/system/berth-agent.service");
    assert.match(await readFile(unitPath, "utf8"), new RegExp(`^ExecStart=${lib}/current/berth-agent --config ${configPath}$`, "m"));
    await execFileP("systemd-analyze", ["verify", unitPath]);

    await giveOwnBridge(prefix);
    agents.push(await startFromUnit(unitPath));
    const { nodeId: id } = await nodeWaiter({ hub: cons.services.hub, prisma: db.prisma, joinTokenId: issued.id })({
      upgrade: false,
      version: V1,
      signal: AbortSignal.timeout(60_000),
    }).catch((e: Error) => {
      throw new Error(`${e.message}\n${agentLog()}`);
    });
    nodeId = id;
    assert.equal(cons.services.hub.node(nodeId)?.online, true);
    // The hub counts the node online a moment before the agent has written its credential.
    for (let i = 0; i < 100 && !(await stat(join(prefix, "etc/berth/node-credential")).catch(() => undefined)); i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.equal((await stat(join(prefix, "etc/berth/node-credential"))).mode & 0o777, 0o600);
    assert.equal(cons.services.hub.node(nodeId)?.agentVersion, V1);
  });

  test("re-running the script upgrades in place: config and credential kept, the restarted agent is the same node", async () => {
    const prefix = prefixes[0]!;
    const credential = await readFile(join(prefix, "etc/berth/node-credential"), "utf8");
    const configBefore = JSON.parse(await readFile(join(prefix, "etc/berth/agent.json"), "utf8")) as Record<string, unknown>;
    serve(artifacts[V2]!);
    const issued = await registry.createJoinToken({ note: "manual upgrade" });
    const r = await runPasted(`${cons.url}/install.sh?token=${issued.token}`, prefix);
    assert.equal(r.code, 0, `install.sh failed:\n${r.stderr}`);
    assert.match(r.stderr, /kept .*agent\.json \(upgrade: credential and data stay\)/);
    const lib = join(prefix, "usr/lib/berth-agent");
    assert.equal(await readlink(join(lib, "current")), V2);
    assert.deepEqual((await readdir(lib)).sort(), [V1, V2, "current"]);
    assert.equal(await readFile(join(prefix, "etc/berth/node-credential"), "utf8"), credential);
    assert.deepEqual(
      JSON.parse(await readFile(join(prefix, "etc/berth/agent.json"), "utf8")),
      configBefore,
      "a node with a credential keeps its config (the new token is not used)",
    );

    const waiter = nodeWaiter({ hub: cons.services.hub, prisma: db.prisma, nodeId });
    await agents.at(-1)!.stop();
    agents.push(await startFromUnit(join(prefix, "etc/systemd/system/berth-agent.service")));
    await waiter({ upgrade: true, version: V2, signal: AbortSignal.timeout(60_000) }).catch((e: Error) => {
      throw new Error(`${e.message}\n${agentLog()}`);
    });
    assert.equal(cons.services.hub.node(nodeId)?.agentVersion, V2);
    assert.equal(cons.services.hub.nodes().length, 1, "no second node enrolled");
    const unused = await db.prisma.joinToken.findUniqueOrThrow({ where: { id: issued.id } });
    assert.equal(unused.usedAt, null);
  });

  test("a failure late in the script (the unit cannot be written) rolls back everything the run changed", async () => {
    const prefix = await newPrefix();
    // etc/systemd is a file: unpack, config and switch succeed, then writing the unit fails.
    await mkdir(join(prefix, "etc"));
    await writeFile(join(prefix, "etc/systemd"), "not a directory\n");
    const before = await tree(prefix);
    serve(artifacts[V1]!);
    const r = await runPasted(`${cons.url}/install.sh?token=${(await registry.createJoinToken()).token}`, prefix);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      new RegExp(`unpacked berth-agent ${V1}[^]*wrote .*agent\\.json[^]*berth-install: failed: rolling back`),
      "it failed after writing files",
    );
    assert.doesNotMatch(r.stderr, /rollback step failed/);
    assert.deepEqual(await tree(prefix), before, "nothing from the failed run is left");
  });

  test("an artifact that does not match the announced SHA-256 is refused before anything is written", async () => {
    const prefix = await newPrefix();
    // The script announces V1's SHA-256; by the time the node downloads, the console serves V2.
    serve(artifacts[V1]!);
    const res = await fetch(`${cons.url}/install.sh?token=${(await registry.createJoinToken()).token}`);
    assert.equal(res.status, 200);
    const script = await res.text();
    serve(artifacts[V2]!);
    const r = await runScript(script, prefix);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`the download's SHA-256 is ${artifacts[V2]!.sha256}, expected ${artifacts[V1]!.sha256}`));
    assert.deepEqual(await tree(prefix), []);
  });

  test("no script for a join token that is unknown, used or expired; the artifact route says how to build a missing one", async () => {
    const check = async (url: string, why: RegExp) => {
      // A refusal is a script that says why and fails: curl -f must not hide it behind an error status.
      const res = await fetch(url);
      assert.equal(res.status, 200, url.replace(/token=.*/, "token=…"));
      assert.equal(res.headers.get("cache-control"), "no-store");
      const text = await res.text();
      assert.match(text, why);
      assert.match(text, /^echo '[^\n]*' >&2; exit 1\n$/, "one line of shell that says why");
      // The one-liner the console shows, as pasted: it prints the reason and fails, doing nothing.
      const prefix = await newPrefix();
      const r = await runPasted(url, prefix);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, why);
      assert.deepEqual(await tree(prefix), []);
    };
    serve(artifacts[V1]!);
    await check(`${cons.url}/install.sh`, /no join token in the URL/);
    await check(`${cons.url}/install.sh?token=bjt_${"A".repeat(43)}`, /unknown join token/);
    // The clear token of the one that enrolled the node is not kept anywhere: mark a fresh one used.
    const spent = await registry.createJoinToken();
    await db.prisma.joinToken.update({ where: { id: spent.id }, data: { usedAt: new Date() } });
    await check(`${cons.url}/install.sh?token=${spent.token}`, /already used/);
    const old = await registry.createJoinToken();
    await db.prisma.joinToken.update({ where: { id: old.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    await check(`${cons.url}/install.sh?token=${old.token}`, /expired/);

    const ok = await fetch(`${cons.url}/install.sh?token=${(await registry.createJoinToken()).token}`);
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("cache-control"), "no-store");
    assert.match(await ok.text(), new RegExp(artifacts[V1]!.sha256));
    const dl = await fetch(`${cons.url}/downloads/berth-agent.tar.gz`);
    assert.equal(dl.status, 200);
    assert.equal(Number(dl.headers.get("content-length")), artifacts[V1]!.bytes);
    assert.equal(Buffer.from(await dl.arrayBuffer()).length, artifacts[V1]!.bytes);

    process.env.BERTH_AGENT_ARTIFACT = join(work, "not-built", "berth-agent.tar.gz");
    const missing = await fetch(`${cons.url}/downloads/berth-agent.tar.gz`);
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /run npm run build:agent/);
    await check(`${cons.url}/install.sh?token=${(await registry.createJoinToken()).token}`, /run npm run build:agent/);
    serve(artifacts[V1]!);
  });
});
