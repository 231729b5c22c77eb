// Jobs on one container are ordered by the console, a Run whose start fails leaves
// nothing behind, Recreate keeps the name with the new settings, and the container's
// usage arrives as `docker stats` computes it: with a real console and a real agent.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "./fixtures/images.ts";
import { startAgent, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { until } from "./helpers/wait.ts";
import { apiClient, createUser, sessionCookie, startTestConsole, type ApiClient, type TestConsole } from "./helpers/console.ts";
import type { StatsSample } from "../agent/link/contract.ts";

describe("ordered container actions, clean failed runs, recreate and stats", () => {
  let registry: RegistryFixture;
  let images: FixtureImages;
  let consoleUp: TestConsole;
  let agent: AgentHandle;
  let admin: ApiClient;
  let nodeId: string;
  let image: string;
  let blocker: Server | undefined;

  before(async () => {
    registry = await startRegistry({ auth: "none" });
    images = await pushFixtureImages(registry);
    image = `${registry.host}/${images.busybox.repository}:${images.busybox.tag}`;
    consoleUp = await startTestConsole("container-order");
    const a = await createUser(consoleUp, "admin");
    admin = apiClient(consoleUp, await sessionCookie(consoleUp, a.id));
    const token = await consoleUp.services.nodeRegistry.createJoinToken({ note: "test" });
    agent = await startAgent({ consoleUrl: consoleUp.url, joinToken: token.token });
    nodeId = await until("the agent to enroll and come online", async () => (await admin.nodes.list.query()).nodes.find((n) => n.online)?.id);
  });

  after(async () => {
    blocker?.close();
    await agent?.destroy();
    await consoleUp?.stop();
    await registry?.stop();
  });

  const finished = (jobId: string, ms = 90_000) =>
    until(
      `job ${jobId} to finish`,
      async () => {
        const j = await admin.jobs.get.query({ jobId });
        return j.status !== "running" && j.status !== "queued" ? j : undefined;
      },
      ms,
    );

  test("Pause sent during a 10 s Restart waits for it: the container ends paused", async () => {
    // A process that ignores SIGTERM: the restart takes its whole 10 s timeout.
    await dockerOk(agent, ["run", "-d", "--name", "slowstop", image, "sh", "-c", "trap '' TERM; while :; do sleep 1; done"]);
    const c = await until("slowstop in the inventory", async () =>
      (await admin.inventory.containers.query({ search: "slowstop" })).items.find((x) => x.state === "running"),
    );
    const restart = await admin.jobs.container.mutate({ action: "restart", targets: [{ nodeId, id: c.id }], timeoutSeconds: 10 });
    await new Promise((r) => setTimeout(r, 1000));
    const pause = await admin.jobs.container.mutate({ action: "pause", targets: [{ nodeId, id: "slowstop" }] });
    const waiting = await admin.jobs.get.query({ jobId: pause.jobId });
    assert.notEqual(waiting.status, "succeeded", "the pause does not finish while the restart runs");
    const [r, p] = [await finished(restart.jobId), await finished(pause.jobId)];
    assert.equal(r.status, "succeeded", JSON.stringify(r.steps));
    assert.equal(p.status, "succeeded", JSON.stringify(p.steps));
    assert.ok(Date.parse(p.steps[0]!.finishedAt!) >= Date.parse(r.steps[0]!.finishedAt!), "the pause finished after the restart");
    assert.equal((await dockerOk(agent, ["inspect", "-f", "{{.State.Status}}", "slowstop"])).trim(), "paused");
    await dockerOk(agent, ["rm", "-f", "slowstop"]);
  });

  test("a Run whose start fails (port taken) says why and leaves no container", async () => {
    blocker = createServer();
    await new Promise<void>((res) => blocker!.listen(18399, "0.0.0.0", res));
    const run = await admin.jobs.run.mutate({ nodeId, image, name: "portclash", command: "sleep 300", ports: ["18399:80"] });
    const j = await finished(run.jobId);
    assert.equal(j.status, "failed");
    assert.match(j.steps[0]!.error ?? "", /could not start: .*(18399|address|port).*portclash was removed/i);
    assert.doesNotMatch(await dockerOk(agent, ["ps", "-a", "--format", "{{.Names}}"]), /portclash/);
    blocker.close();
    blocker = undefined;
  });

  test("a Run pulls an image the node lacks first; a Run on a missing network fails as such", async () => {
    await dockerOk(agent, ["pull", image]);
    const noNet = await admin.jobs.run.mutate({ nodeId, image, name: "nonet", command: "sleep 300", network: "no-such-net" });
    const failed = await finished(noNet.jobId);
    assert.equal(failed.status, "failed");
    assert.match(failed.steps[0]!.error ?? "", /network no-such-net not found/i);
    assert.doesNotMatch(await dockerOk(agent, ["ps", "-a", "--format", "{{.Names}}"]), /nonet/);
    const absent = `${registry.host}/${images.multilayer.repository}:${images.multilayer.tag}`;
    const run = await admin.jobs.run.mutate({ nodeId, image: absent, name: "pulledfirst", command: "sleep 300" });
    const j = await finished(run.jobId);
    assert.equal(j.status, "succeeded", JSON.stringify(j.steps));
    assert.equal((await dockerOk(agent, ["inspect", "-f", "{{.State.Status}} {{.Config.Image}}", "pulledfirst"])).trim(), `running ${absent}`);
    await dockerOk(agent, ["rm", "-f", "pulledfirst"]);
  });

  test("Recreate with a changed env: same name, new env in inspect, the old one gone", async () => {
    const run = await admin.jobs.run.mutate({
      nodeId,
      image,
      name: "recreated",
      command: "sleep 300",
      env: ["MODE=old"],
      labels: ["team=ops"],
      workdir: "/tmp",
      restart: "on-failure",
      restartRetries: 3,
    });
    assert.equal((await finished(run.jobId)).status, "succeeded");
    const old = await until("recreated running", async () =>
      (await admin.inventory.containers.query({ search: "recreated" })).items.find((x) => x.state === "running"),
    );
    const before = await admin.inventory.containerInspect.query({ nodeId, id: old.id });
    assert.deepEqual(before.options.labels, { team: "ops" });
    assert.equal(before.config.workingDir, "/tmp");
    assert.deepEqual(before.options.restartPolicy, { name: "on-failure", maximumRetryCount: 3 });
    const again = await admin.jobs.run.mutate({
      nodeId,
      image,
      name: "recreated",
      command: "sleep 300",
      env: ["MODE=new"],
      replace: { id: old.id, keepVolumes: true },
      pullLatest: true,
    });
    const j = await finished(again.jobId);
    assert.equal(j.status, "succeeded", JSON.stringify(j.steps));
    assert.deepEqual(
      j.steps.map((s) => s.action),
      ["image.pull", "container.remove", "container.run"],
    );
    const now = await admin.inventory.containerInspect.query({ nodeId, id: "recreated" });
    assert.notEqual(now.id, old.id);
    assert.ok(now.config.env.includes("MODE=new"), now.config.env.join(" "));
    assert.match(await dockerOk(agent, ["inspect", "-f", "{{.Config.Env}}", "recreated"]), /MODE=new/);
  });

  test("the stats stream reads like docker stats", async () => {
    // Capped at half a core: what the loop gets then depends little on what else the shared
    // machine runs, so the stream and `docker stats` (read at other moments) see the same level.
    await dockerOk(agent, ["run", "-d", "--name", "burner", "--cpus", "0.5", image, "sh", "-c", "while :; do :; done"]);
    const samples: StatsSample[] = [];
    const ac = new AbortController();
    const done = consoleUp.services.hub
      .request(nodeId, "container.stats", { id: "burner" }, { signal: ac.signal, onStream: (s) => samples.push(s) })
      .catch(() => undefined);
    await until("four samples", async () => samples.length >= 4, 20_000);
    const cli = Number((await dockerOk(agent, ["stats", "--no-stream", "--format", "{{.CPUPerc}}", "burner"])).trim().replace("%", ""));
    await until("two more samples", async () => samples.length >= 6, 20_000);
    ac.abort();
    await done;
    const recent = samples.slice(-3).map((s) => s.cpuPercent ?? 0);
    const mean = recent.reduce((a, b) => a + b, 0) / recent.length;
    console.log(`# burner: stream ${recent.map((v) => v.toFixed(1)).join(", ")} %, docker stats ${cli} %`);
    assert.ok(mean > 10, `a busy loop shows in the stream (the machine is shared): ${mean}`);
    assert.ok(mean < 60, `the --cpus 0.5 cap shows in the stream: ${mean} %`);
    assert.ok(Math.abs(mean - cli) < 15, `stream ${mean} % vs docker stats ${cli} %`);
    assert.ok(samples.at(-1)!.memoryUsage > 0 && samples.at(-1)!.pids >= 1);
    await dockerOk(agent, ["rm", "-f", "burner"]);
  });
});
