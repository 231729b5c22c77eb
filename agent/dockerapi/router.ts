import { ServerResponse, type IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { canceled, EngineError, toEngineError, type EngineErrorKind } from "../engine/errors.ts";

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** Set when the client asked to upgrade the connection (attach, exec start): the raw socket. */
  upgrade?: { socket: Duplex; head: Buffer };
  params: Record<string, string>;
  query: URLSearchParams;
  /** API version the client asked for (from the /vX.Y prefix), or the server's own. */
  apiVersion: string;
  /** Set once a handler took the upgraded socket over (101 sent): errors can no longer be answered in HTTP. */
  hijacked?: boolean;
}

/**
 * Fires when the client goes away before its answer is complete (it hung up, its
 * process was killed): the request's work should stop then.
 */
export function clientGone(ctx: Pick<RequestContext, "res" | "upgrade">): AbortSignal {
  const ac = new AbortController();
  const abort = () => ac.abort(canceled("the client closed the connection"));
  if (ctx.upgrade) {
    const { socket } = ctx.upgrade;
    if (socket.destroyed) abort();
    else socket.once("close", abort);
  } else {
    const { res } = ctx;
    if (res.destroyed && !res.writableFinished) abort();
    else
      res.once("close", () => {
        if (!res.writableFinished) abort();
      });
  }
  return ac.signal;
}

export type Handler = (ctx: RequestContext) => Promise<void> | void;

interface Route {
  method: string;
  pattern: RegExp;
  keys: string[];
  handler: Handler;
}

/** Engine error kinds → HTTP status codes, in one place. */
const STATUS: Record<EngineErrorKind, number> = {
  InvalidArgument: 400,
  NotFound: 404,
  AlreadyExists: 409,
  Conflict: 409,
  Unauthorized: 401,
  Unavailable: 503,
  DataLoss: 500,
  NotImplemented: 501,
  Canceled: 499,
  Internal: 500,
};

export function statusOf(e: EngineError): number {
  return STATUS[e.kind];
}

/**
 * A small router for the Docker Engine API: paths are matched after the optional
 * `/vX.Y` prefix; `{name}` captures one segment, `{name*}` the rest of the path
 * (image names contain slashes).
 */
export class Router {
  private readonly routes: Route[] = [];

  add(method: string, path: string, handler: Handler): this {
    const keys: string[] = [];
    const source = path.replace(/\{(\w+)(\*?)\}/g, (_m, key: string, rest: string) => {
      keys.push(key);
      return rest ? "(.+?)" : "([^/]+)";
    });
    this.routes.push({ method, pattern: new RegExp(`^${source}$`), keys, handler });
    return this;
  }

  get(path: string, h: Handler) {
    return this.add("GET", path, h);
  }
  post(path: string, h: Handler) {
    return this.add("POST", path, h);
  }
  delete(path: string, h: Handler) {
    return this.add("DELETE", path, h);
  }
  head(path: string, h: Handler) {
    return this.add("HEAD", path, h);
  }
  put(path: string, h: Handler) {
    return this.add("PUT", path, h);
  }

  /**
   * A request with `Upgrade: tcp` (docker attach, exec start): the handler gets the raw
   * socket in `ctx.upgrade`; a response object bound to the same socket still serves
   * error replies written before the upgrade.
   */
  async dispatchUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, serverVersion: string): Promise<void> {
    const res = new ServerResponse(req);
    res.assignSocket(socket as import("node:net").Socket);
    res.shouldKeepAlive = false;
    // Its failures are the socket's, which the server handles and logs.
    res.on("error", () => undefined);
    // Not taken over (an error, a detached exec): the connection ends with the answer, as
    // the HTTP server would end it. Taken over, the handler's stream owns it.
    let ctx: RequestContext | undefined;
    res.once("finish", () => {
      if (!ctx?.hijacked) (socket as import("node:net").Socket).destroySoon();
    });
    ctx = await this.dispatch(req, res, serverVersion, { socket, head });
    if (!ctx?.hijacked && res.writableFinished) (socket as import("node:net").Socket).destroySoon();
  }

  /** @returns the request's context once its handler is done (undefined when no route matched). */
  async dispatch(
    req: IncomingMessage,
    res: ServerResponse,
    serverVersion: string,
    upgrade?: { socket: Duplex; head: Buffer },
  ): Promise<RequestContext | undefined> {
    const url = new URL(req.url ?? "/", "http://docker");
    let path = url.pathname;
    let apiVersion = serverVersion;
    const v = /^\/v(\d+\.\d+)(\/.*)$/.exec(path);
    if (v) {
      apiVersion = v[1]!;
      path = v[2]!;
    }
    const method = req.method ?? "GET";
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.pattern.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== method) continue;
      const params: Record<string, string> = {};
      route.keys.forEach((k, i) => (params[k] = decodeURIComponent(m[i + 1]!)));
      const ctx: RequestContext = { req, res, params, query: url.searchParams, apiVersion, upgrade };
      try {
        await route.handler(ctx);
      } catch (e) {
        if (ctx.hijacked) {
          // The connection is a raw stream now: an HTTP answer would be garbage in it.
          upgrade?.socket.destroy();
          return ctx;
        }
        if (res.destroyed) return ctx; // the client is gone: nobody to answer
        // The client may still be sending a body (load, import): take it all before
        // answering, or the socket is reset and the CLI never sees the message.
        if (!upgrade && !req.complete && !req.destroyed) {
          req.resume();
          await new Promise<void>((resolve) => {
            req.once("end", resolve);
            req.once("close", resolve);
          });
        }
        sendError(res, toEngineError(e));
      }
      return ctx;
    }
    sendJson(res, pathMatched ? 405 : 404, { message: pathMatched ? `method ${method} not allowed on ${path}` : `page not found` });
    return undefined;
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data) });
  res.end(data);
}

export function sendError(res: ServerResponse, e: EngineError): void {
  if (res.destroyed) return;
  if (res.headersSent) {
    // A stream already started: the error goes into the stream as Docker does.
    if (!res.writableEnded) res.end(JSON.stringify({ errorDetail: { message: e.message }, error: e.message }) + "\n");
    return;
  }
  sendJson(res, statusOf(e), { message: e.message });
}

export function sendNoContent(res: ServerResponse, status = 204): void {
  res.writeHead(status);
  res.end();
}

/** A request's JSON, unchecked: every route passes it through its schema (schemas.ts parseDockerBody). */
export async function readJsonBody(req: IncomingMessage, maxBytes = 1024 * 1024): Promise<unknown> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > maxBytes) throw new EngineError("InvalidArgument", `request body larger than ${maxBytes} bytes`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (!text.trim()) return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new EngineError("InvalidArgument", `invalid JSON in request body: ${(e as Error).message}`);
  }
}

export function boolParam(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  return v === "1" || v === "true" || v === "True";
}

/** Docker's `filters` query parameter: {"key":{"value":true}} or the older {"key":["value"]}. */
export function parseFilters(q: URLSearchParams): Map<string, string[]> {
  const raw = q.get("filters");
  const out = new Map<string, string[]>();
  if (!raw) return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new EngineError("InvalidArgument", `invalid filter: ${raw}`);
  }
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (Array.isArray(v)) out.set(k, v.map(String));
    else if (v && typeof v === "object")
      out.set(
        k,
        Object.entries(v)
          .filter(([, on]) => on)
          .map(([val]) => val),
      );
  }
  return out;
}
