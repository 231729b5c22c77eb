import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pushFixtureImages } from "../fixtures/images.ts";
import { startRegistry, type RegistryFixture } from "../fixtures/registry.ts";
import { dockerOk, startAgent, type AgentHandle } from "./agent.ts";

/** What the container suites start with: the seeds' `docker pull busybox` already done. */
export interface BusyboxAgent {
  /** A registry (no auth) holding the fixture busybox; the agent's Docker Hub mirror. */
  reg: RegistryFixture;
  agent: AgentHandle;
  /** A scratch directory of the suite's own. */
  work: string;
  /** Destroys the agent (and what it ran), stops the registry, removes the scratch directory. */
  stop(): Promise<void>;
}

export async function startBusyboxAgent(name: string): Promise<BusyboxAgent> {
  let reg: RegistryFixture | undefined;
  let agent: AgentHandle | undefined;
  const work = await mkdtemp(join(tmpdir(), `berth-${name}-`));
  const stop = async () => {
    await agent?.destroy();
    await reg?.stop();
    await rm(work, { recursive: true, force: true });
  };
  try {
    reg = await startRegistry({ auth: "none" });
    await pushFixtureImages(reg, { only: ["busybox"] });
    agent = await startAgent({ registryMirrors: [reg.url] });
    await dockerOk(agent, ["pull", "busybox"]);
    return { reg, agent, work, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
