// Pulls from bad registries and of bad content, through the real docker CLI against a
// real agent: each must fail with an error naming the problem and leave nothing behind
// (no image, no temporary file, no unverified blob, nothing written outside the layer).
// The registry is the real docker-registry fixture; a faulty proxy in front of it
// corrupts, truncates, refuses, inflates or slows what it serves. Images are pushed
// with the raw registry API (helpers/raw-images.ts), never with Berth's push.
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { docker, dockerOk, startAgent, type AgentHandle, type DockerResult } from "./helpers/agent.ts";
import { evilLayerCases } from "./helpers/evil-images.ts";
import { startFaultyProxy, type FaultRule, type FaultyProxy, type ProxyRequestRecord } from "./helpers/faulty-proxy.ts";
import { makeLayer, pushRawImage, randomFileLayer, type RawImage } from "./helpers/raw-images.ts";

const HEX64 = /^[0-9a-f]{64}$/;
const execFileP = promisify(execFile);

function uniq(): string {
  return randomBytes(4).toString("hex");
}

async function readdirOrEmpty(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw e;
  }
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest("hex");
}

/**
 * What an interrupted or refused pull may not leave in the data root: files in
 * content/ingest, layers/tmp or tmp, a layer directory without its metadata,
 * or a blob under a name its content does not hash to. One line per problem.
 */
async function leftovers(dataRoot: string): Promise<string[]> {
  const problems: string[] = [];
  for (const dir of ["content/ingest", "layers/tmp", "tmp"]) {
    const names = await readdirOrEmpty(join(dataRoot, dir));
    if (names.length > 0) problems.push(`${dir} holds ${names.join(", ")}`);
  }
  for (const name of await readdirOrEmpty(join(dataRoot, "layers"))) {
    if (!HEX64.test(name)) continue;
    const meta = await stat(join(dataRoot, "layers", name, "meta.json")).catch(() => undefined);
    if (!meta) problems.push(`layers/${name} has no meta.json (a half-made layer)`);
  }
  const blobs = join(dataRoot, "content/blobs/sha256");
  for (const name of await readdirOrEmpty(blobs)) {
    const p = join(blobs, name);
    if (!(await lstat(p)).isFile()) {
      problems.push(`content/blobs/sha256/${name} is not a regular file`);
      continue;
    }
    const got = await sha256File(p);
    if (got !== name) problems.push(`content/blobs/sha256/${name} holds content with digest sha256:${got}`);
  }
  return problems;
}

async function assertNoLeftovers(agent: AgentHandle, when: string): Promise<void> {
  const problems = await leftovers(agent.dataRoot);
  assert.deepEqual(problems, [], `leftovers ${when}:\n${problems.join("\n")}`);
}

/** Layer directories (by chain ID hex) in the data root. */
async function layerDirs(agent: AgentHandle): Promise<string[]> {
  return (await readdirOrEmpty(join(agent.dataRoot, "layers"))).filter((n) => HEX64.test(n)).sort();
}

async function listed(agent: AgentHandle, repoPrefix: string): Promise<string[]> {
  const out = await dockerOk(agent, ["images", "--all", "--format", "{{.Repository}}:{{.Tag}}"]);
  return out.split("\n").filter((l) => l.startsWith(repoPrefix));
}

/** `docker pull` that must fail; returns what it printed. */
async function pullFails(agent: AgentHandle, ref: string, timeoutMs = 120_000): Promise<DockerResult> {
  const r = await docker(agent, ["pull", ref], { timeoutMs });
  assert.notEqual(r.code, 0, `docker pull ${ref} succeeded but must fail:\n${r.stdout}`);
  return r;
}

function withTail(agent: AgentHandle, r: DockerResult): string {
  return `stdout: ${r.stdout}\nstderr: ${r.stderr}\nagent log tail:\n${agent.logs().split("\n").slice(-15).join("\n")}`;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Requests the proxy saw for one blob or manifest path. */
function seen(proxy: FaultyProxy, pathPart: string, method = "GET"): number {
  return proxy.requests.filter((r) => r.method === method && r.path.includes(pathPart)).length;
}

describe("pulls through a faulty registry fail cleanly", () => {
  let reg: RegistryFixture;

  before(async () => {
    reg = await startRegistry({ auth: "none" });
  });
  after(async () => {
    await reg?.stop();
  });

  /** A fresh agent, proxy and single-layer image (256 KiB of random bytes: unique digests) for one test. */
  async function setup(t: TestContext, slug: string, rules: (img: RawImage) => FaultRule[]) {
    let agent: AgentHandle | undefined;
    let proxy: FaultyProxy | undefined;
    t.after(async () => {
      await agent?.destroy();
      await proxy?.stop();
    });
    const repo = `faults/${slug}-${uniq()}`;
    const img = await pushRawImage(reg, repo, "v1", [await randomFileLayer(`data/${slug}.bin`, 256 * 1024)]);
    proxy = await startFaultyProxy(reg.url, rules(img));
    agent = await startAgent();
    return { agent, proxy, img, ref: `${proxy.host}/${repo}:v1`, repoPrefix: `${proxy.host}/${repo}` };
  }

  async function assertCleanFailure(agent: AgentHandle, repoPrefix: string): Promise<void> {
    assert.deepEqual(await listed(agent, repoPrefix), [], "docker images lists the image of a failed pull");
    assert.deepEqual(await layerDirs(agent), [], "a failed pull left a layer directory");
    await assertNoLeftovers(agent, "after the failed pull");
  }

  test("a layer whose bytes do not match its digest (gzip header changed, still unpacks) is refused", async (t) => {
    // Byte 4 of a gzip stream is part of its MTIME field: the layer still decompresses to
    // the right tar (diff ID matches), only the blob digest is wrong.
    const { agent, img, ref, repoPrefix } = await setup(t, "digest-header", (i) => [
      { path: new RegExp(`/blobs/${i.layers[0]!.digest}$`), fault: { kind: "corrupt", offset: 4 } },
    ]);
    const r = await pullFails(agent, ref);
    assert.match(r.stderr, /digest mismatch|verification failed/i, withTail(agent, r));
    assert.match(r.stderr, new RegExp(escapeRe(img.layers[0]!.digest.slice(7, 19))), `the error does not name the layer\n${withTail(agent, r)}`);
    await assertCleanFailure(agent, repoPrefix);
  });

  test("a layer corrupted mid-stream is reported as failed verification", async (t) => {
    // Docker verifies the digest before unpacking and says "filesystem layer verification failed";
    // an engine that unpacks while downloading must still name the digest, not the gzip symptom.
    const { agent, ref, repoPrefix } = await setup(t, "digest-middle", (i) => [
      { path: new RegExp(`/blobs/${i.layers[0]!.digest}$`), fault: { kind: "corrupt" } },
    ]);
    const r = await pullFails(agent, ref);
    assert.match(r.stderr, /digest mismatch|verification failed/i, withTail(agent, r));
    await assertCleanFailure(agent, repoPrefix);
  });

  test("a config blob whose bytes do not match its digest is refused", async (t) => {
    const { agent, img, ref, repoPrefix } = await setup(t, "digest-config", (i) => [
      { path: new RegExp(`/blobs/${i.configDigest}$`), fault: { kind: "corrupt" } },
    ]);
    const r = await pullFails(agent, ref);
    assert.match(r.stderr, /digest mismatch|verification failed/i, withTail(agent, r));
    assert.match(r.stderr, new RegExp(img.configDigest.slice(7, 19)), `the error does not name the config blob\n${withTail(agent, r)}`);
    await assertCleanFailure(agent, repoPrefix);
  });

  test("a layer cut off mid-body (connection closed) fails after retries as truncated", async (t) => {
    const { agent, proxy, img, ref, repoPrefix } = await setup(t, "truncated", (i) => [
      { path: new RegExp(`/blobs/${i.layers[0]!.digest}$`), fault: { kind: "truncate" } },
    ]);
    const r = await pullFails(agent, ref);
    assert.match(r.stderr, /unexpected EOF|truncated/i, withTail(agent, r));
    assert.ok(seen(proxy, img.layers[0]!.digest) >= 2, `a broken transfer was not retried (${seen(proxy, img.layers[0]!.digest)} request)`);
    await assertCleanFailure(agent, repoPrefix);
  });

  test("a config blob cut off mid-body fails after retries as truncated", async (t) => {
    const { agent, proxy, img, ref, repoPrefix } = await setup(t, "truncated-config", (i) => [
      { path: new RegExp(`/blobs/${i.configDigest}$`), fault: { kind: "truncate" } },
    ]);
    const r = await pullFails(agent, ref);
    assert.match(r.stderr, /unexpected EOF|truncated/i, withTail(agent, r));
    assert.ok(seen(proxy, img.configDigest) >= 2, `a broken transfer was not retried (${seen(proxy, img.configDigest)} request)`);
    await assertCleanFailure(agent, repoPrefix);
  });

  test("a manifest answered with 500 every time fails after retries, naming the status", async (t) => {
    const { agent, proxy, ref, repoPrefix } = await setup(t, "manifest-always-fails", () => [
      { path: /\/manifests\//, fault: { kind: "status", status: 500 } },
    ]);
    const r = await pullFails(agent, ref);
    // Docker: "received unexpected HTTP status: 500 Internal Server Error" (the body of a 5xx is not trusted).
    assert.match(r.stderr, /\b500\b/, withTail(agent, r));
    assert.ok(seen(proxy, "/manifests/") >= 2, `a 500 was not retried (${seen(proxy, "/manifests/")} request)`);
    await assertCleanFailure(agent, repoPrefix);
  });

  test("a layer answered with 500 every time fails after retries, naming the status", async (t) => {
    const { agent, proxy, img, ref, repoPrefix } = await setup(t, "blob-always-fails", (i) => [
      { path: new RegExp(`/blobs/${i.layers[0]!.digest}$`), fault: { kind: "status", status: 500 } },
    ]);
    const r = await pullFails(agent, ref);
    // Docker: "received unexpected HTTP status: 500 Internal Server Error" (the body of a 5xx is not trusted).
    assert.match(r.stderr, /\b500\b/, withTail(agent, r));
    assert.ok(seen(proxy, img.layers[0]!.digest) >= 2, "a 500 was not retried");
    await assertCleanFailure(agent, repoPrefix);
  });

  test("a 500 once on the manifest and on the layer is retried and the pull succeeds", async (t) => {
    const { agent, proxy, img, ref, repoPrefix } = await setup(t, "flaky-once", (i) => [
      { path: /\/manifests\//, fault: { kind: "status", status: 500, times: 1 } },
      { path: new RegExp(`/blobs/${i.layers[0]!.digest}$`), fault: { kind: "status", status: 503, times: 1 } },
    ]);
    const out = await docker(agent, ["pull", ref]);
    assert.equal(out.code, 0, withTail(agent, out));
    assert.match(out.stdout, new RegExp(`Digest: ${img.manifestDigest}`));
    assert.deepEqual(await listed(agent, repoPrefix), [`${repoPrefix}:v1`]);
    assert.equal(seen(proxy, "/manifests/"), 2, "the manifest was not fetched exactly twice (500, then 200)");
    assert.equal(seen(proxy, img.layers[0]!.digest), 2, "the layer was not fetched exactly twice (503, then 200)");
    await assertNoLeftovers(agent, "after the retried pull");
  });

  for (const declareLength of [true, false]) {
    test(`a manifest over 4 MiB (${declareLength ? "with Content-Length" : "chunked, no Content-Length"}) is refused as too large`, async (t) => {
      const { agent, proxy, ref, repoPrefix } = await setup(t, `manifest-big-${declareLength ? "cl" : "chunked"}`, () => [
        { path: /\/manifests\//, fault: { kind: "oversize-manifest", bytes: 4 * 1024 * 1024 + 4096, declareLength } },
      ]);
      const r = await pullFails(agent, ref);
      assert.match(r.stderr, /manifest.*too large|too large.*manifest/i, withTail(agent, r));
      assert.equal(seen(proxy, "/manifests/"), 1, "an oversized manifest is not a transient failure: no retry");
      await assertCleanFailure(agent, repoPrefix);
    });
  }
});

describe("registries that cut, reset, stall or drip: every pull fails cleanly or succeeds, and the agent lives on", () => {
  // One agent for every case, with a 1 s stall timeout: its PID must not change across them.
  const STALL_S = 1;
  let reg: RegistryFixture;
  let proxy: FaultyProxy;
  let agent: AgentHandle;
  let agentPid: number | undefined;

  before(async () => {
    reg = await startRegistry({ auth: "none" });
    proxy = await startFaultyProxy(reg.url);
    agent = await startAgent({ extraArgs: ["--registry-stall-timeout", String(STALL_S)] });
    agentPid = agent.process.pid;
  });
  after(async () => {
    await agent?.destroy();
    await proxy?.stop();
    await reg?.stop();
  });

  /** A fresh single-layer image (unique digests) behind the proxy, and the rules for it. */
  async function image(slug: string, rules: (img: RawImage) => FaultRule[]) {
    const repo = `drip/${slug}-${uniq()}`;
    const img = await pushRawImage(reg, repo, "v1", [await randomFileLayer(`data/${slug}.bin`, 64 * 1024)]);
    proxy.setRules(rules(img));
    proxy.requests.length = 0;
    return { img, ref: `${proxy.host}/${repo}:v1`, repoPrefix: `${proxy.host}/${repo}` };
  }

  async function assertAgentAlive(): Promise<void> {
    assert.equal(agent.process.exitCode, null, `the agent exited:\n${agent.logs().split("\n").slice(-20).join("\n")}`);
    assert.equal(agent.process.signalCode, null);
    assert.equal(agent.process.pid, agentPid, "the agent was restarted");
    await dockerOk(agent, ["version"]);
  }

  /** After a failed pull: no image, no layer of it, nothing half-written; the agent is the same process. */
  async function assertCleanFailure(img: RawImage, repoPrefix: string): Promise<void> {
    await assertAgentAlive();
    assert.deepEqual(await listed(agent, repoPrefix), [], "docker images lists the image of a failed pull");
    assert.ok(!(await layerDirs(agent)).includes(img.layers[0]!.diffId.slice(7)), "a failed pull left its layer");
    await assertNoLeftovers(agent, "after the failed pull");
  }

  const blob = (img: RawImage) => new RegExp(`/blobs/${img.layers[0]!.digest}$`);

  for (const at of [
    { name: "after the headers", bytes: 0 },
    { name: "after 1 byte", bytes: 1 },
    { name: "after 100 bytes", bytes: 100 },
    { name: "half-way", bytes: undefined },
    { name: "1 byte short", bytes: -1 },
  ]) {
    test(`a layer cut off ${at.name} every time: the pull fails as truncated`, async () => {
      const { img, ref, repoPrefix } = await image("cut", (i) => [
        { path: blob(i), fault: { kind: "truncate", afterBytes: at.bytes === -1 ? i.layers[0]!.size - 1 : at.bytes } },
      ]);
      const r = await pullFails(agent, ref);
      assert.match(r.stderr, /unexpected EOF|truncated/i, withTail(agent, r));
      assert.ok(seen(proxy, img.layers[0]!.digest) >= 2, "a broken transfer was not retried");
      await assertCleanFailure(img, repoPrefix);
    });
  }

  for (const at of [
    { name: "after the headers", bytes: 0 },
    { name: "half-way", bytes: undefined },
  ]) {
    test(`a layer whose connection is reset ${at.name} every time: the pull fails cleanly`, async () => {
      const { img, ref, repoPrefix } = await image("reset", (i) => [{ path: blob(i), fault: { kind: "reset", afterBytes: at.bytes } }]);
      const r = await pullFails(agent, ref);
      assert.match(r.stderr, /unexpected EOF|ECONNRESET|reset|terminated/i, withTail(agent, r));
      await assertCleanFailure(img, repoPrefix);
    });
  }

  for (const fault of [{ kind: "truncate" }, { kind: "reset" }, { kind: "stall" }] as const) {
    test(`a layer that is ${fault.kind === "stall" ? "stalled" : fault.kind === "reset" ? "reset" : "cut off"} once is fetched again and the pull succeeds`, async () => {
      const { img, ref, repoPrefix } = await image(`once-${fault.kind}`, (i) => [{ path: blob(i), fault, times: 1 }]);
      const out = await docker(agent, ["pull", ref]);
      assert.equal(out.code, 0, withTail(agent, out));
      assert.deepEqual(await listed(agent, repoPrefix), [`${repoPrefix}:v1`]);
      assert.equal(seen(proxy, img.layers[0]!.digest), 2, "the layer was not fetched exactly twice");
      await assertAgentAlive();
      await assertNoLeftovers(agent, "after the retried pull");
    });
  }

  test("a layer that stalls mid-body fails with the stall timeout, naming the registry, the blob and the limit", async () => {
    const { img, ref, repoPrefix } = await image("stall", (i) => [{ path: blob(i), fault: { kind: "stall" } }]);
    const r = await pullFails(agent, ref, 60_000);
    const digest = img.layers[0]!.digest;
    assert.match(
      r.stderr,
      new RegExp(`registry ${escapeRe(proxy.host)} stalled.*in ${STALL_S} s \\(the registry stall timeout\\).*blob ${digest}`),
      withTail(agent, r),
    );
    assert.ok(seen(proxy, digest) >= 2, "a stalled download was not retried");
    await assertCleanFailure(img, repoPrefix);
  });

  test("a registry that drips a layer one byte a second fails with the stall timeout instead of hanging", async () => {
    const { img, ref, repoPrefix } = await image("drip", (i) => [{ path: blob(i), fault: { kind: "drip" } }]);
    const r = await pullFails(agent, ref, 60_000);
    assert.match(
      r.stderr,
      new RegExp(`registry ${escapeRe(proxy.host)} stalled: it sent less than \\d+ bytes in ${STALL_S} s.*blob ${img.layers[0]!.digest}`),
      withTail(agent, r),
    );
    await assertCleanFailure(img, repoPrefix);
  });

  test("a registry that never answers the manifest request fails with the stall timeout, naming the manifest", async () => {
    const { img, ref, repoPrefix } = await image("mute", () => [{ path: /\/manifests\//, fault: { kind: "stall-headers" } }]);
    const r = await pullFails(agent, ref, 60_000);
    assert.match(r.stderr, new RegExp(`registry ${escapeRe(proxy.host)} stalled: it did not answer in ${STALL_S} s.*manifest v1`), withTail(agent, r));
    assert.ok(seen(proxy, "/manifests/") >= 2, "a stalled request was not retried");
    await assertCleanFailure(img, repoPrefix);
  });

  test("after all of that, a normal pull through the same proxy works and the agent is the same process", async () => {
    const { img, ref, repoPrefix } = await image("normal", () => []);
    const out = await docker(agent, ["pull", ref]);
    assert.equal(out.code, 0, withTail(agent, out));
    assert.match(out.stdout, new RegExp(`Digest: ${img.manifestDigest}`));
    assert.deepEqual(await listed(agent, repoPrefix), [`${repoPrefix}:v1`]);
    await assertAgentAlive();
    await assertNoLeftovers(agent, "after the normal pull");
  });
});

describe("ambiguous manifests (CVE-2021-41190) are refused whatever their Content-Type", () => {
  let reg: RegistryFixture;
  let proxy: FaultyProxy;
  let agent: AgentHandle;

  before(async () => {
    reg = await startRegistry({ auth: "none" });
    proxy = await startFaultyProxy(reg.url);
    agent = await startAgent();
  });
  after(async () => {
    await agent?.destroy();
    await proxy?.stop();
    await reg?.stop();
  });

  const contentTypes = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
  ];
  for (const contentType of contentTypes) {
    test(`a document with both "manifests" and "layers" served as ${contentType}`, async () => {
      // The fixture registry (distribution with the CVE fix) refuses to store such a document,
      // so the proxy serves it in place of a real image's manifest: its blobs are real.
      const repo = `ambiguous/x-${uniq()}`;
      const img = await pushRawImage(reg, repo, "v1", [await randomFileLayer("data/a.bin", 4096)]);
      const real = JSON.parse(
        await (await fetch(`${reg.url}/v2/${repo}/manifests/v1`, { headers: { accept: "application/vnd.docker.distribution.manifest.v2+json" } })).text(),
      ) as Record<string, unknown>;
      const doc = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          config: real["config"],
          layers: real["layers"],
          manifests: [
            {
              mediaType: "application/vnd.docker.distribution.manifest.v2+json",
              digest: img.manifestDigest,
              size: 100,
              platform: { architecture: "amd64", os: "linux" },
            },
          ],
        }),
      );
      proxy.setRules([{ path: /\/manifests\//, fault: { kind: "document", body: doc, contentType } }]);
      const ref = `${proxy.host}/${repo}:v1`;
      const r = await pullFails(agent, ref);
      assert.match(r.stderr, /invalid manifest for .*ambiguous document refused: it has both "manifests" and "layers"/, withTail(agent, r));
      assert.deepEqual(await listed(agent, `${proxy.host}/${repo}`), []);
      await assertNoLeftovers(agent, "after the refused manifest");
    });
  }
});

describe("a disk that fills up mid-pull", () => {
  // The data root is a 64 MB ext4 on a loop device; the image is larger than that.
  let reg: RegistryFixture;
  let agent: AgentHandle | undefined;
  let base: string;
  let mnt: string;

  before(async () => {
    reg = await startRegistry({ auth: "none" });
    base = await mkdtemp(join(tmpdir(), "berth-enospc-"));
    mnt = join(base, "mnt");
    await mkdir(mnt);
    await execFileP("truncate", ["-s", "64M", join(base, "fs.img")]);
    await execFileP("mkfs.ext4", ["-q", "-F", join(base, "fs.img")]);
    await execFileP("mount", ["-o", "loop", join(base, "fs.img"), mnt]);
  });
  after(async () => {
    await agent?.destroy();
    // umount releases the loop device too (mount -o loop sets it to clear itself).
    await execFileP("umount", [mnt]).catch(() => execFileP("umount", ["-l", mnt]).catch(() => undefined));
    await rm(base, { recursive: true, force: true });
    await reg?.stop();
  });

  test("the pull fails with 'no space left on device under <data root>', in the API error and the log; the store stays consistent; a pull that fits works", async () => {
    const dataRoot = join(mnt, "data");
    agent = await startAgent({ dataRoot });
    const pid = agent.process.pid;
    const big = await pushRawImage(reg, `full/big-${uniq()}`, "v1", [await randomFileLayer("data/big.bin", 72 * 1024 * 1024)]);
    const r = await pullFails(agent, big.ref, 180_000);
    const expected = `no space left on device under ${dataRoot}`;
    assert.ok(r.stderr.includes(expected), `the error does not say "${expected}"\n${withTail(agent, r)}`);
    assert.doesNotMatch(r.stderr, /stream consumer closed early/);
    assert.ok(
      agent
        .logs()
        .split("\n")
        .some((l) => l.includes(expected) && l.includes('"level":50')),
      `the agent did not log "${expected}" as an error`,
    );
    assert.equal(agent.process.exitCode, null, "the agent exited");
    assert.equal(agent.process.pid, pid);
    assert.deepEqual(await listed(agent, `${reg.host}/full/`), [], "docker images lists the image that did not fit");
    assert.deepEqual(await layerDirs(agent), [], "the layer that did not fit was left");
    await assertNoLeftovers(agent, "after the disk filled up");

    const small = await pushRawImage(reg, `full/small-${uniq()}`, "v1", [await randomFileLayer("data/small.bin", 1024 * 1024)]);
    await dockerOk(agent, ["pull", small.ref]);
    assert.deepEqual(await listed(agent, `${reg.host}/full/`), [`${reg.host}/full/${small.repository.slice("full/".length)}:v1`]);
    await assertNoLeftovers(agent, "after the pull that fits");
  });
});

describe("layers that try to escape their directory are refused", () => {
  let reg: RegistryFixture;
  let outside: string;

  before(async () => {
    outside = await mkdtemp(join(tmpdir(), "berth-outside-"));
    reg = await startRegistry({ auth: "none" });
  });
  after(async () => {
    await reg?.stop();
    if (outside) await rm(outside, { recursive: true, force: true });
  });

  /** Everything under `dir` whose name is "evil" or that holds the attack's payload. */
  async function findEvil(dir: string): Promise<string[]> {
    const found: string[] = [];
    const walk = async (d: string) => {
      for (const name of await readdirOrEmpty(d)) {
        const p = join(d, name);
        const st = await lstat(p).catch(() => undefined);
        if (!st) continue;
        if (name === "evil") found.push(p);
        if (st.isDirectory()) await walk(p);
      }
    };
    await walk(dir);
    return found;
  }

  for (const c of evilLayerCases("/OUTSIDE")) {
    test(`${c.title} (${c.offending}) fails, naming the entry, and writes nothing`, async (t) => {
      const id = uniq();
      const outsideDir = join(outside, `${c.slug}-${id}`);
      await mkdir(outsideDir);
      const theCase = evilLayerCases(outsideDir).find((x) => x.slug === c.slug)!;
      let agent: AgentHandle | undefined;
      t.after(async () => {
        await agent?.destroy();
      });
      const repo = `evil/${c.slug}-${id}`;
      const img = await pushRawImage(reg, repo, "v1", [await makeLayer(theCase.entries)]);
      const passwdBefore = await stat("/etc/passwd");
      const passwdText = await readFile("/etc/passwd", "utf8");
      agent = await startAgent();

      const r = await pullFails(agent, img.ref);
      assert.ok(r.stderr.includes(theCase.offending), `the error does not name the entry ${theCase.offending}\n${withTail(agent, r)}`);

      assert.deepEqual(await readdir(outsideDir), [], "something was written into the outside directory");
      const passwdAfter = await stat("/etc/passwd");
      assert.equal(passwdAfter.nlink, passwdBefore.nlink, "/etc/passwd gained a hard link");
      assert.equal(passwdAfter.ino, passwdBefore.ino);
      assert.equal(passwdAfter.mtimeMs, passwdBefore.mtimeMs);
      assert.equal(await readFile("/etc/passwd", "utf8"), passwdText);
      assert.deepEqual(await findEvil(dirname(agent.dataRoot)), [], "an escaping entry was written");
      assert.deepEqual(await layerDirs(agent), [], "the refused layer left a layer directory");
      assert.deepEqual(await listed(agent, `${reg.host}/${repo}`), [], "docker images lists the refused image");
      await assertNoLeftovers(agent, "after the refused layer");
    });
  }

  test("an absolute entry name (/abs/file) lands inside the layer, as Docker strips the leading slash", async (t) => {
    const id = uniq();
    const top = `berth-abs-${id}`;
    let agent: AgentHandle | undefined;
    t.after(async () => {
      await agent?.destroy();
    });
    const repo = `evil/absolute-${id}`;
    const img = await pushRawImage(reg, repo, "v1", [await makeLayer([{ name: `/${top}/file`, type: "file", mode: 0o644, content: `inside ${id}\n` }])]);
    agent = await startAgent();
    const out = await docker(agent, ["pull", img.ref]);
    assert.equal(out.code, 0, withTail(agent, out));
    assert.deepEqual(await listed(agent, `${reg.host}/${repo}`), [`${reg.host}/${repo}:v1`]);
    assert.equal(await stat(`/${top}`).catch(() => undefined), undefined, `/${top} was created on the host`);
    const dirs = await layerDirs(agent);
    assert.equal(dirs.length, 1);
    assert.equal(await readFile(join(agent.dataRoot, "layers", dirs[0]!, "diff", top, "file"), "utf8"), `inside ${id}\n`);
    await assertNoLeftovers(agent, "after the pull");
  });
});

describe("an agent killed mid-pull recovers", () => {
  let reg: RegistryFixture;

  before(async () => {
    reg = await startRegistry({ auth: "none" });
  });
  after(async () => {
    await reg?.stop();
  });

  test("after SIGKILL and restart: no image, no temp files, and the next pull reuses the complete layers", async (t) => {
    let agent: AgentHandle | undefined;
    let proxy: FaultyProxy | undefined;
    let pulling: Promise<DockerResult> | undefined;
    t.after(async () => {
      await agent?.destroy();
      await proxy?.stop();
      await pulling;
    });
    const id = uniq();
    const repo = `crash/three-layers-${id}`;
    // Bottom and top layers are small; the middle one is big and comes slowly, so the
    // top layer is complete while its parent is still downloading.
    const fast1 = await randomFileLayer("data/fast1.bin", 64 * 1024);
    const slow = await randomFileLayer("data/slow.bin", 3 * 1024 * 1024);
    const fast3 = await randomFileLayer("data/fast3.bin", 64 * 1024);
    const img = await pushRawImage(reg, repo, "v1", [fast1, slow, fast3]);
    proxy = await startFaultyProxy(reg.url, [{ path: new RegExp(`/blobs/${slow.digest}$`), fault: { kind: "throttle", bytesPerSecond: 128 * 1024 } }]);
    agent = await startAgent();
    const ref = `${proxy.host}/${repo}:v1`;
    const repoPrefix = `${proxy.host}/${repo}`;
    const blobDir = join(agent.dataRoot, "content/blobs/sha256");

    pulling = docker(agent, ["pull", ref], { timeoutMs: 120_000 });
    const complete = [fast1, fast3].map((l) => l.digest.slice(7));
    const deadline = Date.now() + 20_000;
    for (;;) {
      const have = new Set(await readdirOrEmpty(blobDir));
      const slowReq: ProxyRequestRecord | undefined = proxy.requests.find((r) => r.path.endsWith(slow.digest));
      if (complete.every((h) => have.has(h)) && slowReq && slowReq.bytes > 0 && !slowReq.complete) break;
      if (Date.now() > deadline) {
        const r: DockerResult | undefined = await Promise.race([pulling, new Promise<undefined>((res) => setTimeout(() => res(undefined), 100))]);
        assert.fail(
          `the fast layers were not stored while the slow one downloaded (have ${[...have].join(", ") || "nothing"}; ` +
            `slow request ${JSON.stringify(slowReq)})\n${r ? withTail(agent, r) : agent.logs().split("\n").slice(-15).join("\n")}`,
        );
      }
      await new Promise((res) => setTimeout(res, 25));
    }
    const slowBefore = proxy.requests.find((r) => r.path.endsWith(slow.digest))!;
    assert.ok(slowBefore.bytes < slow.size, "the slow layer finished before the kill: the test proves nothing");

    await agent.kill();
    const interrupted = await pulling;
    pulling = undefined;
    assert.notEqual(interrupted.code, 0, "docker pull succeeded although the agent was killed");

    proxy.setRules([]);
    await agent.restart();
    assert.deepEqual(await listed(agent, repoPrefix), [], "docker images lists a half-pulled image after the crash");
    await assertNoLeftovers(agent, "after the restart");

    proxy.requests.length = 0;
    const out = await docker(agent, ["pull", ref]);
    assert.equal(out.code, 0, withTail(agent, out));
    assert.deepEqual(await listed(agent, repoPrefix), [`${repoPrefix}:v1`]);
    assert.equal(seen(proxy, fast1.digest), 0, "the bottom layer, complete before the kill, was downloaded again");
    assert.equal(seen(proxy, fast3.digest), 0, "the top layer, complete before the kill, was downloaded again");
    assert.equal(seen(proxy, slow.digest), 1, "the interrupted layer was not downloaded exactly once");
    const inspect = JSON.parse(await dockerOk(agent, ["image", "inspect", ref]))[0] as { Id: string; RootFS: { Layers: string[] } };
    assert.equal(inspect.Id, img.configDigest);
    assert.deepEqual(inspect.RootFS.Layers, [fast1.diffId, slow.diffId, fast3.diffId]);
    await assertNoLeftovers(agent, "after the second pull");
    assert.equal((await layerDirs(agent)).length, 3);
  });
});
