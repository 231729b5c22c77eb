/**
 * What a manifest document may be: its media type (its own field, else the Content-Type,
 * else its shape), and the documents refused before any use: ambiguous ones
 * (CVE-2021-41190) and Docker schema 1. Pure functions, used by the registry client.
 */
import { dataLoss, notImplemented, type EngineError } from "../errors.ts";
import { isIndexMediaType, MediaType } from "./types.ts";

/** Media type of a manifest body: its own mediaType field, else the Content-Type, else its shape. */
export function manifestMediaType(body: Record<string, unknown>, contentType: string | null): string {
  if (typeof body["mediaType"] === "string" && body["mediaType"] !== "") return body["mediaType"];
  const ct = contentType?.split(";")[0]?.trim();
  if (ct && ct !== "application/json" && ct !== "text/plain" && ct !== "application/octet-stream") return ct;
  if (Array.isArray(body["manifests"])) return MediaType.OciIndex;
  return MediaType.OciManifest;
}

/**
 * Refuses a document that could be read both as an image manifest and as an index
 * (CVE-2021-41190): its meaning must not depend on the Content-Type a registry sends.
 * As containerd's validateMediaType and distribution's unmarshallers: a document with
 * both `manifests` and `layers` (or `config`) is refused whatever it claims to be; a
 * manifest media type with `manifests`, or an index media type with `layers` or
 * `config`, too.
 * @throws EngineError(DataLoss) "invalid manifest for <name>: …"
 */
export function refuseAmbiguousManifest(body: Record<string, unknown>, mediaType: string, name: string): void {
  const has = (k: string) => Object.prototype.hasOwnProperty.call(body, k) && body[k] !== undefined && body[k] !== null;
  const imageFields = ["layers", "config"].filter(has);
  const why =
    has("manifests") && imageFields.length > 0
      ? `it has both "manifests" and "${imageFields.join('" and "')}"`
      : isIndexMediaType(mediaType) && imageFields.length > 0
        ? `an index (${mediaType}) must not have "${imageFields.join('" or "')}"`
        : !isIndexMediaType(mediaType) && has("manifests")
          ? `an image manifest (${mediaType}) must not have "manifests"`
          : undefined;
  if (why) throw dataLoss(`invalid manifest for ${name}: ambiguous document refused: ${why} (CVE-2021-41190)`);
}

export function schema1Error(name: string): EngineError {
  return notImplemented(
    `Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. Suggest the author of ${name} to upgrade the image to the OCI Format or Docker Image manifest v2, schema 2. More information at https://docs.docker.com/go/deprecated-image-specs/`,
  );
}
