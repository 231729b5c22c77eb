import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { join, posix } from "node:path";
import { PassThrough, type Readable, type Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as tarStream from "tar-stream";
import { canceled, dataLoss, invalidArgument } from "../errors.ts";
import { chainIdOf } from "../layers/chain-id.ts";
import { decompressStream } from "../layers/decompress.ts";
import { familiarString, parseNormalizedReference, withDefaultTag, type ImageReference } from "../../../shared/reference.ts";
import { countingStream } from "../streams.ts";
import { parseImageConfig } from "../images/image-config.ts";
import type { ImageService, ImageServiceDeps } from "../images/image-service.ts";

/** The image concern as save, load and import use it: its stores and its registration of new images. */
export interface ArchiveImages {
  deps: ImageServiceDeps;
  registerImage: ImageService["registerImage"];
}
import type { ImageLayerRecord } from "../images/image-store.ts";
import { referenceKey } from "../images/image-store.ts";
import { z } from "zod";
import { awaitedLater } from "../../../shared/best-effort.ts";

/**
 * The docker-archive format of `docker save` / `docker load`: a tar holding
 * `manifest.json` ([{Config, RepoTags, Layers}]), each config as `<hex>.json`, and each
 * layer as an uncompressed `<hex>/layer.tar`. Several images and tags fit in one tar.
 */

const ArchiveManifestSchema = z.array(
  z.object({
    Config: z.string(),
    RepoTags: z.array(z.string()).nullish(),
    Layers: z.array(z.string()),
  }),
);

const UNCOMPRESSED_LAYER = "application/vnd.docker.image.rootfs.diff.tar";

/**
 * Writes the named images into `out` as one docker-archive.
 * @throws when `out` closes early (the client left) or a layer cannot be read; the work stops then.
 */
export async function saveImages(images: ArchiveImages, names: readonly string[], out: Writable): Promise<void> {
  if (names.length === 0) throw invalidArgument("no images given to save");
  const byId = new Map<string, string[]>();
  for (const name of names) {
    const { id, reference } = images.deps.store.resolve(name);
    const tags = byId.get(id) ?? [];
    const given = reference && !reference.digest && !/^(sha256:)?[a-f0-9]{1,64}$/.test(name);
    if (given) {
      const t = familiarString(withDefaultTag(reference));
      if (!tags.includes(t)) tags.push(t);
    }
    byId.set(id, tags);
  }
  const pack = tarStream.pack();
  // `out` closing early (the client left) breaks the pipeline: pack is destroyed with it,
  // which fails the entry being written (its callback), so the writing below stops too.
  const piping = awaitedLater(pipeline(pack, out));
  const manifest: Array<{ Config: string; RepoTags: string[] | null; Layers: string[] }> = [];
  const written = new Set<string>();
  const addBuffer = (name: string, data: Buffer) =>
    new Promise<void>((resolve, reject) => {
      // The entry's failure is reported to the callback; the event would have no listener.
      pack.entry({ name, size: data.length, mode: 0o644, mtime: new Date(0) }, data, (err) => (err ? reject(err) : resolve())).on("error", () => undefined);
    });
  try {
    for (const [id, tags] of byId) {
      const record = images.deps.store.get(id)!;
      const configName = `${id.slice(7)}.json`;
      if (!written.has(configName)) {
        await addBuffer(configName, await images.deps.content.readBytes(id, 8 * 1024 * 1024));
        written.add(configName);
      }
      const layerNames: string[] = [];
      for (const layer of record.layers) {
        const dir = layer.diffId.slice(7);
        const name = `${dir}/layer.tar`;
        layerNames.push(name);
        if (written.has(name)) continue;
        written.add(name);
        const size = await layerTarSize(images, layer);
        await new Promise<void>((resolve, reject) => {
          const entry = pack.entry({ name, size, mode: 0o644, mtime: new Date(0) }, (err) => (err ? reject(err) : resolve()));
          pipeline(layerTar(images, layer), entry).catch(reject);
        });
      }
      manifest.push({ Config: configName, RepoTags: tags.length ? tags : null, Layers: layerNames });
    }
    await addBuffer("manifest.json", Buffer.from(JSON.stringify(manifest)));
    pack.finalize();
    await piping;
  } catch (e) {
    pack.destroy(e as Error);
    // The pipeline's own error (the client left) says more than the entry it broke.
    await piping;
    throw e;
  }
}

/** The uncompressed tar of a layer, from whichever blob holds it. */
function layerTar(images: ArchiveImages, layer: ImageLayerRecord): Readable {
  const digest = layer.blob?.digest ?? layer.diffId;
  return decompressStream(images.deps.content.read(digest));
}

async function layerTarSize(images: ArchiveImages, layer: ImageLayerRecord): Promise<number> {
  if (layer.tarSize !== undefined) return layer.tarSize;
  if (!layer.blob || layer.blob.digest === layer.diffId) {
    const info = await images.deps.content.info(layer.diffId);
    if (info) return info.size;
  }
  let n = 0;
  await pipeline(
    layerTar(images, layer),
    countingStream((c) => (n = c)),
    new PassThrough().resume(),
  );
  return n;
}

export interface LoadResult {
  /** Lines as `docker load` prints them ("Loaded image: busybox:latest"). */
  messages: string[];
  ids: string[];
}

/**
 * Reads a docker-archive and stores its images. The archive is spooled to a private
 * temporary directory first (entries may come in any order); every layer is verified
 * against the diff IDs of its config before the image becomes visible.
 */
export async function loadImages(images: ArchiveImages, input: Readable, signal?: AbortSignal): Promise<LoadResult> {
  const tmp = await mkdtemp(join(images.deps.tmpDir, "load-"));
  try {
    const files = await spoolArchive(input, tmp, signal);
    const manifestFile = files.get("manifest.json");
    if (!manifestFile) throw invalidArgument("this is not a docker image archive: manifest.json not found in the tar");
    let manifest: z.infer<typeof ArchiveManifestSchema>;
    try {
      manifest = ArchiveManifestSchema.parse(JSON.parse(await readFile(manifestFile, "utf8")));
    } catch (e) {
      throw invalidArgument(`invalid manifest.json in the archive: ${(e as Error).message}`);
    }
    const messages: string[] = [];
    const ids: string[] = [];
    for (const entry of manifest) {
      const configFile = files.get(posix.normalize(entry.Config));
      if (!configFile) throw invalidArgument(`the archive's manifest.json names config ${entry.Config}, which is not in the archive`);
      const configBytes = await readFile(configFile);
      const config = parseImageConfig(configBytes, entry.Config);
      const diffIds = config.rootfs.diff_ids;
      if (diffIds.length !== entry.Layers.length) {
        throw invalidArgument(`${entry.Config}: the config has ${diffIds.length} diff IDs but manifest.json lists ${entry.Layers.length} layers`);
      }
      const refs: ImageReference[] = (entry.RepoTags ?? []).map((t) => withDefaultTag(parseNormalizedReference(t)));
      const layers: ImageLayerRecord[] = [];
      for (let i = 0; i < entry.Layers.length; i++) {
        const layerPath = files.get(posix.normalize(entry.Layers[i]!));
        if (!layerPath) throw invalidArgument(`the archive's manifest.json names layer ${entry.Layers[i]}, which is not in the archive`);
        layers.push(await storeLayerFromFile(images, layerPath, diffIds.slice(0, i + 1), signal));
      }
      const previous = refs.map((r) => images.deps.store.referenceTarget(referenceKey(r)));
      const { id } = await images.registerImage({ configBytes, layers }, refs);
      ids.push(id);
      refs.forEach((r, i) => {
        const old = previous[i];
        if (old && old !== id) messages.push(`The image ${familiarString(r)} already exists, renaming the old one with ID ${old} to empty string`);
        messages.push(`Loaded image: ${familiarString(r)}`);
      });
      if (refs.length === 0) messages.push(`Loaded image ID: ${id}`);
    }
    return { messages, ids };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/**
 * Stores one layer tar (compressed or not) from a file as a blob and an unpacked layer.
 * What the store already holds (the layer, the blob) is not read again.
 */
async function storeLayerFromFile(images: ArchiveImages, file: string, diffIds: string[], signal?: AbortSignal): Promise<ImageLayerRecord> {
  const { layers, content } = images.deps;
  const diffId = diffIds[diffIds.length - 1]!;
  const chainId = chainIdOf(diffIds);
  const parent = diffIds.length > 1 ? chainIdOf(diffIds.slice(0, -1)) : undefined;
  let tarSize = 0;
  // The layer store's worker threads gunzip (when it is compressed), hash and unpack the file.
  const info =
    (await layers.get(chainId)) ??
    (await layers.unpack({ parent, expectedDiffId: diffId, compressed: true, onTarSize: (n) => (tarSize = n) }, createReadStream(file), signal));
  // Keep the layer's tar as an uncompressed blob whose digest is the diff ID itself.
  const blob =
    (await content.info(diffId)) ??
    (await content.writeStream(decompressStream(createReadStream(file)), { digest: diffId }, signal).catch((e) => {
      throw dataLoss(`layer ${diffId}: the tar in the archive does not match the config's diff ID: ${(e as Error).message}`);
    }));
  return { diffId, chainId, size: info.size, tarSize: blob.size || tarSize, blob: { mediaType: UNCOMPRESSED_LAYER, digest: blob.digest, size: blob.size } };
}

/** Extracts regular files of an archive to numbered temp files; returns archive path → file. Symlinks are followed inside the archive. */
async function spoolArchive(input: Readable, dir: string, signal?: AbortSignal): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const links = new Map<string, string>();
  const extract = tarStream.extract();
  let n = 0;
  let sawEntry = false;
  // Files being written: all are settled before the caller may remove `dir`.
  const writing = new Set<Promise<void>>();
  extract.on("entry", (header, stream, next) => {
    // Destroying the extractor (a refused entry, the client leaving) destroys the entry
    // being read with the same error, which the pipeline below reports.
    stream.on("error", () => undefined);
    sawEntry = true;
    const name = posix.normalize(header.name.replace(/^\/+/, "")).replace(/\/$/, "");
    if (name === ".." || name.startsWith("../")) {
      extract.destroy(invalidArgument(`archive entry escapes the archive: ${header.name}`));
      return;
    }
    if (header.type === "file" || header.type === "contiguous-file") {
      const path = join(dir, String(n++));
      files.set(name, path);
      const written = pipeline(stream, createWriteStream(path)).then(
        () => next(),
        (e: Error) => extract.destroy(e),
      );
      writing.add(written);
      void written.finally(() => writing.delete(written));
      return;
    }
    if ((header.type === "symlink" || header.type === "link") && header.linkname) {
      const target = header.type === "symlink" ? posix.normalize(posix.join(posix.dirname(name), header.linkname)) : posix.normalize(header.linkname);
      links.set(name, target);
    }
    stream.on("end", () => next());
    stream.resume();
  });
  try {
    await pipeline(decompressStream(input), extract, { signal });
  } catch (e) {
    await Promise.all(writing);
    if (signal?.aborted) throw canceled("loading the archive canceled", signal.reason);
    if ((e as Error).name === "AbortError") throw e;
    if (e instanceof Error && "kind" in e) throw e;
    throw invalidArgument(`this is not a docker image archive: ${(e as Error).message}`);
  }
  if (!sawEntry) throw invalidArgument("this is not a docker image archive: the tar is empty");
  for (const [name, target] of links) {
    let t = target;
    for (let hops = 0; hops < 8 && !files.has(t) && links.has(t); hops++) t = links.get(t)!;
    const file = files.get(t);
    if (file) files.set(name, file);
  }
  return files;
}

export interface ImportOptions {
  reference?: string;
  message?: string;
  changes?: string[];
  signal?: AbortSignal;
}

/** `docker import`: a root filesystem tarball (optionally compressed) becomes a one-layer image. */
export async function importRootfs(images: ArchiveImages, input: Readable, opts: ImportOptions = {}): Promise<string> {
  const { applyChanges } = await import("../images/changes.ts");
  const ref = opts.reference ? withDefaultTag(parseNormalizedReference(opts.reference)) : undefined;
  const tmp = await mkdtemp(join(images.deps.tmpDir, "import-"));
  try {
    const file = join(tmp, "rootfs.tar");
    await pipeline(decompressStream(input), createWriteStream(file), { signal: opts.signal });
    const blob = await images.deps.content.writeStream(createReadStream(file), undefined, opts.signal);
    const diffId = blob.digest;
    const layer = (await images.deps.layers.get(diffId)) ?? (await images.deps.layers.unpack({ expectedDiffId: diffId }, createReadStream(file), opts.signal));
    const now = new Date().toISOString();
    const containerConfig = applyChanges({}, opts.changes ?? []);
    const config = {
      architecture: nodeArchitecture(),
      os: "linux",
      created: now,
      config: containerConfig,
      rootfs: { type: "layers", diff_ids: [diffId] },
      history: [{ created: now, created_by: "", comment: opts.message || "Imported from -" }],
      ...(opts.message ? { comment: opts.message } : {}),
    };
    const { id } = await images.registerImage(
      {
        configBytes: Buffer.from(JSON.stringify(config)),
        layers: [{ diffId, chainId: diffId, size: layer.size, tarSize: blob.size, blob: { mediaType: UNCOMPRESSED_LAYER, digest: diffId, size: blob.size } }],
      },
      ref ? [ref] : [],
    );
    return id;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

export function nodeArchitecture(): string {
  switch (process.arch) {
    case "x64":
      return "amd64";
    case "ia32":
      return "386";
    default:
      return process.arch;
  }
}
