// Quick profile: N cold pulls of the large image by a fresh Berth agent each.
import { startRegistry } from "../test/fixtures/registry.ts";
import { buildLargeImageLayout, copyLayoutToRegistry } from "../test/fixtures/images.ts";
import { dockerOk, startAgent } from "../test/helpers/agent.ts";
const reg = await startRegistry({ auth: "none" });
const layout = await buildLargeImageLayout();
const fx = await copyLayoutToRegistry(layout, reg, "bench/large:latest");
for (let i = 0; i < Number(process.argv[2] ?? 3); i++) {
  const agent = await startAgent();
  const t0 = performance.now();
  await dockerOk(agent, ["pull", "-q", fx.ref]);
  console.log(`pull ${((performance.now() - t0) / 1000).toFixed(3)} s`);
  await agent.destroy();
}
await reg.stop();
