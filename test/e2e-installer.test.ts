// Add node over SSH, end to end in Debian's Chromium (playwright-core): a real OpenSSH server
// on 127.0.0.1 with a password user who has sudo, the real console with its pages, and an
// admin in the browser who checks the host key, trusts it, runs the preflight, installs into
// an install prefix in a temporary directory and follows the steps live. There is no systemd
// as PID 1 here: when the run waits for the node, the test starts the installed agent with
// the unit's own ExecStart line, as systemd would. The node then shows online on the Fleet
// page. The admin removes the agent again from the pinned hosts table, and after the host key
// changes the page refuses the host and offers no install. Screenshots go to
// test-artifacts/e2e-installer/.
import { after, before, describe, test } from "node:test";
import { testBridgeSubnet } from "./helpers/agent.ts";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { type Browser, type Page } from "playwright-core";
import { launchChromium } from "./helpers/chromium.ts";
import { PROJECT_ROOT } from "../server/console.ts";
import { createUser, sessionCookie, startTestConsole, type TestConsole } from "./helpers/console.ts";
import { createTestUser, startSshd, type SshdHandle, type TestUser } from "./helpers/sshd.ts";
import { cleanUpInstalledAgents, startFromUnit, type UnitProcess } from "./helpers/unit.ts";
import { KnownHosts } from "../server/installer/known-hosts.ts";

const execFileP = promisify(execFile);
const ARTIFACTS = join(PROJECT_ROOT, "test-artifacts", "e2e-installer");
const VERSION = "0.9.0-e2e";
const VERSION_2 = "0.9.1-e2e";

describe("Add node over SSH in the browser", () => {
  let work: string;
  let prefix: string;
  let sshd: SshdHandle;
  let user: TestUser;
  let c: TestConsole;
  let browser: Browser;
  let page: Page;
  let shot = 0;
  let nodeId = "";
  const agents: UnitProcess[] = [];
  const tag = randomBytes(2).toString("hex");
  const bridge = `be${tag}`;
  const savedArtifactEnv = process.env.BERTH_AGENT_ARTIFACT;

  const screenshot = async (name: string) => {
    shot += 1;
    await page.screenshot({ path: join(ARTIFACTS, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
  };
  const agentLog = () => agents.map((a) => a.logs().split("\n").slice(-20).join("\n")).join("\n---\n");

  before(async () => {
    // Only this run's screenshots: older ones would pass for pages this run never showed.
    await rm(ARTIFACTS, { recursive: true, force: true });
    await mkdir(ARTIFACTS, { recursive: true });
    work = await mkdtemp(join(tmpdir(), "berth-e2e-installer-"));
    prefix = join(work, "prefix");
    await mkdir(prefix);
    // The console ships the artifact BERTH_AGENT_ARTIFACT names (it runs in this process).
    await execFileP(process.execPath, [join(PROJECT_ROOT, "scripts/build-agent.mjs"), "--out", join(work, "artifact"), "--version", VERSION]);
    process.env.BERTH_AGENT_ARTIFACT = join(work, "artifact", "berth-agent.tar.gz");
    sshd = await startSshd();
    user = await createTestUser({ sudo: "password" });
    c = await startTestConsole("e2e-installer", { ui: true });
    const admin = await createUser(c, "admin");
    const cookie = await sessionCookie(c, admin.id);
    const eq = cookie.indexOf("=");
    browser = await launchChromium();
    const context = await browser.newContext({ baseURL: c.url, viewport: { width: 1400, height: 1000 } });
    await context.addCookies([{ name: cookie.slice(0, eq), value: cookie.slice(eq + 1), url: c.url, httpOnly: true, sameSite: "Lax" }]);
    page = await context.newPage();
    page.setDefaultTimeout(30_000);
  });

  after(async () => {
    await browser?.close();
    await cleanUpInstalledAgents({ agents, ...(prefix ? { prefix } : {}), bridge, work });
    await user?.remove();
    await sshd?.stop();
    await c?.stop();
    if (savedArtifactEnv === undefined) delete process.env.BERTH_AGENT_ARTIFACT;
    else process.env.BERTH_AGENT_ARTIFACT = savedArtifactEnv;
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function fillHost() {
    await page.goto("/admin/add-node");
    await page.getByRole("heading", { name: "Add node" }).waitFor();
    await page.getByLabel("Host", { exact: true }).fill(sshd.host);
    await page.getByLabel("Port", { exact: true }).fill(String(sshd.port));
    await page.getByLabel("User", { exact: true }).fill(user.name);
    await page.getByLabel("Password", { exact: true }).fill(user.password);
    await page.getByLabel("Sudo password", { exact: true }).fill(user.password);
    await page.getByText("Advanced").click();
    await page.getByLabel("Install prefix", { exact: true }).fill(prefix);
  }

  test("check and trust the host key, preflight, install: the node enrolls and shows online on the Fleet page", async () => {
    await fillHost();
    assert.equal(await page.getByLabel("Keep credentials").isChecked(), false, "credentials are not kept unless asked");
    await page.getByRole("button", { name: "Check host key" }).click();
    const fp = page.getByTestId("host-fingerprint");
    await fp.waitFor();
    assert.equal((await fp.innerText()).trim(), await sshd.fingerprint(), "the fingerprint ssh-keygen -lf prints");
    assert.equal(await page.getByTestId("host-key").getAttribute("data-state"), "new");
    assert.equal(await page.getByRole("button", { name: "Run preflight" }).count(), 0, "no login before the key is trusted");
    await screenshot("first-contact");
    await page.getByRole("button", { name: "Trust this key" }).click();
    await page.locator("[data-testid=host-key][data-state=pinned]").waitFor();
    await page.locator("[data-testid=pinned-hosts] tr", { hasText: `${sshd.host}:${sshd.port}` }).waitFor();

    await page.getByRole("button", { name: "Run preflight" }).click();
    const checks = page.locator("[data-testid=preflight] [data-testid=preflight-check]");
    await checks.first().waitFor({ timeout: 60_000 });
    const rows = await checks.evaluateAll((trs) =>
      trs.map((tr) => ({ id: tr.getAttribute("data-check"), ok: tr.getAttribute("data-ok"), text: (tr as HTMLElement).innerText })),
    );
    assert.ok(rows.length >= 10, `one row per check: ${JSON.stringify(rows)}`);
    for (const id of ["os", "arch", "kernel", "privilege", "overlayfs", "cgroups", "disk", "nodejs", "console"])
      assert.ok(
        rows.some((r) => r.id === id),
        `a ${id} check`,
      );
    assert.deepEqual(
      rows.filter((r) => r.ok !== "yes"),
      [],
      "every check passes",
    );
    assert.match(rows.find((r) => r.id === "privilege")!.text, /pass/);
    await screenshot("preflight");

    await page.getByRole("button", { name: "Install", exact: true }).click();
    await page.getByTestId("install-step").first().waitFor();
    // The run waits for the node: start the agent the way systemd would, with its own bridge
    // (this machine may run other agents on the default one).
    await page.locator("[data-testid=install-step][data-step=enroll][data-status=running]").waitFor({ timeout: 120_000 });
    await screenshot("waiting-for-enrollment");
    const config = join(prefix, "etc/berth/agent.json");
    const json = JSON.parse(await readFile(config, "utf8")) as Record<string, unknown>;
    await writeFile(config, JSON.stringify({ ...json, bridge, "bridge-subnet": testBridgeSubnet() }, null, 2) + "\n", { mode: 0o600 });
    agents.push(await startFromUnit(join(prefix, "etc/systemd/system/berth-agent.service")));

    const result = page.locator("[data-testid=install-result]");
    await result.waitFor({ timeout: 120_000 }).catch((e: Error) => {
      throw new Error(`${e.message}\n${agentLog()}`);
    });
    assert.equal(await result.getAttribute("data-outcome"), "succeeded", `${await result.innerText()}\n${agentLog()}`);
    assert.match(await result.innerText(), /online/);
    const steps = await page
      .getByTestId("install-step")
      .evaluateAll((lis) => lis.map((li) => `${li.getAttribute("data-step")}:${li.getAttribute("data-status")}`));
    assert.deepEqual(
      steps.filter((s) => !s.startsWith("cleanup")),
      [
        "connect:ok",
        "preflight:ok",
        steps.find((s) => s.startsWith("packages:"))!,
        "upload:ok",
        "unpack:ok",
        "config:ok",
        "switch:ok",
        "unit:ok",
        "service:skipped",
        "enroll:ok",
      ],
    );
    await screenshot("installed");
    const href = await page.getByTestId("install-node-link").getAttribute("href");
    nodeId = href?.split("/").pop() ?? "";
    assert.match(nodeId, /^[0-9a-f-]{36}$/);

    // The requirement: the node shows online in the browser.
    await page.goto("/");
    const row = page.locator("[data-testid=nodes] tbody tr", { has: page.locator(`a[href="/nodes/${nodeId}"]`) });
    await row.getByText("online", { exact: true }).waitFor({ timeout: 30_000 });
    await screenshot("fleet-online");

    const db = c.services.prisma;
    const pin = await db.sshHost.findFirstOrThrow({ where: { port: sshd.port } });
    assert.equal(pin.nodeId, nodeId);
    assert.equal(pin.credentialsSealed, null, "credentials not kept");
    const finished = await db.auditLog.findFirstOrThrow({ where: { action: "installer.install.finished" } });
    assert.equal(finished.outcome, "success");
    assert.deepEqual(finished.targetNodeIds, [nodeId]);
    const entries = await db.auditLog.findMany({ select: { action: true, outcome: true, details: true } });
    assert.ok(entries.some((e) => e.action === "installer.install" && e.outcome === "success"));
    assert.ok(!JSON.stringify(entries).includes(user.password), "the SSH password is in no audit entry");
    // The join token the run made enrolled the node; none is left lying around.
    assert.equal(await db.joinToken.count({ where: { usedAt: null } }), 0);
  });

  test("the manual install section makes a one-line install command", async () => {
    await page.goto("/admin/add-node");
    await page.getByRole("button", { name: "Create install command" }).click();
    const cmd = (await page.getByTestId("manual-install-command").innerText()).trim();
    assert.match(cmd, new RegExp(`^curl -fsSL '${c.url.replace(/[.]/g, "\\.")}/install\\.sh\\?token=bjt_[A-Za-z0-9_-]{43}' \\| sudo bash$`));
    const script = await fetch(cmd.split(" ")[2]!.replace(/^'|'$/g, ""));
    assert.equal(script.status, 200);
    assert.match(await script.text(), /^#!\/bin\/bash/);
    await screenshot("manual-install");
  });

  test("Upgrade agent on the node page: a job re-uploads the console's agent over SSH, and the node comes back on the new version", async () => {
    assert.ok(nodeId, "installed by the first test");
    await page.goto(`/nodes/${nodeId}`);
    // Installed without "keep credentials": the button says what to do instead of failing.
    await page.getByRole("button", { name: "Upgrade agent" }).click();
    await page
      .getByTestId("upgrade-unavailable")
      .getByText(/no SSH login is kept/)
      .waitFor();
    await screenshot("upgrade-needs-kept-login");

    // A newer agent for the console to ship, and the login kept (as "Keep credentials" at install keeps it).
    await execFileP(process.execPath, [join(PROJECT_ROOT, "scripts/build-agent.mjs"), "--out", join(work, "artifact-v2"), "--version", VERSION_2]);
    process.env.BERTH_AGENT_ARTIFACT = join(work, "artifact-v2", "berth-agent.tar.gz");
    await new KnownHosts(c.services.prisma, c.services.secretBox).remember(sshd.host, sshd.port, {
      credentials: { password: user.password, sudoPassword: user.password },
    });
    await page.reload();
    await page.getByRole("button", { name: "Upgrade agent" }).click();
    const confirm = page.getByRole("alertdialog", { name: "confirm upgrade agent" });
    await confirm.getByText(/Running containers keep running/).waitFor();
    assert.match(await confirm.innerText(), new RegExp(`from ${VERSION.replace(/\./g, "\\.")} to ${VERSION_2.replace(/\./g, "\\.")}`));
    assert.match(await confirm.innerText(), new RegExp(`${sshd.host}:${sshd.port}`));
    await screenshot("upgrade-confirmation");
    await confirm.getByRole("button", { name: "Confirm upgrade" }).click();
    const job = page.getByTestId("inline-job");
    // No systemd here: when the run waits for the node, restart the agent as `systemctl restart` would (KillMode=process).
    await job.getByText(/Wait for the node to come back online: running/).waitFor({ timeout: 120_000 });
    await screenshot("upgrade-running");
    await agents.at(-1)!.stop();
    agents.push(await startFromUnit(join(prefix, "etc/systemd/system/berth-agent.service")));
    await page.locator('[data-testid=inline-job][data-status="succeeded"]').waitFor({ timeout: 120_000 });
    assert.equal(c.services.hub.node(nodeId)?.agentVersion, VERSION_2, agentLog());
    await page.getByRole("heading").getByText("online").waitFor();
    await screenshot("upgrade-succeeded");
    const row = await c.services.prisma.jobStep.findFirstOrThrow({ where: { nodeId, action: "agent.upgrade" } });
    assert.equal(row.status, "succeeded");
    assert.equal((row.result as { version?: string }).version, VERSION_2);
    const audit = await c.services.prisma.auditLog.findFirstOrThrow({ where: { action: "installer.upgrade" } });
    assert.equal(audit.outcome, "success");
    assert.deepEqual(audit.targetNodeIds, [nodeId]);
    assert.ok(!JSON.stringify(await c.services.prisma.job.findMany()).includes(user.password), "the SSH password is in no job");
    // Back to how the install left it (no login kept): the removal below gives its own.
    await new KnownHosts(c.services.prisma, c.services.secretBox).remember(sshd.host, sshd.port, { credentials: null });
  });

  test("Remove agent from the pinned hosts: the agent stops, its files and data go, the node is revoked", async () => {
    assert.ok(nodeId, "installed by the first test");
    await page.goto("/admin/add-node");
    const row = page.locator("[data-testid=pinned-hosts] tr", { hasText: `${sshd.host}:${sshd.port}` });
    await row.getByText("online").waitFor();
    await row.getByLabel("Also remove containers, images and volumes").check();
    await row.getByLabel(`SSH password for ${sshd.host}`).fill(user.password);
    await row.getByRole("button", { name: "Remove agent" }).click();
    await row.getByRole("button", { name: "Really remove agent and data" }).click();
    const result = page.locator("[data-testid=install-run][data-status] [data-testid=install-result]");
    await result.waitFor({ timeout: 90_000 });
    assert.equal(await result.getAttribute("data-outcome"), "succeeded", await result.innerText());
    assert.match(await result.innerText(), /revoked/);
    await screenshot("removed");
    await Promise.all(agents.map((a) => a.stop()));
    for (const p of ["usr/lib/berth-agent", "etc/berth", "etc/systemd/system/berth-agent.service", "var/lib/berth"])
      assert.equal(existsSync(join(prefix, p)), false, `${p} is removed`);
    assert.notEqual((await c.services.prisma.node.findUniqueOrThrow({ where: { id: nodeId } })).revokedAt, null);
    await page.goto("/");
    await page
      .locator("[data-testid=nodes] tbody tr", { has: page.locator(`a[href="/nodes/${nodeId}"]`) })
      .getByText("revoked", { exact: true })
      .waitFor();
  });

  test("after the host key changed, Check host key shows it changed and offers no install", async () => {
    const before = await sshd.fingerprint();
    await sshd.replaceHostKey();
    const after = await sshd.fingerprint();
    assert.notEqual(after, before);
    await fillHost();
    await page.getByRole("button", { name: "Check host key" }).click();
    await page.locator("[data-testid=host-key][data-state=changed]").waitFor();
    assert.equal((await page.getByTestId("host-fingerprint").innerText()).trim(), after);
    assert.match(await page.getByTestId("host-key-changed").innerText(), new RegExp(`has changed: it was pinned as ${before.replace(/[+/]/g, "\\$&")}`));
    assert.equal(await page.getByRole("button", { name: "Install", exact: true }).count(), 0, "no way to install");
    assert.equal(await page.getByRole("button", { name: "Run preflight" }).count(), 0);
    assert.equal(await page.getByRole("button", { name: "Trust this key" }).count(), 0);
    await page.getByRole("button", { name: "Forget pinned key" }).waitFor();
    await screenshot("host-key-changed");
    // The pin itself is unchanged.
    assert.equal((await c.services.prisma.sshHost.findFirstOrThrow({ where: { port: sshd.port } })).hostKeyFingerprint, before);
  });
});
