/**
 * Registry authentication: WWW-Authenticate challenges, bearer tokens from the
 * realm the registry names (distribution's token spec), and a token cache.
 *
 * Flow, as Docker's registry client does it: the first request to a registry
 * goes out without credentials; a 401 names the scheme. Basic → the username
 * and password go with every request to that registry. Bearer → a token is
 * fetched from the realm for the scopes the operation needs
 * ("repository:library/busybox:pull", "repository:x:pull,push",
 * "registry:catalog:*") and cached per (registry, realm, service, account,
 * scope set) until shortly before it expires. Concurrent requests needing the
 * same token share one fetch.
 *
 * Credentials go only to the registry they belong to and to the realm that
 * registry names; tokens only to the registry they were issued for.
 */
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import { z } from "zod";
import { EngineError, unauthorized } from "../errors.ts";
import { discard, isRetryableStatus, kindForStatus, fetchFailure, readLimited, retryAfterMs, RetryableError, send, withRetry } from "./http.ts";
import type { Credentials } from "./types.ts";

/** One challenge of a WWW-Authenticate header: the scheme (lower case) and its parameters (keys lower case). */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/**
 * Parses WWW-Authenticate (RFC 7235). Handles several challenges in one value,
 * as fetch joins repeated headers with ", ":
 * `Bearer realm="https://auth/token",service="registry", Basic realm="x"`.
 */
export function parseChallenges(header: string | null | undefined): Challenge[] {
  const out: Challenge[] = [];
  if (!header) return out;
  const s = header;
  let i = 0;
  const skipSpace = () => {
    while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < s.length && TOKEN_CHAR.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  const quoted = (): string | undefined => {
    // at the opening quote
    i++;
    let v = "";
    while (i < s.length) {
      const c = s[i]!;
      if (c === "\\" && i + 1 < s.length) {
        v += s[i + 1];
        i += 2;
      } else if (c === '"') {
        i++;
        return v;
      } else {
        v += c;
        i++;
      }
    }
    return undefined; // unterminated
  };
  let current: Challenge | undefined;
  while (i < s.length) {
    skipSpace();
    if (s[i] === ",") {
      i++;
      continue;
    }
    const start = i;
    const word = token();
    if (word === "") {
      // garbage: skip to the next comma
      while (i < s.length && s[i] !== ",") i++;
      continue;
    }
    skipSpace();
    if (s[i] === "=" && current) {
      // a parameter of the current challenge (a token68 value has "=" too, but only as padding at the end)
      i++;
      skipSpace();
      let value: string | undefined;
      if (s[i] === '"') value = quoted();
      else value = token();
      if (value === undefined) break;
      current.params[word.toLowerCase()] = value;
      continue;
    }
    // a new challenge scheme
    i = start + word.length;
    current = { scheme: word.toLowerCase(), params: {} };
    out.push(current);
  }
  return out;
}

/** "repository:library/busybox:pull" and friends. */
export function repositoryScope(path: string, actions: string[]): string {
  return `repository:${path}:${actions.join(",")}`;
}

export const CATALOG_SCOPE = "registry:catalog:*";

/** resource ("repository:library/busybox") → actions. */
function parseScopes(scopes: string[]): Map<string, Set<string>> {
  const m = new Map<string, Set<string>>();
  for (const scope of scopes) {
    const last = scope.lastIndexOf(":");
    if (last <= 0) continue;
    const resource = scope.slice(0, last);
    const actions = scope
      .slice(last + 1)
      .split(",")
      .filter(Boolean);
    const set = m.get(resource) ?? new Set<string>();
    for (const a of actions) set.add(a);
    m.set(resource, set);
  }
  return m;
}

function covers(have: Map<string, Set<string>>, want: Map<string, Set<string>>): boolean {
  for (const [resource, actions] of want) {
    const got = have.get(resource);
    if (!got) return false;
    if (got.has("*")) continue;
    for (const a of actions) if (!got.has(a)) return false;
  }
  return true;
}

interface CachedToken {
  scopes: Map<string, Set<string>>;
  token: string;
  expiresAt: number;
}

/**
 * Tokens by key (registry, realm, service, account) and scope set. A lookup
 * for `repository:x:pull` is served by a cached `repository:x:pull,push`
 * token as well, so a push does not fetch a second token for its existence
 * checks.
 */
export class TokenCache {
  private readonly entries = new Map<string, CachedToken[]>();

  constructor(private readonly now: () => number = Date.now) {}

  lookup(key: string, scopes: string[]): string | undefined {
    const list = this.entries.get(key);
    if (!list) return undefined;
    const want = parseScopes(scopes);
    const t = this.now();
    const live = list.filter((e) => e.expiresAt > t);
    if (live.length !== list.length) this.entries.set(key, live);
    return live.find((e) => covers(e.scopes, want))?.token;
  }

  store(key: string, scopes: string[], token: string, expiresAt: number): void {
    const list = (this.entries.get(key) ?? []).filter((e) => e.token !== token);
    list.push({ scopes: parseScopes(scopes), token, expiresAt });
    // keep the cache small: newest 32 tokens per key
    this.entries.set(key, list.slice(-32));
  }

  forget(key: string, token: string): void {
    const list = this.entries.get(key);
    if (list)
      this.entries.set(
        key,
        list.filter((e) => e.token !== token),
      );
  }
}

/** Docker's OAuth client id, sent when asking for and using refresh tokens. */
export const CLIENT_ID = "docker";
/** Tokens live at least this long (distribution's minimumTokenLifetimeSeconds). */
const MIN_TOKEN_LIFETIME_S = 60;

const tokenResponseSchema = z.object({
  token: z.string().optional(),
  access_token: z.string().optional(),
  expires_in: z.number().optional(),
  issued_at: z.string().optional(),
  refresh_token: z.string().optional(),
});

export interface TokenResult {
  token: string;
  /** Local clock, milliseconds. */
  expiresAt: number;
  /** Present when the realm issued a refresh token (offline login): Docker's identity token. */
  refreshToken?: string;
}

export interface TokenRequest {
  challenge: Challenge;
  scopes: string[];
  creds?: Credentials;
  /** Ask for a refresh token (offline_token=true), as `docker login` does. */
  offline?: boolean;
  userAgent: string;
  signal?: AbortSignal;
  retry: { attempts: number; baseDelayMs: number };
  logger?: Logger;
  /** See RegistryStallError (http.ts); default 30 s. */
  stallTimeoutMs?: number;
}

/**
 * Gets a bearer token from the challenge's realm: a POST with
 * grant_type=refresh_token when an identity token is given, otherwise a GET
 * with service, one scope parameter per scope and Basic auth when a username
 * and password are given (anonymous otherwise).
 * @throws EngineError(Unauthorized) when the realm refuses the credentials
 */
export async function fetchToken(req: TokenRequest): Promise<TokenResult> {
  const realm = req.challenge.params["realm"];
  if (!realm) throw new EngineError("Unavailable", "no realm specified for token auth challenge");
  let realmUrl: URL;
  try {
    realmUrl = new URL(realm);
  } catch {
    throw new EngineError("Unavailable", `invalid token auth challenge realm: ${realm}`);
  }
  if (realmUrl.protocol !== "https:" && realmUrl.protocol !== "http:") {
    throw new EngineError("Unavailable", `invalid token auth challenge realm: ${realm}`);
  }
  const service = req.challenge.params["service"];
  const creds = req.creds;
  const headers: Record<string, string> = { "user-agent": req.userAgent, accept: "application/json" };
  let method: "GET" | "POST" = "GET";
  let body: Uint8Array | undefined;
  const url = new URL(realmUrl);
  if (creds?.identitytoken) {
    method = "POST";
    const form = new URLSearchParams();
    form.set("grant_type", "refresh_token");
    form.set("refresh_token", creds.identitytoken);
    if (service !== undefined) form.set("service", service);
    form.set("scope", req.scopes.join(" "));
    form.set("client_id", CLIENT_ID);
    if (req.offline) form.set("access_type", "offline");
    body = Buffer.from(form.toString());
    headers["content-type"] = "application/x-www-form-urlencoded";
  } else {
    if (service !== undefined) url.searchParams.append("service", service);
    for (const scope of req.scopes) url.searchParams.append("scope", scope);
    if (creds?.username && creds.password) {
      url.searchParams.append("account", creds.username);
      headers["authorization"] = basicAuth(creds.username, creds.password);
    }
    if (req.offline) {
      url.searchParams.append("offline_token", "true");
      url.searchParams.append("client_id", CLIENT_ID);
    }
  }
  const what = `${method} ${realmUrl.origin}${realmUrl.pathname}`;
  const bytes = await withRetry(
    async () => {
      let r;
      try {
        r = await send({ method, url: url.toString(), headers, body, signal: req.signal, stallTimeoutMs: req.stallTimeoutMs });
      } catch (e) {
        throw fetchFailure(what, e);
      }
      const res = r.res;
      if (res.ok) return readLimited(res, 1024 * 1024, "token response");
      if (isRetryableStatus(res.status)) {
        const ra = retryAfterMs(res);
        await discard(res);
        throw new RetryableError(new EngineError("Unavailable", `${what}: ${res.status} ${res.statusText}`), ra);
      }
      const detail = await tokenErrorDetail(res);
      if (res.status === 401 || res.status === 403) throw unauthorized(`${what}: unauthorized: ${detail}`);
      throw new EngineError(kindForStatus(res.status), `${what}: ${res.status} ${res.statusText}: ${detail}`);
    },
    { attempts: req.retry.attempts, baseDelayMs: req.retry.baseDelayMs, signal: req.signal, logger: req.logger, what },
  );
  let parsed: z.infer<typeof tokenResponseSchema>;
  try {
    parsed = tokenResponseSchema.parse(JSON.parse(bytes.toString("utf8")));
  } catch (e) {
    throw new EngineError("Unavailable", `unable to decode token response from ${realmUrl.origin}`, { cause: e });
  }
  // `access_token` is equivalent to `token`; prefer it when both are present, as distribution does.
  const token = parsed.access_token || parsed.token;
  if (!token) throw new EngineError("Unavailable", "authorization server did not include a token in the response");
  const lifetimeS = Math.max(MIN_TOKEN_LIFETIME_S, parsed.expires_in ?? 0);
  // Expire a little early so a token does not run out in flight; local clock, immune to skew.
  const marginMs = Math.min(10_000, lifetimeS * 100);
  const result: TokenResult = { token, expiresAt: Date.now() + lifetimeS * 1000 - marginMs };
  if (parsed.refresh_token) result.refreshToken = parsed.refresh_token;
  return result;
}

async function tokenErrorDetail(res: Response): Promise<string> {
  const raw = await readLimited(res, 64 * 1024, "error body").catch(() => Buffer.alloc(0));
  try {
    const j = JSON.parse(raw.toString("utf8")) as { details?: unknown; errors?: Array<{ message?: unknown }>; error_description?: unknown };
    if (typeof j.details === "string") return j.details;
    if (typeof j.error_description === "string") return j.error_description;
    const m = j.errors?.[0]?.message;
    if (typeof m === "string") return m;
  } catch {
    // not JSON
  }
  return res.status === 401 ? "authentication required" : res.statusText.toLowerCase() || String(res.status);
}

export function basicAuth(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
}

/** A stable, non-secret name for whoever the credentials are. */
function accountKey(creds?: Credentials): string {
  if (!creds) return "anonymous";
  if (creds.identitytoken) return `idt:${createHash("sha256").update(creds.identitytoken).digest("hex").slice(0, 16)}`;
  if (creds.username && creds.password) {
    return `basic:${creds.username}:${createHash("sha256").update(`${creds.username}\0${creds.password}`).digest("hex").slice(0, 16)}`;
  }
  return "anonymous";
}

export interface AuthorizeOptions {
  /** Skip the cache and fetch a new token (after a 401 with a cached one). */
  fresh?: boolean;
  signal?: AbortSignal;
}

/** What was sent, so a 401 can be answered correctly. */
export interface Authorization {
  header?: string;
  /** "bearer" tokens from the cache can be refreshed once; anything else cannot. */
  kind: "none" | "basic" | "bearer-cached" | "bearer-fresh" | "registry-token";
}

/**
 * Per-client authentication state: the challenges each registry origin has
 * answered with, and the token cache.
 */
export class Authenticator {
  private readonly challenges = new Map<string, Challenge[]>();
  private readonly cache = new TokenCache();
  private readonly inflight = new Map<string, Promise<TokenResult>>();

  constructor(private readonly opts: { userAgent: string; retry: { attempts: number; baseDelayMs: number }; logger?: Logger; stallTimeoutMs?: number }) {}

  /** Records the challenges of a 401 from `origin` ("https://host:port"). */
  noteChallenges(origin: string, header: string | null): void {
    const parsed = parseChallenges(header);
    if (parsed.length > 0) this.challenges.set(origin, parsed);
  }

  /**
   * The Authorization header to send to `origin` for `scopes`: none until the
   * registry has asked for authentication, then Bearer (from the cache or the
   * realm) or Basic.
   */
  async authorize(origin: string, creds: Credentials | undefined, scopes: string[], opts: AuthorizeOptions = {}): Promise<Authorization> {
    const challenges = this.challenges.get(origin);
    if (!challenges) return { kind: "none" };
    const bearer = challenges.find((c) => c.scheme === "bearer");
    if (bearer) {
      if (creds?.registrytoken) return { kind: "registry-token", header: `Bearer ${creds.registrytoken}` };
      const key = this.cacheKey(origin, bearer, creds);
      if (!opts.fresh) {
        const cached = this.cache.lookup(key, scopes);
        if (cached) return { kind: "bearer-cached", header: `Bearer ${cached}` };
      }
      const flightKey = `${key}\n${[...scopes].sort().join(" ")}\n${opts.fresh ? "fresh" : ""}`;
      let p = this.inflight.get(flightKey);
      if (!p) {
        p = fetchToken({
          challenge: bearer,
          scopes,
          creds,
          userAgent: this.opts.userAgent,
          signal: opts.signal,
          retry: this.opts.retry,
          logger: this.opts.logger,
          stallTimeoutMs: this.opts.stallTimeoutMs,
        });
        this.inflight.set(flightKey, p);
        p.then(
          (t) => this.cache.store(key, scopes, t.token, t.expiresAt),
          () => undefined,
        ).finally(() => this.inflight.delete(flightKey));
      }
      const t = await p;
      return { kind: "bearer-fresh", header: `Bearer ${t.token}` };
    }
    const basic = challenges.find((c) => c.scheme === "basic");
    if (basic && creds?.username && creds.password) return { kind: "basic", header: basicAuth(creds.username, creds.password) };
    return { kind: "none" };
  }

  /** Drops a token the registry refused. */
  forget(origin: string, creds: Credentials | undefined, header: string | undefined): void {
    const bearer = this.challenges.get(origin)?.find((c) => c.scheme === "bearer");
    if (!bearer || !header?.startsWith("Bearer ")) return;
    this.cache.forget(this.cacheKey(origin, bearer, creds), header.slice("Bearer ".length));
  }

  /** The bearer challenge of `origin`, if it uses token auth. */
  bearerChallenge(origin: string): Challenge | undefined {
    return this.challenges.get(origin)?.find((c) => c.scheme === "bearer");
  }

  private cacheKey(origin: string, bearer: Challenge, creds?: Credentials): string {
    return [origin, bearer.params["realm"] ?? "", bearer.params["service"] ?? "", accountKey(creds)].join("\n");
  }
}
