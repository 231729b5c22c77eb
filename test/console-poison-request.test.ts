// A request that crashes the agent, through a real console and a real agent: the agent is
// started with the test-only BERTH_TEST_CRASH_ON=image.pull, so it kills itself as it
// starts running a pull. Before the request ledger was journaled, the console re-sent the
// request after every restart and the agent died again (a crash loop; the job stayed
// "running"). Now the restarted agent answers it as interrupted, and the job ends failed.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startAgent, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { until } from "./helpers/wait.ts";
import { apiClient, createUser, sessionCookie, startTestConsole, type ApiClient, type TestConsole } from "./helpers/console.ts";

const CRASH_MARK = "BERTH_TEST_CRASH_ON: crashing on image.pull";
/** Nothing listens there: a pull that ran would fail quickly, not hang. */
const REFERENCE = "127.0.0.1:9/poison/never:1";

describe("a request that crashes the agent", () => {
  let c: TestConsole;
  let agent: AgentHandle;
  let adminId: string;
  let admin: ApiClient;
  let nodeId: string;
  let port: number;

  before(async () => {
    // Steps wait for a node that is away (the console restart test relies on it).
    c = await startTestConsole("console-poison-request", { jobOfflineWaitMs: 60_000 });
    port = c.port;
    adminId = (await createUser(c, "admin")).id;
    admin = apiClient(c, await sessionCookie(c, adminId));
    const { token } = await c.services.nodeRegistry.createJoinToken({ note: "poison" });
    agent = await startAgent({ consoleUrl: c.url, joinToken: token, env: { BERTH_TEST_CRASH_ON: "image.pull" } });
    nodeId = await until("the agent online", async () => (await admin.nodes.list.query()).nodes.find((n) => n.online)?.id, 30_000, agent);
  });

  after(async () => {
    await agent?.destroy();
    await c?.stop();
  });

  const dead = () => agent.process.exitCode !== null || agent.process.signalCode !== null;
  /** The job once it ends; fails at once should the agent die again (the crash loop). */
  async function finished(jobId: string) {
    const r = await until(
      "the job to finish",
      async () => {
        if (dead()) return { died: true as const };
        const job = await admin.jobs.get.query({ jobId });
        return job.status === "running" || job.status === "queued" ? undefined : { job };
      },
      90_000,
      agent,
    );
    if ("died" in r) assert.fail(`the agent died again: the request ran a second time\n${agent.logs()}`);
    return r.job;
  }

  /** Starts a pull job, waits for the agent to die of it, and checks the job is still open. */
  async function crashWithPull(): Promise<{ jobId: string; stepId: string }> {
    const { jobId } = await admin.jobs.pull.mutate({ nodeIds: [nodeId], reference: REFERENCE });
    await until("the agent to die of the pull", () => dead(), 30_000, agent);
    const job = await admin.jobs.get.query({ jobId });
    const stepId = job.steps[0]!.id;
    const crashes = agent
      .logs()
      .split("\n")
      .filter((l) => l.includes(CRASH_MARK));
    assert.deepEqual(crashes, [`${CRASH_MARK} ${stepId}`], "the agent died starting the job's pull (the step's id is the request id)");
    assert.equal(job.status, "running");
    return { jobId, stepId };
  }

  /** After the answer: the same agent process still runs, never started the pull again, and serves. */
  async function assertAgentStaysUp(pid: number | undefined, stepId: string): Promise<void> {
    const logs = agent.logs();
    assert.ok(!logs.includes(CRASH_MARK), `the restarted agent did not run the pull again:\n${logs}`);
    assert.ok(
      logs.split("\n").some((l) => l.includes(stepId) && l.includes("running when the agent stopped")),
      "the agent says which request it answers as interrupted",
    );
    assert.match(await dockerOk(agent, ["version", "--format", "{{.Server.Version}}"]), /berth/);
    assert.equal(agent.process.pid, pid, "same agent process after the answer");
    assert.ok(!dead());
    assert.ok((await admin.nodes.list.query()).nodes.find((n) => n.id === nodeId)?.online, "the node is online");
  }

  test("the console's request in flight is answered as interrupted once the agent is back: the step fails with that reason, the pull is not run again", async () => {
    const { jobId, stepId } = await crashWithPull();
    await agent.restart();
    const pid = agent.process.pid;
    const job = await finished(jobId);
    assert.equal(job.status, "failed");
    assert.equal(job.steps[0]!.status, "failed");
    assert.match(job.steps[0]!.error ?? "", /the agent restarted while running this \(image\.pull, started [^)]+\); it was not run again/);
    await assertAgentStaysUp(pid, stepId);
  });

  test("after a console restart too: the resumed step is answered as interrupted, not run again", async () => {
    const { jobId, stepId } = await crashWithPull();
    // The console goes down while the agent is dead: the request in flight is gone with it, the step is left "running".
    await c.stop({ keepDatabase: true });
    c = await startTestConsole("console-poison-request", { db: c.db, dataDir: c.dataDir, port, jobOfflineWaitMs: 60_000 });
    admin = apiClient(c, await sessionCookie(c, adminId));
    await agent.restart();
    const pid = agent.process.pid;
    const job = await finished(jobId);
    assert.equal(job.status, "failed");
    assert.match(job.steps[0]!.error ?? "", /the agent restarted while running this/);
    await assertAgentStaysUp(pid, stepId);
  });
});
