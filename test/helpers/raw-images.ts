/**
 * Images written by hand for tests: layer tars from explicit entries
 * (tar-stream, gzipped by zlib), a minimal image config, a Docker schema2
 * manifest, all pushed with the raw registry API (`registryFetch`: POST/PUT
 * blobs, PUT manifest) — never with Berth's push, so a Berth bug cannot hide
 * in the images that test it, and so images may hold what no tool would write.
 */
import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import tarStream, { type Header } from "tar-stream";
import { registryFetch, type RegistryFixture } from "../fixtures/registry.ts";

export interface RawEntry {
  /** Written into the tar header verbatim ("../evil", "/abs/file" included). */
  name: string;
  /** Default "file". */
  type?: "file" | "directory" | "symlink" | "link" | "block-device" | "character-device" | "fifo";
  mode?: number;
  uid?: number;
  gid?: number;
  content?: string | Buffer;
  /** Target of a symlink or hard link, verbatim. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}

export interface RawLayer {
  /** The gzipped blob as pushed. */
  gz: Buffer;
  /** sha256 of `gz`. */
  digest: string;
  size: number;
  /** sha256 of the uncompressed tar. */
  diffId: string;
}

export interface RawImage {
  repository: string;
  tag: string;
  /** "HOST/REPOSITORY:TAG" with the registry's host. */
  ref: string;
  manifestDigest: string;
  configDigest: string;
  layers: RawLayer[];
}

const FIXED_MTIME = new Date("2024-01-01T00:00:00Z");
const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip";

export function sha256Digest(data: Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** An uncompressed tar of `entries`, in order, with a proper end-of-archive marker. */
export async function makeTar(entries: RawEntry[]): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on("data", (c: unknown) => void chunks.push(c as Buffer));
    pack.on("end", () => resolve());
    pack.on("error", reject);
  });
  for (const e of entries) {
    const type = e.type ?? "file";
    const content = typeof e.content === "string" ? Buffer.from(e.content) : (e.content ?? Buffer.alloc(0));
    const header: Partial<Header> & { name: string } = {
      name: e.name,
      type,
      mode: e.mode ?? (type === "directory" ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: FIXED_MTIME,
      size: type === "file" ? content.length : 0,
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
      ...(e.devmajor !== undefined ? { devmajor: e.devmajor } : {}),
      ...(e.devminor !== undefined ? { devminor: e.devminor } : {}),
    };
    if (type === "file") pack.entry(header, content);
    else pack.entry(header);
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * A busybox root filesystem as one uncompressed layer: this machine's static
 * /bin/busybox, a symlink per applet, the usual top directories, and passwd/group
 * with root and an `app` user (1000, also in group staff 50).
 */
export async function busyboxLayerTar(applets: readonly string[]): Promise<Buffer> {
  return makeTar([
    ...["bin/", "etc/", "proc/", "sys/", "dev/", "root/", "home/"].map((name): RawEntry => ({ name, type: "directory" })),
    { name: "tmp/", type: "directory", mode: 0o1777 },
    { name: "bin/busybox", mode: 0o755, content: await readFile("/bin/busybox") },
    ...applets.map((a): RawEntry => ({ name: `bin/${a}`, type: "symlink", linkname: "busybox" })),
    { name: "etc/passwd", content: "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n" },
    { name: "etc/group", content: "root:x:0:\napp:x:1000:\nstaff:x:50:app\n" },
  ]);
}

/** A gzipped layer of `entries`. */
export async function makeLayer(entries: RawEntry[]): Promise<RawLayer> {
  const tar = await makeTar(entries);
  const gz = gzipSync(tar);
  return { gz, digest: sha256Digest(gz), size: gz.length, diffId: sha256Digest(tar) };
}

/** A layer with one file of `bytes` random (incompressible) bytes at `name`: unique content, known size. */
export function randomFileLayer(name: string, bytes: number): Promise<RawLayer> {
  return makeLayer([{ name, type: "file", mode: 0o644, content: randomBytes(bytes) }]);
}

/** This machine's architecture in OCI terms. */
function ociArch(): string {
  const map: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
  return map[process.arch] ?? process.arch;
}

/** Uploads one blob: POST an upload session, PUT ?digest= with the whole body. A blob the registry has is skipped. */
export async function pushBlob(reg: RegistryFixture, repository: string, data: Buffer): Promise<string> {
  const digest = sha256Digest(data);
  const head = await registryFetch(reg, `/v2/${repository}/blobs/${digest}`, { method: "HEAD" });
  await head.arrayBuffer();
  if (head.status === 200) return digest;
  const started = await registryFetch(reg, `/v2/${repository}/blobs/uploads/`, { method: "POST" });
  const startText = await started.text();
  if (started.status !== 202) throw new Error(`POST upload to ${repository}: ${started.status} ${startText}`);
  const location = started.headers.get("location");
  if (!location) throw new Error(`POST upload to ${repository}: no Location`);
  const url = new URL(location, reg.url);
  url.searchParams.set("digest", digest);
  const put = await registryFetch(reg, url.pathname + url.search, {
    method: "PUT",
    headers: { "Content-Type": "application/octet-stream" },
    body: data,
  });
  const putText = await put.text();
  if (put.status !== 201) throw new Error(`PUT blob ${digest} to ${repository}: ${put.status} ${putText}`);
  return digest;
}

/**
 * Pushes an image of `layers` (bottom first) as `repository:tag`: the layer
 * blobs, a config naming their diff IDs, and a Docker schema2 manifest.
 */
export async function pushRawImage(
  reg: RegistryFixture,
  repository: string,
  tag: string,
  layers: RawLayer[],
  opts: { labels?: Record<string, string> } = {},
): Promise<RawImage> {
  for (const l of layers) await pushBlob(reg, repository, l.gz);
  const config = Buffer.from(
    JSON.stringify({
      architecture: ociArch(),
      os: "linux",
      created: FIXED_MTIME.toISOString(),
      config: { Cmd: ["sh"], Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], Labels: opts.labels ?? {} },
      rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((_, i) => ({ created: FIXED_MTIME.toISOString(), created_by: `berth test: raw layer ${i + 1}` })),
    }),
  );
  const configDigest = await pushBlob(reg, repository, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: DOCKER_CONFIG, size: config.length, digest: configDigest },
      layers: layers.map((l) => ({ mediaType: DOCKER_LAYER, size: l.size, digest: l.digest })),
    }),
  );
  const res = await registryFetch(reg, `/v2/${repository}/manifests/${tag}`, {
    method: "PUT",
    headers: { "Content-Type": DOCKER_MANIFEST },
    body: manifest,
  });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`PUT manifest ${repository}:${tag}: ${res.status} ${text}`);
  return {
    repository,
    tag,
    ref: `${reg.host}/${repository}:${tag}`,
    manifestDigest: sha256Digest(manifest),
    configDigest,
    layers,
  };
}
