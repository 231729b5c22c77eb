// The agent artifact (npm run build:agent, what the installer ships) on Node.js 18, the
// version Debian 12 ships: it serves the Docker API, pulls, runs, execs into and removes
// a container, and enrolls into a console.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readlink } from "node:fs/promises";
import { join } from "node:path";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "./fixtures/images.ts";
import { dockerOk, startAgent, type AgentHandle } from "./helpers/agent.ts";
import { node18, NODE18_VERSION } from "./helpers/node18.ts";
import { startTestConsole, type TestConsole } from "./helpers/console.ts";
import { until } from "./helpers/wait.ts";
import { PROJECT_ROOT } from "../server/console.ts";

const ARTIFACT = join(PROJECT_ROOT, "dist/berth-agent/berth-agent.mjs");

describe(`the agent artifact on Node.js ${NODE18_VERSION}`, () => {
  let registry: RegistryFixture;
  let images: FixtureImages;
  let c: TestConsole;
  let agent: AgentHandle;

  before(async () => {
    assert.ok(existsSync(ARTIFACT), `${ARTIFACT} is missing: npm test builds it (npm run build:agent)`);
    const node = await node18();
    registry = await startRegistry({ auth: "none" });
    images = await pushFixtureImages(registry, { only: ["busybox"] });
    c = await startTestConsole("agent-node18");
    const token = await c.services.nodeRegistry.createJoinToken({});
    agent = await startAgent({ runtime: { node, entry: ARTIFACT }, consoleUrl: c.url, joinToken: token.token });
  });

  after(async () => {
    await agent?.destroy();
    await c?.stop();
    await registry?.stop();
  });

  test("docker pull, run, exec, logs and rm through the agent on Node 18", async () => {
    assert.equal(await readlink(`/proc/${agent.process.pid}/exe`), await node18(), "the agent process is Node 18's binary");
    await dockerOk(agent, ["pull", images.busybox.ref]);
    await dockerOk(agent, ["run", "-d", "--name", "on18", images.busybox.ref, "sh", "-c", "echo started; sleep 300"]);
    assert.equal((await dockerOk(agent, ["exec", "on18", "echo", "from-exec"])).trim(), "from-exec");
    assert.match(await dockerOk(agent, ["logs", "on18"]), /started/);
    await dockerOk(agent, ["rm", "-f", "on18"]);
    assert.equal((await dockerOk(agent, ["ps", "-aq"])).trim(), "");
  });

  test("it enrolls into the console and reports its inventory", async () => {
    const n = await until("the node online with its inventory", () => c.services.hub.nodes().find((x) => x.online && x.inventory), 30_000, agent);
    assert.ok(n.inventory!.images.some((i) => i.repoTags.some((t) => t.includes(images.busybox.repository))));
  });
});
