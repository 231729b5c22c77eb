// End to end in Debian's Chromium (playwright-core): the first admin signs in with the
// one-time password and sets a new one, creates a join token, a real agent on this machine
// enrolls with it, the admin pulls an image from the fixture registry on it watching the
// per-layer progress, runs a container from the form, sees it running, opens a shell in it,
// stops and removes
// it, and finds each step in the audit log. A viewer sees the same pages without action
// buttons, and the API refuses the viewer's direct call. Screenshots go to test-artifacts/e2e/.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { type Browser, type BrowserContext, type Page } from "playwright-core";
import { consolePage, launchChromium } from "./helpers/chromium.ts";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "./fixtures/images.ts";
import { startAgent, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { createTeamWithGroup, createUser, startTestConsole, type TestConsole, type TestUser } from "./helpers/console.ts";
import { PROJECT_ROOT } from "../server/console.ts";

const ARTIFACTS = join(PROJECT_ROOT, "test-artifacts", "e2e");
const NEW_PASSWORD = "a long new admin password";

describe("the console in a browser", () => {
  let registry: RegistryFixture;
  let images: FixtureImages;
  let c: TestConsole;
  let agent: AgentHandle | undefined;
  let browser: Browser;
  let adminContext: BrowserContext;
  let page: Page;
  let shot = 0;
  let viewer: TestUser;
  /** URLs the admin's pages got a 404 for (a missing favicon or asset shows here). */
  const notFound: string[] = [];

  const screenshot = async (p: Page, name: string) => {
    shot += 1;
    await p.screenshot({ path: join(ARTIFACTS, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
  };

  before(async () => {
    // Only this run's screenshots: older ones would pass for pages this run never showed.
    await rm(ARTIFACTS, { recursive: true, force: true });
    await mkdir(ARTIFACTS, { recursive: true });
    registry = await startRegistry({ auth: "none" });
    images = await pushFixtureImages(registry);
    c = await startTestConsole("e2e-console", { ui: true });
    browser = await launchChromium();
    adminContext = await browser.newContext({ baseURL: c.url, viewport: { width: 1400, height: 900 } });
    page = await adminContext.newPage();
    page.setDefaultTimeout(30_000);
    page.on("response", (r) => {
      if (r.status() === 404) notFound.push(r.url());
    });
  });

  after(async () => {
    await browser?.close();
    await agent?.destroy();
    await c?.stop();
    await registry?.stop();
  });

  async function signIn(p: Page, email: string, password: string) {
    await p.goto("/login");
    await p.getByLabel("Email").fill(email);
    await p.getByLabel("Password").fill(password);
    await p.getByRole("button", { name: "Sign in" }).click();
  }

  test("first admin: sign in with the one-time password, then choose a new one", async () => {
    assert.ok(c.firstAdmin.created, "a fresh console made its first admin");
    if (!c.firstAdmin.created) return;
    await signIn(page, c.firstAdmin.email, c.firstAdmin.password);
    await page.waitForURL("**/account");
    await page.getByText("one-time password").first().waitFor();
    await screenshot(page, "first-admin-must-change-password");
    await page.getByLabel("Current password").fill(c.firstAdmin.password);
    await page.getByLabel("New password (12 characters or more)").fill(NEW_PASSWORD);
    await page.getByLabel("New password again").fill(NEW_PASSWORD);
    await page.getByRole("button", { name: "Change password" }).click();
    await page.getByText("Password changed.").waitFor();
    // Sign out and in again with the new password.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL("**/login**");
    await signIn(page, c.firstAdmin.email, NEW_PASSWORD);
    await page.getByRole("heading", { name: "Fleet" }).waitFor();
    // The sign-out ended the first session on the server, and both are in the audit log.
    const auth = await c.services.prisma.auditLog.findMany({ where: { action: { startsWith: "auth." } }, orderBy: { at: "asc" } });
    assert.deepEqual(
      auth.map((a) => `${a.action} ${a.outcome}`),
      ["auth.login success", "auth.changePassword success", "auth.logout success", "auth.login success"],
    );
    assert.equal(await c.services.prisma.session.count({ where: { userId: c.firstAdmin.userId } }), 1);
    await screenshot(page, "fleet-empty");
  });

  test("enroll this machine's agent with a join token made in the console", async () => {
    await page.goto("/admin/tokens");
    await page.getByRole("button", { name: /create/i }).click();
    const token = (await page.getByTestId("join-token").innerText()).trim();
    assert.match(token, /^bjt_/);
    await screenshot(page, "join-token");
    agent = await startAgent({ consoleUrl: c.url, joinToken: token });
    await page.goto("/");
    const row = page.locator("[data-testid=nodes] tbody tr").first();
    await row.getByText("online").waitFor({ timeout: 60_000 });
    await screenshot(page, "fleet-node-online");
  });

  test("pull an image on the node with visible per-layer progress", async () => {
    const reference = `${registry.host}/${images.multilayer.repository}:${images.multilayer.tag}`;
    await page.goto("/images");
    await page.getByRole("button", { name: "Pull" }).first().click();
    await page.getByLabel("Image reference").fill(reference);
    const nodes = page.getByLabel("Nodes");
    if ((await nodes.evaluate((el) => el.tagName)) === "SELECT") await nodes.selectOption({ index: 0 });
    else await nodes.check();
    await page.getByRole("button", { name: "Pull" }).last().click();
    // The page stays; a toast follows the job and links to it.
    await page.getByTestId("toast").getByRole("link", { name: "view job" }).click();
    await page.waitForURL("**/jobs/**");
    await page.getByTestId("layer-progress").first().waitFor();
    await screenshot(page, "pull-progress");
    await page.getByTestId("step").getByText("succeeded").waitFor({ timeout: 120_000 });
    assert.ok((await page.getByTestId("layer-progress").count()) >= 3, "one progress bar per layer");
    await screenshot(page, "pull-done");
    await page.goto("/images");
    await page.getByText(images.multilayer.repository).first().waitFor();
  });

  test("run a container from the form, see it running, stop and remove it", async () => {
    const image = `${registry.host}/${images.busybox.repository}:${images.busybox.tag}`;
    await page.goto("/run");
    const node = page.getByLabel("Node");
    await node.selectOption({ index: 1 }).catch(() => node.selectOption({ index: 0 }));
    await page.getByLabel("Image").fill(image);
    await page.getByLabel("Name").fill("e2e-web");
    await page.getByLabel("Command").fill("httpd -f -p 80");
    await page.getByLabel("Ports").fill("18282:80");
    await page.getByLabel("Environment").fill("GREETING=hello");
    await screenshot(page, "run-form");
    await page.getByRole("button", { name: "Run" }).click();
    // The outcome shows on the Run page.
    await page.locator('[data-testid=run-outcome][data-status="succeeded"]').waitFor({ timeout: 60_000 });
    assert.ok(agent);
    assert.match(await dockerOk(agent, ["ps", "--format", "{{.Names}} {{.Status}}"]), /e2e-web Up/);

    await page.goto("/containers");
    const row = page.locator("tr", { hasText: "e2e-web" });
    await row.getByText("running", { exact: true }).waitFor();
    await screenshot(page, "container-running");
    // A shell in it, in the browser, from the container's page.
    await row.getByRole("link", { name: "e2e-web" }).click();
    await page.waitForURL("**/containers/*/*");
    await page.getByRole("tab", { name: "Terminal" }).click();
    await page.getByRole("button", { name: "Open terminal" }).click();
    await page.getByTestId("terminal-status").getByText("connected").waitFor();
    await page.locator(".xterm-helper-textarea").focus();
    await page.keyboard.type("echo hi-$((6*7)) $GREETING\n");
    await page.locator(".xterm-rows", { hasText: "hi-42 hello" }).waitFor();
    await screenshot(page, "terminal");
    await page.getByRole("button", { name: "Close terminal" }).click();
    await page.goto("/containers");
    await row.getByRole("button", { name: "Stop" }).click();
    await row.getByText("exited", { exact: true }).waitFor({ timeout: 60_000 });
    await screenshot(page, "container-stopped");
    await row.getByRole("button", { name: "Remove" }).click();
    await page.getByTestId("confirm-action").getByRole("button", { name: "Remove" }).click();
    await page.locator("tr", { hasText: "e2e-web" }).waitFor({ state: "detached", timeout: 60_000 });
    assert.doesNotMatch(await dockerOk(agent, ["ps", "-a", "--format", "{{.Names}}"]), /e2e-web/);
  });

  test("no page asked for anything missing: the favicon and static assets are served", async () => {
    const icon = await page.request.get("/favicon.ico");
    assert.equal(icon.status(), 200);
    assert.equal((await page.request.get("/favicon.svg")).headers()["content-type"], "image/svg+xml");
    assert.deepEqual(notFound, [], "404s seen by the admin's pages");
  });

  test("the audit log shows each step", async () => {
    await page.goto("/admin/audit");
    for (const action of ["jobs.pull", "jobs.run", "jobs.container", "container.exec", "admin."]) await page.getByText(action).first().waitFor();
    await screenshot(page, "audit-log");
  });

  test("a viewer sees the pages without action buttons, and the API refuses a viewer's action", async () => {
    const nodeId = (await c.services.prisma.node.findFirstOrThrow()).id;
    const group = await c.services.prisma.nodeGroup.create({ data: { name: "e2e" } });
    await c.services.prisma.node.update({ where: { id: nodeId }, data: { groupId: group.id } });
    const team = await createTeamWithGroup(c, "e2e-team", group.id);
    viewer = await createUser(c, "viewer", { teamIds: [team] });
    const vp = await consolePage(browser, c.url);
    await signIn(vp, viewer.email, viewer.password);
    await vp.getByRole("heading", { name: "Fleet" }).waitFor();
    await vp.locator("[data-testid=nodes] tbody tr").first().getByText("online").waitFor();
    await vp.goto("/images");
    await vp.getByText(images.multilayer.repository).first().waitFor();
    assert.equal(await vp.getByRole("button", { name: /^(Pull|Tag|Remove|Push|Distribute|Prune)$/ }).count(), 0, "no image actions for a viewer");
    await screenshot(vp, "viewer-images");
    await vp.goto("/containers");
    await vp.getByRole("heading").first().waitFor();
    assert.equal(await vp.getByRole("button", { name: /^(Start|Stop|Restart|Pause|Unpause|Kill|Remove)$/ }).count(), 0, "no lifecycle buttons for a viewer");
    assert.equal(await vp.getByRole("link", { name: "Run a container" }).count(), 0);
    // Live: a container started on the node shows on the open page without a reload.
    assert.ok(agent);
    const started = Date.now();
    await dockerOk(agent, ["run", "-d", "--name", "live-check", `${registry.host}/${images.busybox.repository}:${images.busybox.tag}`, "sleep", "60"]);
    await vp.locator("tr", { hasText: "live-check" }).getByText("running", { exact: true }).waitFor({ timeout: 10_000 });
    console.log(`# a new container showed in the viewer's open page ${Date.now() - started} ms after docker run returned`);
    await screenshot(vp, "viewer-containers");
    const refused = await vp.evaluate(async (id) => {
      const r = await fetch("/api/trpc/jobs.pull", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ nodeIds: [id], reference: "busybox" }),
      });
      return { status: r.status, body: await r.text() };
    }, nodeId);
    assert.equal(refused.status, 403);
    assert.match(refused.body, /viewer role may not/);
    await vp.context().close();
  });
});
