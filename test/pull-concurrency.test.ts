// Registry mirrors for Docker Hub names, parallel layer downloads, and one download
// for concurrent pulls of the same layers, through the real docker CLI.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "./fixtures/images.ts";
import { startFaultyProxy, type FaultyProxy } from "./helpers/faulty-proxy.ts";
import { docker, dockerOk, startAgent, type AgentHandle } from "./helpers/agent.ts";

describe("mirrors and parallel pulls", () => {
  let reg: RegistryFixture;
  let proxy: FaultyProxy;
  let fx: FixtureImages;
  const agents: AgentHandle[] = [];

  before(async () => {
    reg = await startRegistry({ auth: "none" });
    fx = await pushFixtureImages(reg, { only: ["busybox", "multilayer"] });
    proxy = await startFaultyProxy(reg.url);
  });
  after(async () => {
    for (const a of agents) await a.destroy();
    await proxy?.stop();
    await reg?.stop();
  });

  test("a Docker Hub name is pulled from the configured mirror (docker pull busybox, as in the seeds)", async () => {
    const agent = await startAgent({ registryMirrors: [proxy.url] });
    agents.push(agent);
    proxy.requests.length = 0;
    const out = await dockerOk(agent, ["pull", "busybox"]);
    assert.match(out, /latest: Pulling from library\/busybox/);
    assert.match(out, /Status: Downloaded newer image for busybox:latest/);
    assert.ok(
      proxy.requests.some((r) => r.path.startsWith("/v2/library/busybox/manifests/latest")),
      "the mirror was asked for the manifest",
    );
    const table = await dockerOk(agent, ["images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}"]);
    assert.equal(table.trim(), `busybox latest ${fx.busybox.configDigest.slice(7, 19)}`);
    const info = await dockerOk(agent, ["info", "--format", "{{json .RegistryConfig.Mirrors}}"]);
    assert.deepEqual(JSON.parse(info), [proxy.url]);
    // And a name the mirror does not have is a clear error, not a hang.
    const missing = await docker(agent, ["pull", "nosuchimage"]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /nosuchimage|not found|unknown/i);
  });

  test("layers download in parallel, and two concurrent pulls of one image download each blob once", async () => {
    const agent = await startAgent();
    agents.push(agent);
    const manifest = (await (
      await fetch(`${reg.url}/v2/${fx.multilayer.repository}/manifests/${fx.multilayer.tag}`, {
        headers: { Accept: fx.multilayer.mediaType },
      })
    ).json()) as { layers: Array<{ digest: string; size: number }> };
    const small = manifest.layers.filter((l) => l.size < 100_000).map((l) => l.digest);
    assert.ok(small.length >= 3, "the multilayer fixture has at least 3 small layers");
    // Slow the small layers down (about a second each) so their downloads overlap measurably.
    proxy.setRules(small.map((d) => ({ path: new RegExp(`/blobs/${d}$`), fault: { kind: "throttle" as const, bytesPerSecond: 1000 } })));
    proxy.requests.length = 0;
    const ref = fx.multilayer.ref.replace(reg.host, proxy.host);
    const [a, b] = await Promise.all([docker(agent, ["pull", ref]), docker(agent, ["pull", ref])]);
    proxy.setRules([]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const layerGets = proxy.requests.filter((r) => r.method === "GET" && manifest.layers.some((l) => r.path.endsWith(`/blobs/${l.digest}`)));
    const fetched = layerGets.map((r) => r.path.slice(-12)).sort();
    assert.deepEqual(fetched, [...new Set(fetched)], "each layer blob was downloaded once for both pulls");
    assert.equal(layerGets.length, manifest.layers.length);
    // At some moment at least 3 layer downloads were running together.
    let maxOverlap = 0;
    for (const r of layerGets) {
      const overlap = layerGets.filter((o) => o.startedAt <= r.startedAt && (o.endedAt ?? Infinity) > r.startedAt).length;
      maxOverlap = Math.max(maxOverlap, overlap);
    }
    assert.ok(maxOverlap >= 3, `at most ${maxOverlap} layer downloads ran at once`);
    const ids = await dockerOk(agent, ["images", "-q"]);
    assert.equal(ids.trim(), fx.multilayer.configDigest.slice(7, 19));
  });
});
