// An operator's bind mounts are judged twice: by the console on the path as written (the
// node group's host policy), and by the agent on the path as it resolves on the node, since
// a symbolic link made by an earlier container inside an allowed read-write prefix can point
// anywhere on the host. And a job that waited for an offline node is judged again when its
// step runs, against the policy of that moment.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { lstat, mkdtemp, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "./fixtures/images.ts";
import { startAgent, docker, type AgentHandle } from "./helpers/agent.ts";
import { until } from "./helpers/wait.ts";
import { apiClient, createTeamWithGroup, createUser, sessionCookie, startTestConsole, type ApiClient, type TestConsole } from "./helpers/console.ts";

describe("host paths an operator binds, judged on the node", () => {
  let registry: RegistryFixture;
  let images: FixtureImages;
  let c: TestConsole;
  let agent: AgentHandle;
  let admin: ApiClient;
  let operator: ApiClient;
  let nodeId: string;
  let groupId: string;
  let srv: string;
  let image: string;

  before(async () => {
    registry = await startRegistry({ auth: "none" });
    images = await pushFixtureImages(registry);
    image = `${registry.host}/${images.busybox.repository}:${images.busybox.tag}`;
    srv = await mkdtemp(join(tmpdir(), "berth-srv-"));
    // Long enough for the agent to come back while a job waits for it.
    c = await startTestConsole("console-host-paths", { jobOfflineWaitMs: 60_000 });
    admin = apiClient(c, await sessionCookie(c, (await createUser(c, "admin")).id));
    const token = await c.services.nodeRegistry.createJoinToken({ note: "test" });
    agent = await startAgent({ consoleUrl: c.url, joinToken: token.token });
    nodeId = await until("the agent online", async () => (await admin.nodes.list.query()).nodes.find((n) => n.online)?.id);
    groupId = (await c.services.prisma.nodeGroup.create({ data: { name: "prod" } })).id;
    await c.services.prisma.node.update({ where: { id: nodeId }, data: { groupId } });
    const team = await createTeamWithGroup(c, "ops", groupId);
    operator = apiClient(c, await sessionCookie(c, (await createUser(c, "operator", { teamIds: [team] })).id));
    await admin.admin.security.hostAccess.set.mutate({ groupId, allowHostNetwork: false, bindMounts: [{ path: srv, access: "rw" }] });
  });

  after(async () => {
    await agent?.destroy();
    await c?.stop();
    await registry?.stop();
    if (srv) await rm(srv, { recursive: true, force: true });
  });

  async function finished(jobId: string) {
    return until(
      `job ${jobId} to end`,
      async () => {
        const j = await admin.jobs.get.query({ jobId });
        return j.status === "running" || j.status === "queued" ? undefined : j;
      },
      120_000,
    );
  }

  test("inside the policy's prefix an operator's bind works, and a container can leave a link to / there", async () => {
    const { jobId } = await operator.jobs.run.mutate({
      nodeId,
      image,
      name: "linker",
      command: "ln -s / /data/escape",
      volumes: [`${srv}:/data`],
      restart: "no",
    });
    const job = await finished(jobId);
    assert.equal(job.status, "succeeded", JSON.stringify(job.steps));
    await until(
      "the link on the host",
      async () =>
        (await lstat(join(srv, "escape")).then(
          (s) => s.isSymbolicLink(),
          () => false,
        )) || undefined,
    );
    assert.equal(await readlink(join(srv, "escape")), "/");
  });

  test("a bind through that link is refused by the agent, naming where it resolves; nothing is created", async () => {
    const { jobId } = await operator.jobs.run.mutate({
      nodeId,
      image,
      name: "escaper",
      command: "cat /host/etc/shadow",
      volumes: [`${srv}/escape:/host`],
      restart: "no",
    });
    const job = await finished(jobId);
    assert.equal(job.status, "failed");
    assert.match(
      job.steps[0]!.error ?? "",
      new RegExp(
        `bind source ${srv}/escape \\(it resolves to / through a symbolic link\\) is outside the host paths this node's group allows operators: ${srv} \\(rw\\)`,
      ),
    );
    const names = await docker(agent, ["ps", "-a", "--format", "{{.Names}}"]);
    assert.doesNotMatch(names.stdout, /escaper/);
  });

  test("an admin's bind through the same link is not confined", async () => {
    const { jobId } = await admin.jobs.run.mutate({
      nodeId,
      image,
      name: "admin-box",
      command: "ls /host/etc/hostname",
      volumes: [`${srv}/escape:/host:ro`],
      restart: "no",
    });
    const job = await finished(jobId);
    assert.equal(job.status, "succeeded", JSON.stringify(job.steps));
  });

  test("a job that waited for an offline node is judged again when it runs: a narrowed policy refuses it", async () => {
    await agent.stop();
    await until("the node offline", async () => (await admin.nodes.list.query()).nodes.find((n) => n.id === nodeId && !n.online));
    const { jobId } = await operator.jobs.run.mutate({ nodeId, image, name: "late", command: "true", volumes: [`${srv}/app:/app`], restart: "no" });
    await admin.admin.security.hostAccess.set.mutate({ groupId, allowHostNetwork: false, bindMounts: [] });
    await agent.restart();
    const job = await finished(jobId);
    assert.equal(job.status, "failed");
    assert.match(
      job.steps[0]!.error ?? "",
      /refused when the step ran \(the host policy or the creator's role changed since the job was created\): .*--volume .*\/app:\/app.* does not list/,
    );
    const names = await docker(agent, ["ps", "-a", "--format", "{{.Names}}"]);
    assert.doesNotMatch(names.stdout, /\blate\b/);
  });
});
