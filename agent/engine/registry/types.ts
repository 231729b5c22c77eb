/**
 * Wire types of the distribution API: descriptors, image manifests (Docker
 * schema2 and OCI) and indexes (Docker manifest lists and OCI image indexes),
 * with zod schemas that check what a registry sends before the engine uses it.
 *
 * The schemas are lenient where the specs allow extension (unknown fields are
 * kept out, not rejected) and strict where the engine relies on a value
 * (digests, sizes, media types of the config and layers).
 */
import { z } from "zod";

export const MediaType = {
  DockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  DockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  DockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  DockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
  DockerConfig: "application/vnd.docker.container.image.v1+json",
  DockerLayer: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  DockerForeignLayer: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  OciManifest: "application/vnd.oci.image.manifest.v1+json",
  OciIndex: "application/vnd.oci.image.index.v1+json",
  OciConfig: "application/vnd.oci.image.config.v1+json",
  OciLayer: "application/vnd.oci.image.layer.v1.tar",
  OciLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  OciLayerZstd: "application/vnd.oci.image.layer.v1.tar+zstd",
} as const;

/** Manifest media types a pull accepts, in the Accept header of every manifest request. */
export const MANIFEST_ACCEPT = [MediaType.DockerManifest, MediaType.DockerManifestList, MediaType.OciManifest, MediaType.OciIndex];

export function isIndexMediaType(mt: string): boolean {
  return mt === MediaType.DockerManifestList || mt === MediaType.OciIndex;
}

export function isManifestMediaType(mt: string): boolean {
  return mt === MediaType.DockerManifest || mt === MediaType.OciManifest;
}

/** Registry credentials as decoded from Docker's X-Registry-Auth header. */
export interface Credentials {
  username?: string;
  password?: string;
  /** A refresh token from an earlier login; exchanged at the token realm (grant_type=refresh_token). */
  identitytoken?: string;
  /** A bearer token sent to the registry as is. */
  registrytoken?: string;
}

/** Finds the credentials for a registry domain ("docker.io", "127.0.0.1:5000"). */
export type CredentialLookup = (domain: string) => Credentials | undefined;

/** A repository in a registry: the domain as parsed from a reference and the repository path. */
export interface RepositoryTarget {
  domain: string;
  path: string;
}

export const digestSchema = z.string().regex(/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/, "invalid digest");

export const platformSchema = z.object({
  architecture: z.string(),
  os: z.string(),
  "os.version": z.string().optional(),
  "os.features": z.array(z.string()).optional(),
  variant: z.string().optional(),
  features: z.array(z.string()).optional(),
});

export const descriptorSchema = z.object({
  mediaType: z.string(),
  digest: digestSchema,
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: platformSchema.optional(),
  artifactType: z.string().optional(),
});

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string; "os.version"?: string; "os.features"?: string[]; features?: string[] };
  artifactType?: string;
}

export const imageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export const imageIndexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  subject: descriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** What resolveManifest found: the platform manifest, and the index it was picked from, if any. */
export interface ResolvedManifest {
  /** Base URL the manifest came from (a mirror or the origin): pass it back to openBlob. */
  endpoint: string;
  /** Digest of the platform manifest (computed from its bytes). */
  digest: string;
  mediaType: string;
  bytes: Buffer;
  manifest: ImageManifest;
  /** Digest of the index / manifest list when the reference named one. */
  indexDigest?: string;
  indexBytes?: Buffer;
  indexMediaType?: string;
}

/** The `{"errors":[…]}` body of a failed registry request. */
export const registryErrorsSchema = z.object({
  errors: z.array(z.object({ code: z.string().optional(), message: z.string().optional(), detail: z.unknown().optional() })),
});

export type RegistryErrorEntry = z.infer<typeof registryErrorsSchema>["errors"][number];
