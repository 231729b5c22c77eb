// The container page and safe actions in Debian's Chromium, against a real console and
// a real agent: live CPU charts that agree with `docker stats`, secrets masked in the
// environment, Recreate with a changed env seen in inspect, Kill that asks first (and does
// nothing when not confirmed), a Pause clicked during a Restart that ends paused, and a
// Run on a taken port that says why and leaves nothing. Screenshots: test-artifacts/container/.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { type Browser, type Page } from "playwright-core";
import { launchChromium } from "./helpers/chromium.ts";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "./fixtures/images.ts";
import { startAgent, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { until } from "./helpers/wait.ts";
import { createUser, startTestConsole, type TestConsole } from "./helpers/console.ts";
import { PROJECT_ROOT } from "../server/console.ts";

const ARTIFACTS = join(PROJECT_ROOT, "test-artifacts", "container");

describe("the container page and safe actions in a browser", () => {
  let registry: RegistryFixture;
  let images: FixtureImages;
  let c: TestConsole;
  let agent: AgentHandle;
  let browser: Browser;
  let page: Page;
  let nodeId: string;
  let image: string;
  let blocker: Server | undefined;

  const screenshot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
  const docker = (...args: string[]) => dockerOk(agent, args);
  const stateOf = async (name: string) => (await docker("inspect", "-f", "{{.State.Status}}", name)).trim();
  const row = (name: string) => page.locator(`tr[data-container="${name}"]`);

  before(async () => {
    await rm(ARTIFACTS, { recursive: true, force: true });
    await mkdir(ARTIFACTS, { recursive: true });
    registry = await startRegistry({ auth: "none" });
    images = await pushFixtureImages(registry);
    image = `${registry.host}/${images.busybox.repository}:${images.busybox.tag}`;
    c = await startTestConsole("e2e-container", { ui: true });
    const token = await c.services.nodeRegistry.createJoinToken({ note: "e2e" });
    agent = await startAgent({ consoleUrl: c.url, joinToken: token.token });
    nodeId = await until(
      "the node online",
      async () =>
        (await c.services.prisma.node.findFirst())?.id && c.services.hub.node((await c.services.prisma.node.findFirstOrThrow()).id)?.online
          ? (await c.services.prisma.node.findFirstOrThrow()).id
          : undefined,
      60_000,
    );
    const admin = await createUser(c, "admin");
    browser = await launchChromium();
    const ctx = await browser.newContext({ baseURL: c.url, viewport: { width: 1400, height: 1000 } });
    page = await ctx.newPage();
    page.setDefaultTimeout(30_000);
    await page.goto("/login");
    await page.getByLabel("Email").fill(admin.email);
    await page.getByLabel("Password").fill(admin.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Fleet" }).waitFor();
  });

  after(async () => {
    blocker?.close();
    await browser?.close();
    await agent?.destroy();
    await c?.stop();
    await registry?.stop();
  });

  test("a click anywhere on the row opens the container page; the CPU chart follows a busy loop like docker stats", async () => {
    await docker(
      "run",
      "-d",
      "--name",
      "burner",
      "-e",
      "MODE=busy",
      "-e",
      "API_TOKEN=s3cr3t-value",
      "-p",
      "18377:80",
      image,
      "sh",
      "-c",
      "while :; do :; done",
    );
    await page.goto("/containers");
    await row("burner").getByText("running", { exact: true }).waitFor();
    await row("burner").locator("td").nth(2).click(); // the image column: not the name's link
    await page.waitForURL(`**/containers/${nodeId}/**`);
    await page.getByTestId("stats-status").getByText("live").waitFor();
    // The chart moves: readings keep arriving and are drawn.
    await until("five readings", async () => Number((await page.getByTestId("stats").innerText()).match(/(\d+) readings/)?.[1] ?? 0) >= 5, 30_000);
    assert.ok((await page.getByTestId("chart-cpu").locator("canvas").count()) >= 1, "uPlot drew the CPU chart");
    const shown: number[] = [];
    let cli = 0;
    for (let i = 0; i < 3; i++) {
      cli += Number((await docker("stats", "--no-stream", "--format", "{{.CPUPerc}}", "burner")).trim().replace("%", ""));
      shown.push(Number((await page.getByTestId("cpu-value").innerText()).replace("%", "").trim()));
    }
    cli /= 3;
    const mean = shown.reduce((a, b) => a + b, 0) / shown.length;
    console.log(`# burner CPU: page ${shown.join(", ")} %, docker stats ${cli.toFixed(1)} %`);
    assert.ok(mean > 10, `the busy loop shows: ${mean} %`);
    assert.ok(Math.abs(mean - cli) <= Math.max(8, cli * 0.15), `page ${mean.toFixed(1)} % vs docker stats ${cli.toFixed(1)} %`);
    assert.match(await page.getByTestId("memory-value").innerText(), /B \//);
    // Ports are links to the node.
    assert.match((await page.getByTestId("ports").getByRole("link").first().getAttribute("href")) ?? "", /^http:\/\/[^/]+:18377$/);
    await screenshot("container-page-stats");
    // Secrets are masked until revealed, in the list and in inspect.
    await page.getByRole("tab", { name: "Environment" }).click();
    const secret = page.locator('tr[data-env="API_TOKEN"]');
    assert.doesNotMatch(await secret.innerText(), /s3cr3t-value/);
    assert.match(await page.locator('tr[data-env="MODE"]').innerText(), /busy/);
    await screenshot("container-page-env-masked");
    await secret.getByRole("button", { name: "Reveal" }).click();
    await secret.getByText("s3cr3t-value").waitFor();
    await page.getByRole("tab", { name: "Inspect" }).click();
    assert.doesNotMatch(await page.getByTestId("inspect-json").innerText(), /s3cr3t-value/);
    await screenshot("container-page-inspect");
    await page.getByRole("tab", { name: "Terminal" }).click();
    await page.getByLabel("Command").fill("sh");
    await page.getByLabel("User").fill("nobody");
    await page.getByRole("button", { name: "Open terminal" }).click();
    await page.getByTestId("terminal-status").getByText("connected").waitFor();
    await page.locator(".xterm-helper-textarea").focus();
    await page.keyboard.type("id -un\n");
    await page.locator(".xterm-rows", { hasText: "nobody" }).waitFor();
    await screenshot("container-page-terminal");
    await page.getByRole("button", { name: "Close terminal" }).click();
    await docker("rm", "-f", "burner");
  });

  test("Recreate from the container page with a changed env: the new env shows in inspect", async () => {
    await docker("run", "-d", "--name", "app1", "-e", "MODE=old", "-l", "team=ops", image, "sleep", "600");
    const old = (await docker("inspect", "-f", "{{.Id}}", "app1")).trim();
    await page.goto(`/containers/${nodeId}/${old}`);
    await page.getByTestId("container-name").getByText("app1").waitFor();
    await page.getByRole("link", { name: "Recreate…" }).click();
    await page.waitForURL("**/run?**");
    const envBox = page.getByLabel("Environment");
    await until("the form filled from app1", async () => (await envBox.inputValue()).includes("MODE=old"));
    assert.equal(await page.getByLabel("Name").inputValue(), "app1");
    assert.equal(await page.getByLabel("Labels").inputValue(), "team=ops");
    await envBox.fill("MODE=new");
    await screenshot("recreate-form");
    await page.getByRole("button", { name: "Recreate" }).click();
    await page.locator('[data-testid=run-outcome][data-status="succeeded"]').waitFor({ timeout: 90_000 });
    await page.getByTestId("run-outcome").getByRole("link", { name: "open app1" }).click();
    await page.getByRole("tab", { name: "Inspect" }).click();
    await page.getByTestId("inspect-json").getByText("MODE=new").first().waitFor();
    assert.notEqual((await docker("inspect", "-f", "{{.Id}}", "app1")).trim(), old);
    assert.match(await docker("inspect", "-f", "{{.Config.Env}}", "app1"), /MODE=new/);
    await screenshot("recreated-inspect");
    await docker("rm", "-f", "app1");
  });

  test("Kill asks first: cancelling does nothing", async () => {
    await docker("run", "-d", "--name", "victim", image, "sleep", "600");
    await page.goto("/containers");
    await row("victim").getByText("running", { exact: true }).waitFor();
    const jobsBefore = await c.services.prisma.job.count();
    await row("victim").getByRole("button", { name: "Kill" }).click();
    const dialog = page.getByTestId("confirm-action");
    await dialog.getByText("SIGKILL").waitFor();
    await screenshot("kill-confirm");
    await dialog.getByRole("button", { name: "Cancel" }).click();
    await dialog.waitFor({ state: "detached" });
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(await stateOf("victim"), "running");
    assert.equal(await c.services.prisma.job.count(), jobsBefore, "no job was started");
    // Remove of a running container needs its force box: the button stays disabled without it.
    await row("victim").getByRole("button", { name: "Remove" }).click();
    const remove = page.getByTestId("confirm-action");
    assert.equal(await remove.getByRole("button", { name: "Remove" }).isDisabled(), true);
    await remove.getByLabel("Force: kill and remove").check();
    await screenshot("remove-confirm-force");
    await remove.getByRole("button", { name: "Kill and remove" }).click();
    await row("victim").waitFor({ state: "detached", timeout: 60_000 });
    assert.doesNotMatch(await docker("ps", "-a", "--format", "{{.Names}}"), /victim/);
  });

  test("Pause clicked during a 10 s Restart waits for it: the container ends paused", async () => {
    await docker("run", "-d", "--name", "slowstop", image, "sh", "-c", "trap '' TERM; while :; do sleep 1; done");
    await page.goto("/containers");
    await row("slowstop").getByText("running", { exact: true }).waitFor();
    await row("slowstop").getByRole("button", { name: "Restart" }).click();
    await row("slowstop").getByTestId("pending").getByText("restarting…").waitFor();
    assert.equal(await row("slowstop").getByRole("button", { name: "Restart" }).isDisabled(), true, "a second Restart is disabled while one runs");
    await screenshot("restart-pending");
    await row("slowstop").getByRole("button", { name: "Pause" }).click();
    await row("slowstop").getByTestId("pending").getByText("pausing…").waitFor();
    await row("slowstop").getByText("paused", { exact: true }).waitFor({ timeout: 60_000 });
    await page.waitForTimeout(1500);
    assert.equal(await stateOf("slowstop"), "paused");
    const jobs = await c.services.prisma.job.findMany({
      where: { kind: { in: ["container.restart", "container.pause"] } },
      include: { steps: true },
      orderBy: { createdAt: "asc" },
    });
    assert.deepEqual(
      jobs.map((j) => `${j.kind} ${j.status}`),
      ["container.restart succeeded", "container.pause succeeded"],
    );
    assert.ok(jobs[1]!.steps[0]!.finishedAt! >= jobs[0]!.steps[0]!.finishedAt!, "the pause finished after the restart");
    await screenshot("paused-after-restart");
    await docker("rm", "-f", "slowstop");
  });

  test("a Run on a taken port says why on the Run page and leaves no container", async () => {
    blocker = createServer();
    await new Promise<void>((res) => blocker!.listen(18378, "0.0.0.0", res));
    await page.goto("/run");
    const node = page.getByLabel("Node");
    await node.selectOption({ index: 1 }).catch(() => node.selectOption({ index: 0 }));
    await page.getByLabel("Image").fill(image);
    await page.getByLabel("Name").fill("portclash");
    await page.getByLabel("Command").fill("sleep 600");
    await page.getByLabel("Ports").fill("18378:80");
    await page.getByRole("button", { name: "Run" }).click();
    const outcome = page.locator('[data-testid=run-outcome][data-status="failed"]');
    await outcome.waitFor({ timeout: 90_000 });
    assert.match(await outcome.innerText(), /could not start: .*portclash was removed/);
    await page.locator('[data-testid=toast][data-bad="true"]').first().waitFor();
    await screenshot("run-port-taken");
    assert.doesNotMatch(await docker("ps", "-a", "--format", "{{.Names}}"), /portclash/);
  });
});
