// The SSH installer end to end (server/installer): a real OpenSSH server on 127.0.0.1 with
// a password user who has sudo and a root login by key, the agent artifact built by
// scripts/build-agent.mjs, a console (socket.io + AgentHub + DbNodeRegistry on PostgreSQL),
// and an install prefix in a temporary directory so this machine is not changed beyond it.
// There is no systemd as PID 1 here: the test starts the agent with the unit's own ExecStart
// line where systemd would, and plays systemd's restart during the upgrade.
import { after, before, describe, test } from "node:test";
import { testBridgeSubnet } from "./helpers/agent.ts";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import type { DbNodeRegistry } from "../server/db/node-registry-db.ts";
import type { PrismaClient } from "../server/db/generated/client.ts";
import { SecretBox } from "../server/auth/secret-box.ts";
import {
  checkHost,
  InstallError,
  installAgent,
  KnownHosts,
  nodeWaiter,
  probeHost,
  removeAgent,
  type InstallEvent,
  type InstallOptions,
  type SshTarget,
} from "../server/installer/index.ts";
import { cleanUpInstalledAgents, startFromUnit, tree, type UnitProcess } from "./helpers/unit.ts";
import { startTestConsole, type TestConsole } from "./helpers/console.ts";
import { clientKey, createTestUser, freePort, startSshd, type SshdHandle, type TestUser } from "./helpers/sshd.ts";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { pushFixtureImages } from "./fixtures/images.ts";
import { until } from "./helpers/wait.ts";

const execFileP = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "..");
const V1 = "0.9.0-t1";
const V2 = "0.9.0-t2";

async function rejectsWith(p: Promise<unknown>, check: (e: InstallError) => void): Promise<InstallError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof InstallError, `expected an InstallError, got ${(e as Error)?.stack ?? e}`);
    check(e);
    return e;
  }
  assert.fail("expected the run to fail");
}

interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

describe("installing the agent over SSH", () => {
  let work: string;
  let prefix: string;
  let db: { prisma: PrismaClient };
  let registry: DbNodeRegistry;
  let cons: TestConsole;
  let sshd: SshdHandle;
  let user: TestUser;
  let plainUser: TestUser;
  let knownHosts: KnownHosts;
  let reg: RegistryFixture;
  let imageRef: string;
  let rootKey: { privateKey: string; publicKey: string };
  const rootKeyPassphrase = `kp-${randomBytes(9).toString("base64url")}`;
  const artifacts: Record<string, string> = {};
  const tag = randomBytes(2).toString("hex");
  const bridge = `bi${tag}`;
  const agentConfig = { bridge, "bridge-subnet": testBridgeSubnet(), "log-level": "debug" as const };
  const agents: UnitProcess[] = [];
  const events: InstallEvent[] = [];
  const secrets: string[] = [rootKeyPassphrase];
  let nodeId = "";

  const sock = () => join(prefix, "run/berth/docker.sock");
  const dockerConfig = () => join(work, "docker-config");
  const docker = (args: string[]): Promise<DockerResult> =>
    new Promise((res) => {
      const c = spawn("docker", args, {
        env: { ...process.env, DOCKER_HOST: `unix://${sock()}`, DOCKER_CONFIG: dockerConfig(), DOCKER_CLI_HINTS: "false" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      c.on("close", (code) => res({ code: code ?? -1, stdout, stderr }));
    });
  const userTarget = (over: Partial<SshTarget> = {}): SshTarget => ({
    host: sshd.host,
    port: sshd.port,
    username: user.name,
    credentials: { password: user.password },
    ...over,
  });
  const baseOptions = (over: Partial<InstallOptions> = {}): InstallOptions => ({
    target: userTarget(),
    consoleUrl: cons.url,
    artifactPath: artifacts[V1]!,
    prefix,
    agentConfig,
    waitForNode: () => Promise.reject(new Error("this run was not expected to get this far")),
    ...over,
  });
  const t0 = Date.now();
  const record = (e: InstallEvent) => {
    events.push(e);
    if (process.env.BERTH_TEST_TRACE) process.stderr.write(`${((Date.now() - t0) / 1000).toFixed(2)} ${JSON.stringify(e).slice(0, 300)}\n`);
  };
  const pinned = async () => ({ ...userTarget(), hostKeyFingerprint: await knownHosts.fingerprint(sshd.host, sshd.port) });
  /** Starts the installed agent as systemd would, and keeps it for cleanup. */
  const startAgent = async () => {
    const a = await startFromUnit(join(prefix, "etc/systemd/system/berth-agent.service"));
    agents.push(a);
    return a;
  };
  const agentLog = () => agents.map((a) => a.logs().split("\n").slice(-20).join("\n")).join("\n---\n");

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-installer-"));
    prefix = join(work, "prefix");
    await mkdir(prefix);
    await mkdir(dockerConfig());
    for (const v of [V1, V2]) {
      await execFileP(process.execPath, [join(ROOT, "scripts/build-agent.mjs"), "--out", join(work, v), "--version", v]);
      artifacts[v] = join(work, v, "berth-agent.tar.gz");
    }
    // The real console (tRPC, socket.io, the hub on its database), API only.
    cons = await startTestConsole("installer-ssh");
    db = { prisma: cons.services.prisma };
    registry = cons.services.nodeRegistry;
    knownHosts = new KnownHosts(db.prisma, new SecretBox(randomBytes(32)));
    sshd = await startSshd();
    user = await createTestUser({ sudo: "password" });
    plainUser = await createTestUser({ sudo: "none" });
    secrets.push(user.password, plainUser.password);
    rootKey = await clientKey(rootKeyPassphrase);
    secrets.push(rootKey.privateKey.split("\n")[1]!);
    await sshd.authorize("root", rootKey.publicKey);
    reg = await startRegistry({ auth: "none" });
    imageRef = (await pushFixtureImages(reg, { only: ["busybox"] })).busybox.ref;
  });

  after(async () => {
    await cleanUpInstalledAgents({ agents, ...(prefix ? { prefix } : {}), bridge, work });
    await user?.remove();
    await plainUser?.remove();
    await sshd?.stop();
    await cons?.stop();
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test("first contact shows the host key fingerprint ssh-keygen prints, and nothing is sent until it is confirmed", async () => {
    const key = await probeHost({ host: sshd.host, port: sshd.port });
    assert.equal(key.fingerprint, await sshd.fingerprint());
    assert.equal(key.algorithm, "ssh-ed25519");

    const mark = await sshd.mark();
    const err = await rejectsWith(installAgent(baseOptions({ joinToken: (await registry.createJoinToken()).token }), record), (e) => {
      assert.equal(e.kind, "host-key-unknown");
      assert.equal(e.step, "connect");
      assert.equal(e.fingerprint, key.fingerprint);
      assert.match(e.message, /first contact with 127\.0\.0\.1:\d+: its ssh-ed25519 host key is SHA256:/);
    });
    assert.ok(err.message.includes(key.fingerprint));
    const log = await until("sshd to log the connection end", async () => {
      const l = await sshd.logSince(mark);
      return /Connection (closed|reset) by|Disconnected from|kex_exchange_identification|ssh_dispatch_run_fatal|Read error/.test(l) ? l : undefined;
    });
    assert.match(log, /Connection from 127\.0\.0\.1/);
    assert.doesNotMatch(log, /userauth-request|Accepted|Failed password|Invalid user/, "no authentication may be attempted before the key is confirmed");
    assert.deepEqual(await tree(prefix), []);

    // The admin confirms: the pin is kept in the console's database.
    await knownHosts.pin(sshd.host, sshd.port, key);
    assert.equal(await knownHosts.fingerprint(sshd.host, sshd.port), key.fingerprint);
    const row = await db.prisma.sshHost.findFirstOrThrow({ where: { port: sshd.port } });
    assert.equal(row.hostKeyFingerprint, key.fingerprint);
    assert.equal(row.hostKeyAlgorithm, "ssh-ed25519");
  });

  test("a wrong password, a closed port and a user without sudo: clear errors, nothing on the host", async () => {
    const token = (await registry.createJoinToken()).token;
    secrets.push(token);
    const mark = await sshd.mark();
    await rejectsWith(
      installAgent(baseOptions({ target: { ...(await pinned()), credentials: { password: "not-the-password" } }, joinToken: token }), record),
      (e) => {
        assert.equal(e.kind, "auth");
        assert.equal(e.step, "connect");
        assert.match(e.message, new RegExp(`authentication failed for ${user.name}@127\\.0\\.0\\.1:${sshd.port}`));
      },
    );
    assert.match(
      await until("sshd to log the failure", async () => ((await sshd.logSince(mark)).includes("Failed password") ? sshd.logSince(mark) : undefined)),
      new RegExp(`Failed password for ${user.name}`),
    );

    const closed = await freePort();
    await rejectsWith(installAgent(baseOptions({ target: { ...(await pinned()), port: closed }, joinToken: token }), record), (e) => {
      assert.equal(e.kind, "unreachable");
      assert.equal(e.step, "connect");
      assert.match(e.message, new RegExp(`cannot connect to 127\\.0\\.0\\.1:${closed}: connection refused`));
    });

    const checklists: InstallEvent[] = [];
    await rejectsWith(
      installAgent(
        baseOptions({ target: { ...(await pinned()), username: plainUser.name, credentials: { password: plainUser.password } }, joinToken: token }),
        (e) => {
          record(e);
          if (e.type === "checklist") checklists.push(e);
        },
      ),
      (e) => {
        assert.equal(e.kind, "no-sudo");
        assert.equal(e.step, "preflight");
        assert.match(e.message, new RegExp(`Root or sudo: sudo refused ${plainUser.name}: the user may not use sudo`));
      },
    );
    assert.equal(checklists.length, 1);
    await rejectsWith(
      installAgent(
        baseOptions({ target: { ...(await pinned()), credentials: { password: user.password, sudoPassword: "wrong-sudo-password" } }, joinToken: token }),
        record,
      ),
      (e) => {
        assert.equal(e.kind, "no-sudo");
        assert.match(e.message, /wrong or missing sudo password/);
      },
    );
    assert.deepEqual(await tree(prefix), []);
    // The token was never used: nothing enrolled.
    assert.equal(await db.prisma.node.count(), 0);
  });

  test("a failed preflight (console unreachable from the node, not enough disk) shows the checklist and changes nothing", async () => {
    const checks: Extract<InstallEvent, { type: "checklist" }>[] = [];
    const dead = `http://127.0.0.1:${await freePort()}`;
    await rejectsWith(
      installAgent(baseOptions({ target: await pinned(), consoleUrl: dead, joinToken: "bjt_unused_token_for_this_run", minFreeDiskBytes: 2 ** 60 }), (e) => {
        record(e);
        if (e.type === "checklist") checks.push(e);
      }),
      (e) => {
        assert.equal(e.kind, "preflight");
        assert.equal(e.step, "preflight");
        assert.match(e.message, /Console reachable: http:\/\/127\.0\.0\.1:\d+\/api\/health is not reachable from the node/);
        assert.match(e.message, /Free disk: .* free on .*; at least 1073741824\.0 GiB needed/);
      },
    );
    assert.equal(checks.length, 1);
    const byId = new Map(checks[0]!.checks.map((c) => [c.id, c]));
    assert.deepEqual([...byId.keys()].sort(), [
      "arch",
      "artifact",
      "cgroups",
      "console",
      "disk",
      "init",
      "iptables",
      "kernel",
      "nodejs",
      "os",
      "overlayfs",
      "privilege",
    ]);
    for (const id of ["os", "arch", "kernel", "privilege", "init", "overlayfs", "cgroups", "iptables", "nodejs", "artifact"])
      assert.equal(byId.get(id as never)?.ok, true, `${id}: ${byId.get(id as never)?.detail}`);
    assert.equal(byId.get("console")?.ok, false);
    assert.equal(byId.get("disk")?.ok, false);
    assert.match(byId.get("os")!.detail, /Debian|Ubuntu|Fedora/);
    assert.match(byId.get("privilege")!.detail, new RegExp(`sudo works for ${user.name}`));
    // The same checklist on its own, as "Add node" shows it before installing.
    const alone = await checkHost({ target: await pinned(), consoleUrl: dead, prefix, minFreeDiskBytes: 2 ** 60 });
    assert.equal(alone.ok, false);
    assert.deepEqual(
      alone.checks.filter((c) => !c.ok).map((c) => c.id),
      ["disk", "console"],
    );
    // No agent artifact on the console: the checklist says so before anything is uploaded.
    const missing = join(tmpdir(), `no-such-artifact-${process.pid}.tar.gz`);
    const noArtifact = await checkHost({ target: await pinned(), consoleUrl: dead, prefix, artifactPath: missing });
    const artifact = noArtifact.checks.find((c) => c.id === "artifact");
    assert.equal(artifact?.ok, false);
    assert.equal(artifact?.detail, `the agent artifact ${missing} does not exist: build it with \`npm run build:agent\``);
    assert.equal(alone.installedVersion, undefined);
    assert.deepEqual(await tree(prefix), []);
  });

  test("a package step that fails (apt-get cannot find a package) rolls back and leaves nothing", async () => {
    // A second server whose sessions find a fake apt-get first on PATH: root logs in with
    // a passphrase-protected key, so no sudo is involved.
    const shims = join(work, "shims");
    await mkdir(shims);
    await writeFile(
      join(shims, "apt-get"),
      `#!/bin/sh
echo "$*" >> ${shims}/apt-get.calls
case " $* " in *" update "*) echo "Hit:1 http://deb.example bookworm InRelease"; echo "Reading package lists..."; exit 0;; esac
for p; do last=$p; done
echo "Reading package lists..."
echo "E: Unable to locate package $last" >&2
exit 100
`,
    );
    await chmod(join(shims, "apt-get"), 0o755);
    const shimmed = await startSshd({ sessionPath: `${shims}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin` });
    try {
      await shimmed.authorize("root", rootKey.publicKey);
      const target: SshTarget = {
        host: shimmed.host,
        port: shimmed.port,
        username: "root",
        credentials: { privateKey: rootKey.privateKey, passphrase: rootKeyPassphrase },
        hostKeyFingerprint: await shimmed.fingerprint(),
      };
      const before = await tree(prefix);
      const steps: InstallEvent[] = [];
      await rejectsWith(
        installAgent(baseOptions({ target, joinToken: "bjt_unused_token_for_this_run", extraPackages: ["berth-test-no-such-package"] }), (e) => {
          record(e);
          steps.push(e);
        }),
        (e) => {
          assert.equal(e.kind, "package");
          assert.equal(e.step, "packages");
          assert.match(
            e.message,
            /installing .*berth-test-no-such-package with apt-get failed on 127\.0\.0\.1:\d+ \(exit 100\): .*E: Unable to locate package berth-test-no-such-package/s,
          );
        },
      );
      const calls = await readFile(join(shims, "apt-get.calls"), "utf8");
      assert.match(calls, /update/);
      assert.match(calls, /install -y -q --no-install-recommends .*berth-test-no-such-package/);
      const output = steps
        .filter((e): e is Extract<InstallEvent, { type: "output" }> => e.type === "output" && e.step === "packages")
        .map((e) => e.text)
        .join("");
      assert.match(output, /E: Unable to locate package berth-test-no-such-package/, "the package manager's output streams to the caller");
      assert.ok(steps.some((e) => e.type === "step" && e.step === "packages" && e.status === "failed"));
      assert.ok(steps.some((e) => e.type === "rollback" && e.step === "packages" && e.status === "ok"));
      assert.deepEqual(await tree(prefix), before);
    } finally {
      await shimmed.stop();
    }
  });

  test("a node that never enrolls: the run fails at enroll and rolls back every file it wrote", async () => {
    const before = await tree(prefix);
    const seen: InstallEvent[] = [];
    await rejectsWith(
      installAgent(
        baseOptions({
          target: await pinned(),
          joinToken: "bjt_never_used_token_0000",
          enrollTimeoutMs: 1_500,
          waitForNode: ({ signal }) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")))),
        }),
        (e) => {
          record(e);
          seen.push(e);
        },
      ),
      (e) => {
        assert.equal(e.kind, "enrollment");
        assert.equal(e.step, "enroll");
        assert.match(e.message, /node never enrolled: the agent on 127\.0\.0\.1:\d+ did not enroll with http:\/\/127\.0\.0\.1:\d+ within 2 s/);
        assert.deepEqual(e.rollbackFailures, []);
      },
    );
    const done = seen.filter((e) => e.type === "step" && e.status === "ok").map((e) => (e as { step: string }).step);
    assert.deepEqual(done, ["connect", "preflight", "upload", "unpack", "config", "switch", "unit"]);
    const undone = seen.filter((e) => e.type === "rollback" && e.status === "ok").map((e) => (e as { step: string }).step);
    assert.deepEqual([...new Set(undone)], ["unit", "switch", "config", "unpack"]);
    assert.deepEqual(await tree(prefix), before, "nothing from the failed run is left in the prefix");
  });

  test("installs into the prefix; the unit passes systemd-analyze verify; the agent started by its ExecStart enrolls and is online", async () => {
    const issued = await registry.createJoinToken({ note: "ssh install" });
    secrets.push(issued.token);
    const waiter = nodeWaiter({ hub: cons.services.hub, prisma: db.prisma, joinTokenId: issued.id });
    const seen: InstallEvent[] = [];
    const result = await installAgent(
      baseOptions({
        target: await pinned(),
        joinToken: issued.token,
        waitForNode: async (ctx) => {
          assert.equal(ctx.upgrade, false);
          // systemd's part: start the unit as written.
          await startAgent();
          return waiter(ctx).catch((e: Error) => {
            throw new Error(`${e.message}\n${agentLog()}`);
          });
        },
      }),
      (e) => {
        record(e);
        seen.push(e);
      },
    );
    nodeId = result.nodeId;
    assert.equal(result.upgraded, false);
    assert.equal(result.version, V1);
    assert.equal(result.hostKey.fingerprint, await sshd.fingerprint());
    assert.deepEqual(
      result.skipped.map((s) => s.step),
      ["packages", "service"],
    );
    assert.match(result.skipped.find((s) => s.step === "service")!.reason, /install prefix .*: systemd is left alone/);
    const status = seen
      .filter((e): e is Extract<InstallEvent, { type: "step" }> => e.type === "step" && e.status !== "running")
      .map((e) => `${e.step}:${e.status}`);
    assert.deepEqual(status, [
      "connect:ok",
      "preflight:ok",
      "packages:skipped",
      "upload:ok",
      "unpack:ok",
      "config:ok",
      "switch:ok",
      "unit:ok",
      "service:skipped",
      "enroll:ok",
      "cleanup:ok",
    ]);

    // The files, where the issue says.
    const lib = join(prefix, "usr/lib/berth-agent");
    assert.equal(await readlink(join(lib, "current")), V1);
    assert.equal((await readFile(join(lib, V1, "VERSION"), "utf8")).trim(), V1);
    const configPath = join(prefix, "etc/berth/agent.json");
    assert.equal(result.configPath, configPath);
    assert.equal((await stat(configPath)).mode & 0o777, 0o600);
    const config = JSON.parse(await readFile(configPath, "utf8")) as Record<string, unknown>;
    assert.equal(config["console-url"], cons.url);
    assert.equal(config["join-token"], issued.token);
    assert.equal(config["credential-file"], join(prefix, "etc/berth/node-credential"));
    assert.equal(config["data-root"], join(prefix, "var/lib/berth"));
    assert.equal(config.bridge, bridge);
    assert.equal((await stat(join(prefix, "etc/berth/node-credential"))).mode & 0o777, 0o600, "the agent stored its credential");
    const unit = await readFile(result.unitPath, "utf8");
    assert.equal(result.unitPath, join(prefix, "etc/systemd/system/berth-agent.service"));
    for (const line of [
      "KillMode=process",
      "Delegate=yes",
      "Restart=always",
      "After=network-online.target",
      "Wants=network-online.target",
      "Environment=UV_THREADPOOL_SIZE=16",
      `ExecStart=${lib}/current/berth-agent --config ${configPath}`,
    ]) {
      assert.ok(unit.split("\n").includes(line), `the unit has ${line}`);
    }
    const verify = await execFileP("systemd-analyze", ["verify", result.unitPath]).then(
      (r) => ({ code: 0, out: r.stdout + r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
    );
    assert.equal(verify.code, 0, `systemd-analyze verify: ${verify.out}`);
    assert.doesNotMatch(verify.out, /berth-agent\.service/, `systemd-analyze verify has remarks on the unit: ${verify.out}`);

    // The console sees it: enrolled through that token, online, running the installed build.
    const node = await db.prisma.node.findUniqueOrThrow({ where: { id: nodeId }, include: { joinToken: true } });
    assert.equal(node.joinToken?.id, issued.id);
    const live = cons.services.hub.node(nodeId);
    assert.equal(live?.online, true);
    assert.equal(live?.agentVersion, V1);
    assert.match(agents[0]!.argv.join(" "), new RegExp(`^${lib}/current/berth-agent --config ${configPath}$`));

    const again = await checkHost({ target: await pinned(), consoleUrl: cons.url, prefix });
    assert.equal(again.ok, true, JSON.stringify(again.checks));
    assert.equal(again.installedVersion, V1, "installing again would upgrade");

    // The console keeps what the admin asked for: the pin, the node, and (sealed) credentials.
    await knownHosts.remember(sshd.host, sshd.port, { nodeId, username: user.name, installPrefix: prefix, credentials: { password: user.password } });
    const row = await db.prisma.sshHost.findFirstOrThrow({ where: { port: sshd.port } });
    assert.equal(row.nodeId, nodeId);
    assert.ok(row.credentialsSealed && !row.credentialsSealed.includes(user.password), "kept credentials are sealed");
    assert.deepEqual(await knownHosts.credentials(sshd.host, sshd.port), { password: user.password });
    assert.equal((await knownHosts.list()).find((h) => h.port === sshd.port)?.hasCredentials, true);
  });

  test("a changed host key between two runs is refused before authentication", async () => {
    const old = await sshd.fingerprint();
    await sshd.replaceHostKey();
    const fresh = await sshd.fingerprint();
    assert.notEqual(fresh, old);
    const mark = await sshd.mark();
    await rejectsWith(installAgent(baseOptions({ target: await pinned(), joinToken: "bjt_unused_token_for_this_run" }), record), (e) => {
      assert.equal(e.kind, "host-key-mismatch");
      assert.equal(e.step, "connect");
      assert.equal(e.fingerprint, fresh);
      assert.equal(e.expectedFingerprint, old);
      assert.match(e.message, /host key of 127\.0\.0\.1:\d+ changed.*No credential was sent/s);
    });
    const log = await until("sshd to log the connection end", async () => {
      const l = await sshd.logSince(mark);
      return /Connection (closed|reset) by|Disconnected from|ssh_dispatch_run_fatal|Read error/.test(l) ? l : undefined;
    });
    assert.match(log, /Connection from 127\.0\.0\.1/);
    assert.doesNotMatch(log, /userauth-request|Accepted|Failed password|Invalid user/, "the password must not reach a host with a changed key");
    assert.equal(await knownHosts.fingerprint(sshd.host, sshd.port), old, "the installer never re-pins by itself");
    // The admin checks the new key out of band and pins it again.
    await knownHosts.pin(sshd.host, sshd.port, await probeHost({ host: sshd.host, port: sshd.port }));
  });

  test("a failed upgrade (the new version never comes back online) switches back to the running version", async () => {
    const before = await tree(prefix);
    const config = await readFile(join(prefix, "etc/berth/agent.json"), "utf8");
    const seen: InstallEvent[] = [];
    await rejectsWith(
      installAgent(
        baseOptions({
          target: await pinned(),
          artifactPath: artifacts[V2]!,
          enrollTimeoutMs: 1_000,
          waitForNode: ({ signal }) => new Promise((_, reject) => signal.addEventListener("abort", () => reject(new Error("aborted")))),
        }),
        (e) => {
          record(e);
          seen.push(e);
        },
      ),
      (e) => {
        assert.equal(e.kind, "enrollment");
        assert.match(e.message, /node never came back online/);
      },
    );
    assert.ok(seen.some((e) => e.type === "rollback" && e.step === "switch" && e.label.includes(`back to ${V1}`) && e.status === "ok"));
    assert.equal(await readlink(join(prefix, "usr/lib/berth-agent/current")), V1);
    assert.equal(await readFile(join(prefix, "etc/berth/agent.json"), "utf8"), config);
    assert.deepEqual(
      await tree(prefix).then((t) => t.filter((p) => !p.startsWith("var/lib/berth/") && !p.startsWith("run/berth/"))),
      before.filter((p) => !p.startsWith("var/lib/berth/") && !p.startsWith("run/berth/")),
      "the prefix is as before the run (the agent's own data aside)",
    );
    assert.equal(cons.services.hub.node(nodeId)?.online, true, "the running agent was never touched");
  });

  test("upgrade with a container running: new version switched in, the agent restarted, the container keeps its PID and is adopted", async () => {
    const run = await docker(["run", "-d", "--name", "keeper", imageRef, "sleep", "3600"]);
    assert.equal(run.code, 0, `docker run: ${run.stderr}\n${agentLog()}`);
    const inspect = async () => JSON.parse((await docker(["inspect", "keeper"])).stdout)[0] as { State: { Pid: number; Running: boolean } };
    const pid = (await inspect()).State.Pid;
    assert.ok(pid > 0 && existsSync(`/proc/${pid}`));
    const startTime = (await readFile(`/proc/${pid}/stat`, "utf8")).split(" ")[21];
    await until("the console to list the container", () =>
      cons.services.hub.node(nodeId)?.inventory?.containers.some((c) => c.name.replace(/^\//, "") === "keeper"),
    );
    const configBefore = await readFile(join(prefix, "etc/berth/agent.json"), "utf8");
    const credentialBefore = await readFile(join(prefix, "etc/berth/node-credential"), "utf8");
    const old = agents.at(-1)!;

    // Root by key this time (no sudo), and the v2 artifact.
    const rootTarget: SshTarget = {
      host: sshd.host,
      port: sshd.port,
      username: "root",
      credentials: { privateKey: rootKey.privateKey, passphrase: rootKeyPassphrase },
      hostKeyFingerprint: await knownHosts.fingerprint(sshd.host, sshd.port),
    };
    const waiter = nodeWaiter({ hub: cons.services.hub, prisma: db.prisma, nodeId });
    const result = await installAgent(
      baseOptions({
        target: rootTarget,
        artifactPath: artifacts[V2]!,
        waitForNode: async (ctx) => {
          assert.equal(ctx.upgrade, true);
          assert.equal(ctx.version, V2);
          // systemd's `restart` with KillMode=process: SIGTERM to the agent alone, then ExecStart again.
          await old.stop();
          assert.ok(existsSync(`/proc/${pid}`), "the container survives the agent's stop");
          await startAgent();
          return waiter(ctx).catch((e: Error) => {
            throw new Error(`${e.message}\n${agentLog()}`);
          });
        },
      }),
      record,
    );
    assert.equal(result.upgraded, true);
    assert.equal(result.version, V2);
    assert.equal(result.previousVersion, V1);
    assert.equal(result.nodeId, nodeId, "the same node, not a new enrollment");
    const lib = join(prefix, "usr/lib/berth-agent");
    assert.equal(await readlink(join(lib, "current")), V2);
    assert.deepEqual((await readdir(lib)).sort(), [V1, V2, "current"], "the previous version is kept for a rollback; nothing else");
    assert.equal(await readFile(join(prefix, "etc/berth/agent.json"), "utf8"), configBefore, "config kept");
    assert.equal(await readFile(join(prefix, "etc/berth/node-credential"), "utf8"), credentialBefore, "credential kept");

    const agentPid = agents.at(-1)!.child.pid!;
    const cmdline = (await readFile(`/proc/${agentPid}/cmdline`, "utf8")).split("\0");
    assert.ok(cmdline.includes(join(lib, V2, "berth-agent.mjs")), `the agent runs the new version: ${cmdline.join(" ")}`);
    assert.equal(cons.services.hub.node(nodeId)?.agentVersion, V2);

    const after = await inspect();
    assert.equal(after.State.Pid, pid, "the container's PID is unchanged");
    assert.equal(after.State.Running, true);
    assert.equal((await readFile(`/proc/${pid}/stat`, "utf8")).split(" ")[21], startTime, "the very same process (not a reused PID)");
    const ps = await docker(["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert.match(ps.stdout, /^keeper Up/m, `docker ps after the upgrade: ${ps.stdout}${ps.stderr}`);
    await until("the console to list the adopted container as running", () =>
      cons.services.hub.node(nodeId)?.inventory?.containers.some((c) => c.name.replace(/^\//, "") === "keeper" && c.state === "running"),
    );
  });

  test("remove: stops the agent and removes unit, agent, config and (asked) the containers and data", async () => {
    const pid = JSON.parse((await docker(["inspect", "keeper"])).stdout)[0].State.Pid as number;
    const agent = agents.at(-1)!;
    const seen: InstallEvent[] = [];
    const result = await removeAgent({ target: await pinned(), prefix, removeData: true }, (e) => {
      record(e);
      seen.push(e);
    });
    assert.equal(result.found, true);
    assert.equal(result.version, V2);
    assert.equal(result.dataRemoved, true);
    await until("the agent to exit", () => agent.child.exitCode !== null || agent.child.signalCode !== null);
    await until("the container to be gone", () => !existsSync(`/proc/${pid}`));
    for (const p of ["usr/lib/berth-agent", "etc/berth", "etc/systemd/system/berth-agent.service", "var/lib/berth", "run/berth"])
      assert.equal(existsSync(join(prefix, p)), false, `${p} is removed`);
    assert.deepEqual(
      (await tree(prefix)).filter((p) => p.includes("berth")),
      [],
      "no berth file or directory left, also no moved-aside copy",
    );
    await assert.rejects(execFileP("ip", ["link", "show", bridge]), "the agent's bridge is gone");
    const status = seen
      .filter((e): e is Extract<InstallEvent, { type: "step" }> => e.type === "step" && e.status !== "running")
      .map((e) => `${e.step}:${e.status}`);
    assert.deepEqual(status, ["connect:ok", "inspect:ok", "stop:ok", "files:ok", "data:ok", "cleanup:ok"]);
    await until("the console to see the node offline", () => cons.services.hub.node(nodeId)?.online === false);
    // The console's part: revoke the node's credential.
    await registry.revokeNode(nodeId);
    assert.equal(await registry.isRevoked(nodeId), true);

    // Removing again finds nothing and changes nothing.
    const again = await removeAgent({ target: await pinned(), prefix }, record);
    assert.equal(again.found, false);
  });

  test("no event carried a password, key, passphrase or join token", () => {
    const text = JSON.stringify(events);
    assert.ok(events.length > 50, `events were recorded (${events.length})`);
    for (const s of secrets) assert.ok(!text.includes(s), "a secret appeared in the event stream");
  });
});
