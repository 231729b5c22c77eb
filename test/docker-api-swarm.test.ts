// Swarm and plugins through the real docker CLI: the agent answers as a Docker Engine that is not
// in a swarm (clients rely on the 503, not a 404) and has no plugins.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { docker, dockerOk, startAgent, type AgentHandle } from "./helpers/agent.ts";

describe("swarm and plugin endpoints", () => {
  let agent: AgentHandle;
  before(async () => {
    agent = await startAgent();
  });
  after(async () => {
    await agent?.destroy();
  });

  test("docker swarm leave: not part of a swarm", async () => {
    const r = await docker(agent, ["swarm", "leave"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Error response from daemon: This node is not part of a swarm/);
  });

  test("docker service ls / node ls: not a swarm manager", async () => {
    for (const args of [
      ["service", "ls"],
      ["node", "ls"],
      ["secret", "ls"],
      ["config", "ls"],
    ]) {
      const r = await docker(agent, args);
      assert.notEqual(r.code, 0, args.join(" "));
      assert.match(r.stderr, /This node is not a swarm manager/, args.join(" "));
    }
  });

  test("docker plugin ls: none", async () => {
    const out = await dockerOk(agent, ["plugin", "ls", "--format", "{{.Name}}"]);
    assert.equal(out.trim(), "");
  });
});
