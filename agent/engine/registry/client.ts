/**
 * A client for the distribution API (OCI distribution spec, Docker registry v2):
 * what pull, push, login and search need from a registry.
 *
 * Endpoints. A domain from a reference maps to one origin: "docker.io" →
 * https://registry-1.docker.io; anything else → https://DOMAIN, or
 * http://DOMAIN for insecure registries (the configured ones, "localhost" and
 * 127.0.0.0/8, which Docker also treats as insecure). For docker.io, the
 * configured mirrors are tried first for manifests, in order, then the origin;
 * blobs come from the endpoint the manifest came from (ResolvedManifest.endpoint).
 * Credentials are sent to the origin only, never to mirrors.
 *
 * Authentication: see auth.ts. Each operation names the scopes it needs; a
 * 401 teaches the client the registry's scheme and is answered once.
 *
 * Retries: 5xx, 429, connection resets / timeouts and stalls (a registry that
 * makes no progress for the stall timeout, see stall.ts) are retried with
 * exponential backoff and jitter, before any body is handed to the caller.
 * Other 4xx are final. A blob stream that breaks after openBlob returned is
 * the caller's to resume, with `offset` (a Range request).
 *
 * Verification: manifests are read into memory with a 4 MiB cap, their digest
 * is computed from the bytes (never taken from a header), and checked against
 * the reference's digest or the index entry's. Blobs are streamed raw: the
 * caller verifies their digest while storing them (content store contract).
 *
 * Cancellation: every method takes an AbortSignal (or none); aborting fails
 * the call with EngineError(Canceled) and releases its connections.
 */
import { createHash } from "node:crypto";
import { pipeline, Readable, Transform, type TransformCallback } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import type { Logger } from "pino";
import { canceled, dataLoss, EngineError, invalidArgument, notFound, notImplemented, unauthorized } from "../errors.ts";
import { familiarName, familiarString, type ImageReference } from "../../../shared/reference.ts";
import { Authenticator, CATALOG_SCOPE, fetchToken, repositoryScope, type Authorization } from "./auth.ts";
import {
  DEFAULT_STALL_TIMEOUT_MS,
  discard,
  formatRegistryError,
  isRetryableStatus,
  kindForStatus,
  fetchFailure,
  readLimited,
  readRegistryErrors,
  redactUrl,
  retryAfterMs,
  RetryableError,
  send,
  throwIfAborted,
  withRetry,
  type HttpResponse,
} from "./http.ts";
import { manifestMediaType, refuseAmbiguousManifest, schema1Error } from "./manifest-doc.ts";
import { formatPlatform, platformFromNode, selectPlatformManifest, type Platform } from "./platform.ts";
import {
  descriptorSchema,
  imageIndexSchema,
  imageManifestSchema,
  isIndexMediaType,
  MANIFEST_ACCEPT,
  MediaType,
  type Credentials,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
  type RepositoryTarget,
  type ResolvedManifest,
} from "./types.ts";

export type { Credentials, CredentialLookup, Descriptor, ImageManifest, ImageIndex, RepositoryTarget, ResolvedManifest } from "./types.ts";
export type { Platform } from "./platform.ts";
export { refuseAmbiguousManifest } from "./manifest-doc.ts";

/** Manifests and indexes larger than this are refused (as containerd and Docker do). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Default PATCH size for blob uploads. */
export const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;

export interface RegistryClientOptions {
  /** "host[:port]" of registries reached over plain http. "localhost" and 127.0.0.0/8 always are. */
  insecureRegistries?: string[];
  /** Base URLs of Docker Hub mirrors ("https://mirror.example.com"), tried first for docker.io manifests. */
  mirrors?: string[];
  /** The platform to pick from indexes; this node's by default. */
  platform?: Platform;
  userAgent?: string;
  logger?: Logger;
  /** Attempts in total (1 = no retry) and the first backoff delay. Default 4 attempts, 200 ms. */
  retry?: { attempts: number; baseDelayMs: number };
  /** A request or body without progress for this long fails (RegistryStallError). Default 30 s. */
  stallTimeoutMs?: number;
}

const DOCKER_HUB_DOMAINS = new Set(["docker.io", "index.docker.io", "registry-1.docker.io"]);
const DOCKER_HUB_ORIGIN = "https://registry-1.docker.io";

function hostOf(domain: string): string {
  if (domain.startsWith("[")) return domain.slice(0, domain.indexOf("]") + 1);
  const colon = domain.lastIndexOf(":");
  return colon > -1 ? domain.slice(0, colon) : domain;
}

/** Docker's default insecure set: 127.0.0.0/8 (and "localhost", which resolves there). */
function isLoopbackHost(host: string): boolean {
  if (host === "localhost") return true;
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return m !== null && m[1] === "127" && m.slice(1).every((o) => Number(o) <= 255);
}

/**
 * The origin (scheme://host[:port]) of a registry domain: "docker.io" →
 * https://registry-1.docker.io; insecure registries, "localhost" and
 * 127.0.0.0/8 → http://…; everything else https://….
 */
export function registryBaseUrl(domain: string, opts: Pick<RegistryClientOptions, "insecureRegistries"> = {}): string {
  if (DOCKER_HUB_DOMAINS.has(domain)) return DOCKER_HUB_ORIGIN;
  const insecure = (opts.insecureRegistries ?? []).some((r) => r.replace(/^https?:\/\//, "").replace(/\/+$/, "") === domain);
  return `${insecure || isLoopbackHost(hostOf(domain)) ? "http" : "https"}://${domain}`;
}

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

/** Digest of `bytes` with the algorithm `like` uses ("sha256:…" or "sha512:…"). */
function digestLike(like: string, bytes: Uint8Array): string {
  const algo = like.slice(0, like.indexOf(":"));
  if (algo !== "sha256" && algo !== "sha384" && algo !== "sha512") throw invalidArgument(`unsupported digest algorithm: ${algo}`);
  return `${algo}:${createHash(algo).update(bytes).digest("hex")}`;
}

/** Drops the first `n` bytes of a stream (a registry that ignored our Range header). */
class SkipBytes extends Transform {
  constructor(private remaining: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.remaining >= chunk.length) {
      this.remaining -= chunk.length;
      cb();
    } else {
      const rest = chunk.subarray(this.remaining);
      this.remaining = 0;
      cb(null, rest);
    }
  }
}

/** Next-page URL from a Link header: `</v2/_catalog?last=b&n=2>; rel="next"`. */
function nextLink(res: Response, base: string): string | undefined {
  const link = res.headers.get("link");
  if (!link) return undefined;
  const m = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
  return m?.[1] ? new URL(m[1], base).toString() : undefined;
}

interface RequestSpec {
  method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  url: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  scopes: string[];
  creds?: Credentials;
  signal?: AbortSignal;
}

export class RegistryClient {
  private readonly insecure: string[];
  private readonly mirrors: string[];
  private readonly platform: Platform;
  private readonly userAgent: string;
  private readonly logger?: Logger;
  private readonly retry: { attempts: number; baseDelayMs: number };
  private readonly stallTimeoutMs: number;
  private readonly auth: Authenticator;

  constructor(opts: RegistryClientOptions = {}) {
    this.insecure = opts.insecureRegistries ?? [];
    this.mirrors = (opts.mirrors ?? []).map((m) => m.replace(/\/+$/, ""));
    this.platform = opts.platform ?? platformFromNode();
    this.userAgent = opts.userAgent ?? "berth/0.1.0";
    this.logger = opts.logger;
    this.retry = opts.retry ?? { attempts: 4, baseDelayMs: 200 };
    this.stallTimeoutMs = opts.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    this.auth = new Authenticator({ userAgent: this.userAgent, retry: this.retry, logger: this.logger, stallTimeoutMs: this.stallTimeoutMs });
  }

  /**
   * Lets this client use plain HTTP (or unverified TLS: see baseUrl) for `domain` from now on,
   * as if it were in the agent's insecure-registries: the console's registry settings say so.
   */
  allowInsecure(domain: string): void {
    if (!this.insecure.includes(domain)) this.insecure.push(domain);
  }

  /** The origin for a domain under this client's insecure-registry settings. */
  baseUrl(domain: string): string {
    return registryBaseUrl(domain, { insecureRegistries: this.insecure });
  }

  // --- pull ------------------------------------------------------------------

  /**
   * Fetches the manifest a reference names (its digest, else its tag, else
   * "latest"); an index or manifest list is resolved to this client's platform
   * and that manifest fetched and checked against the index entry.
   * For docker.io, mirrors are tried first; any mirror failure falls through to
   * the next endpoint.
   * @throws EngineError NotFound ("manifest for busybox:nope not found: manifest unknown: manifest unknown",
   *   "no matching manifest for linux/amd64 in the manifest list entries"), Unauthorized ("pull access denied for …"),
   *   DataLoss (digest mismatch, "manifest too large"), NotImplemented (schema 1), Unavailable, Canceled
   */
  async resolveManifest(ref: ImageReference, creds?: Credentials, signal?: AbortSignal): Promise<ResolvedManifest> {
    const origin = this.baseUrl(ref.domain);
    const endpoints = DOCKER_HUB_DOMAINS.has(ref.domain) ? [...this.mirrors, origin] : [origin];
    let lastError: unknown;
    for (const endpoint of endpoints) {
      const isMirror = endpoint !== origin;
      try {
        return await this.resolveAt(endpoint, ref, isMirror ? undefined : creds, signal);
      } catch (e) {
        if (!isMirror || signal?.aborted || (e instanceof EngineError && e.kind === "Canceled")) throw e;
        this.logger?.warn({ mirror: endpoint, err: e }, "mirror failed, trying the next endpoint");
        lastError = e;
      }
    }
    throw lastError;
  }

  /**
   * What the registry has under a reference, without pulling (Docker's
   * `GET /distribution/{name}/json`): the descriptor of the document the reference
   * names (an index or a manifest) and the platforms it serves (the index's entries, or
   * the platform in a single manifest's config).
   * @throws as resolveManifest
   */
  async inspectDistribution(ref: ImageReference, creds?: Credentials, signal?: AbortSignal): Promise<{ descriptor: Descriptor; platforms: Platform[] }> {
    const origin = this.baseUrl(ref.domain);
    const endpoints = DOCKER_HUB_DOMAINS.has(ref.domain) ? [...this.mirrors, origin] : [origin];
    let lastError: unknown;
    for (const endpoint of endpoints) {
      const isMirror = endpoint !== origin;
      try {
        const target = { domain: ref.domain, path: ref.path };
        const top = await this.fetchManifest(endpoint, target, ref.digest ?? ref.tag ?? "latest", ref, isMirror ? undefined : creds, signal);
        const descriptor: Descriptor = { mediaType: top.mediaType, digest: top.digest, size: top.bytes.length };
        if (isIndexMediaType(top.mediaType)) {
          const parsed = imageIndexSchema.safeParse(top.body);
          if (!parsed.success) throw dataLoss(`invalid manifest list for ${familiarString(ref)}: ${parsed.error.issues[0]?.message ?? "malformed"}`);
          return { descriptor, platforms: parsed.data.manifests.flatMap((m) => (m.platform ? [m.platform as Platform] : [])) };
        }
        const manifest = this.parseManifest(top.body, ref);
        const { stream } = await this.openBlob(endpoint, target, manifest.config, isMirror ? undefined : creds, signal);
        const chunks: Buffer[] = [];
        for await (const c of stream) chunks.push(c as Buffer);
        const config = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { architecture?: string; os?: string; variant?: string; "os.version"?: string };
        const platform = {
          architecture: config.architecture ?? "",
          os: config.os ?? "",
          ...(config.variant ? { variant: config.variant } : {}),
          ...(config["os.version"] ? { "os.version": config["os.version"] } : {}),
        } as Platform;
        return { descriptor, platforms: [platform] };
      } catch (e) {
        if (!isMirror || signal?.aborted || (e instanceof EngineError && e.kind === "Canceled")) throw e;
        this.logger?.warn({ mirror: endpoint, err: e }, "mirror failed, trying the next endpoint");
        lastError = e;
      }
    }
    throw lastError;
  }

  private async resolveAt(endpoint: string, ref: ImageReference, creds: Credentials | undefined, signal?: AbortSignal): Promise<ResolvedManifest> {
    const target = { domain: ref.domain, path: ref.path };
    const reference = ref.digest ?? ref.tag ?? "latest";
    const top = await this.fetchManifest(endpoint, target, reference, ref, creds, signal);
    if (!isIndexMediaType(top.mediaType)) {
      return { endpoint, digest: top.digest, mediaType: top.mediaType, bytes: top.bytes, manifest: this.parseManifest(top.body, ref) };
    }
    const parsedIndex = imageIndexSchema.safeParse(top.body);
    if (!parsedIndex.success) throw dataLoss(`invalid manifest list for ${familiarString(ref)}: ${parsedIndex.error.issues[0]?.message ?? "malformed"}`);
    const index: ImageIndex = parsedIndex.data;
    const entry = selectPlatformManifest(index.manifests, this.platform);
    const childRef: ImageReference = { domain: ref.domain, path: ref.path, digest: entry.digest };
    const child = await this.fetchManifest(endpoint, target, entry.digest, childRef, creds, signal);
    if (child.bytes.length !== entry.size) {
      throw dataLoss(`manifest ${entry.digest} has ${child.bytes.length} bytes, the manifest list says ${entry.size}`);
    }
    if (isIndexMediaType(child.mediaType)) {
      throw notImplemented(`nested manifest list for ${formatPlatform(this.platform)} in ${familiarString(ref)} is not supported`);
    }
    return {
      endpoint,
      digest: child.digest,
      mediaType: child.mediaType,
      bytes: child.bytes,
      manifest: this.parseManifest(child.body, ref),
      indexDigest: top.digest,
      indexBytes: top.bytes,
      indexMediaType: top.mediaType,
    };
  }

  private parseManifest(body: Record<string, unknown>, ref: ImageReference): ImageManifest {
    const parsed = imageManifestSchema.safeParse(body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw dataLoss(`invalid manifest for ${familiarString(ref)}: ${issue ? `${issue.path.join(".")}: ${issue.message}` : "malformed"}`);
    }
    return parsed.data;
  }

  /**
   * GETs one manifest by tag or digest, with the 4 MiB cap, and checks its
   * digest when `reference` is one.
   */
  private async fetchManifest(
    endpoint: string,
    target: RepositoryTarget,
    reference: string,
    ref: ImageReference,
    creds: Credentials | undefined,
    signal?: AbortSignal,
  ): Promise<{ bytes: Buffer; digest: string; mediaType: string; body: Record<string, unknown> }> {
    const url = `${endpoint}/v2/${target.path}/manifests/${reference}`;
    const what = `GET ${url}`;
    const { bytes, contentType } = await this.retrying(what, signal, async () => {
      const { res } = await this.request({
        method: "GET",
        url,
        headers: { accept: MANIFEST_ACCEPT.join(", ") },
        scopes: [repositoryScope(target.path, ["pull"])],
        creds,
        signal,
      });
      if (res.status === 200) {
        return { bytes: await readLimited(res, MAX_MANIFEST_BYTES, "manifest"), contentType: res.headers.get("content-type") };
      }
      throw await this.pullError(res, what, ref);
    });
    const isDigestRef = reference.includes(":");
    const digest = isDigestRef ? digestLike(reference, bytes) : sha256(bytes);
    if (isDigestRef && digest !== reference) {
      throw dataLoss(`manifest verification failed for digest ${reference}: the registry sent content with digest ${digest}`);
    }
    let body: unknown;
    try {
      body = JSON.parse(bytes.toString("utf8"));
    } catch {
      throw dataLoss(`invalid manifest for ${familiarString(ref)}: not JSON`);
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) throw dataLoss(`invalid manifest for ${familiarString(ref)}: not a JSON object`);
    const obj = body as Record<string, unknown>;
    const mediaType = manifestMediaType(obj, contentType);
    if (obj["schemaVersion"] === 1 || mediaType === MediaType.DockerSchema1 || mediaType === MediaType.DockerSchema1Signed) {
      throw schema1Error(`${ref.domain}/${ref.path}`);
    }
    refuseAmbiguousManifest(obj, mediaType, familiarString(ref));
    // A digest computed by the engine is always sha256; keep reference digests of other algorithms as given.
    return { bytes, digest: isDigestRef ? reference : digest, mediaType, body: obj };
  }

  /** Docker's wording for a failed pull request (distribution/errors.go). */
  private async pullError(res: Response, what: string, ref: ImageReference): Promise<Error> {
    if (isRetryableStatus(res.status)) return this.retryable(res, what);
    const errors = await readRegistryErrors(res);
    const first = errors[0];
    const cause = first ? formatRegistryError(first) : `${res.status} ${res.statusText}`;
    const code = first?.code ?? "";
    if (res.status === 404 || code === "MANIFEST_UNKNOWN" || code === "NAME_UNKNOWN") {
      if (code === "NAME_UNKNOWN") return notFound(`repository ${familiarName(ref)} not found: ${cause}`);
      return notFound(`manifest for ${familiarString(ref)} not found: ${first ? cause : "manifest unknown: manifest unknown"}`);
    }
    if (res.status === 401 || res.status === 403 || code === "DENIED" || code === "UNAUTHORIZED") {
      return unauthorized(
        `pull access denied for ${familiarName(ref)}, repository does not exist or may require 'docker login': ${first ? cause : "denied: requested access to the resource is denied"}`,
      );
    }
    return new EngineError(kindForStatus(res.status), `${redactUrl(what)}: ${cause}`);
  }

  /**
   * Opens a blob for reading from `endpoint` (ResolvedManifest.endpoint).
   * With `offset`, asks for the rest of the blob (Range) so a broken download
   * can resume; if the registry ignores the range, the skipped bytes are
   * dropped here, so the stream always starts at `offset`. The stream is raw:
   * the caller verifies the digest. The caller must consume or destroy it.
   * @returns the stream and the number of bytes it will deliver
   */
  async openBlob(
    endpoint: string,
    target: RepositoryTarget,
    desc: Descriptor,
    creds?: Credentials,
    signal?: AbortSignal,
    offset = 0,
  ): Promise<{ stream: Readable; size: number }> {
    if (offset < 0 || offset > desc.size) throw invalidArgument(`offset ${offset} outside blob ${desc.digest} of ${desc.size} bytes`);
    const base = endpoint.replace(/\/+$/, "");
    const useCreds = base === this.baseUrl(target.domain) ? creds : undefined;
    const url = `${base}/v2/${target.path}/blobs/${desc.digest}`;
    const what = `GET ${url}`;
    return this.retrying(what, signal, async () => {
      const headers: Record<string, string> = {};
      if (offset > 0) headers["range"] = `bytes=${offset}-`;
      const { res } = await this.request({ method: "GET", url, headers, scopes: [repositoryScope(target.path, ["pull"])], creds: useCreds, signal });
      if (res.status !== 200 && res.status !== 206) {
        if (isRetryableStatus(res.status)) throw await this.retryable(res, what);
        const errors = await readRegistryErrors(res);
        const cause = errors[0] ? formatRegistryError(errors[0]) : `${res.status} ${res.statusText}`;
        const name = `${target.domain}/${target.path}`;
        if (res.status === 404) throw notFound(`blob ${desc.digest} not found in ${name}: ${cause}`);
        if (res.status === 401 || res.status === 403) throw unauthorized(`pull access denied for ${name}: ${cause}`);
        throw new EngineError(kindForStatus(res.status), `${redactUrl(url)}: ${cause}`);
      }
      if (!res.body) throw dataLoss(`empty response for blob ${desc.digest}`);
      let skip = 0;
      if (res.status === 206) {
        const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
        const start = m ? Number(m[1]) : NaN;
        if (!m || start > offset) {
          await discard(res);
          throw dataLoss(`registry answered blob ${desc.digest} with range "${res.headers.get("content-range")}", asked for bytes ${offset}-`);
        }
        skip = offset - start;
      } else {
        skip = offset;
        const declared = res.headers.get("content-length");
        if (declared !== null && !res.headers.get("content-encoding") && Number(declared) !== desc.size) {
          await discard(res);
          throw dataLoss(`blob ${desc.digest} is ${declared} bytes at the registry, the manifest says ${desc.size}`);
        }
      }
      const raw = truncationAware(Readable.fromWeb(res.body as unknown as NodeReadableStream<Uint8Array>), desc, offset);
      if (skip === 0) return { stream: raw, size: desc.size - offset };
      // pipeline: an error on either side, or the caller destroying the result, closes the connection
      const skipper = new SkipBytes(skip);
      pipeline(raw, skipper, () => undefined);
      return { stream: skipper, size: desc.size - offset };
    });
  }

  // --- push ------------------------------------------------------------------

  /**
   * Whether the repository has the blob (HEAD).
   * @throws EngineError Unauthorized, Unavailable
   */
  async hasBlob(target: RepositoryTarget, digest: string, creds?: Credentials, signal?: AbortSignal): Promise<boolean> {
    const url = `${this.baseUrl(target.domain)}/v2/${target.path}/blobs/${digest}`;
    return this.retrying(`HEAD ${url}`, signal, async () => {
      const { res } = await this.request({ method: "HEAD", url, scopes: [repositoryScope(target.path, ["pull"])], creds, signal });
      await discard(res);
      if (res.status === 200) return true;
      if (res.status === 404) return false;
      throw await this.generalError(res, `HEAD ${url}`);
    });
  }

  /**
   * Asks the registry to link a blob from `fromPath` (same registry) into
   * `target` without uploading it (POST ?mount=&from=). Needs push on the
   * target and pull on the source.
   * @returns true when mounted (201); false when the registry started an
   *   upload instead (202) — that upload is cancelled, the caller uploads.
   */
  async mountBlob(target: RepositoryTarget, digest: string, fromPath: string, creds?: Credentials, signal?: AbortSignal): Promise<boolean> {
    const base = this.baseUrl(target.domain);
    const url = `${base}/v2/${target.path}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(fromPath)}`;
    const what = `POST ${base}/v2/${target.path}/blobs/uploads/`;
    const scopes = [repositoryScope(target.path, ["pull", "push"]), repositoryScope(fromPath, ["pull"])];
    return this.retrying(what, signal, async () => {
      const r = await this.request({ method: "POST", url, scopes, creds, signal });
      if (r.res.status !== 201 && r.res.status !== 202) throw await this.generalError(r.res, what);
      await discard(r.res);
      if (r.res.status === 201) return true;
      {
        const location = r.res.headers.get("location");
        if (location) await this.cancelUpload(new URL(location, r.url).toString(), scopes, creds);
        return false;
      }
    });
  }

  /**
   * Uploads a blob: POST to start, PATCH in chunks (Content-Range), PUT
   * ?digest= to commit. The bytes are hashed on the way; a size or digest that
   * does not match cancels the upload. On a retryable failure the whole upload
   * starts over, calling `open` again; on any failure the upload session is
   * cancelled.
   * @param open returns a fresh stream of the blob's bytes on each call; the client destroys it
   * @throws EngineError DataLoss (size/digest mismatch), Unauthorized, InvalidArgument, Unavailable, Canceled
   */
  async uploadBlob(
    target: RepositoryTarget,
    digest: string,
    size: number,
    open: () => Readable,
    creds?: Credentials,
    opts: { chunkSize?: number; onProgress?(sent: number): void; signal?: AbortSignal } = {},
  ): Promise<void> {
    const base = this.baseUrl(target.domain);
    const scopes = [repositoryScope(target.path, ["pull", "push"])];
    const chunkSize = Math.max(1, opts.chunkSize ?? DEFAULT_CHUNK_SIZE);
    const signal = opts.signal;
    const what = `upload of ${digest} to ${target.domain}/${target.path}`;
    await this.retrying(what, signal, async () => {
      const startUrl = `${base}/v2/${target.path}/blobs/uploads/`;
      const started = await this.request({ method: "POST", url: startUrl, scopes, creds, signal });
      if (started.res.status !== 202) throw await this.generalError(started.res, `POST ${startUrl}`);
      await discard(started.res);
      let location = this.uploadLocation(started);
      const stream = open();
      try {
        const hash = createHash(digest.slice(0, digest.indexOf(":")) === "sha512" ? "sha512" : "sha256");
        let sent = 0;
        let pending: Buffer[] = [];
        let pendingBytes = 0;
        const flush = async () => {
          const chunk = Buffer.concat(pending, pendingBytes);
          pending = [];
          pendingBytes = 0;
          const r = await this.request({
            method: "PATCH",
            url: location,
            headers: { "content-type": "application/octet-stream", "content-range": `${sent}-${sent + chunk.length - 1}` },
            body: chunk,
            scopes,
            creds,
            signal,
          });
          if (r.res.status !== 202) throw await this.generalError(r.res, `PATCH ${redactUrl(location)}`);
          await discard(r.res);
          sent += chunk.length;
          const range = /^(?:bytes=)?0-(\d+)$/.exec(r.res.headers.get("range") ?? "");
          if (range && Number(range[1]) !== sent - 1) {
            throw new RetryableError(new EngineError("Unavailable", `registry holds ${Number(range[1]) + 1} bytes of the upload, ${sent} were sent`));
          }
          location = this.uploadLocation(r);
          opts.onProgress?.(sent);
        };
        for await (const piece of stream) {
          throwIfAborted(signal);
          let buf: Buffer = typeof piece === "string" ? Buffer.from(piece) : Buffer.from(piece as Uint8Array);
          hash.update(buf);
          while (buf.length > 0) {
            const take = Math.min(buf.length, chunkSize - pendingBytes);
            pending.push(buf.subarray(0, take));
            pendingBytes += take;
            buf = buf.subarray(take);
            if (pendingBytes === chunkSize) await flush();
          }
        }
        if (pendingBytes > 0) await flush();
        const actual = `${digest.slice(0, digest.indexOf(":"))}:${hash.digest("hex")}`;
        if (sent !== size) throw dataLoss(`blob ${digest}: read ${sent} bytes, expected ${size}`);
        if (actual !== digest) throw dataLoss(`blob ${digest}: the content has digest ${actual}`);
        const commitUrl = new URL(location);
        commitUrl.searchParams.set("digest", digest);
        const done = await this.request({ method: "PUT", url: commitUrl.toString(), scopes, creds, signal });
        if (done.res.status !== 201 && done.res.status !== 204) throw await this.generalError(done.res, `PUT ${redactUrl(location)}`);
        await discard(done.res);
      } catch (e) {
        stream.destroy();
        await this.cancelUpload(location, scopes, creds);
        throw e;
      } finally {
        stream.destroy();
      }
    });
  }

  private uploadLocation(r: HttpResponse): string {
    const location = r.res.headers.get("location");
    if (!location) throw new EngineError("Unavailable", `registry sent no upload location (${redactUrl(r.url)})`);
    return new URL(location, r.url).toString();
  }

  /** Best-effort DELETE of an upload session. */
  private async cancelUpload(location: string, scopes: string[], creds?: Credentials): Promise<void> {
    try {
      const { res } = await this.request({ method: "DELETE", url: location, scopes, creds, signal: AbortSignal.timeout(10_000) });
      await discard(res);
    } catch (e) {
      this.logger?.debug({ err: e }, "cancelling an upload failed");
    }
  }

  /**
   * Stores a manifest under a tag or digest (PUT). The blobs it names must be
   * in the repository already.
   * @returns the manifest's digest, computed from `bytes`
   */
  async putManifest(
    target: RepositoryTarget,
    reference: string,
    bytes: Uint8Array,
    mediaType: string,
    creds?: Credentials,
    signal?: AbortSignal,
  ): Promise<string> {
    const url = `${this.baseUrl(target.domain)}/v2/${target.path}/manifests/${reference}`;
    const digest = reference.includes(":") ? digestLike(reference, bytes) : sha256(bytes);
    if (reference.includes(":") && digest !== reference) throw invalidArgument(`manifest content does not match digest ${reference}`);
    await this.retrying(`PUT ${url}`, signal, async () => {
      const { res } = await this.request({
        method: "PUT",
        url,
        headers: { "content-type": mediaType },
        body: bytes,
        scopes: [repositoryScope(target.path, ["pull", "push"])],
        creds,
        signal,
      });
      if (res.status !== 201 && res.status !== 200 && res.status !== 204) throw await this.generalError(res, `PUT ${url}`);
      await discard(res);
      const echoed = res.headers.get("docker-content-digest");
      if (echoed && echoed !== digest && echoed.startsWith("sha256:") && digest.startsWith("sha256:")) {
        throw dataLoss(`registry stored manifest as ${echoed}, expected ${digest}`);
      }
    });
    return digest;
  }

  /**
   * The digest of the manifest a tag or digest names (HEAD; a GET when the
   * registry sends no Docker-Content-Digest), or undefined when there is none.
   */
  async getManifestDigest(target: RepositoryTarget, reference: string, creds?: Credentials, signal?: AbortSignal): Promise<string | undefined> {
    const url = `${this.baseUrl(target.domain)}/v2/${target.path}/manifests/${reference}`;
    const scopes = [repositoryScope(target.path, ["pull"])];
    return this.retrying(`HEAD ${url}`, signal, async () => {
      const { res } = await this.request({ method: "HEAD", url, headers: { accept: MANIFEST_ACCEPT.join(", ") }, scopes, creds, signal });
      await discard(res);
      if (res.status === 404) return undefined;
      if (res.status !== 200) throw await this.generalError(res, `HEAD ${url}`);
      const header = res.headers.get("docker-content-digest");
      if (header) return header;
      const got = await this.request({ method: "GET", url, headers: { accept: MANIFEST_ACCEPT.join(", ") }, scopes, creds, signal });
      if (got.res.status === 404) {
        await discard(got.res);
        return undefined;
      }
      if (got.res.status !== 200) throw await this.generalError(got.res, `GET ${url}`);
      return sha256(await readLimited(got.res, MAX_MANIFEST_BYTES, "manifest"));
    });
  }

  // --- login, search -----------------------------------------------------------

  /**
   * Checks credentials the way `docker login` does: GET /v2/, answering the
   * challenge with them (for token auth, asking the realm for a refresh token).
   * A registry that needs no authentication accepts any credentials.
   * @returns the identity token (refresh token) when the realm issued one
   * @throws EngineError(Unauthorized) `Get "https://host/v2/": unauthorized: incorrect username or password`
   */
  async checkLogin(domain: string, creds: Credentials, signal?: AbortSignal): Promise<{ identityToken?: string }> {
    const base = this.baseUrl(domain);
    const url = `${base}/v2/`;
    const refused = (detail = "incorrect username or password") => unauthorized(`Get "${url}": unauthorized: ${detail}`);
    return this.retrying(`GET ${url}`, signal, async () => {
      const first = await this.sendRaw({ method: "GET", url, signal });
      if (first.res.status !== 200 && first.res.status !== 401) throw await this.generalError(first.res, `GET ${url}`);
      await discard(first.res);
      if (first.res.status === 200) return {};
      this.auth.noteChallenges(base, first.res.headers.get("www-authenticate"));
      const bearer = this.auth.bearerChallenge(base);
      let header: string;
      let identityToken: string | undefined;
      if (bearer) {
        if (creds.registrytoken) {
          header = `Bearer ${creds.registrytoken}`;
        } else {
          if (!creds.identitytoken && !(creds.username && creds.password)) throw refused("authentication required");
          try {
            const t = await fetchToken({
              challenge: bearer,
              scopes: [],
              creds,
              offline: true,
              userAgent: this.userAgent,
              signal,
              retry: this.retry,
              logger: this.logger,
              stallTimeoutMs: this.stallTimeoutMs,
            });
            header = `Bearer ${t.token}`;
            identityToken = t.refreshToken;
          } catch (e) {
            if (e instanceof EngineError && e.kind === "Unauthorized") throw refused();
            throw e;
          }
        }
      } else {
        if (!(creds.username && creds.password)) throw refused("authentication required");
        header = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
      }
      const second = await this.sendRaw({ method: "GET", url, headers: { authorization: header }, signal });
      if (second.res.status !== 200 && second.res.status !== 401 && second.res.status !== 403) throw await this.generalError(second.res, `GET ${url}`);
      await discard(second.res);
      if (second.res.status === 200) return identityToken ? { identityToken } : {};
      throw refused();
    });
  }

  /**
   * Repository names in a registry (GET /v2/_catalog, following Link pages).
   * @param limit stop after this many names
   */
  async catalog(domain: string, creds?: Credentials, limit?: number, signal?: AbortSignal): Promise<string[]> {
    const base = this.baseUrl(domain);
    const pageSize = limit !== undefined ? Math.max(1, Math.min(limit, 1000)) : 100;
    const out = await this.paged(`${base}/v2/_catalog?n=${pageSize}`, "repositories", [CATALOG_SCOPE], creds, signal, limit, () =>
      notImplemented(`registry ${domain} does not offer a catalog`),
    );
    return limit !== undefined ? out.slice(0, limit) : out;
  }

  /** Tags of a repository (GET /v2/<name>/tags/list, following Link pages). */
  async listTags(target: RepositoryTarget, creds?: Credentials, signal?: AbortSignal): Promise<string[]> {
    const url = `${this.baseUrl(target.domain)}/v2/${target.path}/tags/list`;
    return this.paged(url, "tags", [repositoryScope(target.path, ["pull"])], creds, signal, undefined, (cause) =>
      notFound(`repository ${target.domain}/${target.path} not found: ${cause}`),
    );
  }

  private async paged(
    first: string,
    key: string,
    scopes: string[],
    creds: Credentials | undefined,
    signal: AbortSignal | undefined,
    limit: number | undefined,
    onNotFound: (cause: string) => Error,
  ): Promise<string[]> {
    const out: string[] = [];
    let next: string | undefined = first;
    for (let page = 0; next && page < 10_000; page++) {
      const url: string = next;
      const r = await this.retrying(`GET ${url}`, signal, async () => {
        const got = await this.request({ method: "GET", url, headers: { accept: "application/json" }, scopes, creds, signal });
        if (got.res.status === 404) {
          const errors = await readRegistryErrors(got.res);
          throw onNotFound(errors[0] ? formatRegistryError(errors[0]) : "404 Not Found");
        }
        if (got.res.status !== 200) throw await this.generalError(got.res, `GET ${url}`);
        const body = await readLimited(got.res, 16 * 1024 * 1024, "listing");
        return { body, link: nextLink(got.res, got.url) };
      });
      let items: unknown;
      try {
        items = (JSON.parse(r.body.toString("utf8")) as Record<string, unknown>)[key];
      } catch {
        throw new EngineError("Unavailable", `GET ${redactUrl(url)}: the registry answered with something that is not JSON`);
      }
      if (Array.isArray(items)) for (const it of items) if (typeof it === "string") out.push(it);
      if (limit !== undefined && out.length >= limit) break;
      next = r.link;
    }
    return out;
  }

  // --- plumbing ------------------------------------------------------------------

  private retrying<T>(what: string, signal: AbortSignal | undefined, op: () => Promise<T>): Promise<T> {
    return withRetry(op, { ...this.retry, signal, logger: this.logger, what: redactUrl(what.replace(/^[A-Z]+ /, "")) });
  }

  /** One HTTP exchange with redirects followed by hand; network failures become EngineErrors. */
  private async sendRaw(spec: {
    method: RequestSpec["method"];
    url: string;
    headers?: Record<string, string>;
    body?: Uint8Array;
    signal?: AbortSignal;
  }): Promise<HttpResponse> {
    try {
      return await send({ ...spec, headers: { "user-agent": this.userAgent, ...spec.headers }, stallTimeoutMs: this.stallTimeoutMs });
    } catch (e) {
      if (spec.signal?.aborted) throw canceled("operation canceled", spec.signal.reason);
      throw fetchFailure(`${spec.method} ${redactUrl(spec.url)}`, e);
    }
  }

  /**
   * One authenticated request: sends what the auth state says for this origin;
   * on a 401, learns the challenge (or drops a refused cached token) and tries
   * once more with fresh authorization.
   */
  private async request(spec: RequestSpec): Promise<HttpResponse> {
    const origin = new URL(spec.url).origin;
    const sendWith = async (a: Authorization) => {
      const headers = { ...spec.headers };
      if (a.header) headers["authorization"] = a.header;
      return this.sendRaw({ method: spec.method, url: spec.url, headers, body: spec.body, signal: spec.signal });
    };
    const first = await this.auth.authorize(origin, spec.creds, spec.scopes, { signal: spec.signal });
    const r = await sendWith(first);
    if (r.res.status !== 401 || new URL(r.url).origin !== origin) return r;
    if (first.kind === "none") {
      this.auth.noteChallenges(origin, r.res.headers.get("www-authenticate"));
    } else if (first.kind === "bearer-cached") {
      this.auth.forget(origin, spec.creds, first.header);
    } else {
      return r;
    }
    const second = await this.auth.authorize(origin, spec.creds, spec.scopes, { signal: spec.signal, fresh: first.kind === "bearer-cached" });
    if (second.kind === "none") return r;
    await discard(r.res);
    return sendWith(second);
  }

  private async retryable(res: Response, what: string): Promise<RetryableError> {
    const ra = retryAfterMs(res);
    const errors = await readRegistryErrors(res);
    const status = `received unexpected HTTP status: ${res.status} ${res.statusText}`;
    const cause = errors[0] ? `${status} (${formatRegistryError(errors[0])})` : status;
    return new RetryableError(new EngineError("Unavailable", `${redactUrl(what)}: ${cause}`), ra);
  }

  /** Any other failed status: retryable for 5xx/429, else an EngineError of the status's kind. */
  private async generalError(res: Response, what: string): Promise<Error> {
    if (isRetryableStatus(res.status)) return this.retryable(res, what);
    const errors = await readRegistryErrors(res);
    const cause = errors.length ? errors.map(formatRegistryError).join("; ") : `${res.status} ${res.statusText}`;
    const [method, ...rest] = what.split(" ");
    return new EngineError(kindForStatus(res.status), `${method} ${redactUrl(rest.join(" "))}: ${cause}`);
  }
}

/** Checks a descriptor a caller built by hand (e.g. from a stored manifest). */
export function parseDescriptor(value: unknown): Descriptor {
  const r = descriptorSchema.safeParse(value);
  if (!r.success) throw invalidArgument(`invalid descriptor: ${r.error.issues[0]?.message ?? "malformed"}`);
  return r.data;
}

/**
 * Names a download that broke off ("unexpected EOF", as Docker says) instead of the
 * HTTP stack's bare "terminated"; it stays Unavailable, so the caller may retry.
 */
function truncationAware(body: Readable, desc: Descriptor, offset: number): Readable {
  // The body fails when the request is aborted (the client left) even before anyone reads
  // it; the reader below sees that error through its iterator, nobody else needs the event.
  body.on("error", () => undefined);
  let got = offset;
  async function* counted() {
    try {
      for await (const chunk of body) {
        got += (chunk as Uint8Array).length;
        yield chunk as Uint8Array;
      }
    } catch (e) {
      if (e instanceof EngineError) throw e;
      throw new EngineError(
        "Unavailable",
        `unexpected EOF: the download of blob ${desc.digest} broke off after ${got} of ${desc.size} bytes (${(e as Error).message})`,
        { cause: e },
      );
    }
  }
  const out = Readable.from(counted(), { objectMode: false });
  out.once("close", () => {
    if (!body.destroyed) body.destroy();
  });
  return out;
}
