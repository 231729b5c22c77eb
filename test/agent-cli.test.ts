// berth-agent as a program: its config file and flags, JSON logs, and a clean stop on SIGTERM.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadAgentConfig } from "../agent/config.ts";
import { removeContainersAndNetwork } from "./helpers/agent.ts";

const BIN = resolve(import.meta.dirname, "../bin/berth-agent.mjs");

test("flags and the config file give the same keys; flags win; defaults as documented", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "berth-config-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.deepEqual(loadAgentConfig([]), {
    dataRoot: "/var/lib/berth",
    dockerSocket: "/run/berth/docker.sock",
    registryMirrors: [],
    insecureRegistries: [],
    registryStallTimeoutMs: 30_000,
    logLevel: "info",
    execRoot: "/run/berth",
    runtime: "runc",
    bridge: "berth0",
    bridgeSubnet: "10.209.0.0/16",
    // Under a systemd unit (INVOCATION_ID) the agent knows systemd starts it again.
    supervisor: process.env.INVOCATION_ID ? "systemd" : null,
  });
  const file = join(dir, "agent.json");
  await writeFile(file, JSON.stringify({ "data-root": "/srv/berth", "insecure-registries": ["reg.local:5000"], "registry-mirrors": ["https://mirror.local"] }));
  const fromFile = loadAgentConfig(["--config", file]);
  assert.equal(fromFile !== "help" && fromFile.dataRoot, "/srv/berth");
  assert.deepEqual(fromFile !== "help" && fromFile.insecureRegistries, ["reg.local:5000"]);
  const both = loadAgentConfig([
    "--config",
    file,
    "--data-root",
    "/tmp/x",
    "--insecure-registry",
    "a:1",
    "--insecure-registry",
    "b:2",
    "--registry-mirror",
    "http://m:5000",
  ]);
  assert.ok(both !== "help");
  assert.equal(both.dataRoot, "/tmp/x");
  assert.deepEqual(both.insecureRegistries, ["a:1", "b:2"]);
  assert.deepEqual(both.registryMirrors, ["http://m:5000"]);
  const stall = loadAgentConfig(["--registry-stall-timeout", "2.5"]);
  assert.equal(stall !== "help" && stall.registryStallTimeoutMs, 2500);
  const crun = loadAgentConfig(["--runtime", "crun"]);
  assert.equal(crun !== "help" && crun.runtime, "crun");
  assert.throws(() => loadAgentConfig(["--runtime", "kata"]), /runtime: one of runc, crun/);
  if (!process.env.INVOCATION_ID) {
    const supervised = loadAgentConfig(["--supervised"]);
    assert.equal(supervised !== "help" && supervised.supervisor, "supervisor", "--supervised: another supervisor starts it again");
    await writeFile(join(dir, "supervised.json"), JSON.stringify({ supervised: true }));
    const fromKey = loadAgentConfig(["--config", join(dir, "supervised.json")]);
    assert.equal(fromKey !== "help" && fromKey.supervisor, "supervisor", "the config file's supervised key too");
  }
});

test("bad configuration is refused with a message naming what is wrong", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "berth-config-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.throws(() => loadAgentConfig(["--no-such-flag"]), /Unknown option '--no-such-flag'/);
  assert.throws(() => loadAgentConfig(["--config", join(dir, "missing.json")]), /cannot read config file .*missing\.json/);
  await writeFile(join(dir, "bad.json"), "{ not json");
  assert.throws(() => loadAgentConfig(["--config", join(dir, "bad.json")]), /is not valid JSON/);
  await writeFile(join(dir, "typo.json"), JSON.stringify({ "data-rot": "/x" }));
  assert.throws(() => loadAgentConfig(["--config", join(dir, "typo.json")]), /data-rot/);
  assert.throws(() => loadAgentConfig(["--registry-mirror", "not a url"]), /registry-mirrors/);
  assert.throws(() => loadAgentConfig(["--registry-stall-timeout", "0"]), /registry-stall-timeout/);
});

test("the agent logs JSON lines, serves its socket, and stops cleanly on SIGTERM", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "berth-agent-bin-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const socket = join(dir, "docker.sock");
  const config = join(dir, "agent.json");
  // Its own exec root, bridge and subnet: the test must not touch a real agent's berth0.
  const tag = `bc${process.pid % 10000}`;
  await writeFile(
    config,
    JSON.stringify({ "data-root": join(dir, "data"), "docker-socket": socket, "exec-root": join(dir, "run"), bridge: tag, "bridge-subnet": "10.198.77.0/24" }),
  );
  t.after(() => removeContainersAndNetwork(join(dir, "run", "runc"), tag, tag.toUpperCase()));
  const child = spawn(process.execPath, [BIN, "--config", config], { stdio: ["ignore", "pipe", "pipe"] });
  t.after(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 30_000;
  while (!out.includes("berth-agent started") && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  assert.ok(existsSync(socket), out);
  const lines = out.trim().split("\n");
  for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `not a JSON log line: ${l}`);
  const exit = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  child.kill("SIGTERM");
  assert.equal(await exit, 0);
  assert.ok(!existsSync(socket), "the socket file is removed on stop");
  assert.match(out, /"msg":"stopped"/);
});

test("--help prints the usage and an unknown flag exits 2", async () => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; out: string }>((r) => {
      const c = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      c.stdout.on("data", (d: Buffer) => (out += d.toString()));
      c.stderr.on("data", (d: Buffer) => (out += d.toString()));
      c.once("exit", (code) => r({ code, out }));
    });
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /--insecure-registry HOST\[:PORT\]/);
  const bad = await run(["--bogus"]);
  assert.equal(bad.code, 2);
  assert.match(bad.out, /Unknown option '--bogus'/);
});
