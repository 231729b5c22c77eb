// End to end in Debian's Chromium: two real agents on this machine enroll, so two nodes
// with one hostname; the admin tells them apart (short ID, address), renames and labels
// one, picks "env=prod" in Distribute, reads the engine's settings and disk use, creates
// and removes a volume and a network (as jobs, checked with the docker CLI on the node),
// sees the containers using a volume, gets form errors as field messages (not JSON), and
// sees an offline node's inventory marked last known and a job step waiting for it. A
// non-admin on an admin URL gets the admins-only page. Screenshots: test-artifacts/e2e-fleet/.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { type Browser, type Page } from "playwright-core";
import { consolePage, launchChromium } from "./helpers/chromium.ts";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "./fixtures/images.ts";
import { docker, dockerOk, startAgent, type AgentHandle } from "./helpers/agent.ts";
import { createUser, startTestConsole, type TestConsole, type TestUser } from "./helpers/console.ts";
import { PROJECT_ROOT } from "../server/console.ts";

const ARTIFACTS = join(PROJECT_ROOT, "test-artifacts", "e2e-fleet");
const MIRROR = "https://mirror.e2e.example";

describe("nodes, volumes and networks in a browser", () => {
  let registry: RegistryFixture;
  let images: FixtureImages;
  let c: TestConsole;
  const agents: AgentHandle[] = [];
  let browser: Browser;
  let page: Page;
  let admin: TestUser;
  /** The node that gets renamed and labelled env=prod, and the other one. */
  let prodId: string;
  let otherId: string;
  let prodAgent: AgentHandle;
  let otherAgent: AgentHandle;
  let shot = 0;

  const screenshot = async (p: Page, name: string) => {
    shot += 1;
    await p.screenshot({ path: join(ARTIFACTS, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
  };

  async function signIn(p: Page, email: string, password: string) {
    await p.goto("/login");
    await p.getByLabel("Email").fill(email);
    await p.getByLabel("Password").fill(password);
    await p.getByRole("button", { name: "Sign in" }).click();
    await p.getByRole("heading", { name: "Fleet" }).waitFor();
  }

  /** Waits until the job linked from the notice is done on its page, and returns the step's status. */
  async function jobOutcome(p: Page): Promise<string> {
    await p.getByTestId("job-notice").getByRole("link", { name: "view job" }).last().click();
    await p.waitForURL("**/jobs/**");
    const step = p.getByTestId("step").first();
    await step.and(p.locator('[data-status="succeeded"], [data-status="failed"]')).waitFor({ timeout: 60_000 });
    return (await step.getAttribute("data-status")) ?? "";
  }

  before(async () => {
    await rm(ARTIFACTS, { recursive: true, force: true });
    await mkdir(ARTIFACTS, { recursive: true });
    registry = await startRegistry({ auth: "none" });
    images = await pushFixtureImages(registry);
    c = await startTestConsole("e2e-fleet", { ui: true });
    admin = await createUser(c, "admin");
    browser = await launchChromium();
    page = await consolePage(browser, c.url);
    await signIn(page, admin.email, admin.password);
    // Two agents on this one machine: two nodes with the same hostname.
    for (let i = 0; i < 2; i++) {
      const r = await page.request.post("/api/trpc/admin.tokens.create", {
        headers: { origin: c.url, "content-type": "application/json" },
        data: { note: `e2e-${i}`, nodeGroupId: null, ttlHours: 1 },
      });
      assert.equal(r.status(), 200, await r.text());
      const token = ((await r.json()) as { result: { data: { token: string } } }).result.data.token;
      agents.push(await startAgent({ consoleUrl: c.url, joinToken: token, registryMirrors: i === 0 ? [MIRROR] : [], insecureRegistries: [registry.host] }));
    }
  });

  after(async () => {
    await browser?.close();
    for (const a of agents) await a.destroy();
    await c?.stop();
    await registry?.stop();
  });

  test("two nodes with one hostname are told apart by short ID and address", async () => {
    await page.goto("/");
    const rows = page.locator("[data-testid=nodes] tbody tr");
    await rows.nth(1).getByText("online").waitFor({ timeout: 60_000 });
    await rows.nth(0).getByText("online").waitFor({ timeout: 60_000 });
    const nodes = await c.services.prisma.node.findMany({ orderBy: { createdAt: "asc" } });
    assert.equal(nodes.length, 2);
    assert.equal(nodes[0]!.hostname, nodes[1]!.hostname, "both agents run on this machine");
    [prodId, otherId] = [nodes[0]!.id, nodes[1]!.id];
    [prodAgent, otherAgent] = [agents[0]!, agents[1]!];
    const shown = await rows.locator(".node-name").allInnerTexts();
    assert.equal(new Set(shown).size, 2, `the two rows differ: ${JSON.stringify(shown)}`);
    for (const id of [prodId, otherId])
      assert.ok(
        shown.some((t) => t.includes(id.replace(/-/g, "").slice(0, 8))),
        "each row shows its node's short ID",
      );
    assert.match(shown[0]!, /\d+\.\d+\.\d+\.\d+|:/, "an address is shown");
    await screenshot(page, "fleet-two-nodes-one-hostname");
  });

  test("the node page: rename and label, engine settings and versions, disk use, prune asks first", async () => {
    await page.goto(`/nodes/${prodId}`);
    await page.getByLabel("Name", { exact: true }).fill("edge-prod");
    await page.getByLabel("Labels (one key=value a line)").fill("env=prod\nrack=b2");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText("Saved.").waitFor();
    await page.getByRole("heading", { name: /edge-prod/ }).waitFor();
    const engine = page.getByTestId("engine-facts");
    await engine.getByText(MIRROR).waitFor();
    assert.match(await engine.innerText(), /API version\s+1\.47/);
    assert.match(await engine.innerText(), new RegExp(`Data root\\s+${prodAgent.dataRoot.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`));
    assert.match(await engine.innerText(), /Runtime\s+runc/);
    await page.getByTestId("disk-use").getByText("Volumes").waitFor();
    await page.getByRole("button", { name: "Prune volumes" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByText(/anonymous volumes no container uses/).waitFor();
    await dialog.getByLabel("named volumes too").check();
    await dialog.getByText("the data in them is lost for good").waitFor();
    await screenshot(page, "node-page-prune-confirmation");
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await screenshot(page, "node-page");

    await page.goto(`/nodes/${otherId}`);
    await page.getByLabel("Labels (one key=value a line)").fill("env=staging");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText("Saved.").waitFor();
    // A label that is not key=value is a field message, before anything is sent.
    await page.getByLabel("Labels (one key=value a line)").fill("env=staging\njust-a-word");
    await page.getByRole("button", { name: "Save" }).click();
    await page.locator('[data-field="labels"]').getByText("line 2: not key=value").waitFor();

    await page.goto("/");
    await page.getByLabel("search nodes").fill("env=prod");
    await page.locator("[data-testid=nodes] tbody tr").filter({ hasText: "edge-prod" }).waitFor();
    await page.locator("[data-testid=nodes] tbody tr").nth(1).waitFor({ state: "detached" });
    await screenshot(page, "fleet-search-by-label");
    const audit = await c.services.prisma.auditLog.findMany({ where: { action: "nodes.update", outcome: "success" } });
    assert.ok(
      audit.some((a) => a.targetNodeIds.includes(prodId)),
      "the rename is in the audit log",
    );
  });

  test('Distribute: "all nodes with env=prod" picks the labelled node', async () => {
    await page.goto("/images");
    await page.getByRole("button", { name: "Distribute" }).first().click();
    const source = page.getByLabel("Source node");
    await source.selectOption({ value: otherId });
    await page.getByLabel("select by label").fill("env=prod");
    await page.getByRole("button", { name: "all 1 with env=prod" }).click();
    const targets = page.getByLabel("Target nodes");
    assert.deepEqual(await targets.evaluate((el) => [...(el as HTMLSelectElement).selectedOptions].map((o) => o.value)), [prodId]);
    const optionText = await targets.locator("option").first().innerText();
    assert.match(optionText, /edge-prod · [0-9a-f]{8}/, "targets show name and short ID");
    await screenshot(page, "distribute-by-label");
  });

  test("create a volume on the env=prod nodes, see who uses it, remove it", async () => {
    await page.goto("/volumes");
    await page.getByRole("button", { name: "Create volume" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel("Name (empty: a random one)").fill("e2e-data");
    await dialog.getByLabel("select by label").fill("env=prod");
    await dialog.getByRole("button", { name: "all 1 with env=prod" }).click();
    await dialog.getByLabel(/^Labels/).fill("team=web");
    await screenshot(page, "volume-create-form");
    await dialog.getByRole("button", { name: "Create" }).click();
    assert.equal(await jobOutcome(page), "succeeded");
    assert.match(await dockerOk(prodAgent, ["volume", "ls", "--format", "{{.Name}}"]), /^e2e-data$/m);
    assert.doesNotMatch(await dockerOk(otherAgent, ["volume", "ls", "--format", "{{.Name}}"]), /e2e-data/);
    assert.equal((await dockerOk(prodAgent, ["volume", "inspect", "--format", "{{.Labels.team}}", "e2e-data"])).trim(), "web");

    const image = `${registry.host}/${images.busybox.repository}:${images.busybox.tag}`;
    await dockerOk(prodAgent, ["run", "-d", "--name", "vol-user", "-v", "e2e-data:/data", image, "sleep", "300"]);
    await page.goto("/volumes");
    await page.locator("tr", { hasText: "e2e-data" }).getByRole("link", { name: "e2e-data" }).click();
    await page.getByTestId("volume-containers").getByText("vol-user").waitFor();
    await screenshot(page, "volume-page");

    // In use: the job fails and says so on its page.
    await page.getByRole("button", { name: /^remove volume e2e-data/ }).click();
    await page.getByRole("dialog").getByText("every file in it are deleted for good").waitFor();
    await page.getByRole("dialog").getByRole("button", { name: "Confirm: remove e2e-data" }).click();
    assert.equal(await jobOutcome(page), "failed");
    await page
      .getByTestId("step-error")
      .getByText(/volume is in use/)
      .waitFor();
    await screenshot(page, "volume-remove-in-use");

    await dockerOk(prodAgent, ["rm", "-f", "vol-user"]);
    await page.goto("/volumes");
    const row = page.locator("tr", { hasText: "e2e-data" });
    await row.getByRole("button", { name: /^remove volume e2e-data/ }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Confirm: remove e2e-data" }).click();
    // The row goes with the volume (its job notice with it: success needs no words).
    await page.locator("tr", { hasText: "e2e-data" }).waitFor({ state: "detached", timeout: 30_000 });
    assert.doesNotMatch(await dockerOk(prodAgent, ["volume", "ls", "--format", "{{.Name}}"]), /e2e-data/);
  });

  test("the image page: tags with the CLI's digests, history, users, nodes; pull and remove stay on the page", async () => {
    const image = `${registry.host}/${images.busybox.repository}:${images.busybox.tag}`;
    await dockerOk(prodAgent, ["tag", image, "web:v2"]);
    await dockerOk(prodAgent, ["run", "-d", "--name", "img-user", "web:v2", "sleep", "300"]);
    const cli = await dockerOk(prodAgent, ["images", "--digests", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}"]);
    await page.goto("/images");
    const row = page.locator('tr[data-image="web:v2"]');
    await row.getByText("—").first().waitFor();
    assert.match(cli, /^web:v2 <none>$/m, "the CLI shows no digest for the local tag");
    await row.getByRole("link").first().click();
    await page.waitForURL("**/images/**");
    const tags = page.getByTestId("image-tags");
    await tags.locator("tr", { hasText: "web" }).getByText("<none>").waitFor();
    const registryDigest = /sha256:[0-9a-f]{64}/.exec(cli.split("\n").find((l) => l.startsWith(`${registry.host}/${images.busybox.repository}:`)) ?? "")?.[0];
    assert.ok(registryDigest, cli);
    await tags.locator("tr", { hasText: images.busybox.repository }).getByText(registryDigest).waitFor();
    await page.getByTestId("image-history").locator("tbody tr").first().waitFor();
    await page.getByTestId("image-containers").getByText("img-user").waitFor();
    await page.getByTestId("image-nodes").getByText("edge-prod").waitFor();
    await screenshot(page, "image-page");

    await page.getByRole("button", { name: /^Pull .* again$/ }).click();
    await page.locator('[data-testid="inline-job"][data-status="succeeded"]').waitFor({ timeout: 60_000 });
    assert.ok(page.url().includes("/images/"), "the pull stayed on the page");
    await dockerOk(prodAgent, ["rm", "-f", "img-user"]);
    await page.getByRole("button", { name: "Remove from this node" }).click();
    await page.getByLabel(/force/).check();
    await page.getByRole("button", { name: "Confirm remove" }).click();
    await page.locator('[data-testid="inline-job"][data-status="succeeded"]', { hasText: "Removal of" }).waitFor({ timeout: 60_000 });
    await page.getByText(/is not on this node/).waitFor();
    await screenshot(page, "image-page-removed");
    assert.doesNotMatch(await dockerOk(prodAgent, ["images", "--format", "{{.Repository}}:{{.Tag}}"]), /web:v2/);
  });

  test("create a network with a subnet and gateway, remove it; a bad subnet is a field message, not JSON", async () => {
    await page.goto("/networks");
    await page.getByRole("button", { name: "Create network" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel("Name").fill("e2e-net");
    await dialog.getByLabel("select by label").fill("env=prod");
    await dialog.getByRole("button", { name: "all 1 with env=prod" }).click();
    await dialog.getByLabel("Subnet (empty: chosen by the node)").fill("10.231.77.0/33x");
    await dialog.getByLabel("Gateway").fill("10.231.77.1");
    await dialog.getByRole("button", { name: "Create" }).click();
    await dialog.locator('[data-field="subnet"]').getByText("an IPv4 subnet in CIDR form").waitFor();
    assert.equal(await page.getByText(/"code":|\[\s*\{/).count(), 0, "no zod JSON on the page");
    await screenshot(page, "network-form-field-error");
    await dialog.getByLabel("Subnet (empty: chosen by the node)").fill("10.231.77.0/24");
    await dialog.getByRole("button", { name: "Create" }).click();
    assert.equal(await jobOutcome(page), "succeeded");
    const inspected = await dockerOk(prodAgent, ["network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", "e2e-net"]);
    assert.equal(inspected.trim(), "10.231.77.0/24 10.231.77.1");

    await page.goto("/networks");
    const row = page.locator("tr", { hasText: "e2e-net" });
    await row.getByText("10.231.77.0/24").waitFor();
    await screenshot(page, "networks");
    await row.getByRole("button", { name: /^remove network e2e-net/ }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Confirm: remove e2e-net" }).click();
    await page.locator("tr", { hasText: "e2e-net" }).waitFor({ state: "detached", timeout: 30_000 });
    const left = await docker(prodAgent, ["network", "inspect", "e2e-net"]);
    assert.notEqual(left.code, 0, "the network is gone from the node");
  });

  test("form errors elsewhere are field messages too (Registries)", async () => {
    await page.goto("/admin/registries");
    await page.getByLabel("Address (host[:port])").fill("https://registry.example/path");
    await page.getByRole("button", { name: "Save registry" }).click();
    await page
      .locator('[data-field="address"]')
      .getByText(/registry address must be host\[:port\]/)
      .waitFor();
    assert.equal(await page.getByText(/"code":|\[\s*\{/).count(), 0, "no zod JSON on the page");
    await screenshot(page, "registries-field-error");
  });

  test("a non-admin on an admin URL gets the admins-only page", async () => {
    const operator = await createUser(c, "operator");
    const op = await consolePage(browser, c.url);
    await signIn(op, operator.email, operator.password);
    for (const url of ["/admin/users", "/admin/registries", "/admin/add-node"]) {
      await op.goto(url);
      await op.getByTestId("not-allowed").getByRole("heading", { name: "For admins only" }).waitFor();
      assert.equal(await op.locator("form").count(), 0, `no forms on ${url}`);
    }
    await screenshot(op, "admins-only");
    await op.context().close();
  });

  test("an offline node: its inventory is marked last known, a job waiting for it says so", async () => {
    await otherAgent.stop();
    await page.goto("/");
    const row = page.locator("[data-testid=nodes] tbody tr", { hasText: otherId.replace(/-/g, "").slice(0, 8) });
    await row.getByText("offline").waitFor({ timeout: 30_000 });
    await page.goto("/networks");
    const offlineRow = page.locator("tr", { hasText: otherId.replace(/-/g, "").slice(0, 8) }).first();
    await offlineRow.getByTestId("last-known").waitFor();
    assert.match(await offlineRow.getByTestId("last-known").innerText(), /last known · /);
    await screenshot(page, "networks-offline-node-last-known");
    await page.goto(`/nodes/${otherId}`);
    await page.getByRole("button", { name: "Prune networks" }).click();
    await page.getByRole("dialog").getByRole("button", { name: "Confirm: prune networks" }).click();
    await page.getByTestId("job-notice").getByRole("link", { name: "view job" }).click();
    await page
      .getByTestId("step-waiting")
      .getByText(/waiting for .* to come back online/)
      .waitFor();
    await screenshot(page, "job-waiting-offline-node");
    await otherAgent.restart();
    await page.getByTestId("step").and(page.locator('[data-status="succeeded"]')).waitFor({ timeout: 60_000 });
  });
});
