// bin/berth-up's refusals, as a new user meets them: each is one line naming the problem and
// what to do, and nothing is left started. (Its success path runs in .ci/run on the clean
// clone, checked from the outside by .ci/check-first-contact.ts.)
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { freePort } from "./fixtures/registry.ts";
import { until } from "./helpers/wait.ts";

const execFileP = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "..");
const BERTH_UP = join(ROOT, "bin/berth-up");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let base: string;
let port: number;

/** bin/berth-up with every path and the port of its own, so it never meets a real installation. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    BERTH_PORT: String(port),
    BERTH_STATE_DIR: join(base, "state"),
    BERTH_CONSOLE_DATA: join(base, "console"),
    BERTH_CONSOLE_LOG: join(base, "log/console.log"),
    BERTH_DATA_ROOT: join(base, "data"),
    BERTH_DOCKER_SOCKET: join(base, "run/docker.sock"),
    BERTH_AGENT_LOG: join(base, "log/agent.log"),
    ...extra,
  };
}

function berthUp(args: string[], extraEnv: Record<string, string> = {}, wrapper: string[] = []): Promise<Run> {
  return new Promise((ok) => {
    const [cmd, ...rest] = [...wrapper, BERTH_UP, ...args];
    const child = spawn(cmd!, rest, { env: env(extraEnv), stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => ok({ code: code ?? -1, stdout, stderr }));
  });
}

/** berth-up's own message lines (packages, builds and logs it quotes are not counted). */
function errorLines(r: Run): string[] {
  return r.stderr.split("\n").filter((l) => l.startsWith("berth-up: "));
}

async function nothingStarted(): Promise<void> {
  const state = join(base, "state");
  const pids = existsSync(state) ? readdirSync(state).filter((f) => f.endsWith(".pid")) : [];
  assert.deepEqual(pids, [], "no PID files");
  const { stdout } = await execFileP("ps", ["-eo", "args"]);
  assert.ok(!stdout.includes(join(base, "console")), "no console runs on this test's data directory");
  assert.ok(!stdout.includes(join(base, "state")), "no agent runs with this test's config");
  await assert.rejects(fetch(`http://127.0.0.1:${port}/api/health`), "nothing listens on the port");
}

describe("bin/berth-up refuses what would fail half-way", () => {
  before(async () => {
    base = await mkdtemp(join(tmpdir(), "berth-up-"));
    // The embedded PostgreSQL runs as its own user and must get through to the data directory.
    await chmod(base, 0o711);
    port = await freePort();
  });
  after(async () => {
    await execFileP(BERTH_UP, ["stop"], { env: env() }).catch(() => undefined);
    await rm(base, { recursive: true, force: true });
  });

  test("not root: says to use sudo", async () => {
    const r = await berthUp([], {}, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]);
    assert.equal(r.code, 1);
    assert.deepEqual(errorLines(r), ["berth-up: run as root (sudo bin/berth-up): the agent mounts filesystems, runs containers and sets up iptables"]);
  });

  test("a taken port: names the port and who holds it, starts nothing", async () => {
    // Another program on the port, as a user meets it (here busybox's httpd, in the foreground).
    const holder = spawn("busybox", ["httpd", "-f", "-p", `0.0.0.0:${port}`, "-h", base], { stdio: "ignore" });
    try {
      await until("busybox httpd listening", async () => (await execFileP("ss", ["-Hltn", `sport = :${port}`])).stdout.includes(`:${port}`));
      const r = await berthUp([]);
      assert.equal(r.code, 1);
      const lines = errorLines(r);
      assert.equal(lines.length, 1, r.stderr);
      assert.equal(lines[0], `berth-up: port ${port} is already in use by "busybox" (pid ${holder.pid}): stop it, or choose another port with BERTH_PORT=N`);
    } finally {
      holder.kill();
    }
    await nothingStarted();
  });

  test("a data directory on a read-only filesystem: names it and the setting", async () => {
    const ro = join(base, "ro");
    await mkdir(ro, { recursive: true });
    await execFileP("mount", ["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", ro]);
    try {
      const r = await berthUp([], { BERTH_CONSOLE_DATA: join(ro, "console") });
      assert.equal(r.code, 1);
      assert.deepEqual(errorLines(r), [
        `berth-up: the console data directory ${join(ro, "console")} is not writable (Read-only file system): choose another with BERTH_CONSOLE_DATA`,
      ]);
    } finally {
      await execFileP("umount", [ro]);
    }
    await nothingStarted();
  });

  test("an unreachable registry mirror: names it", async () => {
    const closed = await freePort();
    const r = await berthUp(["--registry-mirror", `http://127.0.0.1:${closed}`]);
    assert.equal(r.code, 1);
    assert.deepEqual(errorLines(r), [
      `berth-up: the registry mirror http://127.0.0.1:${closed} is not reachable (no answer at http://127.0.0.1:${closed}/v2/): check the address, or leave out --registry-mirror`,
    ]);
    await nothingStarted();
  });

  test("an agent that cannot start: its own error is shown at once and the console it started is stopped", async () => {
    const r = await berthUp(["--bridge-subnet", "not-a-subnet"]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /berth-up: berth-agent did not start; its last log lines:/);
    assert.match(r.stderr, /bridge-subnet: an IPv4 CIDR/);
    assert.match(r.stderr, /berth-up: stopped berth-console/);
    await nothingStarted();
    // The log holds the one-time password: root only.
    for (const log of ["log/console.log", "log/agent.log"]) {
      const { stdout } = await execFileP("stat", ["-c", "%a", join(base, log)]);
      assert.equal(stdout.trim(), "600", log);
    }
  });

  test("the console's unit passes systemd-analyze verify", async () => {
    const dir = join(base, "units");
    await mkdir(dir, { recursive: true });
    const unit = (await readFile(join(ROOT, "packaging/berth-console.service"), "utf8"))
      .replaceAll("@NODE@", process.execPath)
      .replaceAll("@ROOT@", ROOT)
      .replaceAll("@LOG@", join(base, "log/console.log"))
      .replace("EnvironmentFile=/etc/default/berth-console", `EnvironmentFile=${join(dir, "env")}`);
    await writeFile(join(dir, "berth-console.service"), unit);
    await writeFile(join(dir, "env"), "BERTH_CONSOLE_ARGS=--port 8080\n");
    const r = await execFileP("systemd-analyze", ["verify", "--man=no", join(dir, "berth-console.service")]).then(
      (x) => ({ code: 0, out: x.stdout + x.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
    );
    assert.equal(r.code, 0, r.out);
  });
});
