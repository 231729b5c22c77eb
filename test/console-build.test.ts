// Build through the console, with a real console and a real agent: an operator of the node's
// team builds a Dockerfile with an uploaded context archive (and pushes the tag to the
// fixture registry) as one job whose step records the builder's output; a viewer is refused
// and audited; a Dockerfile typo fails the job naming the line; the host network for RUN is
// refused for an operator naming the option; a file that is no tar, or too large, is refused
// before any job exists; canceling the job or a dropped link ends the build on the node
// (no build container left); build, push and distribute to a second node. Then in Chromium:
// Images → Build (a too large archive refused in the page), the Dockerfile typed in, the job
// page shows the output live until "Successfully built" (screenshots in test-artifacts/build/).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import * as tarStream from "tar-stream";
import { type Browser } from "playwright-core";
import { launchChromium } from "./helpers/chromium.ts";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "./fixtures/images.ts";
import { startAgent, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { until } from "./helpers/wait.ts";
import { startLinkProxy } from "./helpers/link-proxy.ts";
import {
  apiClient,
  codeOf,
  createTeamWithGroup,
  createUser,
  sessionCookie,
  startTestConsole,
  type ApiClient,
  type TestConsole,
  type TestUser,
} from "./helpers/console.ts";
import { PROJECT_ROOT } from "../server/console.ts";

const ARTIFACTS = join(PROJECT_ROOT, "test-artifacts", "build");

/** A gzip-compressed tar holding `files`. */
async function tarGz(files: Record<string, string>): Promise<Buffer> {
  const pack = tarStream.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  return gzipSync(Buffer.concat(chunks));
}

describe("build through the console", () => {
  let registry: RegistryFixture;
  let images: FixtureImages;
  let c: TestConsole;
  let agent: AgentHandle;
  let nodeId: string;
  let operator: TestUser;
  let operatorApi: ApiClient;
  let viewerApi: ApiClient;
  let base: string;

  const finished = (api: ApiClient, jobId: string, timeoutMs = 120_000) =>
    until(
      `job ${jobId} to end`,
      async () => {
        const j = await api.jobs.get.query({ jobId });
        return j.status === "running" || j.status === "queued" ? undefined : j;
      },
      timeoutMs,
    );

  before(async () => {
    await rm(ARTIFACTS, { recursive: true, force: true });
    await mkdir(ARTIFACTS, { recursive: true });
    registry = await startRegistry({ auth: "none" });
    images = await pushFixtureImages(registry, { only: ["busybox"] });
    base = images.busybox.ref;
    c = await startTestConsole("console-build", { ui: true });
    const token = await c.services.nodeRegistry.createJoinToken({ note: "build" });
    agent = await startAgent({ consoleUrl: c.url, joinToken: token.token });
    nodeId = await until("the agent online", async () => c.services.hub.nodes().find((n) => n.online)?.nodeId, 60_000);
    const group = await c.services.prisma.nodeGroup.create({ data: { name: "builders" } });
    await c.services.prisma.node.update({ where: { id: nodeId }, data: { groupId: group.id } });
    const team = await createTeamWithGroup(c, "builders", group.id);
    operator = await createUser(c, "operator", { teamIds: [team], email: "op@test.local" });
    operatorApi = apiClient(c, await sessionCookie(c, operator.id));
    viewerApi = apiClient(c, await sessionCookie(c, (await createUser(c, "viewer", { teamIds: [team] })).id));
  });

  after(async () => {
    await agent?.destroy();
    await c?.stop();
    await registry?.stop();
  });

  test("an operator builds a 3-step Dockerfile with a context archive: the image is on the node, pushed, the output recorded", async () => {
    const tag = `${registry.host}/built/hello:1`;
    const context = await tarGz({ "hello.txt": "hello from the context\n", Dockerfile: "FROM scratch\n" });
    const dockerfile = `FROM ${base}\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt && echo step-three-ran\n`;
    const { jobId } = await operatorApi.jobs.build.mutate({
      nodeId,
      dockerfile,
      context: { name: "ctx.tar.gz", contentBase64: context.toString("base64") },
      tags: [tag],
      push: true,
    });
    const job = await finished(operatorApi, jobId);
    assert.equal(job.status, "succeeded", JSON.stringify(job.steps, null, 1));
    assert.deepEqual(
      job.steps.map((s) => [s.seq, s.action]),
      [
        [0, "image.build"],
        [1, "image.push"],
      ],
    );
    const build = job.steps[0]!;
    const log = (build.progress as { log?: string }).log ?? "";
    for (const line of [
      `Step 1/3 : FROM ${base}`,
      "Step 2/3 : COPY hello.txt /hello.txt",
      "Step 3/3 : RUN cat /hello.txt && echo step-three-ran",
      "hello from the context",
      "step-three-ran",
      "Successfully built",
      `Successfully tagged ${tag}`,
    ]) {
      assert.ok(log.includes(line), `the output has ${JSON.stringify(line)}:\n${log}`);
    }
    const result = build.result as { imageId: string; tags: string[] };
    assert.match(result.imageId, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(result.tags, [tag]);
    const listed = await dockerOk(agent, ["image", "ls", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert.ok(listed.split("\n").includes(`${tag} ${result.imageId}`), listed);
    assert.equal((await dockerOk(agent, ["run", "--rm", tag, "cat", "/hello.txt"])).trim(), "hello from the context");
    // Pushed: the registry serves the tag.
    const res = await fetch(`http://${registry.host}/v2/built/hello/manifests/1`, {
      method: "HEAD",
      headers: { accept: "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json" },
    });
    assert.equal(res.status, 200);
    const audit = await c.services.prisma.auditLog.findFirst({ where: { action: "jobs.build", outcome: "success" } });
    assert.ok(audit, "the build is audited");
    assert.equal(audit.actorLabel, "op@test.local");
    assert.ok(audit.targetNodeIds.includes(nodeId));
    const details = JSON.stringify(audit.details);
    assert.ok(!details.includes(context.toString("base64").slice(0, 64)), "the archive's bytes are not in the audit log");
    assert.match(details, /ctx\.tar\.gz/);
    const stored = JSON.stringify(await c.services.prisma.jobStep.findMany({ where: { jobId }, select: { params: true } }));
    assert.ok(!stored.includes(context.toString("base64").slice(0, 64)), "the archive is kept as a file, not in the database");
  });

  test("a viewer is refused, and the refusal is audited", async () => {
    const before = (await operatorApi.jobs.list.query({})).total;
    assert.equal(await codeOf(viewerApi.jobs.build.mutate({ nodeId, dockerfile: `FROM ${base}\n` })), "FORBIDDEN");
    await assert.rejects(viewerApi.jobs.build.mutate({ nodeId, dockerfile: `FROM ${base}\n` }), /viewer role may not/);
    assert.equal((await operatorApi.jobs.list.query({})).total, before, "no job was made");
    const denied = await c.services.prisma.auditLog.findMany({ where: { action: "jobs.build", outcome: "denied" } });
    assert.ok(denied.length >= 2 && denied.every((d) => d.targetNodeIds.includes(nodeId)), JSON.stringify(denied.map((d) => [d.outcome, d.targetNodeIds])));
  });

  test("a Dockerfile typo fails the job, naming the line", async () => {
    const { jobId } = await operatorApi.jobs.build.mutate({ nodeId, dockerfile: `FROM ${base}\nRUN true\nRUNN echo typo\n` });
    const job = await finished(operatorApi, jobId);
    assert.equal(job.status, "failed");
    assert.match(job.steps[0]!.error ?? "", /^Dockerfile:3: unknown instruction: RUNN/);
  });

  test("the host network for RUN is refused for an operator, naming the option", async () => {
    const attempt = operatorApi.jobs.build.mutate({ nodeId, dockerfile: `FROM ${base}\nRUN true\n`, networkMode: "host" });
    await assert.rejects(attempt, (e: Error) => /--network "host"/.test(e.message) && /host's network/.test(e.message));
    assert.equal(await codeOf(operatorApi.jobs.build.mutate({ nodeId, dockerfile: `FROM ${base}\nRUN true\n`, networkMode: "host" })), "FORBIDDEN");
  });

  test("a file that is no tar archive is refused before a job exists", async () => {
    await assert.rejects(
      operatorApi.jobs.build.mutate({
        nodeId,
        dockerfile: `FROM ${base}\n`,
        context: { name: "notes.txt", contentBase64: Buffer.from("just text\n".repeat(100)).toString("base64") },
      }),
      /the context archive notes\.txt is not a tar archive/,
    );
    const tooBig = "A".repeat(Math.ceil((64 * 1024 * 1024) / 3) * 4 + 4);
    await assert.rejects(
      operatorApi.jobs.build.mutate({ nodeId, dockerfile: `FROM ${base}\n`, context: { name: "huge.tar", contentBase64: tooBig } }),
      /the context archive is larger than 64 MiB, the most a build through the console takes/,
    );
    const kept = await readdir(join(c.dataDir, "build-contexts"));
    assert.deepEqual(kept, [], "no context is left behind by finished or refused builds");
  });

  test("cancelling the job ends the build on the node: no build container is left", async () => {
    const { jobId } = await operatorApi.jobs.build.mutate({ nodeId, dockerfile: `FROM ${base}\nRUN echo sleeping && sleep 120\n`, noCache: true });
    await until(
      "the RUN step running",
      async () => {
        const j = await operatorApi.jobs.get.query({ jobId });
        return /\nsleeping\n/.test((j.steps[0]?.progress as { log?: string } | null)?.log ?? "");
      },
      60_000,
    );
    await operatorApi.jobs.cancel.mutate({ jobId });
    const job = await finished(operatorApi, jobId, 30_000);
    assert.equal(job.status, "canceled");
    await until(
      "no build container on the node",
      async () => (await dockerOk(agent, ["ps", "-aq", "--filter", "label=io.berth.build-step"])).trim() === "",
      30_000,
    ).catch(async (e: unknown) => {
      throw new Error(
        `${(e as Error).message}:\n${await dockerOk(agent, ["ps", "-a", "--no-trunc"])}\n${JSON.stringify(job.steps)}\n${agent
          .logs()
          .split("\n")
          .filter((l) => /request|build|cancel/i.test(l))
          .slice(-30)
          .join("\n")}`,
      );
    });
  });

  test("build, push and distribute: the tag is pulled on another node, in three stages", async (t) => {
    const admin = apiClient(c, await sessionCookie(c, (await createUser(c, "admin")).id));
    const token = await c.services.nodeRegistry.createJoinToken({ note: "target" });
    const known = new Set(c.services.hub.nodes().map((n) => n.nodeId));
    const other = await startAgent({ consoleUrl: c.url, joinToken: token.token });
    t.after(() => other.destroy());
    const otherId = await until("the target node online", async () => c.services.hub.nodes().find((n) => n.online && !known.has(n.nodeId))?.nodeId, 60_000);
    const tag = `${registry.host}/built/spread:1`;
    const { jobId } = await admin.jobs.build.mutate({ nodeId, dockerfile: `FROM ${base}\nLABEL spread=yes\n`, tags: [tag], distributeTo: [otherId] });
    const job = await finished(admin, jobId);
    assert.equal(job.status, "succeeded", JSON.stringify(job.steps, null, 1));
    assert.deepEqual(
      job.steps.map((s) => [s.seq, s.action, s.nodeId]),
      [
        [0, "image.build", nodeId],
        [1, "image.push", nodeId],
        [2, "image.pull", otherId],
      ],
    );
    assert.equal((await dockerOk(other, ["image", "inspect", "--format", "{{.Config.Labels.spread}}", tag])).trim(), "yes");
    assert.equal(
      await codeOf(admin.jobs.build.mutate({ nodeId, dockerfile: `FROM ${base}\n`, distributeTo: [otherId] })),
      "BAD_REQUEST",
      "distributing needs a tag",
    );
  });

  test("a link that drops ends the build on the node; after the reconnect the step says why", async (t) => {
    const proxy = await startLinkProxy(() => c.port);
    t.after(() => proxy.close());
    const admin = apiClient(c, await sessionCookie(c, (await createUser(c, "admin")).id));
    const token = await c.services.nodeRegistry.createJoinToken({ note: "behind a proxy" });
    const known = new Set(c.services.hub.nodes().map((n) => n.nodeId));
    const far = await startAgent({ consoleUrl: proxy.url, joinToken: token.token });
    t.after(() => far.destroy());
    const farId = await until(
      "the agent behind the proxy online",
      async () => c.services.hub.nodes().find((n) => n.online && !known.has(n.nodeId))?.nodeId,
      60_000,
    );
    const { jobId } = await admin.jobs.build.mutate({ nodeId: farId, dockerfile: `FROM ${base}\nRUN echo sleeping && sleep 120\n`, noCache: true });
    await until(
      "the RUN step running",
      async () => ((await admin.jobs.get.query({ jobId })).steps[0]?.progress as { log?: string } | null)?.log?.match(/\nsleeping\n/),
      60_000,
    );
    proxy.cut();
    // The agent notices the dead line by its heartbeat and ends the build: its container goes.
    await until(
      "no build container on the far node",
      async () => (await dockerOk(far, ["ps", "-aq", "--filter", "label=io.berth.build-step"])).trim() === "",
      30_000,
    );
    proxy.restore();
    const job = await finished(admin, jobId, 60_000);
    assert.equal(job.steps[0]!.status, "canceled", JSON.stringify(job.steps[0]));
    assert.match(job.steps[0]!.error ?? "", /the link to the console dropped while image\.build ran/);
  });

  test("in the browser: Images → Build, type a Dockerfile, build, watch the output to 'Successfully built'", async (t) => {
    let browser: Browser | undefined;
    try {
      browser = await launchChromium();
      const context = await browser.newContext({ baseURL: c.url, viewport: { width: 1400, height: 1000 } });
      const page = await context.newPage();
      page.setDefaultTimeout(30_000);
      await page.goto("/login");
      await page.getByLabel("Email").fill("op@test.local");
      await page.getByLabel("Password").fill(operator.password);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("heading", { name: "Fleet" }).waitFor();
      await page.goto("/images");
      await page.getByRole("link", { name: "Build" }).click();
      await page.waitForURL("**/images/build");
      // Too large an archive is refused in the page, before it is read or sent.
      const huge = join(await mkdtemp(join(tmpdir(), "berth-build-")), "huge.tar");
      t.after(() => rm(dirname(huge), { recursive: true, force: true }));
      await writeFile(huge, "");
      await truncate(huge, 65 * 1024 * 1024); // sparse: nothing is written
      await page.getByLabel(/Context archive/).setInputFiles(huge);
      await page.getByRole("button", { name: "Build" }).click();
      await page.getByRole("alert").getByText("the context archive huge.tar is 65.0 MiB; a build through the console takes at most 64 MiB").waitFor();
      await page.getByLabel(/Context archive/).setInputFiles([]);
      await page.getByLabel("Dockerfile", { exact: true }).fill(`FROM ${base}\nRUN echo built-in-the-browser\nCMD ["echo", "hi"]\n`);
      await page.getByLabel("Tags", { exact: true }).fill("browser/built:1");
      await page.getByLabel("Node", { exact: true }).selectOption(nodeId);
      await page.screenshot({ path: join(ARTIFACTS, "01-build-form.png"), fullPage: true });
      await page.getByRole("button", { name: "Build" }).click();
      await page.waitForURL("**/jobs/**");
      const output = page.getByTestId("build-output");
      await output.getByText(/Step 1\/3 : FROM/).waitFor({ timeout: 60_000 });
      await output.getByText(/Successfully built/).waitFor({ timeout: 120_000 });
      await page.getByTestId("step").getByText("succeeded").waitFor({ timeout: 30_000 });
      assert.match(await output.innerText(), /built-in-the-browser[\s\S]*Successfully tagged browser\/built:1/);
      await page.getByTestId("build-result").getByText("browser/built:1").waitFor();
      await page.screenshot({ path: join(ARTIFACTS, "02-build-job.png"), fullPage: true });
    } finally {
      await browser?.close();
    }
    assert.match(await dockerOk(agent, ["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]), /browser\/built:1/);
  });
});
