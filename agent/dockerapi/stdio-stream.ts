import type { IncomingMessage, ServerResponse } from "node:http";
import { PassThrough, type Duplex, type Readable, type Writable } from "node:stream";
import type { RequestContext } from "./router.ts";

/**
 * Docker's stream framing for attach, exec and logs: raw bytes for a TTY, or the
 * multiplexed form (8-byte header: stream 1/2, three zero bytes, big-endian length).
 */
export function frame(stream: "stdout" | "stderr" | "stdin", data: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream === "stdin" ? 0 : stream === "stdout" ? 1 : 2;
  header.writeUInt32BE(data.length, 4);
  return Buffer.concat([header, data]);
}

export interface HijackedStream {
  /** What the client sends (stdin). */
  input: Readable;
  /** Where output goes. */
  output: Writable;
  close(): void;
}

/**
 * Takes over the connection for a bidirectional stream: with `Upgrade: tcp` the
 * socket itself after a 101 answer (what the docker CLI does), otherwise a 200
 * response body for output and the request body for input.
 */
export function hijack(ctx: RequestContext, multiplexed: boolean): HijackedStream {
  const contentType = multiplexed ? "application/vnd.docker.multiplexed-stream" : "application/vnd.docker.raw-stream";
  if (ctx.upgrade) {
    const { socket, head } = ctx.upgrade;
    socket.write(`HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
    const input = new PassThrough();
    if (head.length) input.write(head);
    socket.pipe(input);
    return { input, output: socket, close: () => socket.end() };
  }
  const res: ServerResponse = ctx.res;
  res.writeHead(200, { "Content-Type": contentType });
  res.flushHeaders();
  const req: IncomingMessage = ctx.req;
  return { input: req, output: res, close: () => res.end() };
}

/** Reads a JSON body from an upgraded connection (exec start sends {Detach, Tty} before switching). */
export async function readUpgradeBody(ctx: RequestContext): Promise<{ body: Record<string, unknown>; rest: Buffer }> {
  const length = Number(ctx.req.headers["content-length"] ?? 0);
  if (!ctx.upgrade) {
    const chunks: Buffer[] = [];
    for await (const c of ctx.req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString("utf8");
    return { body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, rest: Buffer.alloc(0) };
  }
  const socket: Duplex = ctx.upgrade.socket;
  let buf = ctx.upgrade.head;
  while (buf.length < length) {
    const chunk = await new Promise<Buffer | null>((resolve) => {
      const onData = (d: Buffer) => { cleanup(); resolve(d); };
      const onEnd = () => { cleanup(); resolve(null); };
      const cleanup = () => { socket.off("data", onData); socket.off("end", onEnd); socket.pause(); };
      socket.on("data", onData);
      socket.once("end", onEnd);
      socket.resume();
    });
    if (!chunk) break;
    buf = Buffer.concat([buf, chunk]);
  }
  const text = buf.subarray(0, length).toString("utf8");
  ctx.upgrade.head = buf.subarray(length);
  return { body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, rest: buf.subarray(length) };
}
