/**
 * Berth's agent and Docker Engine 20.10 side by side, with the fixture registry holding the
 * images both pull: the set-up of every test that compares what a user sees on the two.
 */
import assert from "node:assert/strict";
import { startRegistry, type RegistryFixture } from "../fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "../fixtures/images.ts";
import { startAgent, type AgentHandle, type StartAgentOptions } from "./agent.ts";
import { dockerCliOk, startDockerd, type CliTarget, type DockerdHandle } from "./dockerd.ts";

export interface BerthAndDocker {
  reg: RegistryFixture;
  fx: FixtureImages;
  agent: AgentHandle;
  dockerd: DockerdHandle;
  /** The CLI targets; logs() gives the daemon's output for failure messages. */
  berth: CliTarget;
  engine: CliTarget;
  /** Stops both daemons and the registry. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts the registry (fixture `images` pushed), an agent and dockerd 20.10 (checked: the
 * version under comparison). `pull`: fixture images both daemons pull before the tests.
 * What started is stopped again when a later step fails.
 */
export async function startBerthAndDocker(
  opts: { images: Array<keyof FixtureImages>; pull?: Array<keyof FixtureImages>; agent?: StartAgentOptions | ((reg: RegistryFixture) => StartAgentOptions) } = {
    images: ["busybox"],
  },
): Promise<BerthAndDocker> {
  const started: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const s of started.splice(0).reverse()) await s();
  };
  try {
    const reg = await startRegistry({ auth: "none" });
    started.push(() => reg.stop());
    const fx = await pushFixtureImages(reg, { only: opts.images });
    const agent = await startAgent(typeof opts.agent === "function" ? opts.agent(reg) : opts.agent);
    started.push(() => agent.destroy());
    const dockerd = await startDockerd(); // throws with dockerd's and containerd's logs if it cannot start
    started.push(() => dockerd.stop());
    const berth: CliTarget = { dockerHost: agent.dockerHost, dockerConfig: agent.dockerConfig, logs: agent.logs };
    const engine: CliTarget = dockerd;
    assert.match(
      (await dockerCliOk(engine, ["version", "--format", "{{.Server.Version}}"])).trim(),
      /^20\.10\./,
      "the Docker Engine under comparison is 20.10",
    );
    for (const name of opts.pull ?? []) for (const target of [berth, engine]) await dockerCliOk(target, ["pull", fx[name].ref]);
    return { reg, fx, agent, dockerd, berth, engine, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
