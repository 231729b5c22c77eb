/**
 * RegistryClient against the real CNCF distribution registry (Debian's
 * docker-registry, via test/fixtures/registry.ts) in its three auth modes, and
 * against small fake servers for the faults a real registry will not produce
 * on demand (500s, resets, oversized manifests, cross-host redirects, wrong
 * content for a digest).
 *
 * Everything the tests put into a registry goes in by raw HTTP or skopeo
 * (the fixtures), never through the client under test; results are checked
 * with raw HTTP as well.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { registryFetch, startRegistry, type RegistryFixture } from "../../../test/fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "../../../test/fixtures/images.ts";
import { isEngineError } from "../errors.ts";
import { parseNormalizedReference } from "../../../shared/reference.ts";
import { RegistryClient, registryBaseUrl, refuseAmbiguousManifest, MAX_MANIFEST_BYTES } from "./client.ts";
import { STALL_MIN_BYTES } from "./http.ts";
import { MediaType } from "./types.ts";

const FAST_RETRY = { attempts: 3, baseDelayMs: 5 };
const AMD64 = { os: "linux", architecture: "amd64" };
const ARM64 = { os: "linux", architecture: "arm64", variant: "v8" };

function sha256(b: Uint8Array): string {
  return `sha256:${createHash("sha256").update(b).digest("hex")}`;
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Rejects with an EngineError of `kind` whose message matches. */
async function rejectsWith(p: Promise<unknown>, kind: string, message?: RegExp | string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isEngineError(e), `expected an EngineError, got ${String(e)}`);
    assert.equal(e.kind, kind, `kind of "${e.message}"`);
    if (typeof message === "string") assert.equal(e.message, message);
    else if (message) assert.match(e.message, message);
    return true;
  });
}

/** Pushes a blob with the raw API (monolithic POST + PUT). */
async function rawPushBlob(reg: RegistryFixture, repo: string, bytes: Buffer): Promise<string> {
  const digest = sha256(bytes);
  const start = await registryFetch(reg, `/v2/${repo}/blobs/uploads/`, { method: "POST" });
  await start.arrayBuffer();
  assert.equal(start.status, 202, `upload start: ${start.status}`);
  const loc = new URL(start.headers.get("location")!, reg.url);
  loc.searchParams.set("digest", digest);
  const put = await registryFetch(reg, loc.pathname + loc.search, {
    method: "PUT",
    body: new Uint8Array(bytes),
    headers: { "content-type": "application/octet-stream" },
  });
  await put.arrayBuffer();
  assert.equal(put.status, 201, `blob put: ${put.status}`);
  return digest;
}

async function rawPushManifest(reg: RegistryFixture, repo: string, ref: string, bytes: Buffer, mediaType: string): Promise<void> {
  const res = await registryFetch(reg, `/v2/${repo}/manifests/${ref}`, { method: "PUT", body: new Uint8Array(bytes), headers: { "content-type": mediaType } });
  const text = await res.text();
  assert.equal(res.status, 201, `manifest put: ${res.status} ${text}`);
}

/** A small schema2 image (config + one random "layer") pushed raw; returns its parts. */
async function rawPushImage(reg: RegistryFixture, repo: string, tag: string) {
  const layer = randomBytes(20_000);
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [sha256(layer)] }, config: {} }));
  const layerDigest = await rawPushBlob(reg, repo, layer);
  const configDigest = await rawPushBlob(reg, repo, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.DockerManifest,
      config: { mediaType: MediaType.DockerConfig, digest: configDigest, size: config.length },
      layers: [{ mediaType: MediaType.DockerLayer, digest: layerDigest, size: layer.length }],
    }),
  );
  await rawPushManifest(reg, repo, tag, manifest, MediaType.DockerManifest);
  return { layer, layerDigest, config, configDigest, manifest, manifestDigest: sha256(manifest) };
}

interface FakeServer {
  url: string;
  host: string;
  requests: Array<{ method: string; url: string; headers: IncomingMessage["headers"] }>;
  close(): Promise<void>;
}

/** A node:http server on 127.0.0.1 that records every request. */
async function fakeServer(handler: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<FakeServer> {
  const requests: FakeServer["requests"] = [];
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    handler(req, res, requests.length);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Forwards a request to `target` (host:port) and pipes the answer back. The
 * Host header stays the proxy's, so the registry's Location headers point
 * back at the proxy.
 */
function forward(req: IncomingMessage, res: ServerResponse, target: string): void {
  const [hostname, port] = target.split(":");
  const up = httpRequest({ hostname, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (r) => {
    res.writeHead(r.statusCode ?? 502, r.headers);
    r.pipe(res);
  });
  up.on("error", () => res.destroy());
  req.pipe(up);
}

describe("registryBaseUrl", () => {
  test("Docker Hub, loopback, insecure and secure registries", () => {
    assert.equal(registryBaseUrl("docker.io"), "https://registry-1.docker.io");
    assert.equal(registryBaseUrl("index.docker.io"), "https://registry-1.docker.io");
    assert.equal(registryBaseUrl("127.0.0.1:5000"), "http://127.0.0.1:5000");
    assert.equal(registryBaseUrl("127.1.2.3"), "http://127.1.2.3");
    assert.equal(registryBaseUrl("localhost:5000"), "http://localhost:5000");
    assert.equal(registryBaseUrl("registry.example.com"), "https://registry.example.com");
    assert.equal(registryBaseUrl("10.0.0.5:5000"), "https://10.0.0.5:5000");
    assert.equal(registryBaseUrl("10.0.0.5:5000", { insecureRegistries: ["10.0.0.5:5000"] }), "http://10.0.0.5:5000");
    assert.equal(registryBaseUrl("10.0.0.5:5001", { insecureRegistries: ["10.0.0.5:5000"] }), "https://10.0.0.5:5001");
    assert.equal(registryBaseUrl("[::1]:5000"), "https://[::1]:5000");
  });
});

describe("refuseAmbiguousManifest (CVE-2021-41190)", () => {
  const desc = { mediaType: MediaType.OciLayer, digest: `sha256:${"a".repeat(64)}`, size: 1 };
  const refused = (body: Record<string, unknown>, mediaType: string, why: RegExp) =>
    assert.throws(
      () => refuseAmbiguousManifest(body, mediaType, "x/y:z"),
      (e: unknown) => isEngineError(e, "DataLoss") && why.test(e.message) && e.message.startsWith("invalid manifest for x/y:z: ambiguous document refused: "),
    );
  test("manifests together with layers or config: refused under any media type", () => {
    for (const mt of [MediaType.DockerManifest, MediaType.OciManifest, MediaType.OciIndex, MediaType.DockerManifestList]) {
      refused({ manifests: [], layers: [desc] }, mt, /it has both "manifests" and "layers"/);
      refused({ manifests: [desc], config: desc }, mt, /it has both "manifests" and "config"/);
    }
  });
  test("an index with layers or config, a manifest with manifests: refused", () => {
    refused({ layers: [] }, MediaType.OciIndex, /an index \(application\/vnd\.oci\.image\.index\.v1\+json\) must not have "layers"/);
    refused({ config: desc }, MediaType.DockerManifestList, /must not have "config"/);
    refused({ manifests: [] }, MediaType.OciManifest, /an image manifest \(application\/vnd\.oci\.image\.manifest\.v1\+json\) must not have "manifests"/);
  });
  test("plain manifests and indexes pass; null fields count as absent", () => {
    refuseAmbiguousManifest({ config: desc, layers: [desc] }, MediaType.OciManifest, "x/y:z");
    refuseAmbiguousManifest({ manifests: [desc] }, MediaType.OciIndex, "x/y:z");
    refuseAmbiguousManifest({ manifests: [desc], layers: null }, MediaType.OciIndex, "x/y:z");
  });
});

describe("open registry (no auth)", () => {
  let reg: RegistryFixture | undefined;
  let images: FixtureImages;
  let raw: Awaited<ReturnType<typeof rawPushImage>>;
  after(() => reg?.stop());
  before(async () => {
    reg = await startRegistry();
    images = await pushFixtureImages(reg, { only: ["busybox", "oci", "index"] });
    raw = await rawPushImage(reg, "berth/raw", "v1");
  });
  const r = () => reg!;

  test("resolves a Docker schema2 manifest by tag; digest from the body", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    const got = await client.resolveManifest(parseNormalizedReference(`${r().host}/library/busybox:latest`));
    assert.equal(got.endpoint, r().url);
    assert.equal(got.digest, images.busybox.manifestDigest);
    assert.equal(got.digest, sha256(got.bytes));
    assert.equal(got.mediaType, MediaType.DockerManifest);
    assert.equal(got.manifest.config.digest, images.busybox.configDigest);
    assert.equal(got.manifest.layers.length, 1);
    assert.equal(got.indexDigest, undefined);
  });

  test("resolves an OCI manifest by digest", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    const got = await client.resolveManifest(parseNormalizedReference(`${r().host}/test/oci@${images.oci.manifestDigest}`));
    assert.equal(got.digest, images.oci.manifestDigest);
    assert.equal(got.mediaType, MediaType.OciManifest);
    assert.equal(got.manifest.config.digest, images.oci.configDigest);
  });

  test("resolves an OCI index to linux/amd64 (listed second) and to an arm64 override", async () => {
    const ref = parseNormalizedReference(images.index.ref);
    const amd = await new RegistryClient({ platform: AMD64, retry: FAST_RETRY }).resolveManifest(ref);
    assert.equal(amd.digest, images.index.amd64.manifestDigest);
    assert.equal(amd.manifest.config.digest, images.index.amd64.configDigest);
    assert.equal(amd.indexDigest, images.index.digest);
    assert.equal(amd.indexMediaType, MediaType.OciIndex);
    assert.equal(sha256(amd.indexBytes!), images.index.digest);

    const arm = await new RegistryClient({ platform: ARM64, retry: FAST_RETRY }).resolveManifest(ref);
    assert.equal(arm.digest, images.index.arm64.manifestDigest);
    assert.equal(arm.manifest.config.digest, images.index.arm64.configDigest);

    // an arm64 entry without a variant also serves "arm64" (normalised to v8)
    const arm2 = await new RegistryClient({ platform: { os: "linux", architecture: "aarch64" }, retry: FAST_RETRY }).resolveManifest(ref);
    assert.equal(arm2.digest, images.index.arm64.manifestDigest);

    const byDigest = await new RegistryClient({ platform: AMD64 }).resolveManifest(
      parseNormalizedReference(`${r().host}/${images.index.repository}@${images.index.digest}`),
    );
    assert.equal(byDigest.digest, images.index.amd64.manifestDigest);
  });

  test("no entry for the platform: Docker's wording", async () => {
    const client = new RegistryClient({ platform: { os: "linux", architecture: "s390x" }, retry: FAST_RETRY });
    await rejectsWith(
      client.resolveManifest(parseNormalizedReference(images.index.ref)),
      "NotFound",
      "no matching manifest for linux/s390x in the manifest list entries",
    );
  });

  test("unknown tag and unknown repository: Docker's wording", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    await rejectsWith(
      client.resolveManifest(parseNormalizedReference(`${r().host}/library/busybox:nope`)),
      "NotFound",
      `manifest for ${r().host}/library/busybox:nope not found: manifest unknown: manifest unknown`,
    );
    await rejectsWith(client.resolveManifest(parseNormalizedReference(`${r().host}/no/such:latest`)), "NotFound", /not found: .*unknown/);
  });

  test("openBlob streams the blob, whole or from an offset", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    const target = { domain: r().host, path: "berth/raw" };
    const desc = { mediaType: MediaType.DockerLayer, digest: raw.layerDigest, size: raw.layer.length };
    const whole = await client.openBlob(r().url, target, desc);
    assert.equal(whole.size, raw.layer.length);
    assert.deepEqual(await collect(whole.stream), raw.layer);
    const rest = await client.openBlob(r().url, target, desc, undefined, undefined, 12_345);
    assert.equal(rest.size, raw.layer.length - 12_345);
    assert.deepEqual(await collect(rest.stream), raw.layer.subarray(12_345));
    await rejectsWith(client.openBlob(r().url, target, { ...desc, digest: sha256(Buffer.from("absent")) }), "NotFound", /blob sha256:[0-9a-f]{64} not found/);
  });

  test("hasBlob", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    const target = { domain: r().host, path: "berth/raw" };
    assert.equal(await client.hasBlob(target, raw.layerDigest), true);
    assert.equal(await client.hasBlob(target, sha256(Buffer.from("nothing"))), false);
  });

  test("uploadBlob in chunks; the registry serves the same bytes", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    const blob = randomBytes(10_000);
    const digest = sha256(blob);
    const target = { domain: r().host, path: "berth/upload" };
    const progress: number[] = [];
    let opened = 0;
    await client.uploadBlob(target, digest, blob.length, () => (opened++, Readable.from([blob.subarray(0, 3000), blob.subarray(3000)])), undefined, {
      chunkSize: 4096,
      onProgress: (n) => progress.push(n),
    });
    assert.equal(opened, 1);
    assert.deepEqual(progress, [4096, 8192, 10_000]);
    const got = await registryFetch(r(), `/v2/berth/upload/blobs/${digest}`);
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), blob);
  });

  test("uploadBlob of an empty blob", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    const empty = Buffer.alloc(0);
    await client.uploadBlob({ domain: r().host, path: "berth/upload" }, sha256(empty), 0, () => Readable.from([]));
    assert.equal(await client.hasBlob({ domain: r().host, path: "berth/upload" }, sha256(empty)), true);
  });

  test("uploadBlob refuses content that does not match the digest and leaves nothing behind", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    const blob = randomBytes(5000);
    const wrong = sha256(Buffer.from("something else"));
    await rejectsWith(
      client.uploadBlob({ domain: r().host, path: "berth/upload" }, wrong, blob.length, () => Readable.from([blob]), undefined, { chunkSize: 2048 }),
      "DataLoss",
      /has digest/,
    );
    const head = await registryFetch(r(), `/v2/berth/upload/blobs/${wrong}`, { method: "HEAD" });
    assert.equal(head.status, 404);
    await rejectsWith(
      client.uploadBlob({ domain: r().host, path: "berth/upload" }, sha256(blob), blob.length + 1, () => Readable.from([blob])),
      "DataLoss",
      /read 5000 bytes, expected 5001/,
    );
  });

  test("mountBlob links a blob across repositories; an unknown blob is not mounted", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    const target = { domain: r().host, path: "berth/mounted" };
    assert.equal(await client.mountBlob(target, raw.layerDigest, "berth/raw"), true);
    const head = await registryFetch(r(), `/v2/berth/mounted/blobs/${raw.layerDigest}`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await client.mountBlob(target, sha256(Buffer.from("never pushed")), "berth/raw"), false);
  });

  test("putManifest and getManifestDigest", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    const target = { domain: r().host, path: "berth/raw" };
    const digest = await client.putManifest(target, "v2", raw.manifest, MediaType.DockerManifest);
    assert.equal(digest, raw.manifestDigest);
    const got = await registryFetch(r(), `/v2/berth/raw/manifests/v2`, { headers: { accept: MediaType.DockerManifest } });
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), raw.manifest);
    assert.equal(await client.getManifestDigest(target, "v2"), raw.manifestDigest);
    assert.equal(await client.getManifestDigest(target, raw.manifestDigest), raw.manifestDigest);
    assert.equal(await client.getManifestDigest(target, "missing"), undefined);
    // pushing by digest checks the digest against the bytes
    assert.equal(await client.putManifest(target, raw.manifestDigest, raw.manifest, MediaType.DockerManifest), raw.manifestDigest);
    await rejectsWith(client.putManifest(target, sha256(Buffer.from("x")), raw.manifest, MediaType.DockerManifest), "InvalidArgument");
  });

  test("catalog (with and without a limit) and tags", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    const all = await client.catalog(r().host);
    for (const repo of ["library/busybox", "test/oci", "test/multiarch", "berth/raw"]) assert.ok(all.includes(repo), `${repo} in ${all.join(",")}`);
    const two = await client.catalog(r().host, undefined, 2);
    assert.equal(two.length, 2);
    // pagination, by the registry's own Link headers: a proxy shrinks every page to one name
    const pages: string[] = [];
    const proxy = await fakeServer((req, res) => {
      const u = new URL(req.url ?? "/", "http://x");
      if (u.pathname === "/v2/_catalog") {
        u.searchParams.set("n", "1");
        req.url = u.pathname + u.search;
        pages.push(req.url);
      }
      forward(req, res, r().host);
    });
    try {
      const paged = await client.catalog(proxy.host);
      assert.deepEqual(paged, all);
      assert.ok(pages.length >= all.length, `one page per name (${pages.length} pages for ${all.length} names)`);
      assert.deepEqual(await client.catalog(proxy.host, undefined, 3), all.slice(0, 3));
    } finally {
      await proxy.close();
    }
    const tags = await client.listTags({ domain: r().host, path: "berth/raw" });
    assert.ok(tags.includes("v1"));
    await rejectsWith(client.listTags({ domain: r().host, path: "no/such" }), "NotFound");
  });
});

describe("basic-auth registry", () => {
  let reg: RegistryFixture | undefined;
  let raw: Awaited<ReturnType<typeof rawPushImage>>;
  after(() => reg?.stop());
  before(async () => {
    reg = await startRegistry({ auth: "basic" });
    raw = await rawPushImage(reg, "private/app", "1.0");
  });
  const r = () => reg!;
  const creds = () => ({ username: r().username, password: r().password });

  test("pull with credentials", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    const ref = parseNormalizedReference(`${r().host}/private/app:1.0`);
    const got = await client.resolveManifest(ref, creds());
    assert.equal(got.digest, raw.manifestDigest);
    const blob = await client.openBlob(got.endpoint, ref, got.manifest.layers[0]!, creds());
    assert.deepEqual(await collect(blob.stream), raw.layer);
  });

  test("pull without credentials is refused with Docker's wording", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    await rejectsWith(
      client.resolveManifest(parseNormalizedReference(`${r().host}/private/app:1.0`)),
      "Unauthorized",
      /^pull access denied for 127\.0\.0\.1:\d+\/private\/app, repository does not exist or may require 'docker login': unauthorized: /,
    );
  });

  test("login: right and wrong password", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    assert.deepEqual(await client.checkLogin(r().host, creds()), {});
    await rejectsWith(
      client.checkLogin(r().host, { username: r().username, password: "wrong" }),
      "Unauthorized",
      `Get "${r().url}/v2/": unauthorized: incorrect username or password`,
    );
  });

  test("push with credentials", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    const blob = randomBytes(3000);
    await client.uploadBlob({ domain: r().host, path: "private/pushed" }, sha256(blob), blob.length, () => Readable.from([blob]), creds());
    assert.equal(await client.hasBlob({ domain: r().host, path: "private/pushed" }, sha256(blob), creds()), true);
    await rejectsWith(
      client.uploadBlob({ domain: r().host, path: "private/pushed" }, sha256(blob), blob.length, () => Readable.from([blob])),
      "Unauthorized",
    );
  });
});

describe("token-auth registry (Docker Hub flow)", () => {
  let reg: RegistryFixture | undefined;
  let raw: Awaited<ReturnType<typeof rawPushImage>>;
  after(() => reg?.stop());
  before(async () => {
    reg = await startRegistry({ auth: "token" });
    raw = await rawPushImage(reg, "team/app", "1.0");
  });
  const r = () => reg!;
  const creds = () => ({ username: r().username, password: r().password });

  test("pull fetches one token per scope and reuses it", async () => {
    r().tokenRequests.length = 0;
    const client = new RegistryClient({ retry: FAST_RETRY });
    const ref = parseNormalizedReference(`${r().host}/team/app:1.0`);
    const got = await client.resolveManifest(ref, creds());
    assert.equal(got.digest, raw.manifestDigest);
    await Promise.all([got.manifest.config, ...got.manifest.layers].map(async (d) => collect((await client.openBlob(got.endpoint, ref, d, creds())).stream)));
    await client.resolveManifest(ref, creds());
    assert.deepEqual(
      r().tokenRequests.map((t) => ({ method: t.method, scope: t.scope, user: t.user, status: t.status })),
      [{ method: "GET", scope: "repository:team/app:pull", user: r().username, status: 200 }],
    );
  });

  test("anonymous pull gets an anonymous token", async () => {
    r().tokenRequests.length = 0;
    const client = new RegistryClient({ retry: FAST_RETRY });
    const got = await client.resolveManifest(parseNormalizedReference(`${r().host}/team/app:1.0`));
    assert.equal(got.digest, raw.manifestDigest);
    assert.equal(r().tokenRequests.length, 1);
    assert.equal(r().tokenRequests[0]!.user, undefined);
  });

  test("push and cross-repository mount ask for the right scopes", async () => {
    r().tokenRequests.length = 0;
    const client = new RegistryClient({ retry: FAST_RETRY });
    const blob = randomBytes(6000);
    const digest = sha256(blob);
    await client.uploadBlob({ domain: r().host, path: "team/pushed" }, digest, blob.length, () => Readable.from([blob]), creds(), { chunkSize: 2500 });
    // the pull,push token also serves the existence check
    assert.equal(await client.hasBlob({ domain: r().host, path: "team/pushed" }, digest, creds()), true);
    assert.equal(await client.mountBlob({ domain: r().host, path: "team/mounted" }, digest, "team/pushed", creds()), true);
    assert.deepEqual(
      r().tokenRequests.map((t) => t.scope),
      ["repository:team/pushed:pull,push", "repository:team/mounted:pull,push repository:team/pushed:pull"],
    );
    const head = await registryFetch(r(), `/v2/team/mounted/blobs/${digest}`, { method: "HEAD" });
    assert.equal(head.status, 200);
  });

  test("login returns an identity token that works for later pulls (refresh_token grant)", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    const { identityToken } = await client.checkLogin(r().host, creds());
    assert.ok(identityToken, "an identity token");
    r().tokenRequests.length = 0;
    const fresh = new RegistryClient({ retry: FAST_RETRY });
    assert.deepEqual(await fresh.checkLogin(r().host, { identitytoken: identityToken }), { identityToken });
    const got = await fresh.resolveManifest(parseNormalizedReference(`${r().host}/team/app:1.0`), { identitytoken: identityToken });
    assert.equal(got.digest, raw.manifestDigest);
    assert.ok(r().tokenRequests.every((t) => t.method === "POST" && t.user === r().username));
  });

  test("login with a wrong password", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    await rejectsWith(
      client.checkLogin(r().host, { username: r().username, password: "nope" }),
      "Unauthorized",
      `Get "${r().url}/v2/": unauthorized: incorrect username or password`,
    );
  });

  test("pull with a wrong password is refused", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    await rejectsWith(
      client.resolveManifest(parseNormalizedReference(`${r().host}/team/app:1.0`), { username: r().username, password: "nope" }),
      "Unauthorized",
      /incorrect username or password/,
    );
  });

  test("catalog with credentials", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    const repos = await client.catalog(r().host, creds());
    assert.ok(repos.includes("team/app"));
  });
});

describe("token registry without anonymous pull", () => {
  let reg: RegistryFixture | undefined;
  after(() => reg?.stop());
  before(async () => {
    reg = await startRegistry({ auth: "token", anonymousPull: false });
    await rawPushImage(reg, "closed/app", "1.0");
  });

  test("an anonymous pull is refused", async () => {
    const client = new RegistryClient({ retry: FAST_RETRY });
    await rejectsWith(client.resolveManifest(parseNormalizedReference(`${reg!.host}/closed/app:1.0`)), "Unauthorized");
  });
});

describe("faults", () => {
  let reg: RegistryFixture | undefined;
  let raw: Awaited<ReturnType<typeof rawPushImage>>;
  const servers: FakeServer[] = [];
  after(async () => {
    await Promise.all(servers.map((s) => s.close()));
    await reg?.stop();
  });
  before(async () => {
    reg = await startRegistry();
    raw = await rawPushImage(reg, "library/app", "latest");
  });
  async function serve(handler: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<FakeServer> {
    const s = await fakeServer(handler);
    servers.push(s);
    return s;
  }

  test("a 500 and a reset connection are retried; the pull succeeds", async () => {
    let manifestGets = 0;
    const proxy = await serve((req, res) => {
      if (req.url?.includes("/manifests/")) {
        manifestGets++;
        if (manifestGets === 1) {
          res.writeHead(500, { "content-type": "application/json" });
          res.end(JSON.stringify({ errors: [{ code: "UNKNOWN", message: "boom" }] }));
          return;
        }
        if (manifestGets === 2) {
          req.socket.destroy();
          return;
        }
      }
      forward(req, res, reg!.host);
    });
    const client = new RegistryClient({ retry: FAST_RETRY });
    const got = await client.resolveManifest(parseNormalizedReference(`${proxy.host}/library/app:latest`));
    assert.equal(got.digest, raw.manifestDigest);
    assert.equal(manifestGets, 3);
  });

  test("an upload that fails mid-way starts over with a fresh stream", async () => {
    let patches = 0;
    const proxy = await serve((req, res) => {
      if (req.method === "PATCH" && ++patches === 2) {
        req.resume();
        res.writeHead(502);
        res.end();
        return;
      }
      forward(req, res, reg!.host);
    });
    const blob = randomBytes(9000);
    let opened = 0;
    const client = new RegistryClient({ retry: FAST_RETRY });
    await client.uploadBlob({ domain: proxy.host, path: "library/retried" }, sha256(blob), blob.length, () => (opened++, Readable.from([blob])), undefined, {
      chunkSize: 4000,
    });
    assert.equal(opened, 2);
    const got = await registryFetch(reg!, `/v2/library/retried/blobs/${sha256(blob)}`);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), blob);
    // the abandoned upload session was cancelled
    assert.ok(
      proxy.requests.some((q) => q.method === "DELETE"),
      "DELETE of the failed upload",
    );
  });

  test("a registry that takes an upload chunk and never answers fails the push with the stall timeout", async () => {
    let patches = 0;
    const proxy = await serve((req, res) => {
      if (req.method === "PATCH") {
        patches++;
        req.resume(); // takes the bytes, answers nothing
        return;
      }
      forward(req, res, reg!.host);
    });
    const blob = randomBytes(3000);
    const client = new RegistryClient({ retry: { attempts: 2, baseDelayMs: 5 }, stallTimeoutMs: 300 });
    await rejectsWith(
      client.uploadBlob({ domain: proxy.host, path: "library/mute" }, sha256(blob), blob.length, () => Readable.from([blob])),
      "Unavailable",
      new RegExp(
        `^registry ${proxy.host.replace(/\./g, "\\.")} stalled: it did not answer in 300 ms \\(the registry stall timeout\\) for /v2/library/mute/blobs/uploads/`,
      ),
    );
    assert.equal(patches, 2, "the stalled chunk was not retried exactly once");
  });

  test("a 429 is retried, honouring Retry-After", async () => {
    let n = 0;
    const proxy = await serve((req, res) => {
      if (req.url?.includes("/manifests/") && ++n === 1) {
        res.writeHead(429, { "retry-after": "0" });
        res.end();
        return;
      }
      forward(req, res, reg!.host);
    });
    const got = await new RegistryClient({ retry: FAST_RETRY }).resolveManifest(parseNormalizedReference(`${proxy.host}/library/app:latest`));
    assert.equal(got.digest, raw.manifestDigest);
    assert.equal(n, 2);
  });

  test("4xx is final: no retry", async () => {
    const s = await serve((_req, res) => {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors: [{ code: "MANIFEST_INVALID", message: "manifest invalid" }] }));
    });
    await rejectsWith(
      new RegistryClient({ retry: FAST_RETRY }).resolveManifest(parseNormalizedReference(`${s.host}/x/y:z`)),
      "InvalidArgument",
      /manifest invalid: manifest invalid/,
    );
    assert.equal(s.requests.length, 1);
  });

  test("persistent 5xx gives up after the configured attempts", async () => {
    const s = await serve((_req, res) => {
      res.writeHead(503);
      res.end();
    });
    await rejectsWith(new RegistryClient({ retry: FAST_RETRY }).resolveManifest(parseNormalizedReference(`${s.host}/x/y:z`)), "Unavailable", /503/);
    assert.equal(s.requests.length, 3);
  });

  test("a manifest over 4 MiB is refused, with or without Content-Length", async () => {
    const big = Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20);
    const withLength = await serve((_req, res) => {
      res.writeHead(200, { "content-type": MediaType.OciManifest, "content-length": String(big.length) });
      res.end(big);
    });
    await rejectsWith(
      new RegistryClient({ retry: FAST_RETRY }).resolveManifest(parseNormalizedReference(`${withLength.host}/x/y:z`)),
      "DataLoss",
      /manifest too large/,
    );
    let written = 0;
    const streaming = await serve((_req, res) => {
      res.writeHead(200, { "content-type": MediaType.OciManifest });
      // an endless body: the client must stop reading at the limit
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const pump = () => {
        while (res.write(chunk)) {
          written += chunk.length;
          if (written > 64 * 1024 * 1024) return res.end();
        }
        res.once("drain", pump);
      };
      res.on("close", () => res.removeAllListeners("drain"));
      pump();
    });
    await rejectsWith(
      new RegistryClient({ retry: FAST_RETRY }).resolveManifest(parseNormalizedReference(`${streaming.host}/x/y:z`)),
      "DataLoss",
      /manifest too large/,
    );
    assert.ok(written < 16 * 1024 * 1024, `server wrote ${written} bytes before the client hung up`);
  });

  test("a body whose digest differs from the requested digest is DataLoss", async () => {
    const other = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: raw.manifest, layers: [] }));
    const s = await serve((_req, res) => {
      res.writeHead(200, { "content-type": MediaType.DockerManifest, "docker-content-digest": raw.manifestDigest });
      res.end(other);
    });
    await rejectsWith(
      new RegistryClient({ retry: FAST_RETRY }).resolveManifest(parseNormalizedReference(`${s.host}/library/app@${raw.manifestDigest}`)),
      "DataLoss",
      new RegExp(`manifest verification failed for digest ${raw.manifestDigest}`),
    );
  });

  test("an index entry whose manifest does not match its digest is DataLoss", async () => {
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [{ mediaType: MediaType.DockerManifest, digest: sha256(Buffer.from("not it")), size: raw.manifest.length, platform: AMD64 }],
      }),
    );
    const s = await serve((req, res) => {
      res.writeHead(200, { "content-type": req.url?.includes("sha256:") ? MediaType.DockerManifest : MediaType.OciIndex });
      res.end(req.url?.includes("sha256:") ? raw.manifest : index);
    });
    await rejectsWith(new RegistryClient({ platform: AMD64, retry: FAST_RETRY }).resolveManifest(parseNormalizedReference(`${s.host}/x/y:z`)), "DataLoss");
  });

  test("schema 1 manifests are refused clearly", async () => {
    const s = await serve((_req, res) => {
      res.writeHead(200, { "content-type": MediaType.DockerSchema1Signed });
      res.end(JSON.stringify({ schemaVersion: 1, name: "x/y", tag: "z", fsLayers: [], history: [] }));
    });
    await rejectsWith(
      new RegistryClient({ retry: FAST_RETRY }).resolveManifest(parseNormalizedReference(`${s.host}/x/y:z`)),
      "NotImplemented",
      /schema 1 support has been removed/,
    );
  });

  test("a redirect to another host does not carry the Authorization header", async () => {
    const blob = randomBytes(1000);
    const digest = sha256(blob);
    const storage = await serve((_req, res) => {
      res.writeHead(200, { "content-length": String(blob.length) });
      res.end(blob);
    });
    const origin = await serve((req, res) => {
      if (!req.headers.authorization) {
        res.writeHead(401, { "www-authenticate": 'Basic realm="fake"' });
        res.end();
        return;
      }
      if (req.url?.startsWith("/v2/x/y/blobs/")) {
        // same-host hop first, then off to the storage host
        if (!req.url.includes("hop")) {
          res.writeHead(307, { location: `/v2/x/y/blobs/${digest}?hop=1` });
        } else {
          res.writeHead(307, { location: `${storage.url}/bucket/${digest}?sig=secret` });
        }
        res.end();
        return;
      }
      res.writeHead(404);
      res.end();
    });
    const client = new RegistryClient({ retry: FAST_RETRY });
    const { stream } = await client.openBlob(
      origin.url,
      { domain: origin.host, path: "x/y" },
      { mediaType: MediaType.OciLayerGzip, digest, size: blob.length },
      { username: "u", password: "p" },
    );
    assert.deepEqual(await collect(stream), blob);
    const expected = `Basic ${Buffer.from("u:p").toString("base64")}`;
    assert.deepEqual(
      origin.requests.map((q) => q.headers.authorization),
      [undefined, expected, expected],
      "the origin got the credentials after its challenge, also on the same-host hop",
    );
    assert.equal(storage.requests.length, 1);
    assert.equal(storage.requests[0]!.headers.authorization, undefined, "the storage host got no credentials");
  });

  test("a cached token the registry refuses is replaced once (401 after token refresh)", async () => {
    let issued = 0;
    const realm = await serve((req, res) => {
      issued++;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ token: `t${issued}`, expires_in: 300 }));
    });
    const accepted = new Set(["Bearer t1"]);
    const registry = await serve((req, res) => {
      const auth = req.headers.authorization;
      if (!auth || !accepted.has(auth)) {
        res.writeHead(401, {
          "www-authenticate": `Bearer realm="${realm.url}/token",service="fake",scope="repository:x/y:pull"`,
          "content-type": "application/json",
        });
        res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] }));
        return;
      }
      res.writeHead(200, { "content-type": MediaType.DockerManifest });
      res.end(raw.manifest);
    });
    const client = new RegistryClient({ retry: FAST_RETRY });
    const ref = parseNormalizedReference(`${registry.host}/x/y:z`);
    assert.equal((await client.resolveManifest(ref)).digest, raw.manifestDigest);
    // the registry revokes t1; the client must fetch t2 once and carry on
    accepted.clear();
    accepted.add("Bearer t2");
    assert.equal((await client.resolveManifest(ref)).digest, raw.manifestDigest);
    assert.equal((await client.resolveManifest(ref)).digest, raw.manifestDigest);
    assert.deepEqual(
      registry.requests.map((q) => q.headers.authorization ?? "-"),
      ["-", "Bearer t1", "Bearer t1", "Bearer t2", "Bearer t2"],
    );
    assert.equal(realm.requests.length, 2);
    const q = new URL(realm.requests[0]!.url, realm.url);
    assert.equal(q.searchParams.get("service"), "fake");
    assert.deepEqual(q.searchParams.getAll("scope"), ["repository:x/y:pull"]);
    // a fresh token that is refused too is final: no loop
    accepted.clear();
    await rejectsWith(client.resolveManifest(ref), "Unauthorized", /pull access denied for 127\.0\.0\.1:\d+\/x\/y/);
    assert.equal(realm.requests.length, 3);
  });

  test("mirrors: a failing mirror falls through to the next; credentials never go to a mirror", async () => {
    const badMirror = await serve((_req, res) => {
      res.writeHead(401, { "www-authenticate": 'Basic realm="mirror"' });
      res.end();
    });
    const client = new RegistryClient({ mirrors: [badMirror.url, reg!.url], retry: FAST_RETRY });
    const ref = parseNormalizedReference("app:latest"); // docker.io/library/app
    const got = await client.resolveManifest(ref, { username: "hub-user", password: "hub-secret" });
    assert.equal(got.endpoint, reg!.url);
    assert.equal(got.digest, raw.manifestDigest);
    assert.ok(badMirror.requests.length >= 1);
    assert.ok(badMirror.requests.every((q) => q.headers.authorization === undefined));
    // blobs come from the endpoint the manifest came from
    const { stream } = await client.openBlob(got.endpoint, ref, got.manifest.layers[0]!, { username: "hub-user", password: "hub-secret" });
    assert.deepEqual(await collect(stream), raw.layer);
  });

  test("a manifest holding both manifests and layers is refused whatever its Content-Type (CVE-2021-41190)", async () => {
    const doc = JSON.parse(raw.manifest.toString("utf8")) as Record<string, unknown>;
    const ambiguous = Buffer.from(
      JSON.stringify({
        ...doc,
        mediaType: undefined,
        manifests: [{ mediaType: MediaType.DockerManifest, digest: raw.manifestDigest, size: raw.manifest.length, platform: AMD64 }],
      }),
    );
    for (const contentType of [MediaType.DockerManifest, MediaType.OciManifest, MediaType.OciIndex, MediaType.DockerManifestList, "application/json"]) {
      const s = await serve((_req, res) => {
        res.writeHead(200, { "content-type": contentType });
        res.end(ambiguous);
      });
      await rejectsWith(
        new RegistryClient({ platform: AMD64, retry: FAST_RETRY }).resolveManifest(parseNormalizedReference(`${s.host}/x/y:z`)),
        "DataLoss",
        /^invalid manifest for .*x\/y:z: ambiguous document refused: it has both "manifests" and "layers" and "config" \(CVE-2021-41190\)$/,
      );
    }
  });

  test("a registry that answers nothing, stops mid-body or drips fails with the stall timeout (retried); a slow reader is no stall", async () => {
    const blob = randomBytes(8 * STALL_MIN_BYTES);
    const desc = { mediaType: MediaType.OciLayer, digest: sha256(blob), size: blob.length };
    let mode: "mute" | "stop" | "drip" | "ok" = "mute";
    let requests = 0;
    const s = await serve((_req, res) => {
      requests++;
      if (mode === "mute") return; // never answers
      res.writeHead(200, { "content-length": String(blob.length) });
      if (mode === "ok") return void res.end(blob);
      res.write(blob.subarray(0, 100));
      if (mode === "stop") return;
      let at = 100;
      const timer = setInterval(() => {
        if (res.destroyed || at >= blob.length) return clearInterval(timer);
        res.write(blob.subarray(at, ++at));
      }, 20);
      res.on("close", () => clearInterval(timer));
    });
    const client = new RegistryClient({ retry: { attempts: 2, baseDelayMs: 5 }, stallTimeoutMs: 300 });
    const target = { domain: s.host, path: "x/y" };

    await rejectsWith(
      client.openBlob(s.url, target, desc),
      "Unavailable",
      `registry ${s.host} stalled: it did not answer in 300 ms (the registry stall timeout) for blob ${desc.digest} of x/y`,
    );
    assert.equal(requests, 2, "a stalled request was not retried exactly once");

    for (const m of ["stop", "drip"] as const) {
      mode = m;
      const { stream } = await client.openBlob(s.url, target, desc);
      await rejectsWith(
        collect(stream),
        "Unavailable",
        `registry ${s.host} stalled: it sent less than ${STALL_MIN_BYTES} bytes in 300 ms (the registry stall timeout) for blob ${desc.digest} of x/y`,
      );
    }

    // The clock runs only while the agent waits on the registry: a reader that takes its time is no stall.
    mode = "ok";
    const { stream } = await client.openBlob(s.url, target, desc);
    const parts: Buffer[] = [];
    for await (const c of stream) {
      parts.push(c as Buffer);
      await new Promise((r) => setTimeout(r, 400));
    }
    assert.deepEqual(Buffer.concat(parts), blob);
  });

  test("openBlob resumes from an offset even when the server ignores Range", async () => {
    const blob = randomBytes(5000);
    const s = await serve((_req, res) => {
      res.writeHead(200, { "content-length": String(blob.length) });
      res.end(blob);
    });
    const client = new RegistryClient({ retry: FAST_RETRY });
    const { stream, size } = await client.openBlob(
      s.url,
      { domain: s.host, path: "x/y" },
      { mediaType: MediaType.OciLayer, digest: sha256(blob), size: blob.length },
      undefined,
      undefined,
      4000,
    );
    assert.equal(size, 1000);
    assert.deepEqual(await collect(stream), blob.subarray(4000));
    assert.equal(s.requests[0]!.headers.range, "bytes=4000-");
  });

  test("an abort during backoff cancels at once", async () => {
    const s = await serve((_req, res) => {
      res.writeHead(503);
      res.end();
    });
    const client = new RegistryClient({ retry: { attempts: 5, baseDelayMs: 10_000 } });
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(), 100);
    await rejectsWith(client.resolveManifest(parseNormalizedReference(`${s.host}/x/y:z`), undefined, ac.signal), "Canceled");
    assert.ok(Date.now() - t0 < 3000);
  });
});
