// The console's API end to end with a real agent: enrollment by join token, the fleet
// and inventory queries, a pull job with per-layer progress from the fixture registry,
// running a container from the form, its lifecycle, and the audit log of each step.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "./fixtures/images.ts";
import { startAgent, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { until } from "./helpers/wait.ts";
import { apiClient, codeOf, createUser, sessionCookie, startTestConsole, type ApiClient, type TestConsole } from "./helpers/console.ts";

describe("console API with a real agent", () => {
  let registry: RegistryFixture;
  let images: FixtureImages;
  let consoleUp: TestConsole;
  let agent: AgentHandle;
  let admin: ApiClient;
  let nodeId: string;

  before(async () => {
    registry = await startRegistry({ auth: "none" });
    images = await pushFixtureImages(registry);
    consoleUp = await startTestConsole("console-api");
    const a = await createUser(consoleUp, "admin");
    admin = apiClient(consoleUp, await sessionCookie(consoleUp, a.id));
    const token = await consoleUp.services.nodeRegistry.createJoinToken({ note: "test" });
    agent = await startAgent({ consoleUrl: consoleUp.url, joinToken: token.token });
    nodeId = await until("the agent to enroll and come online", async () => {
      const list = await admin.nodes.list.query();
      return list.nodes.find((n) => n.online)?.id;
    });
  });

  after(async () => {
    await agent?.destroy();
    await consoleUp?.stop();
    await registry?.stop();
  });

  test("the fleet shows the node online with its facts", async () => {
    const list = await admin.nodes.list.query();
    assert.equal(list.nodes.length, 1);
    const n = list.nodes[0]!;
    assert.equal(n.online, true);
    assert.ok(n.kernel && n.os && n.cpus && n.memory, "kernel, OS, CPUs and memory are shown");
    assert.ok(n.disk && n.disk.total > 0, "disk is shown");
    assert.ok(n.agentVersion);
  });

  test("a pull job runs on the node with per-layer progress, and the image shows in the fleet inventory", async () => {
    const reference = `${registry.host}/${images.multilayer.repository}:${images.multilayer.tag}`;
    const { jobId } = await admin.jobs.pull.mutate({ nodeIds: [nodeId], reference });
    const job = await until(
      "the pull job to finish",
      async () => {
        const j = await admin.jobs.get.query({ jobId });
        return j.status !== "running" && j.status !== "queued" ? j : undefined;
      },
      120_000,
    );
    assert.equal(job.status, "succeeded", JSON.stringify(job.steps));
    const progress = job.steps[0]!.progress as { layers: Array<{ id: string; status: string }> };
    assert.ok(progress.layers.length >= 3, `per-layer progress recorded: ${JSON.stringify(progress)}`);
    const found = await until("the image in the inventory", async () => {
      const page = await admin.inventory.images.query({ search: images.multilayer.repository });
      return page.items.find((i) => i.nodes.some((n) => n.id === nodeId));
    });
    assert.equal(found.tag, images.multilayer.tag);
    const byDigest = await admin.inventory.images.query({ digest: found.digest ?? "" });
    assert.deepEqual(
      byDigest.items.map((i) => i.nodes.map((n) => n.id)),
      [[nodeId]],
    );
  });

  test("run from the form, see it running, stop and remove it; the audit log has each step", async () => {
    const image = `${registry.host}/${images.busybox.repository}:${images.busybox.tag}`;
    const run = await admin.jobs.run.mutate({ nodeId, image, name: "web1", command: "sleep 300", ports: ["18181:80"], env: ["A=1"], restart: "no" });
    await until("the run job", async () => (await admin.jobs.get.query({ jobId: run.jobId })).status === "succeeded", 60_000);
    const c = await until("web1 running in the inventory", async () => {
      const page = await admin.inventory.containers.query({ search: "web1" });
      return page.items.find((x) => x.name === "web1" && x.state === "running");
    });
    assert.equal(c.node.id, nodeId);
    assert.match(await dockerOk(agent, ["ps", "--format", "{{.Names}} {{.Ports}}"]), /web1 .*18181->80\/tcp/);
    for (const action of ["stop", "remove"] as const) {
      const j = await admin.jobs.container.mutate({ action, targets: [{ nodeId, id: c.id }] });
      await until(`${action} job`, async () => (await admin.jobs.get.query({ jobId: j.jobId })).status === "succeeded", 60_000);
    }
    await until("web1 gone", async () => (await admin.inventory.containers.query({ search: "web1" })).total === 0);
    const audit = await consoleUp.services.prisma.auditLog.findMany({ where: { action: { startsWith: "jobs." } }, orderBy: { at: "asc" } });
    assert.deepEqual(audit.map((a) => `${a.action} ${a.outcome}`).slice(-3), ["jobs.run success", "jobs.container success", "jobs.container success"]);
    assert.ok(audit.some((a) => a.action === "jobs.run" && a.targetNodeIds.includes(nodeId)));
  });

  test("a malformed reference and a bad port are refused with a clear error naming them", async () => {
    await assert.rejects(admin.jobs.pull.mutate({ nodeIds: [nodeId], reference: "Bad Ref!!" }), /invalid reference format/);
    await assert.rejects(admin.jobs.run.mutate({ nodeId, image: "busybox", ports: ["80:x"] }), /ports\[0\] "80:x"/);
  });

  test("a registry's credentials saved in the console are used by pull jobs on the node", async () => {
    const locked = await startRegistry({ auth: "basic" });
    try {
      const img = await pushFixtureImages(locked, { only: ["busybox"] });
      const reference = `${locked.host}/${img.busybox.repository}:${img.busybox.tag}`;
      const run = async () => {
        const { jobId } = await admin.jobs.pull.mutate({ nodeIds: [nodeId], reference });
        return until(
          "the pull job",
          async () => {
            const j = await admin.jobs.get.query({ jobId });
            return j.status === "running" || j.status === "queued" ? undefined : j;
          },
          60_000,
        );
      };
      const without = await run();
      assert.equal(without.status, "failed");
      assert.match(without.steps[0]!.error ?? "", /unauthorized|authentication required|credentials/i);
      await admin.admin.registries.save.mutate({ address: locked.host, username: locked.username, password: locked.password, insecure: false });
      const withCreds = await run();
      assert.equal(withCreds.status, "succeeded", JSON.stringify(withCreds.steps));
      const stored = await consoleUp.services.prisma.jobStep.findMany({ select: { params: true } });
      assert.ok(!JSON.stringify(stored).includes(locked.password), "the password is not stored with job steps");
    } finally {
      await locked.stop();
    }
  });

  test("distribute an image: pushed from one node, pulled on another, in two stages", async () => {
    const token = await consoleUp.services.nodeRegistry.createJoinToken({ note: "second" });
    const second = await startAgent({ consoleUrl: consoleUp.url, joinToken: token.token });
    try {
      const secondId = await until(
        "the second node online",
        async () => (await admin.nodes.list.query()).nodes.find((n) => n.online && n.id !== nodeId)?.id,
        30_000,
      );
      const reference = `${registry.host}/${images.multilayer.repository}:distributed`;
      const tag = await admin.jobs.tag.mutate({
        nodeIds: [nodeId],
        source: `${registry.host}/${images.multilayer.repository}:${images.multilayer.tag}`,
        target: reference,
      });
      await until("the tag job", async () => (await admin.jobs.get.query({ jobId: tag.jobId })).status === "succeeded");
      const { jobId } = await admin.jobs.distribute.mutate({ sourceNodeId: nodeId, targetNodeIds: [secondId], reference });
      const job = await until(
        "the distribution",
        async () => {
          const j = await admin.jobs.get.query({ jobId });
          return j.status === "running" || j.status === "queued" ? undefined : j;
        },
        120_000,
      );
      assert.equal(job.status, "succeeded", JSON.stringify(job.steps));
      assert.deepEqual(
        job.steps.map((st) => [st.seq, st.action, st.nodeId]),
        [
          [0, "image.push", nodeId],
          [1, "image.pull", secondId],
        ],
      );
      assert.match(await dockerOk(second, ["images", "--format", "{{.Repository}}:{{.Tag}}"]), new RegExp(`${images.multilayer.repository}:distributed`));
      const holders = await until("both nodes holding the image", async () => {
        const page = await admin.inventory.images.query({ search: "distributed" });
        return page.items[0]?.nodes.length === 2 ? page.items[0] : undefined;
      });
      assert.deepEqual(holders.nodes.map((n) => n.id).sort(), [nodeId, secondId].sort());
    } finally {
      await second.destroy();
    }
  });

  test("a job on an online and an offline node ends partial, with the reason on the offline node's step", async () => {
    const offline = await consoleUp.services.prisma.node.create({ data: { hostname: "gone", name: "gone" } });
    const reference = `${registry.host}/${images.busybox.repository}:${images.busybox.tag}`;
    const { jobId } = await admin.jobs.pull.mutate({ nodeIds: [nodeId, offline.id], reference });
    const job = await until(
      "the job to end",
      async () => {
        const j = await admin.jobs.get.query({ jobId });
        return j.status === "running" || j.status === "queued" ? undefined : j;
      },
      60_000,
    );
    assert.equal(job.status, "partial");
    const byNode = new Map(job.steps.map((st) => [st.nodeId, st]));
    assert.equal(byNode.get(nodeId)?.status, "succeeded");
    assert.equal(byNode.get(offline.id)?.status, "failed");
    assert.match(byNode.get(offline.id)?.error ?? "", /offline/);
    await consoleUp.services.prisma.node.delete({ where: { id: offline.id } });
  });

  test("signed out: refused", async () => {
    assert.equal(await codeOf(apiClient(consoleUp).nodes.list.query()), "UNAUTHORIZED");
  });
});
