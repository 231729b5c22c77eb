/**
 * HTTP plumbing shared by the registry client and its token fetcher:
 * requests that follow redirects by hand (so an Authorization header never
 * leaves the host it was meant for) under the stall timeout (stall.ts), bounded body reads, retries with
 * exponential backoff and jitter, and registry error bodies turned into
 * readable messages.
 */
import type { Logger } from "pino";
import { canceled, dataLoss, EngineError, type EngineErrorKind } from "../errors.ts";
import { cancelBody, DEFAULT_STALL_TIMEOUT_MS, RegistryStallError, requestSubject, StallClock, UPLOAD_FLOOR_BYTES_PER_S, watchBody } from "./stall.ts";
import { registryErrorsSchema, type RegistryErrorEntry } from "./types.ts";

export { DEFAULT_STALL_TIMEOUT_MS, RegistryStallError, STALL_MIN_BYTES } from "./stall.ts";

export interface HttpRequest {
  method: "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";
  url: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  signal?: AbortSignal;
  /** See RegistryStallError; default DEFAULT_STALL_TIMEOUT_MS. */
  stallTimeoutMs?: number;
}

export interface HttpResponse {
  res: Response;
  /** The URL that answered, after redirects. */
  url: string;
}

const MAX_REDIRECTS = 10;

/**
 * Sends a request, following redirects by hand. When a redirect leads to
 * another origin (scheme, host or port), the Authorization header is dropped.
 * 303 (and 301/302 after a POST) turn into a GET without a body, as browsers
 * and Go's net/http do.
 */
export async function send(req: HttpRequest): Promise<HttpResponse> {
  let url = req.url;
  let method: string = req.method;
  let body: Uint8Array | undefined = req.body;
  const headers: Record<string, string> = { ...req.headers };
  const origin = new URL(url).origin;
  const limitMs = req.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  // One signal for fetch: the caller's abort or the stall (AbortSignal.any is not in Node 18,
  // which the agent supports). Aborting with the stall error fails the pending fetch or body read.
  const aborter = new AbortController();
  const onCallerAbort = () => aborter.abort(req.signal?.reason);
  req.signal?.addEventListener("abort", onCallerAbort, { once: true });
  const release = () => req.signal?.removeEventListener("abort", onCallerAbort);
  let current = url;
  const clock = new StallClock(limitMs, (phase) => aborter.abort(new RegistryStallError(new URL(current).host, requestSubject(current), limitMs, phase)));
  const stallOf = () => (aborter.signal.reason instanceof RegistryStallError ? aborter.signal.reason : undefined);
  for (let hop = 0; ; hop++) {
    let res: Response;
    try {
      throwIfAborted(req.signal);
      current = url;
      clock.waiting("answer", body ? Math.ceil((body.byteLength / UPLOAD_FLOOR_BYTES_PER_S) * 1000) : 0);
      // Node accepts any Uint8Array; the DOM typings want one backed by an ArrayBuffer.
      res = await fetch(url, { method, headers, body: body as Uint8Array<ArrayBuffer> | undefined, redirect: "manual", signal: aborter.signal });
    } catch (e) {
      clock.stop();
      release();
      throw stallOf() ?? e;
    }
    clock.arrived(0, "answer");
    const location = res.headers.get("location");
    if (![301, 302, 303, 307, 308].includes(res.status) || !location) return { res: watchBody(res, clock, stallOf, release), url };
    await discard(res);
    const next = new URL(location, url);
    if (hop >= MAX_REDIRECTS || (next.protocol !== "http:" && next.protocol !== "https:")) {
      release();
      if (hop >= MAX_REDIRECTS) throw new EngineError("Unavailable", `stopped after ${MAX_REDIRECTS} redirects at ${url}`);
      throw new EngineError("Unavailable", `refusing redirect to ${next.protocol} URL from ${url}`);
    }
    if (res.status === 303 || ((res.status === 301 || res.status === 302) && method === "POST")) {
      method = method === "HEAD" ? "HEAD" : "GET";
      body = undefined;
      delete headers["content-type"];
      delete headers["content-length"];
    }
    if (next.origin !== origin) {
      for (const k of Object.keys(headers)) if (k.toLowerCase() === "authorization") delete headers[k];
    }
    url = next.toString();
  }
}

/** Releases a response's connection without reading what nobody needs. */
export async function discard(res: Response): Promise<void> {
  await cancelBody(res.body);
}

/**
 * Reads a body into memory, refusing to hold more than `limit` bytes: a
 * Content-Length above the limit is refused before reading, and a body
 * without one is cut off as soon as the running total passes it.
 * @throws EngineError(DataLoss) "<what> too large: …"
 */
export async function readLimited(res: Response, limit: number, what: string): Promise<Buffer> {
  const declared = res.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) {
    await discard(res);
    throw dataLoss(`${what} too large: ${declared} bytes exceeds the limit of ${limit} bytes`);
  }
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const parts: Buffer[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await cancelBody(reader);
      throw dataLoss(`${what} too large: more than the limit of ${limit} bytes`);
    }
    parts.push(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
  }
  return Buffer.concat(parts, total);
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw canceled("operation canceled", signal.reason);
}

/** A failure that another attempt may cure (5xx, 429, a reset connection). */
export class RetryableError extends Error {
  constructor(
    readonly final: EngineError,
    readonly retryAfterMs?: number,
  ) {
    super(final.message, { cause: final });
  }
}

const RETRYABLE_CODES = new Set([
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ECONNABORTED",
  "EAI_AGAIN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_CLOSED",
]);

/** The network error code behind a failed fetch, if any. */
function networkCode(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur && depth < 5; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string") return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Whether a thrown network error is a reset or a timeout worth retrying. */
export function isRetryableNetworkError(e: unknown): boolean {
  if (e instanceof EngineError) return false;
  if (e instanceof Error && e.name === "AbortError") return false;
  const code = networkCode(e);
  if (code !== undefined) return RETRYABLE_CODES.has(code);
  // undici reports "terminated" / "other side closed" for a connection cut mid-body.
  return e instanceof TypeError && /terminated|other side closed|socket/i.test(e.message);
}

/** A short description of a network failure: its error code or message. */
function describeNetworkError(e: unknown): string {
  const code = networkCode(e);
  let deepest: unknown = e;
  for (let depth = 0; deepest instanceof Error && deepest.cause instanceof Error && depth < 5; depth++) deepest = deepest.cause;
  // undici's codes alone ("UND_ERR_SOCKET") say little; its innermost message says what happened.
  if (code) return deepest instanceof Error && deepest !== e && !deepest.message.includes(code) ? `${code}: ${deepest.message}` : code;
  if (e instanceof Error) return e.cause instanceof Error ? e.cause.message : e.message;
  return String(e);
}

/**
 * Wraps a failure thrown by fetch into an EngineError: aborts become Canceled,
 * network failures Unavailable ("<what>: ECONNREFUSED"); EngineErrors and
 * programming errors pass through unchanged.
 */
export function networkError(what: string, e: unknown): unknown {
  if (e instanceof EngineError) return e;
  if (e instanceof Error && (e.name === "AbortError" || e.name === "TimeoutError")) return canceled("operation canceled", e);
  if (networkCode(e) !== undefined || (e instanceof TypeError && /fetch failed|terminated|other side closed|socket/i.test(e.message))) {
    return new EngineError("Unavailable", `${what}: ${describeNetworkError(e)}`, { cause: e });
  }
  return e;
}

/** Drops userinfo and query (which may hold upload state or signed-URL secrets) from a URL for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return url;
  }
}

/**
 * What a caller throws for a failed fetch: a RetryableError for resets and
 * timeouts (withRetry tries again), otherwise networkError's result.
 */
export function fetchFailure(what: string, e: unknown): unknown {
  const err = networkError(what, e);
  if (err instanceof EngineError && err.kind === "Unavailable" && isRetryableNetworkError(e)) return new RetryableError(err);
  return err;
}

export interface RetryOptions {
  attempts: number;
  baseDelayMs: number;
  signal?: AbortSignal;
  logger?: Logger;
  what: string;
}

/**
 * Runs `op` until it succeeds, it throws something that is not retryable, or
 * the attempts are used up. Retryable: RetryableError (5xx, 429), and network
 * resets and timeouts. Delays grow as base·2^n with ±50% jitter, capped at
 * 30 s; a server's Retry-After wins when it is larger.
 */
export async function withRetry<T>(op: (attempt: number) => Promise<T>, opts: RetryOptions): Promise<T> {
  const attempts = Math.max(1, opts.attempts);
  for (let attempt = 1; ; attempt++) {
    throwIfAborted(opts.signal);
    let retryAfter: number | undefined;
    let failure: EngineError;
    try {
      return await op(attempt);
    } catch (e) {
      if (opts.signal?.aborted) throw canceled("operation canceled", opts.signal.reason);
      if (e instanceof RetryableError) {
        failure = e.final;
        retryAfter = e.retryAfterMs;
      } else if (e instanceof RegistryStallError) {
        failure = e;
      } else if (isRetryableNetworkError(e)) {
        failure = new EngineError("Unavailable", `${opts.what}: ${describeNetworkError(e)}`, { cause: e });
      } else {
        throw networkError(opts.what, e);
      }
    }
    if (attempt >= attempts) throw failure;
    const backoff = Math.min(30_000, opts.baseDelayMs * 2 ** (attempt - 1) * (0.5 + Math.random()));
    const delay = Math.min(30_000, Math.max(backoff, retryAfter ?? 0));
    opts.logger?.warn({ what: opts.what, attempt, delayMs: Math.round(delay), err: failure }, "registry request failed, retrying");
    await sleep(delay, opts.signal);
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(canceled("operation canceled", signal.reason));
    const onAbort = () => {
      clearTimeout(timer);
      reject(canceled("operation canceled", signal?.reason));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Parses a Retry-After header (seconds or an HTTP date) into milliseconds. */
export function retryAfterMs(res: Response): number | undefined {
  const v = res.headers.get("retry-after");
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

/** Reads `{"errors":[…]}` from a failed response (at most 64 KiB); [] when the body is something else. */
export async function readRegistryErrors(res: Response): Promise<RegistryErrorEntry[]> {
  if (!res.body) return [];
  let text: string;
  try {
    text = (await readLimited(res, 64 * 1024, "error body")).toString("utf8");
  } catch {
    return [];
  }
  try {
    const parsed = registryErrorsSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data.errors : [];
  } catch {
    return [];
  }
}

/**
 * errcode.Error's wording: "manifest unknown: manifest unknown" — the code in
 * lower case with spaces, then the message.
 */
export function formatRegistryError(e: RegistryErrorEntry): string {
  const code = (e.code ?? "unknown").toLowerCase().replace(/_/g, " ");
  return e.message ? `${code}: ${e.message}` : code;
}

/** The EngineError kind for an HTTP status a registry answered with. */
export function kindForStatus(status: number): EngineErrorKind {
  if (status === 401 || status === 403) return "Unauthorized";
  if (status === 404) return "NotFound";
  if (status === 405) return "NotImplemented";
  if (status === 409) return "Conflict";
  if (status === 429 || status >= 500) return "Unavailable";
  if (status >= 400) return "InvalidArgument";
  return "Internal";
}

export function isRetryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}
