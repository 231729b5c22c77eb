/**
 * A small HTTP proxy for tests, put in front of a real fixture registry, that
 * misbehaves on purpose for the requests it is told to: it flips a byte of a
 * blob (content no longer matching its digest), cuts a body off mid-way and
 * closes the socket (or resets it), answers an error status, serves a manifest
 * larger than 4 MiB or a document of the test's choosing, streams a body
 * slowly, drips it a byte at a time, or stops sending (before the answer or
 * mid-body) while keeping the connection open. A rule may apply `times` times
 * only, then requests pass (a fault a retry cures).
 *
 * Everything else is forwarded unchanged, Host header included, so the
 * registry builds its Location URLs with the proxy's address and uploads stay
 * on the proxy. Every request is logged (`requests`), with the bytes the
 * client actually received and whether the body was sent in full.
 *
 * Ownership: whoever calls `startFaultyProxy()` must call `stop()` (register
 * it in an `after`/`t.after` hook before starting). The server is unref'd, so
 * a forgotten stop() does not hang the test process.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";

export type Fault =
  /** Forward the body with the byte at `offset` (default: the middle byte) XOR 0xff; Content-Length stays. */
  | { kind: "corrupt"; offset?: number }
  /** Forward the headers (full Content-Length) and the first `afterBytes` (default: half) of the body, then close the socket. */
  | { kind: "truncate"; afterBytes?: number }
  /** Answer `status` with a registry error body, `times` times (default: always), then forward. */
  | { kind: "status"; status: number; times?: number }
  /**
   * Answer 200 with a Docker schema2 manifest of `bytes` bytes (padded JSON), never asking the
   * registry; with `declareLength` false the body goes chunked, without Content-Length.
   */
  | { kind: "oversize-manifest"; bytes: number; declareLength: boolean }
  /** Forward the body at about `bytesPerSecond`. */
  | { kind: "throttle"; bytesPerSecond: number }
  /** Forward the headers and the first `afterBytes` (default: half) of the body, then reset the connection (TCP RST). */
  | { kind: "reset"; afterBytes?: number }
  /** Forward the headers and the first `afterBytes` (default: half) of the body, then send nothing more; the connection stays open. */
  | { kind: "stall"; afterBytes?: number }
  /** Never answer the request; the connection stays open. */
  | { kind: "stall-headers" }
  /** Forward the body one byte every `intervalMs` (default 1000: a byte a second). */
  | { kind: "drip"; intervalMs?: number }
  /** Answer 200 with `body` and `contentType`, never asking the registry (a registry that serves what it likes). */
  | { kind: "document"; body: Buffer; contentType: string };

export interface FaultRule {
  /** Matched against the request path (with query). */
  path: RegExp;
  /** Only this method (default: GET). */
  method?: string;
  fault: Fault;
  /** Apply the fault to this many matching requests, then let them pass (default: always; `status` faults may also say it). */
  times?: number;
}

export interface ProxyRequestRecord {
  method: string;
  /** Path with query, as the client sent it. */
  path: string;
  /** Status sent to the client (0 until the head is sent). */
  status: number;
  /** Body bytes the client was sent so far. */
  bytes: number;
  /** The response body was sent in full. */
  complete: boolean;
  /** The fault applied to this request, if any. */
  fault?: Fault["kind"];
  startedAt: number;
  endedAt?: number;
}

export interface FaultyProxy {
  /** "127.0.0.1:PORT", for image references (127.0.0.0/8 is plain http for the agent). */
  host: string;
  url: string;
  /** Every request, oldest first. Tests may reset it with `proxy.requests.length = 0`. */
  requests: ProxyRequestRecord[];
  /** Replaces the rules; the first matching rule applies. Counters of `times` start afresh. */
  setRules(rules: FaultRule[]): void;
  /** Stops listening and drops open connections. Idempotent. */
  stop(): Promise<void>;
}

interface LiveRule extends FaultRule {
  used: number;
}

/** Starts a proxy to `upstream` ("http://127.0.0.1:PORT") on a free port of 127.0.0.1. */
export async function startFaultyProxy(upstream: string, rules: FaultRule[] = []): Promise<FaultyProxy> {
  const up = new URL(upstream);
  const requests: ProxyRequestRecord[] = [];
  let live: LiveRule[] = [];
  const setRules = (next: FaultRule[]) => {
    live = next.map((r) => ({ ...r, used: 0 }));
  };
  setRules(rules);

  const pickFault = (req: IncomingMessage): Fault | undefined => {
    for (const r of live) {
      if ((r.method ?? "GET") !== req.method || !r.path.test(req.url ?? "")) continue;
      const times = r.times ?? (r.fault.kind === "status" ? r.fault.times : undefined);
      if (times !== undefined && r.used >= times) continue; // used up: the request passes
      r.used++;
      return r.fault;
    }
    return undefined;
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const record: ProxyRequestRecord = { method: req.method ?? "GET", path: req.url ?? "/", status: 0, bytes: 0, complete: false, startedAt: Date.now() };
    requests.push(record);
    const fault = pickFault(req);
    if (fault) record.fault = fault.kind;
    const finish = (complete: boolean) => {
      record.complete = complete;
      record.endedAt ??= Date.now();
    };
    res.once("finish", () => finish(true));
    res.once("close", () => finish(res.writableFinished));

    if (fault?.kind === "status") {
      req.resume();
      req.once("end", () => {
        const body = JSON.stringify({ errors: [{ code: "UNKNOWN", message: "fault injected by the test proxy", detail: null }] });
        record.status = fault.status;
        res.writeHead(fault.status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
        record.bytes = Buffer.byteLength(body);
        res.end(body);
      });
      return;
    }
    if (fault?.kind === "stall-headers") {
      req.resume(); // read the request, answer nothing; stop() or the client ends it
      return;
    }
    if (fault?.kind === "document") {
      req.resume();
      req.once("end", () => {
        record.status = 200;
        res.writeHead(200, { "Content-Type": fault.contentType, "Content-Length": fault.body.length, "Docker-Distribution-Api-Version": "registry/2.0" });
        record.bytes = req.method === "HEAD" ? 0 : fault.body.length;
        res.end(req.method === "HEAD" ? undefined : fault.body);
      });
      return;
    }
    if (fault?.kind === "oversize-manifest") {
      req.resume();
      req.once("end", () => void serveOversize(res, record, fault.bytes, fault.declareLength));
      return;
    }

    const upReq = httpRequest({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers }, (upRes) => {
      record.status = upRes.statusCode ?? 502;
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, upRes.headers);
      const onlyHead = req.method === "HEAD" || upRes.statusCode === 204 || upRes.statusCode === 304;
      if (onlyHead || !fault || upRes.statusCode !== 200) {
        upRes.on("data", (c: Buffer) => (record.bytes += c.length));
        upRes.pipe(res);
        return;
      }
      void transfer(upRes, res, record, fault).catch(() => res.destroy());
    });
    upReq.on("error", (err) => {
      if (res.headersSent) return void res.destroy();
      record.status = 502;
      res.writeHead(502, { "Content-Type": "text/plain" });
      res.end(`proxy: upstream failed: ${err.message}`);
    });
    res.once("close", () => {
      if (!res.writableFinished) upReq.destroy();
    });
    req.pipe(upReq);
  };

  const server: Server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  server.unref();
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("faulty proxy has no address");
  let stopped: Promise<void> | undefined;
  return {
    host: `127.0.0.1:${addr.port}`,
    url: `http://127.0.0.1:${addr.port}`,
    requests,
    setRules,
    stop: () =>
      (stopped ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}

/** Sends a 200 body from upstream to the client with a fault applied (corrupt, truncate, throttle). */
async function transfer(upRes: IncomingMessage, res: ServerResponse, record: ProxyRequestRecord, fault: Fault): Promise<void> {
  const declared = Number(upRes.headers["content-length"] ?? NaN);
  // The head goes out now, so a cut "after 0 bytes" is a body cut, not a connection closed unanswered.
  res.flushHeaders();
  const write = (chunk: Buffer) =>
    new Promise<void>((resolve, reject) => {
      if (res.destroyed) return reject(new Error("client went away"));
      record.bytes += chunk.length;
      res.write(chunk, (err) => (err ? reject(err) : resolve()));
    });

  if (fault.kind === "truncate" || fault.kind === "reset" || fault.kind === "stall") {
    // The first bytes of the body as the registry sent them, then the fault.
    const limit = fault.afterBytes ?? Math.floor((Number.isFinite(declared) ? declared : 0) / 2);
    let sent = 0;
    for await (const c of upRes as AsyncIterable<Buffer>) {
      const take = Math.min(c.length, limit - sent);
      if (take > 0) await write(c.subarray(0, take));
      sent += take;
      if (sent >= limit) break;
    }
    upRes.destroy();
    if (fault.kind === "truncate") {
      // Let the bytes reach the client, then cut the connection as a dying server would.
      await new Promise((r) => setTimeout(r, 50));
      res.socket?.destroy();
      res.destroy();
      return;
    }
    if (fault.kind === "stall") return; // headers and some bytes sent; nothing more until the client gives up or stop()
    await new Promise((r) => setTimeout(r, 50));
    if (res.socket && !res.socket.destroyed) res.socket.resetAndDestroy();
    res.destroy();
    return;
  }

  if (fault.kind === "drip") {
    const interval = fault.intervalMs ?? 1000;
    for await (const c of upRes as AsyncIterable<Buffer>) {
      for (let off = 0; off < c.length; off++) {
        await write(c.subarray(off, off + 1));
        await new Promise((r) => setTimeout(r, interval));
      }
    }
    res.end();
    return;
  }

  if (fault.kind === "corrupt") {
    const at = fault.offset ?? Math.floor((Number.isFinite(declared) ? declared : 2) / 2);
    let pos = 0;
    for await (const c of upRes as AsyncIterable<Buffer>) {
      let out = c;
      if (at >= pos && at < pos + c.length) {
        out = Buffer.from(c);
        out[at - pos] = out[at - pos]! ^ 0xff;
      }
      pos += c.length;
      await write(out);
    }
    res.end();
    return;
  }

  if (fault.kind === "throttle") {
    const tick = 50; // ms
    const perTick = Math.max(1, Math.floor((fault.bytesPerSecond * tick) / 1000));
    for await (const c of upRes as AsyncIterable<Buffer>) {
      for (let off = 0; off < c.length; off += perTick) {
        await write(c.subarray(off, off + perTick));
        await new Promise((r) => setTimeout(r, tick));
      }
    }
    res.end();
    return;
  }

  throw new Error(`fault ${fault.kind} does not transform a body`);
}

/** A syntactically valid Docker schema2 manifest padded to exactly `size` bytes. */
async function serveOversize(res: ServerResponse, record: ProxyRequestRecord, size: number, declareLength: boolean): Promise<void> {
  const head = Buffer.from(
    '{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",' +
      `"config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:${"0".repeat(64)}"},` +
      '"layers":[],"annotations":{"padding":"',
  );
  const tail = Buffer.from('"}}');
  const padding = size - head.length - tail.length;
  if (padding < 0) throw new Error(`oversize manifest of ${size} bytes is too small to be one`);
  const headers: Record<string, string | number> = {
    "Content-Type": "application/vnd.docker.distribution.manifest.v2+json",
    "Docker-Distribution-Api-Version": "registry/2.0",
  };
  if (declareLength) headers["Content-Length"] = size;
  record.status = 200;
  res.writeHead(200, headers);
  const write = (chunk: Buffer) =>
    new Promise<void>((resolve, reject) => {
      if (res.destroyed) return reject(new Error("client went away"));
      record.bytes += chunk.length;
      res.write(chunk, (err) => (err ? reject(err) : resolve()));
    });
  try {
    await write(head);
    const block = Buffer.alloc(64 * 1024, "x");
    for (let left = padding; left > 0; left -= block.length) await write(block.subarray(0, Math.min(block.length, left)));
    await write(tail);
    res.end();
  } catch {
    // the client refused the body part-way, as it should
  }
}
