import { createGzip } from "node:zlib";
import { pipeline } from "node:stream/promises";
import { invalidArgument, notFound, toEngineError } from "../errors.ts";
import { familiarName, fullName, parseNormalizedReference, type ImageReference } from "../../../shared/reference.ts";
import type { Credentials, Descriptor } from "../registry/client.ts";
import type { ImageService, ImageServiceDeps } from "./image-service.ts";
import type { ImageLayerRecord, ImageRecord } from "./image-store.ts";
import { noProgress, shortDigest, type ProgressSink } from "./progress.ts";

export interface PushOptions {
  credentials?: Credentials;
  onProgress?: ProgressSink;
  signal?: AbortSignal;
}

export interface PushedTag {
  tag: string;
  digest: string;
  size: number;
}

const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

/**
 * Pushes the tags of a repository: every layer blob the registry lacks (checked first,
 * mounted from another repository of the same registry when one is known to hold it,
 * uploaded otherwise), the config, then the manifest. A pulled image is pushed with its
 * original manifest bytes, so its digest stays the same everywhere.
 */
export class Pusher {
  constructor(
    private readonly images: ImageService,
    /** The image concern's stores (content, index, registry): a push reads from them. */
    private readonly stores: ImageServiceDeps,
  ) {}

  async push(name: string, tag: string | undefined, opts: PushOptions = {}): Promise<PushedTag[]> {
    try {
      const pushed = await this.pushUnlogged(name, tag, opts);
      const repo = familiarName(parseNormalizedReference(name));
      for (const p of pushed) this.images.publishEvent("push", `${repo}:${p.tag}`);
      return pushed;
    } catch (e) {
      const err = toEngineError(e);
      if (err.kind === "Canceled") this.stores.logger.info({ image: name }, "push canceled");
      else this.stores.logger.warn({ err, image: name, tag }, "push failed");
      throw err;
    }
  }

  private async pushUnlogged(name: string, tag: string | undefined, opts: PushOptions): Promise<PushedTag[]> {
    const onProgress = opts.onProgress ?? noProgress;
    const ref = parseNormalizedReference(name);
    if (ref.digest) throw invalidArgument("cannot push a digest reference");
    const repo = fullName(ref);
    const store = this.stores.store;
    const tags: Array<{ tag: string; id: string }> = [];
    const wanted = tag || ref.tag;
    for (const [key, id] of store.allReferences()) {
      if (!key.startsWith(repo + ":")) continue;
      const t = key.slice(repo.length + 1);
      if (wanted && t !== wanted) continue;
      tags.push({ tag: t, id });
    }
    if (tags.length === 0) {
      throw notFound(wanted ? `tag does not exist: ${familiarName(ref)}:${wanted}` : `An image does not exist locally with the tag: ${familiarName(ref)}`);
    }
    onProgress({ status: `The push refers to repository [${familiarName(ref)}]` });
    const results: PushedTag[] = [];
    for (const t of tags) results.push(await this.pushOne({ ...ref, tag: t.tag, digest: undefined }, t.id, onProgress, opts));
    return results;
  }

  private async pushOne(ref: ImageReference, id: string, onProgress: ProgressSink, opts: PushOptions): Promise<PushedTag> {
    const { registry, content, store } = this.stores;
    const target = { domain: ref.domain, path: ref.path };
    let record = store.get(id);
    if (!record) throw notFound(`No such image: ${id}`);
    record = await this.ensureCompressedBlobs(record);

    const layers = [...record.layers];
    for (const l of layers) onProgress({ id: shortDigest(l.diffId), status: "Preparing" });
    const sources = this.mountSources(record, ref);
    await Promise.all(
      layers.map(async (l) => {
        const pid = shortDigest(l.diffId);
        const blob = l.blob!;
        if (await registry.hasBlob(target, blob.digest, opts.credentials)) {
          onProgress({ id: pid, status: "Layer already exists" });
          return;
        }
        for (const from of sources) {
          if (await registry.mountBlob(target, blob.digest, from, opts.credentials)) {
            onProgress({ id: pid, status: `Mounted from ${from}` });
            return;
          }
        }
        await registry.uploadBlob(target, blob.digest, blob.size, () => content.read(blob.digest), opts.credentials, {
          signal: opts.signal,
          onProgress: (sent) => onProgress({ id: pid, status: "Pushing", current: sent, total: blob.size }),
        });
        onProgress({ id: pid, status: "Pushed" });
      }),
    );
    const configInfo = await content.info(id);
    if (!configInfo) throw notFound(`config blob of image ${id} is missing from the content store`);
    if (!(await registry.hasBlob(target, id, opts.credentials))) {
      await registry.uploadBlob(target, id, configInfo.size, () => content.read(id), opts.credentials, { signal: opts.signal });
    }

    const { bytes, mediaType } = await this.manifestFor(record, configInfo.size);
    const digest = await registry.putManifest(target, ref.tag ?? "latest", bytes, mediaType, opts.credentials);
    await content.writeBytes(Buffer.from(bytes), digest);
    await store.update((draft) => {
      draft.references[`${fullName(ref)}@${digest}`] = id;
      const img = draft.images[id];
      if (img && !img.manifests.some((m) => m.digest === digest && m.repository === fullName(ref))) {
        img.manifests.push({ repository: fullName(ref), digest, mediaType });
      }
    });
    onProgress({ status: `${ref.tag}: digest: ${digest} size: ${bytes.length}` });
    return { tag: ref.tag ?? "latest", digest, size: bytes.length };
  }

  /** Repositories of the same registry known to hold this image's blobs (cross-repository mount). */
  private mountSources(record: ImageRecord, ref: ImageReference): string[] {
    const prefix = ref.domain + "/";
    const repos = new Set<string>();
    for (const m of record.manifests) {
      if (m.repository.startsWith(prefix) && m.repository !== fullName(ref)) repos.add(m.repository.slice(prefix.length));
    }
    return [...repos];
  }

  /** The image's original manifest when its blobs are the ones we hold, else a new schema2 manifest. */
  private async manifestFor(record: ImageRecord, configSize: number): Promise<{ bytes: Uint8Array; mediaType: string }> {
    const { content } = this.stores;
    for (const m of record.manifests) {
      if (m.mediaType !== DOCKER_MANIFEST && m.mediaType !== OCI_MANIFEST) continue;
      if (!(await content.has(m.digest))) continue;
      const bytes = await content.readBytes(m.digest, 4 * 1024 * 1024);
      const parsed = JSON.parse(bytes.toString("utf8")) as { config?: Descriptor; layers?: Descriptor[] };
      const sameBlobs =
        parsed.config?.digest === record.id &&
        parsed.layers?.length === record.layers.length &&
        parsed.layers.every((d, i) => d.digest === record.layers[i]!.blob?.digest);
      if (sameBlobs) return { bytes, mediaType: m.mediaType };
    }
    const manifest = {
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: DOCKER_CONFIG, size: configSize, digest: record.id },
      layers: record.layers.map((l) => ({ mediaType: dockerLayerType(l.blob!.mediaType), size: l.blob!.size, digest: l.blob!.digest })),
    };
    return { bytes: Buffer.from(JSON.stringify(manifest, null, 3)), mediaType: DOCKER_MANIFEST };
  }

  /**
   * Layers that arrived uncompressed (load, import, commit) are gzipped once into the
   * content store before their first push; the compressed blob is kept so every later
   * push sends the same bytes and the same digest.
   */
  private async ensureCompressedBlobs(record: ImageRecord): Promise<ImageRecord> {
    const { content, store } = this.stores;
    const updated: ImageLayerRecord[] = [];
    let changed = false;
    for (const l of record.layers) {
      if (l.blob && isCompressed(l.blob.mediaType) && (await content.has(l.blob.digest))) {
        updated.push(l);
        continue;
      }
      const source = l.blob && (await content.has(l.blob.digest)) ? l.blob.digest : (await content.has(l.diffId)) ? l.diffId : undefined;
      if (!source) throw notFound(`layer ${l.diffId} of image ${record.id} has no stored tar to push`);
      const writer = await content.writer();
      try {
        await pipeline(content.read(source), createGzip(), writer);
        const info = await writer.commit();
        updated.push({ ...l, blob: { mediaType: DOCKER_LAYER_GZIP, digest: info.digest, size: info.size } });
        changed = true;
      } catch (e) {
        await writer.abort();
        throw e;
      }
    }
    if (!changed) return record;
    await store.update((draft) => {
      const img = draft.images[record.id];
      if (img) img.layers = updated;
    });
    return store.get(record.id)!;
  }
}

function isCompressed(mediaType: string): boolean {
  return mediaType.endsWith("gzip") || mediaType.endsWith("+gzip") || mediaType.endsWith("zstd");
}

function dockerLayerType(mediaType: string): string {
  if (mediaType === "application/vnd.oci.image.layer.v1.tar+gzip") return DOCKER_LAYER_GZIP;
  return mediaType;
}
