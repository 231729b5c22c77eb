import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { basename, join } from "node:path";
import { z } from "zod";
import { conflict, invalidArgument, notFound } from "../errors.ts";
import { tempPrefixOf, writeFileAtomic } from "../fs-util.ts";
import { familiarString, fullName, parseNormalizedReference, withDefaultTag, type ImageReference } from "../../../shared/reference.ts";
import { settled } from "../../../shared/best-effort.ts";

/**
 * Image metadata and references (repository:tag and repository@digest → image ID),
 * kept in one JSON document that is replaced atomically (temp file, fsync, rename),
 * so a crash leaves either the old or the new state and never half of one: an image
 * becomes visible together with its first reference, after its layers and blobs exist.
 *
 * The image ID is the digest of the image's config blob (as in Docker).
 */

const DescriptorSchema = z.object({
  mediaType: z.string(),
  digest: z.string(),
  size: z.number(),
});

const ImageLayerRecordSchema = z.object({
  diffId: z.string(),
  chainId: z.string(),
  /** A blob holding this layer's tar (compressed or not), when the content store has one. */
  blob: DescriptorSchema.optional(),
  /** Bytes of the unpacked layer. */
  size: z.number(),
  /** Length of the uncompressed layer tar (needed to write it into an archive without spooling). */
  tarSize: z.number().optional(),
});

const ImageRecordSchema = z.object({
  id: z.string(),
  layers: z.array(ImageLayerRecordSchema),
  /** Manifest and config blobs this image keeps alive in the content store. */
  manifests: z.array(z.object({ repository: z.string(), digest: z.string(), mediaType: z.string() })).default([]),
  /** Creation time from the config. */
  created: z.string(),
  /** When the image was stored locally (pull, load, build). */
  stored: z.string(),
  lastTagTime: z.string().optional(),
  /** Image this one was built or committed on top of. */
  parent: z.string().optional(),
});

const StoreFileSchema = z.object({
  version: z.literal(1),
  images: z.record(z.string(), ImageRecordSchema),
  /** Full reference ("docker.io/library/busybox:latest" or "…@sha256:…") → image ID. */
  references: z.record(z.string(), z.string()),
});

export type ImageLayerRecord = z.infer<typeof ImageLayerRecordSchema>;
export type ImageRecord = z.infer<typeof ImageRecordSchema>;
type StoreFile = z.infer<typeof StoreFileSchema>;

/** A reference as a map key: "docker.io/library/busybox:latest" or "docker.io/library/busybox@sha256:…". */
export function referenceKey(ref: ImageReference): string {
  if (ref.digest) return `${fullName(ref)}@${ref.digest}`;
  return `${fullName(ref)}:${ref.tag ?? "latest"}`;
}

/** The familiar form of a stored reference key ("busybox:latest"). */
export function familiarKey(key: string): string {
  return familiarString(parseNormalizedReference(key));
}

export class ImageStore {
  private readonly file: string;
  private state: StoreFile = { version: 1, images: {}, references: {} };
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly root: string) {
    this.file = join(root, "images.json");
  }

  async load(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
      throw e;
    }
    this.state = StoreFileSchema.parse(JSON.parse(text));
  }

  /** Deletes temp files of writes a crash interrupted (before their rename). Call before the first write. @returns how many. */
  async removeStaleTemps(): Promise<number> {
    // writeFileAtomic's temp names; `NAME.tmp-…` were those of earlier versions.
    const prefixes = [tempPrefixOf(this.file), `${basename(this.file)}.tmp-`];
    let n = 0;
    for (const name of await readdir(this.root).catch(() => [] as string[])) {
      if (!prefixes.some((p) => name.startsWith(p))) continue;
      await rm(join(this.root, name), { force: true });
      n++;
    }
    return n;
  }

  /** Runs a mutation with exclusive access and persists the result; a failed mutation changes nothing. */
  update<T>(fn: (draft: StoreFile) => T): Promise<T> {
    const run = async () => {
      const draft = structuredClone(this.state);
      const result = fn(draft);
      await this.persist(draft);
      this.state = draft;
      return result;
    };
    const p = this.chain.then(run, run);
    this.chain = settled(p); // p's failure goes to this caller
    return p;
  }

  private async persist(next: StoreFile): Promise<void> {
    await writeFileAtomic(this.file, JSON.stringify(next));
  }

  images(): ImageRecord[] {
    return Object.values(this.state.images);
  }

  get(id: string): ImageRecord | undefined {
    return this.state.images[id];
  }

  /** All reference keys pointing at an image, tags first then digests, sorted. */
  referencesOf(id: string): { tags: string[]; digests: string[] } {
    const tags: string[] = [];
    const digests: string[] = [];
    for (const [key, target] of Object.entries(this.state.references)) {
      if (target !== id) continue;
      (key.includes("@") ? digests : tags).push(key);
    }
    return { tags: tags.sort(), digests: digests.sort() };
  }

  referenceTarget(key: string): string | undefined {
    return this.state.references[key];
  }

  allReferences(): Array<[string, string]> {
    return Object.entries(this.state.references);
  }

  /**
   * Finds an image the way Docker does: a full image ID or `sha256:` prefix, a
   * reference (tag added if missing, or by digest), then a unique short ID prefix.
   * @throws NotFound "No such image: NAME"; Conflict when an ID prefix is ambiguous
   */
  resolve(nameOrId: string): { id: string; reference?: ImageReference } {
    const found = this.lookup(nameOrId);
    if (!found) throw notFound(`No such image: ${nameOrId}`);
    return found;
  }

  lookup(nameOrId: string): { id: string; reference?: ImageReference } | undefined {
    if (nameOrId.startsWith("sha256:")) {
      const id = this.byIdPrefix(nameOrId.slice(7), nameOrId);
      return id ? { id } : undefined;
    }
    let ref: ImageReference | undefined;
    try {
      ref = parseNormalizedReference(nameOrId);
    } catch {
      ref = undefined;
    }
    if (ref) {
      const withTag = withDefaultTag(ref);
      const key = referenceKey(withTag);
      const id = this.state.references[key];
      if (id) return { id, reference: withTag };
      if (ref.digest && !ref.tag) {
        // A digest names the content: any image whose repo digest matches, even under another tag.
        const viaDigest = this.state.references[`${fullName(ref)}@${ref.digest}`];
        if (viaDigest) return { id: viaDigest, reference: ref };
      }
    }
    if (/^[a-f0-9]{1,64}$/.test(nameOrId)) {
      const id = this.byIdPrefix(nameOrId, nameOrId);
      if (id) return { id };
    }
    return undefined;
  }

  private byIdPrefix(hexPrefix: string, asGiven: string): string | undefined {
    if (!/^[a-f0-9]{1,64}$/.test(hexPrefix)) throw invalidArgument(`invalid image ID: ${asGiven}`);
    const matches = Object.keys(this.state.images).filter((id) => id.slice(7).startsWith(hexPrefix));
    if (matches.length > 1) throw conflict(`multiple IDs found with provided prefix: ${asGiven}`);
    return matches[0];
  }
}
