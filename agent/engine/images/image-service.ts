import type { Logger } from "pino";
import type { ContentStore } from "../content/store.ts";
import type { LayerStore } from "../layers/layer-store.ts";
import type { RegistryClient } from "../registry/client.ts";
import { conflict, invalidArgument, notFound } from "../errors.ts";
import { familiarName, familiarString, parseNormalizedReference, withDefaultTag, type ImageReference } from "../../../shared/reference.ts";
import { parseImageConfig, type ImageConfig } from "./image-config.ts";
import { familiarKey, referenceKey, type ImageLayerRecord, type ImageRecord, type ImageStore } from "./image-store.ts";
import { ScratchDir } from "../scratch-dir.ts";
import type { PublishEvent } from "../system/events.ts";
import type { Readable, Writable } from "node:stream";
import { importRootfs, loadImages, saveImages, type ArchiveImages, type ImportOptions, type LoadResult } from "../archive/docker-archive.ts";

/** What the image concern needs from the rest of the engine. */
export interface ImageServiceDeps {
  content: ContentStore;
  layers: LayerStore;
  store: ImageStore;
  registry: RegistryClient;
  logger: Logger;
  /** The engine's private directory for temporary files of load/import (on the same filesystem as the stores); emptied by init(). */
  tmpDir: string;
  /** The engine's event stream (pull, push, tag, untag, delete, load, import, save). */
  events?: PublishEvent;
  /** Containers using an image; the container concern plugs in here (none until it exists). */
  containersUsing?: (imageId: string) => Array<{ id: string; running: boolean }>;
}

export interface ImageSummary {
  id: string;
  parentId: string;
  repoTags: string[];
  repoDigests: string[];
  created: number; // unix seconds
  size: number;
  sharedSize: number;
  labels: Record<string, string>;
  containers: number;
}

export interface ImageFilters {
  dangling?: boolean;
  reference?: string[];
  since?: string;
  before?: string;
  label?: string[];
  until?: string;
  /** Include intermediate images (untagged parents of other images, such as a build's steps). */
  all?: boolean;
}

export type DeleteRecord = { Untagged: string } | { Deleted: string };

export interface HistoryItem {
  id: string;
  created: number;
  createdBy: string;
  tags: string[];
  size: number;
  comment: string;
}

export interface ImageDetails {
  record: ImageRecord;
  config: ImageConfig;
  repoTags: string[];
  repoDigests: string[];
  size: number;
}

/** A new image about to be stored: all of its blobs and layers already exist. */
export interface NewImage {
  configBytes: Buffer;
  layers: ImageLayerRecord[];
  manifests?: ImageRecord["manifests"];
  parent?: string;
}

function unixSeconds(iso: string | undefined): number {
  if (!iso) return 0;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? 0 : Math.floor(t / 1000);
}

/** Docker's reference filter: a glob on the familiar "name" or "name:tag". */
function matchesReferencePattern(pattern: string, key: string): boolean {
  const ref = parseNormalizedReference(key);
  const candidates = [familiarName(ref), familiarString(ref)];
  const re = new RegExp(
    "^" +
      pattern
        .split("")
        .map((c) => (c === "*" ? "[^/]*" : c === "?" ? "[^/]" : c.replace(/[.+^${}()|[\]\\]/g, "\\$&")))
        .join("") +
      "$",
  );
  return candidates.some((c) => re.test(c));
}

export class ImageService {
  private readonly configCache = new Map<string, ImageConfig>();

  constructor(private readonly deps: ImageServiceDeps) {}

  async init(): Promise<void> {
    await this.deps.store.load();
    const ingests = await this.deps.content.removeStaleIngests();
    const layerTemps = await this.deps.layers.removeStale();
    // Nothing runs yet: whatever is in the engine's scratch folder (load-*, import-*) or
    // beside the image index is left from work a crash interrupted.
    const scratch = await new ScratchDir(this.deps.tmpDir, this.deps.logger).sweep();
    const indexTemps = await this.deps.store.removeStaleTemps();
    if (ingests || layerTemps || scratch || indexTemps)
      this.deps.logger.info({ ingests, layerTemps, scratch, indexTemps }, "removed leftovers of interrupted work");
    // The unpack workers start now rather than in the first pull (they end after a minute idle).
    this.deps.layers.warm();
  }

  /** The image's config document. @throws NotFound */
  async config(id: string): Promise<ImageConfig> {
    const cached = this.configCache.get(id);
    if (cached) return cached;
    const bytes = await this.deps.content.readBytes(id, 8 * 1024 * 1024);
    const config = parseImageConfig(bytes, `image ${id}`);
    this.configCache.set(id, config);
    return config;
  }

  resolve(nameOrId: string): ImageRecord {
    const { id } = this.deps.store.resolve(nameOrId);
    const record = this.deps.store.get(id);
    if (!record) throw notFound(`No such image: ${nameOrId}`);
    return record;
  }

  /**
   * Reports an image event as moby's LogImageEvent does: the actor is an image ID (or the
   * reference of a pull or push), its `name` attribute the reference or ID the event is about,
   * plus the image's labels when its config has been read.
   */
  publishEvent(action: string, actor: string, name = actor): void {
    if (!this.deps.events) return;
    let id = actor;
    try {
      id = this.deps.store.resolve(actor).id;
    } catch {
      // a deleted image, or a reference no longer stored: the event carries no labels then
    }
    const labels = this.configCache.get(id)?.config?.Labels ?? {};
    this.deps.events("image", action, actor, { ...labels, name });
  }

  /** How many images are stored (`docker info`). */
  count(): number {
    return this.deps.store.images().length;
  }

  /** The image an image was built or committed on, if it is stored here (Docker's parent chain). */
  parentOf(id: string): string | undefined {
    return this.deps.store.get(id)?.parent;
  }

  /** Bytes of an image's layers; 0 for an image that is not stored. */
  size(id: string): number {
    const record = this.deps.store.get(id);
    return record ? this.imageSize(record) : 0;
  }

  private imageSize(record: ImageRecord): number {
    return record.layers.reduce((n, l) => n + l.size, 0);
  }

  private repoNames(id: string): { repoTags: string[]; repoDigests: string[] } {
    const refs = this.deps.store.referencesOf(id);
    return { repoTags: refs.tags.map(familiarKey), repoDigests: refs.digests.map(familiarKey) };
  }

  async details(nameOrId: string): Promise<ImageDetails> {
    const record = this.resolve(nameOrId);
    const config = await this.config(record.id);
    return { record, config, ...this.repoNames(record.id), size: this.imageSize(record) };
  }

  async list(filters: ImageFilters = {}): Promise<ImageSummary[]> {
    const { store } = this.deps;
    const images = store.images();
    const layerUse = new Map<string, number>();
    for (const img of images) for (const l of img.layers) layerUse.set(l.chainId, (layerUse.get(l.chainId) ?? 0) + 1);
    const createdOf = async (nameOrId: string) => unixSeconds((await this.config(this.resolve(nameOrId).id)).created);
    const since = filters.since !== undefined ? await createdOf(filters.since) : undefined;
    const before = filters.before !== undefined ? await createdOf(filters.before) : undefined;
    const until = filters.until !== undefined ? parseUntil(filters.until) : undefined;

    const parents = new Set(images.flatMap((img) => (img.parent ? [img.parent] : [])));
    const out: ImageSummary[] = [];
    for (const record of images) {
      const refs = store.referencesOf(record.id);
      // As Docker: an untagged image with children is an intermediate one (a build step), listed only with -a.
      if (!filters.all && refs.tags.length === 0 && refs.digests.length === 0 && parents.has(record.id)) continue;
      const config = await this.config(record.id);
      const created = unixSeconds(config.created);
      if (filters.dangling !== undefined && filters.dangling !== (refs.tags.length === 0)) continue;
      if (since !== undefined && !(created > since)) continue;
      if (before !== undefined && !(created < before)) continue;
      if (until !== undefined && !(created < until)) continue;
      const labels = (config.config?.Labels ?? {}) as Record<string, string>;
      if (filters.label && !filters.label.every((f) => matchesLabel(labels, f))) continue;
      let repoTags = refs.tags;
      let repoDigests = refs.digests;
      if (filters.reference && filters.reference.length > 0) {
        const patterns = filters.reference;
        repoTags = repoTags.filter((k) => patterns.some((p) => matchesReferencePattern(p, k)));
        repoDigests = repoDigests.filter((k) => patterns.some((p) => matchesReferencePattern(p, k)));
        if (repoTags.length === 0 && repoDigests.length === 0) continue;
      }
      const shared = record.layers.filter((l) => (layerUse.get(l.chainId) ?? 0) > 1).reduce((n, l) => n + l.size, 0);
      const users = this.deps.containersUsing?.(record.id) ?? [];
      out.push({
        id: record.id,
        parentId: record.parent ?? "",
        repoTags: repoTags.map(familiarKey),
        repoDigests: repoDigests.map(familiarKey),
        created,
        size: this.imageSize(record),
        sharedSize: shared,
        labels,
        containers: users.length,
      });
    }
    return out.sort((a, b) => b.created - a.created || a.id.localeCompare(b.id));
  }

  /** Stores a new image (or returns the existing one with that ID) and points `references` at it. */
  async registerImage(image: NewImage, references: ImageReference[]): Promise<{ id: string; replaced: Map<string, string | undefined> }> {
    const configInfo = await this.deps.content.writeBytes(image.configBytes);
    const id = configInfo.digest;
    const config = parseImageConfig(image.configBytes, `image ${id}`);
    const now = new Date().toISOString();
    const replaced = new Map<string, string | undefined>();
    await this.deps.store.update((draft) => {
      const existing = draft.images[id];
      const manifests = [...(existing?.manifests ?? [])];
      for (const m of image.manifests ?? []) {
        if (!manifests.some((x) => x.repository === m.repository && x.digest === m.digest)) manifests.push(m);
      }
      draft.images[id] = {
        id,
        layers: existing
          ? existing.layers.map((l, i) => ({ ...l, blob: l.blob ?? image.layers[i]?.blob, tarSize: l.tarSize ?? image.layers[i]?.tarSize }))
          : image.layers,
        manifests,
        created: config.created ?? now,
        stored: existing?.stored ?? now,
        lastTagTime: references.length > 0 ? now : existing?.lastTagTime,
        parent: existing?.parent ?? image.parent,
      };
      for (const ref of references) {
        const key = referenceKey(ref);
        replaced.set(key, draft.references[key]);
        draft.references[key] = id;
      }
    });
    return { id, replaced };
  }

  /** What docker-archive.ts works with: the stores, and the one way images are registered. */
  private archiveHost(): ArchiveImages {
    return { deps: this.deps, registerImage: (image, refs) => this.registerImage(image, refs) };
  }

  /** `docker save`: the named images as one docker-archive written into `out`. */
  async save(names: readonly string[], out: Writable): Promise<void> {
    await saveImages(this.archiveHost(), names, out);
    for (const id of new Set(names.map((n) => this.deps.store.resolve(n).id))) this.publishEvent("save", id);
  }

  /** `docker load`: the images of a docker-archive, stored and tagged. */
  async load(input: Readable, signal?: AbortSignal): Promise<LoadResult> {
    const result = await loadImages(this.archiveHost(), input, signal);
    for (const id of result.ids) this.publishEvent("load", id);
    return result;
  }

  /** `docker import`: a root filesystem tarball becomes a one-layer image; returns its ID. */
  async importRootfs(input: Readable, opts: ImportOptions = {}): Promise<string> {
    const id = await importRootfs(this.archiveHost(), input, opts);
    if (opts.reference) this.publishEvent("tag", id, familiarString(withDefaultTag(parseNormalizedReference(opts.reference))));
    this.publishEvent("import", id);
    return id;
  }

  /** `docker tag SOURCE TARGET` */
  async tag(source: string, target: string): Promise<void> {
    const record = this.resolve(source);
    const ref = parseNormalizedReference(target);
    if (ref.digest) throw invalidArgument("refusing to create a tag with a digest reference");
    const withTag = withDefaultTag(ref);
    await this.deps.store.update((draft) => {
      draft.references[referenceKey(withTag)] = record.id;
      const img = draft.images[record.id];
      if (img) img.lastTagTime = new Date().toISOString();
    });
    this.publishEvent("tag", record.id, familiarString(withTag));
  }

  /**
   * `docker rmi`: by reference, untags (and, when no tag of that repository remains, the
   * repository's digest references); the image itself goes when nothing refers to it any more.
   * By ID, removes every reference and the image, unless it is referenced in several
   * repositories (then only with force).
   */
  async remove(nameOrId: string, opts: { force?: boolean; noPrune?: boolean } = {}): Promise<DeleteRecord[]> {
    const { store } = this.deps;
    const found = store.resolve(nameOrId);
    const id = found.id;
    const short = id.slice(7, 19);
    const records: DeleteRecord[] = [];
    const users = this.deps.containersUsing?.(id) ?? [];
    const byReference = found.reference !== undefined && !isIdPrefix(id, nameOrId);
    const refs = store.referencesOf(id);
    const allKeys = [...refs.tags, ...refs.digests];

    if (byReference) {
      const ref = found.reference!;
      const key = referenceKey(ref);
      const repo = key.slice(0, key.length - (ref.digest ? ref.digest.length + 1 : (ref.tag ?? "latest").length + 1));
      const remaining = allKeys.filter((k) => k !== key);
      if (remaining.length === 0 && users.length > 0 && !opts.force) {
        const u = users[0]!;
        throw conflict(
          `conflict: unable to remove repository reference "${nameOrId}" (must force) - container ${u.id.slice(0, 12)} is using its referenced image ${short}`,
        );
      }
      const untag = [key];
      if (!ref.digest) {
        const sameRepoTagLeft = refs.tags.some((k) => k !== key && k.startsWith(repo + ":"));
        if (!sameRepoTagLeft) untag.push(...refs.digests.filter((k) => k.startsWith(repo + "@")));
      }
      await store.update((draft) => {
        for (const k of untag) delete draft.references[k];
      });
      for (const k of untag) {
        records.push({ Untagged: familiarKey(k) });
        this.publishEvent("untag", id);
      }
      if (allKeys.some((k) => !untag.includes(k))) return records;
      if (users.length > 0) return records; // forced untag of an image in use keeps the image
    } else {
      const repos = new Set(allKeys.map((k) => parseNormalizedReference(k)).map((r) => familiarName(r)));
      if (users.length > 0) {
        const running = users.find((u) => u.running);
        if (running)
          throw conflict(`conflict: unable to delete ${short} (cannot be forced) - image is being used by running container ${running.id.slice(0, 12)}`);
        if (!opts.force)
          throw conflict(`conflict: unable to delete ${short} (must be forced) - image is being used by stopped container ${users[0]!.id.slice(0, 12)}`);
      }
      if (repos.size > 1 && !opts.force) {
        throw conflict(`conflict: unable to delete ${short} (must be forced) - image is referenced in multiple repositories`);
      }
    }
    if (store.images().some((img) => img.parent === id)) {
      throw conflict(`conflict: unable to delete ${short} (cannot be forced) - image has dependent child images`);
    }
    const leftKeys = store.referencesOf(id);
    for (const k of [...leftKeys.tags, ...leftKeys.digests]) {
      records.push({ Untagged: familiarKey(k) });
      this.publishEvent("untag", id);
    }
    const parent = store.get(id)?.parent;
    records.push(...(await this.deleteImage(id)));
    if (!opts.noPrune) records.push(...(await this.deleteUntaggedParents(parent)));
    return records;
  }

  /** Docker's rmi/prune walk up the parents: untagged ones nothing else uses (a build's intermediate images) go too. */
  private async deleteUntaggedParents(parentId: string | undefined): Promise<DeleteRecord[]> {
    const { store } = this.deps;
    const out: DeleteRecord[] = [];
    let p = parentId;
    while (p) {
      const rec = store.get(p);
      if (!rec) break;
      const refs = store.referencesOf(p);
      if (refs.tags.length || refs.digests.length) break;
      if (store.images().some((img) => img.parent === p)) break;
      if ((this.deps.containersUsing?.(p) ?? []).length) break;
      const next = rec.parent;
      out.push(...(await this.deleteImage(p)));
      p = next;
    }
    return out;
  }

  /** Removes an image record, its references, and every layer and blob no other image needs. */
  private async deleteImage(id: string): Promise<DeleteRecord[]> {
    const { store, layers, content } = this.deps;
    const record = store.get(id);
    if (!record) return [];
    await store.update((draft) => {
      delete draft.images[id];
      for (const [k, v] of Object.entries(draft.references)) if (v === id) delete draft.references[k];
    });
    this.publishEvent("delete", id);
    this.configCache.delete(id);
    const out: DeleteRecord[] = [{ Deleted: id }];
    const remaining = store.images();
    const chainsInUse = new Set(remaining.flatMap((img) => img.layers.map((l) => l.chainId)));
    for (const l of [...record.layers].reverse()) {
      if (chainsInUse.has(l.chainId)) continue;
      await layers.remove(l.chainId);
      out.push({ Deleted: l.chainId });
    }
    const blobsInUse = new Set(remaining.flatMap((img) => blobsOf(img)));
    for (const digest of blobsOf(record)) if (!blobsInUse.has(digest)) await content.delete(digest);
    return out;
  }

  /** `docker image prune`: dangling images, or with `all` every image no container uses. */
  async prune(opts: { all?: boolean; until?: string; label?: string[] } = {}): Promise<{ deleted: DeleteRecord[]; spaceReclaimed: number }> {
    const candidates = await this.list({ until: opts.until, label: opts.label });
    const deleted: DeleteRecord[] = [];
    let spaceReclaimed = 0;
    for (const img of candidates) {
      const dangling = img.repoTags.length === 0;
      if (!opts.all && !dangling) continue;
      if (img.containers > 0) continue;
      if (this.deps.store.images().some((other) => other.parent === img.id)) continue;
      const before = await this.layerBytes();
      for (const k of [...img.repoTags, ...img.repoDigests]) {
        deleted.push({ Untagged: k });
        this.publishEvent("untag", img.id);
      }
      const parent = this.deps.store.get(img.id)?.parent;
      deleted.push(...(await this.deleteImage(img.id)));
      deleted.push(...(await this.deleteUntaggedParents(parent)));
      spaceReclaimed += before - (await this.layerBytes());
    }
    return { deleted, spaceReclaimed };
  }

  private async layerBytes(): Promise<number> {
    return (await this.deps.layers.list()).reduce((n, l) => n + l.size, 0);
  }

  async history(nameOrId: string): Promise<HistoryItem[]> {
    const record = this.resolve(nameOrId);
    const config = await this.config(record.id);
    const tags = this.repoNames(record.id).repoTags;
    const entries = config.history ?? [];
    const items: HistoryItem[] = [];
    let layerIndex = 0;
    for (const h of entries) {
      let size = 0;
      if (!h.empty_layer) {
        size = record.layers[layerIndex]?.size ?? 0;
        layerIndex += 1;
      }
      items.push({ id: "<missing>", created: unixSeconds(h.created), createdBy: h.created_by ?? "", tags: [], size, comment: h.comment ?? "" });
    }
    if (items.length === 0) {
      for (const l of record.layers) items.push({ id: "<missing>", created: unixSeconds(config.created), createdBy: "", tags: [], size: l.size, comment: "" });
    }
    items.reverse();
    if (items[0]) {
      items[0].id = record.id;
      items[0].tags = tags;
    }
    return items;
  }

  /** `docker system df` for images: unique layer bytes and per-image shared sizes. */
  async diskUsage(): Promise<{ layersSize: number; images: ImageSummary[] }> {
    const images = await this.list();
    const layersSize = await this.layerBytes();
    return { layersSize, images };
  }
}

function blobsOf(img: ImageRecord): string[] {
  return [img.id, ...img.layers.flatMap((l) => (l.blob ? [l.blob.digest] : [])), ...img.manifests.map((m) => m.digest)];
}

function isIdPrefix(id: string, given: string): boolean {
  const hex = given.startsWith("sha256:") ? given.slice(7) : given;
  return /^[a-f0-9]{1,64}$/.test(hex) && id.slice(7).startsWith(hex);
}

function matchesLabel(labels: Record<string, string>, filter: string): boolean {
  const eq = filter.indexOf("=");
  if (eq < 0) return filter in labels;
  return labels[filter.slice(0, eq)] === filter.slice(eq + 1);
}

/** Docker's `until`: a Unix timestamp, an RFC 3339 date, or a duration before now ("24h", "10m"). */
export function parseUntil(value: string): number {
  if (/^\d+(\.\d+)?$/.test(value)) return Math.floor(Number(value));
  const d = /^(\d+)(h|m|s)$/.exec(value);
  if (d) {
    const mult = d[2] === "h" ? 3600 : d[2] === "m" ? 60 : 1;
    return Math.floor(Date.now() / 1000) - Number(d[1]) * mult;
  }
  const t = Date.parse(value);
  if (Number.isNaN(t)) throw invalidArgument(`invalid filter 'until=${value}'`);
  return Math.floor(t / 1000);
}
