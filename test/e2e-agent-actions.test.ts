// End to end in Debian's Chromium: the node page's "Restart agent" on a supervised agent
// (the test plays systemd's Restart=always: startAgent({ supervised: true })) takes the node
// offline and back online while a running container keeps running, with the same ID; on an
// agent nothing supervises it says so and kills nothing; "Upgrade agent" on a node not
// installed over SSH says why it is not available. And the live updates' scope: a change on
// node A refetches none of node B's page queries, a change on B does, and a burst of changes
// refetches the fleet list at most once per window. The SSH upgrade itself is in
// test/e2e-installer.test.ts. Screenshots: test-artifacts/e2e-agent-actions/.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { type Browser, type Page, type Request } from "playwright-core";
import { consolePage, launchChromium } from "./helpers/chromium.ts";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "./fixtures/images.ts";
import { dockerOk, startAgent, type AgentHandle } from "./helpers/agent.ts";
import { createUser, startTestConsole, type TestConsole, type TestUser } from "./helpers/console.ts";
import { PROJECT_ROOT } from "../server/console.ts";
import { FLEET_REFRESH_MS } from "../app/lib/node-refresh.ts";

const ARTIFACTS = join(PROJECT_ROOT, "test-artifacts", "e2e-agent-actions");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The tRPC queries of one browser request, with the node id of each input (the app sends no transformer). */
function queriesOf(req: Request): Array<{ path: string; nodeId?: string }> {
  const u = new URL(req.url());
  if (!u.pathname.startsWith("/api/trpc/") || req.method() !== "GET") return [];
  const inputs = JSON.parse(u.searchParams.get("input") ?? "{}") as Record<string, { nodeId?: string } | undefined>;
  return decodeURIComponent(u.pathname.slice("/api/trpc/".length))
    .split(",")
    .map((path, i) => ({ path, ...(inputs[String(i)]?.nodeId ? { nodeId: inputs[String(i)]!.nodeId! } : {}) }));
}

describe("agent actions and live update scope in a browser", () => {
  let registry: RegistryFixture;
  let images: FixtureImages;
  let c: TestConsole;
  let browser: Browser;
  let page: Page;
  let admin: TestUser;
  /** A: supervised (restartable); B: not. */
  let agentA: AgentHandle;
  let agentB: AgentHandle;
  let idA: string;
  let idB: string;
  let image: string;
  let shot = 0;
  const sent: Array<{ t: number; path: string; nodeId?: string }> = [];

  const screenshot = async (name: string) => {
    shot += 1;
    await page.screenshot({ path: join(ARTIFACTS, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
  };

  async function enroll(supervised: boolean): Promise<{ agent: AgentHandle; nodeId: string }> {
    const r = await page.request.post("/api/trpc/admin.tokens.create", {
      headers: { origin: c.url, "content-type": "application/json" },
      data: { note: supervised ? "supervised" : "unsupervised", nodeGroupId: null, ttlHours: 1 },
    });
    assert.equal(r.status(), 200, await r.text());
    const token = ((await r.json()) as { result: { data: { token: string } } }).result.data.token;
    const known = new Set((await c.services.prisma.node.findMany({ select: { id: true } })).map((n) => n.id));
    const agent = await startAgent({ consoleUrl: c.url, joinToken: token, insecureRegistries: [registry.host], supervised });
    for (let i = 0; i < 600; i++) {
      const n = (await c.services.prisma.node.findMany({ select: { id: true } })).find((x) => !known.has(x.id));
      if (n && c.services.hub.node(n.id)?.online) return { agent, nodeId: n.id };
      await sleep(100);
    }
    throw new Error(`the agent did not enroll:\n${agent.logs().slice(-3000)}`);
  }

  before(async () => {
    await rm(ARTIFACTS, { recursive: true, force: true });
    await mkdir(ARTIFACTS, { recursive: true });
    registry = await startRegistry({ auth: "none" });
    images = await pushFixtureImages(registry);
    image = `${registry.host}/${images.busybox.repository}:${images.busybox.tag}`;
    c = await startTestConsole("e2e-agent-actions", { ui: true });
    admin = await createUser(c, "admin");
    browser = await launchChromium();
    page = await consolePage(browser, c.url);
    page.on("request", (r) => {
      for (const q of queriesOf(r)) sent.push({ t: Date.now(), ...q });
    });
    await page.goto("/login");
    await page.getByLabel("Email").fill(admin.email);
    await page.getByLabel("Password").fill(admin.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Fleet" }).waitFor();
    ({ agent: agentA, nodeId: idA } = await enroll(true));
    ({ agent: agentB, nodeId: idB } = await enroll(false));
    await c.services.prisma.node.update({ where: { id: idA }, data: { name: "node-a" } });
    await c.services.prisma.node.update({ where: { id: idB }, data: { name: "node-b" } });
  });

  after(async () => {
    await browser?.close();
    await agentA?.destroy();
    await agentB?.destroy();
    await c?.stop();
    await registry?.stop();
  });

  test("restart agent: the node goes offline and comes back; the running container keeps running with the same ID", async () => {
    const id = (await dockerOk(agentA, ["run", "-d", "--name", "keeper", image, "sleep", "3600"])).trim();
    const pid = Number((await dockerOk(agentA, ["inspect", "-f", "{{.State.Pid}}", "keeper"])).trim());
    const firstAgentPid = agentA.process.pid;
    await page.goto(`/nodes/${idA}`);
    const row = page.locator('[data-testid=containers] tbody tr[data-container="keeper"]');
    await row.and(page.locator('[data-state="running"]')).waitFor();
    assert.ok((await row.innerText()).includes(id.slice(0, 12)), "the row shows the container's short ID");
    await page.getByRole("button", { name: "Restart agent" }).click();
    const confirm = page.getByRole("alertdialog", { name: "confirm restart agent" });
    await confirm.getByText(/Running containers keep running/).waitFor();
    assert.match(await confirm.innerText(), /node-a/);
    await screenshot("restart-confirmation");
    await confirm.getByRole("button", { name: "Confirm restart" }).click();
    await page.locator('[data-testid=restart-status][data-phase="offline"]').waitFor({ timeout: 30_000 });
    await page
      .getByRole("heading", { name: /node-a/ })
      .getByText("offline")
      .waitFor();
    await screenshot("restart-offline");
    await page.locator('[data-testid=restart-status][data-phase="back"]').waitFor({ timeout: 60_000 });
    await page
      .getByRole("heading", { name: /node-a/ })
      .getByText("online")
      .waitFor();
    assert.notEqual(agentA.process.pid, firstAgentPid, `a new agent process runs:\n${agentA.logs().slice(-2000)}`);
    assert.match(agentA.logs(), /\[test supervisor\] berth-agent exited \(0\)/, "the agent exited by itself, cleanly");
    // The same container, still running, adopted by the new agent: the page and the CLI agree.
    await row.and(page.locator('[data-state="running"]')).waitFor();
    assert.ok((await row.innerText()).includes(id.slice(0, 12)), "the same container ID after the restart");
    assert.equal((await dockerOk(agentA, ["inspect", "-f", "{{.Id}} {{.State.Running}} {{.State.Pid}}", "keeper"])).trim(), `${id} true ${pid}`);
    await screenshot("restart-back-online");
    const audit = await c.services.prisma.auditLog.findFirst({ where: { action: "nodes.restartAgent" } });
    assert.equal(audit?.outcome, "success");
    assert.deepEqual(audit?.targetNodeIds, [idA]);
  });

  test("an agent nothing supervises is not stopped: the page says to restart it on the host; upgrade says why it is unavailable", async () => {
    const pid = agentB.process.pid;
    await page.goto(`/nodes/${idB}`);
    await page.getByTestId("engine-facts").waitFor();
    await page.getByRole("button", { name: "Restart agent" }).click();
    await page
      .getByTestId("restart-unavailable")
      .getByText(/not supervised.*Restart it on the host/)
      .waitFor();
    assert.equal(await page.getByRole("button", { name: "Confirm restart" }).count(), 0, "no way to confirm");
    await screenshot("restart-not-supervised");
    // Asked anyway (an old page, a script): the agent refuses and keeps running.
    const r = await page.request.post("/api/trpc/nodes.restartAgent", {
      headers: { origin: c.url, "content-type": "application/json" },
      data: { nodeId: idB },
    });
    assert.equal(r.status(), 412, await r.text());
    assert.match(await r.text(), /not supervised/);
    await sleep(1000);
    assert.equal(agentB.process.pid, pid);
    assert.equal(agentB.process.exitCode, null, "the agent still runs");
    assert.equal(c.services.hub.node(idB)?.online, true);

    await page.getByRole("button", { name: "Upgrade agent" }).click();
    await page
      .getByTestId("upgrade-unavailable")
      .getByText(/not installed over SSH/)
      .waitFor();
    await screenshot("upgrade-not-available");
  });

  test("a change on node A refetches none of node B's page queries; a change on B does; the fleet list waits for its window", async () => {
    await page.goto(`/nodes/${idB}`);
    await page.getByTestId("engine-facts").waitFor();
    await sleep(2 * FLEET_REFRESH_MS);
    let from = Date.now();
    for (let i = 0; i < 3; i++) {
      await dockerOk(agentA, ["create", "--name", `a-change-${i}`, image, "true"]);
      await sleep(400);
    }
    await sleep(FLEET_REFRESH_MS + 1500);
    const afterA = sent.filter((q) => q.t >= from);
    assert.deepEqual(
      afterA.filter((q) => q.nodeId === idB),
      [],
      `node B's page refetched nothing of B for changes on A: ${JSON.stringify(afterA)}`,
    );
    assert.deepEqual(
      afterA.filter((q) => q.nodeId === idA),
      [],
      "nor anything of A (no query of A is on B's page)",
    );

    from = Date.now();
    await dockerOk(agentB, ["create", "--name", "b-change", image, "true"]);
    await page.locator('[data-testid=containers] tbody tr[data-container="b-change"]').waitFor();
    const afterB = sent.filter((q) => q.t >= from);
    assert.ok(
      afterB.some((q) => q.path === "inventory.containers" && q.nodeId === idB),
      `B's containers refetched for a change on B: ${JSON.stringify(afterB)}`,
    );
    await screenshot("node-b-after-its-change");

    // The fleet list: a burst of changes on both nodes, at most one refetch per window (plus the one at its start).
    await page.goto("/");
    await page.locator("[data-testid=nodes] tbody tr[data-node]").first().waitFor();
    await sleep(2 * FLEET_REFRESH_MS);
    from = Date.now();
    const burstStart = Date.now();
    for (let i = 0; i < 6; i++) await dockerOk(i % 2 ? agentB : agentA, ["create", "--name", `burst-${i}`, image, "true"]);
    const burstMs = Date.now() - burstStart;
    await sleep(FLEET_REFRESH_MS + 1500);
    const lists = sent.filter((q) => q.t >= from && q.path === "nodes.list").length;
    const allowed = Math.ceil((burstMs + 1500) / FLEET_REFRESH_MS) + 1;
    assert.ok(lists >= 1, "the fleet list shows the changes");
    assert.ok(lists <= allowed, `the fleet list refetched ${lists} times in ${burstMs + FLEET_REFRESH_MS + 1500} ms (at most ${allowed})`);
  });
});
