import { finished, pipeline } from "node:stream/promises";
import { dataLoss, EngineError, invalidArgument, isEngineError, toEngineError } from "../errors.ts";
import { bestEffort, settled } from "../../../shared/best-effort.ts";
import { chainIdOf } from "../layers/chain-id.ts";
import { familiarString, fullName, parseNormalizedReference, withDefaultTag, type ImageReference } from "../../../shared/reference.ts";
import type { Credentials, Descriptor, ResolvedManifest } from "../registry/client.ts";
import { countingStream, teeStream, through } from "../streams.ts";
import { parseImageConfig } from "./image-config.ts";
import type { ImageService, ImageServiceDeps } from "./image-service.ts";
import type { ImageLayerRecord } from "./image-store.ts";
import { noProgress, shortDigest, type ProgressSink } from "./progress.ts";

export interface PullOptions {
  credentials?: Credentials;
  onProgress?: ProgressSink;
  signal?: AbortSignal;
  /** Layers downloading at once. */
  concurrency?: number;
}

export interface PullResult {
  id: string;
  reference: ImageReference;
  /** The digest the reference resolved to (the index's when it named one). */
  digest: string;
  upToDate: boolean;
}

const MAX_CONFIG_BYTES = 8 * 1024 * 1024;
const LAYER_ATTEMPTS = 3;

/** A small counting semaphore: at most `n` downloads run at once. */
function limiter(n: number) {
  let active = 0;
  const queue: Array<() => void> = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((r) => queue.push(r));
    active += 1;
    try {
      return await fn();
    } finally {
      active -= 1;
      queue.shift()?.();
    }
  };
}

/**
 * Pulls an image: resolves the manifest (an index to this node's platform), stores the
 * config, and downloads the layers, several at once, each stored as a verified blob and
 * unpacked while it streams in. The image and its reference become visible only after
 * every layer is in place, so an interrupted pull leaves no image behind; complete,
 * verified blobs and layers are kept and reused by the next pull.
 *
 * Pulls of the same layer at the same time share one download.
 */
export class Puller {
  private readonly inflight = new Map<string, Promise<ImageLayerRecord>>();
  /** Layers each running pull relies on, so a failing pull never removes a layer another one needs. */
  private readonly claims = new Map<string, number>();

  constructor(
    private readonly images: ImageService,
    /** The image concern's stores (content, layers, index, registry): a pull writes into them. */
    private readonly stores: ImageServiceDeps,
    private readonly where: { dataRoot: string },
  ) {}

  /**
   * @throws EngineError, among others Unavailable "no space left on device under <data root>"
   *   (the store is left as before the pull: the next pull, after space is freed, works)
   */
  async pull(name: string, opts: PullOptions = {}): Promise<PullResult> {
    try {
      const result = await this.pullUnlogged(name, opts);
      const reference = familiarString(result.reference);
      this.images.publishEvent("pull", reference);
      return result;
    } catch (e) {
      const { logger } = this.stores;
      if (hasErrno(e, "ENOSPC")) {
        const err = new EngineError("Unavailable", `no space left on device under ${this.where.dataRoot} while pulling ${name}`, { cause: e });
        logger.error({ err, image: name, dataRoot: this.where.dataRoot }, "pull failed: no space left on device under the data root");
        throw err;
      }
      const err = toEngineError(e);
      if (err.kind === "Canceled") logger.info({ image: name }, "pull canceled");
      else logger.warn({ err, image: name }, "pull failed");
      throw err;
    }
  }

  private async pullUnlogged(name: string, opts: PullOptions): Promise<PullResult> {
    const onProgress = opts.onProgress ?? noProgress;
    const { registry, content } = this.stores;
    const ref = withDefaultTag(parseNormalizedReference(name));
    const target = { domain: ref.domain, path: ref.path };
    onProgress({ id: ref.digest ?? ref.tag, status: `Pulling from ${ref.path}` });

    const resolved = await registry.resolveManifest(ref, opts.credentials, opts.signal);
    // Unpack workers start while the config is fetched, not when the first layer bytes arrive.
    if (resolved.manifest.layers.length > 0) this.stores.layers.warm();
    const manifest = resolved.manifest;
    const configDesc = manifest.config;
    if (!(await content.has(configDesc.digest))) {
      await this.fetchBlobVerified(resolved, target, configDesc, opts, undefined);
    }
    const configBytes = await content.readBytes(configDesc.digest, MAX_CONFIG_BYTES);
    const config = parseImageConfig(configBytes, `${familiarString(ref)}`);
    const diffIds = config.rootfs.diff_ids;
    if (diffIds.length !== manifest.layers.length) {
      throw invalidArgument(`${familiarString(ref)}: the manifest lists ${manifest.layers.length} layers but the image config has ${diffIds.length} diff IDs`);
    }

    const chainIds = diffIds.map((_, i) => chainIdOf(diffIds.slice(0, i + 1)));
    for (const c of chainIds) this.claims.set(c, (this.claims.get(c) ?? 0) + 1);
    const created = new Set<string>();
    try {
      return await this.pullClaimed(ref, resolved, configBytes, diffIds, created, opts);
    } catch (e) {
      await this.releaseNewLayers(created);
      throw e;
    } finally {
      for (const c of chainIds) {
        const n = (this.claims.get(c) ?? 1) - 1;
        if (n === 0) this.claims.delete(c);
        else this.claims.set(c, n);
      }
    }
  }

  /** Removes layers a failed pull unpacked, unless an image or another pull uses them (blobs stay for the next try). */
  private async releaseNewLayers(created: Set<string>): Promise<void> {
    const { layers, store, logger } = this.stores;
    const used = new Set(store.images().flatMap((img) => img.layers.map((l) => l.chainId)));
    const ordered = (await layers.list()).filter((l) => created.has(l.chainId));
    // Children before parents: the layer store refuses to remove a parent.
    const depth = (c: string | undefined): number => {
      const l = ordered.find((x) => x.chainId === c);
      return l ? 1 + depth(l.parent) : 0;
    };
    for (const l of ordered.sort((a, b) => depth(b.chainId) - depth(a.chainId))) {
      if (used.has(l.chainId) || (this.claims.get(l.chainId) ?? 0) > 1) continue;
      await layers.remove(l.chainId).catch((err: unknown) => logger.warn({ err, chainId: l.chainId }, "could not remove a layer of a failed pull"));
    }
  }

  private async pullClaimed(
    ref: ImageReference,
    resolved: ResolvedManifest,
    configBytes: Buffer,
    diffIds: string[],
    created: Set<string>,
    opts: PullOptions,
  ): Promise<PullResult> {
    const onProgress = opts.onProgress ?? noProgress;
    const { content, logger } = this.stores;
    const target = { domain: ref.domain, path: ref.path };
    const manifest = resolved.manifest;
    const limit = limiter(opts.concurrency ?? 4);
    const layerJobs = manifest.layers.map(async (desc, i) => {
      const chainId = chainIdOf(diffIds.slice(0, i + 1));
      const parent = i > 0 ? chainIdOf(diffIds.slice(0, i)) : undefined;
      const id = shortDigest(desc.digest);
      const existing = await this.stores.layers.get(chainId);
      if (existing) {
        onProgress({ id, status: "Already exists" });
        const known = this.stores.store
          .images()
          .flatMap((img) => img.layers)
          .find((l) => l.chainId === chainId);
        const blob = (await content.has(desc.digest)) ? pickDescriptor(desc) : known?.blob;
        return { diffId: diffIds[i]!, chainId, size: existing.size, tarSize: known?.tarSize, blob } satisfies ImageLayerRecord;
      }
      onProgress({ id, status: "Pulling fs layer" });
      onProgress({ id, status: "Waiting" });
      created.add(chainId);
      // Joined before waiting for a download slot, so a concurrent pull of the same layer shares it.
      return this.layerOnce(chainId, () => limit(() => this.pullLayer(resolved, target, desc, diffIds[i]!, chainId, parent, opts)));
    });
    const settled = await Promise.allSettled(layerJobs);
    const failure = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (failure) throw toEngineError(failure.reason);
    const layers = settled.map((s) => (s as PromiseFulfilledResult<ImageLayerRecord>).value);

    // Keep the manifest (and the index it came from) so the image can be pushed byte-identically.
    await content.writeBytes(resolved.bytes, resolved.digest);
    const manifests = [{ repository: fullName(ref), digest: resolved.digest, mediaType: resolved.mediaType }];
    if (resolved.indexDigest && resolved.indexBytes) {
      await content.writeBytes(resolved.indexBytes, resolved.indexDigest);
      manifests.push({
        repository: fullName(ref),
        digest: resolved.indexDigest,
        mediaType: resolved.indexMediaType ?? "application/vnd.oci.image.index.v1+json",
      });
    }
    const repoDigest = resolved.indexDigest ?? resolved.digest;
    const digestRef: ImageReference = { domain: ref.domain, path: ref.path, digest: repoDigest };
    const references = ref.tag && !ref.digest ? [ref, digestRef] : [digestRef];
    const before = this.stores.store.referenceTarget(`${fullName(ref)}${ref.tag && !ref.digest ? ":" + ref.tag : "@" + repoDigest}`);
    const { id } = await this.images.registerImage({ configBytes, layers, manifests }, references);
    logger.info({ image: familiarString(ref), id, digest: repoDigest }, "pulled image");
    return { id, reference: ref, digest: repoDigest, upToDate: before === id };
  }

  private layerOnce(chainId: string, run: () => Promise<ImageLayerRecord>): Promise<ImageLayerRecord> {
    const running = this.inflight.get(chainId);
    if (running) return running;
    const p = run().finally(() => this.inflight.delete(chainId));
    this.inflight.set(chainId, p);
    return p;
  }

  /** Downloads one blob into the content store, retrying broken transfers. */
  private async fetchBlobVerified(
    resolved: ResolvedManifest,
    target: { domain: string; path: string },
    desc: Descriptor,
    opts: PullOptions,
    onBytes: ((n: number) => void) | undefined,
  ): Promise<void> {
    const { registry, content } = this.stores;
    await this.withRetries(desc, async () => {
      const { stream } = await registry.openBlob(resolved.endpoint, target, desc, opts.credentials, opts.signal);
      await content.writeStream(onBytes ? through(stream, countingStream(onBytes)) : stream, { digest: desc.digest, size: desc.size }, opts.signal);
    });
  }

  private async withRetries<T>(desc: Descriptor, attempt: () => Promise<T>): Promise<T> {
    let last: EngineError | undefined;
    for (let i = 0; i < LAYER_ATTEMPTS; i++) {
      try {
        return await attempt();
      } catch (e) {
        // A full disk stays full: the caller reports it with the data root.
        if (hasErrno(e, "ENOSPC")) throw e;
        last = toEngineError(e);
        // Only broken transfers are worth another try; a lying registry or bad content is not.
        if (!isEngineError(last, "Unavailable") && !isNetworkReset(e)) throw last;
        if (i + 1 === LAYER_ATTEMPTS) break;
        this.stores.logger.warn({ digest: desc.digest, attempt: i + 1, err: last }, "blob download broke, retrying");
        await new Promise((r) => setTimeout(r, 200 * 2 ** i));
      }
    }
    throw last!;
  }

  private async pullLayer(
    resolved: ResolvedManifest,
    target: { domain: string; path: string },
    desc: Descriptor,
    diffId: string,
    chainId: string,
    parent: string | undefined,
    opts: PullOptions,
  ): Promise<ImageLayerRecord> {
    const onProgress = opts.onProgress ?? noProgress;
    const { registry, content, layers } = this.stores;
    const id = shortDigest(desc.digest);
    const done = await layers.get(chainId);
    if (done) {
      // Another pull finished this layer while this one was deciding.
      onProgress({ id, status: "Already exists" });
      return { diffId, chainId, size: done.size, blob: (await content.has(desc.digest)) ? pickDescriptor(desc) : undefined };
    }
    // The store gets the blob as it comes (compressed): its worker threads gunzip, hash and write.
    let tarSize: number | undefined;
    const onTarSize = (n: number) => (tarSize = n);
    if (await content.has(desc.digest)) {
      // A verified blob from an earlier, interrupted pull: unpack it without downloading.
      onProgress({ id, status: "Extracting", current: 0, total: desc.size });
      const info = await layers.unpack({ parent, expectedDiffId: diffId, compressed: true, onTarSize }, content.read(desc.digest), opts.signal);
      onProgress({ id, status: "Pull complete" });
      return { diffId, chainId, size: info.size, tarSize, blob: pickDescriptor(desc) };
    }

    return this.withRetries(desc, async () => {
      const { stream } = await registry.openBlob(resolved.endpoint, target, desc, opts.credentials, opts.signal);
      // The writer first: the body is not read (so cannot fail unheard) until it is teed below.
      let writer;
      try {
        writer = await content.writer({ digest: desc.digest, size: desc.size });
      } catch (e) {
        stream.destroy();
        throw e;
      }
      const counted = through(
        stream,
        countingStream((n) => onProgress({ id, status: "Downloading", current: n, total: desc.size })),
      );
      const [toStore, toUnpack] = teeStream(counted);
      // Both branches are watched from here on: a branch whose consumer gave up before
      // reading (an unpack refused at once) must not carry an unheard 'error'.
      const unpackBranchDone = settled(finished(toUnpack)); // its failure reaches unpacking
      const storing = pipeline(toStore, writer);
      const unpacking = layers.unpack({ parent, expectedDiffId: diffId, compressed: true, onTarSize }, toUnpack, opts.signal);
      const [stored, unpacked] = await Promise.allSettled([storing, unpacking]);
      await unpackBranchDone;
      if (stored.status === "fulfilled" && unpacked.status === "rejected") {
        // Every byte arrived: if they are not the blob the manifest names, that is the
        // error to report (a corrupt stream shows up in gunzip before the digest check).
        try {
          await writer.commit();
        } catch (e) {
          if (isEngineError(e, "DataLoss")) throw dataLoss(`filesystem layer verification failed for digest ${desc.digest}: ${e.message}`);
        }
        await content.delete(desc.digest).catch(bestEffort(this.stores.logger, `delete blob ${desc.digest} of a layer that did not unpack`));
        throw toEngineError(unpacked.reason);
      }
      if (stored.status === "rejected" || unpacked.status === "rejected") {
        await writer.abort();
        if (unpacked.status === "fulfilled")
          await layers.remove(chainId).catch((err: unknown) => this.stores.logger.warn({ err, chainId }, "could not remove a layer of a failed pull"));
        throw rootCause(stored.status === "rejected" ? stored.reason : undefined, unpacked.status === "rejected" ? unpacked.reason : undefined);
      }
      onProgress({ id, status: "Verifying Checksum" });
      try {
        await writer.commit();
      } catch (e) {
        await layers.remove(chainId).catch((err: unknown) => this.stores.logger.warn({ err, chainId }, "could not remove a layer of a failed pull"));
        throw isEngineError(e, "DataLoss") ? dataLoss(`filesystem layer verification failed for digest ${desc.digest}: ${(e as Error).message}`) : e;
      }
      onProgress({ id, status: "Download complete" });
      onProgress({ id, status: "Extracting", current: desc.size, total: desc.size });
      onProgress({ id, status: "Pull complete" });
      return { diffId, chainId, size: unpacked.value.size, tarSize, blob: pickDescriptor(desc) };
    });
  }
}

function pickDescriptor(desc: Descriptor) {
  return { mediaType: desc.mediaType, digest: desc.digest, size: desc.size };
}

/** Whether an errno error with `code` is `e` or in its cause chain. */
function hasErrno(e: unknown, code: string): boolean {
  for (let cur: unknown = e, depth = 0; cur && depth < 8; depth++) {
    if ((cur as NodeJS.ErrnoException).code === code) return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * The failure to report when storing and unpacking a layer both failed: when one side
 * fails, the tee ends the other with a mere consequence ("stream consumer closed early",
 * a premature close); that one must not mask the cause (a full disk, a bad tar).
 * A full disk passes through as thrown (its errno code tells the caller what to report).
 */
function rootCause(stored: unknown, unpacked: unknown): unknown {
  const failures = [stored, unpacked].filter((e) => e !== undefined);
  const noSpace = failures.find((e) => hasErrno(e, "ENOSPC"));
  if (noSpace) return noSpace;
  const consequence = (e: unknown) =>
    e instanceof Error &&
    (/stream consumer closed early|premature close/i.test(e.message) || (e as NodeJS.ErrnoException).code === "ERR_STREAM_PREMATURE_CLOSE");
  return toEngineError(failures.find((e) => !consequence(e)) ?? failures[0]);
}

function isNetworkReset(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return (
    code === "ECONNRESET" ||
    code === "EPIPE" ||
    code === "ETIMEDOUT" ||
    code === "UND_ERR_SOCKET" ||
    (e instanceof Error && /terminated|socket hang up|premature close/i.test(e.message))
  );
}
