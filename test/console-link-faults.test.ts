// Link faults between a real console (PostgreSQL registry of nodes) and a real agent:
// a join token used twice, an agent cut off for a minute and coming back, the console
// restarting while agents are connected and while a job runs, and a revoked node
// trying to reconnect.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFile, readFile } from "node:fs/promises";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "./fixtures/images.ts";
import { startAgent, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { startLinkProxy, type LinkProxy } from "./helpers/link-proxy.ts";
import { sleep, until } from "./helpers/wait.ts";
import { apiClient, createUser, sessionCookie, startTestConsole, type ApiClient, type TestConsole } from "./helpers/console.ts";

/** How long the agent is cut off (the minute; BERTH_LINK_OUTAGE_MS shortens it when working on this test). */
const OUTAGE_MS = Number(process.env.BERTH_LINK_OUTAGE_MS ?? 60_000);

describe("console link faults", () => {
  let registry: RegistryFixture;
  let images: FixtureImages;
  let c: TestConsole;
  let proxy: LinkProxy;
  let agent: AgentHandle;
  let adminId: string;
  let admin: ApiClient;
  let nodeId: string;
  let token: string;
  let port: number;

  before(async () => {
    registry = await startRegistry({ auth: "none" });
    images = await pushFixtureImages(registry);
    // Steps wait for a node that is away (the console restart test relies on it).
    c = await startTestConsole("console-link-faults", { jobOfflineWaitMs: 30_000 });
    port = c.port;
    proxy = await startLinkProxy(() => c.port);
    adminId = (await createUser(c, "admin")).id;
    admin = apiClient(c, await sessionCookie(c, adminId));
    token = (await c.services.nodeRegistry.createJoinToken({ note: "faults" })).token;
    agent = await startAgent({ consoleUrl: proxy.url, joinToken: token });
    nodeId = await until("the agent online", async () => (await admin.nodes.list.query()).nodes.find((n) => n.online)?.id, 30_000, agent);
    await dockerOk(agent, ["pull", images.busybox.ref]);
  });

  after(async () => {
    await agent?.destroy();
    await proxy?.close();
    await c?.stop();
    await registry?.stop();
  });

  test("a join token used a second time is refused, and no second node appears", async () => {
    const second = await startAgent({ consoleUrl: c.url, joinToken: token });
    try {
      await until("the refusal in the second agent's log", async () => /join token already used/.test(second.logs()), 30_000, second);
    } finally {
      await second.destroy();
    }
    assert.equal((await admin.nodes.list.query()).nodes.length, 1);
  });

  test(`an agent cut off for ${OUTAGE_MS / 1000} s shows offline with its last inventory, then online again`, async (t) => {
    await dockerOk(agent, ["run", "-d", "--name", "keeper", images.busybox.ref, "sleep", "3600"]);
    // Create and start may reach the console as two changes: wait for the second.
    await until("keeper running in the inventory", async () => (await admin.inventory.containers.query({ search: "keeper" })).items[0]?.state === "running");
    // Restored also when an assertion fails, so the next tests find the link up.
    t.after(() => proxy.restore());
    proxy.cut();
    const cutAt = Date.now();
    const offline = await until("the node offline", async () => (await admin.nodes.list.query()).nodes.find((n) => n.id === nodeId && !n.online), 30_000);
    assert.ok(offline.lastSeen && offline.lastSeen <= Date.now());
    const kept = await admin.inventory.containers.query({ search: "keeper" });
    assert.equal(kept.items[0]?.state, "running", "the last-known inventory stays while the node is offline");
    assert.equal(kept.items[0]?.node.online, false);
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - cutAt)));
    proxy.restore();
    const back = Date.now();
    await until("the node online again", async () => (await admin.nodes.list.query()).nodes.find((n) => n.id === nodeId && n.online), 30_000, agent);
    assert.ok(Date.now() - back < 30_000);
    // The container kept running all along.
    assert.match(await dockerOk(agent, ["ps", "--format", "{{.Names}} {{.State}}"]), /keeper running/);
  });

  test("the console restarts while the agent is connected and a job runs: the job finishes once, the node comes back", async () => {
    // A container that ignores SIGTERM makes `stop` take its whole timeout: a job long enough to restart under.
    await dockerOk(agent, ["run", "-d", "--name", "stubborn", images.busybox.ref, "sh", "-c", "trap '' TERM; while :; do sleep 1; done"]);
    const stubborn = await until("stubborn in the inventory", async () => (await admin.inventory.containers.query({ search: "stubborn" })).items[0]);
    const { jobId } = await admin.jobs.container.mutate({ action: "stop", targets: [{ nodeId, id: stubborn.id }], timeoutSeconds: 8 });
    await until("the step running", async () => (await admin.jobs.get.query({ jobId })).steps[0]?.status === "running");
    await sleep(1_000);
    await c.stop({ keepDatabase: true });
    c = await startTestConsole("console-link-faults", { db: c.db, dataDir: c.dataDir, port, jobOfflineWaitMs: 30_000 });
    admin = apiClient(c, await sessionCookie(c, adminId));
    // Known nodes are listed at once from the database, offline until they reconnect.
    const listed = (await admin.nodes.list.query()).nodes.find((n) => n.id === nodeId);
    assert.ok(listed, "the node is known after the restart");
    await until(
      "the node online after the restart",
      async () => (await admin.nodes.list.query()).nodes.find((n) => n.id === nodeId && n.online),
      30_000,
      agent,
    );
    const job = await until(
      "the resumed job to finish",
      async () => {
        const j = await admin.jobs.get.query({ jobId });
        return j.status === "running" || j.status === "queued" ? undefined : j;
      },
      60_000,
    );
    assert.equal(job.status, "succeeded", JSON.stringify(job.steps));
    assert.match(await dockerOk(agent, ["ps", "-a", "--filter", "name=stubborn", "--format", "{{.State}}"]), /exited/);
    // Ran once on the node: the agent logs each first run as "request" and a repeated id as "request repeated".
    const runs = agent
      .logs()
      .split("\n")
      .filter((l) => l.includes(job.steps[0]!.id) && l.includes('"msg":"request"'));
    assert.equal(runs.length, 1, `the stop ran once on the node:\n${runs.join("\n")}`);
  });

  test("a revoked node is disconnected at once and refused when it tries to reconnect", async () => {
    const saved = `${agent.credentialFile}.before-revoke`;
    await copyFile(agent.credentialFile, saved);
    await admin.nodes.revoke.mutate({ nodeId });
    await until("the agent told of its revocation", async () => /revoked this node/.test(agent.logs()), 10_000, agent);
    const n = (await admin.nodes.list.query()).nodes.find((x) => x.id === nodeId);
    assert.equal(n?.revoked, true);
    assert.equal(n?.online, false);
    await agent.stop();
    await copyFile(saved, agent.credentialFile);
    await agent.restart();
    // The handshake's refusal (the first notice carried the admin's reason instead).
    await until("the reconnect refused as revoked", async () => /"reason":"this node was revoked".*revoked this node/.test(agent.logs()), 30_000, agent);
    await assert.rejects(readFile(agent.credentialFile), "the agent deleted the refused credential");
    assert.equal((await admin.nodes.list.query()).nodes.find((x) => x.id === nodeId)?.online, false);
    const audit = await c.services.prisma.auditLog.findFirst({ where: { action: "nodes.revoke" } });
    assert.equal(audit?.outcome, "success");
    assert.deepEqual(audit?.targetNodeIds, [nodeId]);
  });
});
