import type { Socket } from "node:net";
import type { Duplex, Readable, Writable } from "node:stream";
import { canceled, invalidArgument } from "../engine/errors.ts";
import { EscapeSequenceFilter } from "../engine/streams.ts";
import type { OutputChunk, StdioSession } from "../engine/monitor/monitor.ts";
import type { RequestContext } from "./router.ts";
import { settled } from "../../shared/best-effort.ts";

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

/**
 * A bidirectional stream with a client. The client may hang up at any moment:
 * `write` then drops the data, and `onGone` callbacks run once.
 */
export interface HijackedStream {
  /** What the client sends (stdin). Errors on it are handled here (they mean the client is gone). */
  input: Readable;
  /** Sends output; false when the caller should wait for `onDrain` (or the client is gone). */
  write(chunk: Buffer): boolean;
  /** Calls `fn` once the client has taken what was written (after `write` returned false). */
  onDrain(fn: () => void): void;
  /** Ends the stream after what was written (the process ended). */
  close(): void;
  /** Calls `fn` once if the client goes away before `close()`. */
  onGone(fn: () => void): void;
  /** Whether the client has gone away before `close()`. */
  readonly gone: boolean;
}

/**
 * Takes over the connection for a bidirectional stream: with `Upgrade: tcp` the
 * socket itself after a 101 answer (what the docker CLI does), otherwise a 200
 * response body for output and the request body for input.
 */
export function hijack(ctx: RequestContext, multiplexed: boolean): HijackedStream {
  const contentType = multiplexed ? "application/vnd.docker.multiplexed-stream" : "application/vnd.docker.raw-stream";
  let input: Readable;
  let output: Writable;
  let closed = false;
  let gone = false;
  let probe: NodeJS.Timeout | undefined;
  const goneCallbacks: Array<() => void> = [];
  const markGone = () => {
    if (closed || gone) return;
    gone = true;
    clearInterval(probe);
    for (const fn of goneCallbacks.splice(0)) fn();
  };
  if (ctx.upgrade) {
    const { socket, head } = ctx.upgrade;
    // Bytes the client sent after the request head (stdin typed early) are read first.
    if (head.length) socket.unshift(head);
    ctx.upgrade.head = Buffer.alloc(0);
    writeIfOpen(socket, `HTTP/1.1 101 UPGRADED\r\nContent-Type: ${contentType}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
    input = socket;
    output = socket;
    socket.once("close", markGone);
    ctx.hijacked = true;
  } else {
    const { req, res } = ctx;
    res.writeHead(200, { "Content-Type": contentType });
    res.flushHeaders();
    input = req;
    output = res;
    res.once("close", () => {
      if (!res.writableFinished) markGone();
    });
  }
  if (isClosed(output)) markGone();
  // A client that left cannot be told from one that only closed its stdin (the CLI does at
  // once without -i) until a write fails, and a quiet process (or a container not started
  // yet) writes nothing: an empty frame now and then finds out; Docker's stream readers skip
  // it. A raw TTY stream has no such frame: its departed clients go with the next output, the
  // process's end or the container's removal, as with Docker.
  else if (multiplexed) {
    probe = setInterval(() => {
      if (!isClosed(output)) output.write(EMPTY_FRAME);
    }, PROBE_MS);
    probe.unref();
  }
  return {
    input,
    write: (chunk) => (isClosed(output) ? false : output.write(chunk)),
    onDrain: (fn) => {
      if (isClosed(output)) return;
      output.once("drain", fn);
    },
    close: () => {
      if (closed || gone) return;
      closed = true;
      clearInterval(probe);
      if (isClosed(output)) return;
      // A hijacked connection ends with the stream, whatever the client does with its side.
      if (ctx.upgrade) (ctx.upgrade.socket as Socket).destroySoon();
      else output.end();
    },
    onGone: (fn) => {
      if (gone) queueMicrotask(fn);
      else if (!closed) goneCallbacks.push(fn);
    },
    get gone() {
      return gone;
    },
  };
}

/** An output frame of no bytes: probes a connection without showing anything. */
const EMPTY_FRAME = frame("stdout", Buffer.alloc(0));
const PROBE_MS = 1000;

function isClosed(w: Writable): boolean {
  return w.destroyed || w.writableEnded;
}

function writeIfOpen(socket: Duplex, data: string): void {
  if (!socket.destroyed && !socket.writableEnded) socket.write(data);
}

export interface PumpOptions {
  /** Multiplexed frames (stdcopy) on the way out; false: the bytes as they are (a TTY client). */
  framed: boolean;
  /** Which of the process's streams the client asked for (default both); the others are dropped. With a TTY all is stdout. */
  stdout?: boolean;
  stderr?: boolean;
  /** Forward what the client sends to the process's stdin. */
  stdin: boolean;
  /** Close the process's stdin when the client ends its input. */
  closeStdinOnEof: boolean;
  /**
   * Docker's detach keys (parseDetachKeys): typed on stdin they end this connection and only it,
   * the process keeps running. Docker watches for them only on a TTY; undefined: not watched.
   */
  detachKeys?: Buffer;
  /** Awaited between the end of the output and the end of the stream. */
  beforeClose?: () => Promise<unknown>;
  /** What else ends when the client leaves before the output ended (the session always does). Not called on a detach. */
  onClientGone?: () => void;
}

/** Docker's default detach keys: ctrl-p, ctrl-q. */
export const DEFAULT_DETACH_KEYS = Buffer.from([16, 17]);

/**
 * Docker's `--detach-keys` form (moby/term ToBytes): comma-separated keys, each a single
 * character, `ctrl-@`, `ctrl-a` … `ctrl-z`, `ctrl-[`, `ctrl-\`, `ctrl-]`, `ctrl-^`, `ctrl-_`, or `DEL`.
 * "" gives the default (ctrl-p,ctrl-q).
 * @throws InvalidArgument `Invalid detach keys (…) provided` (Docker's text)
 */
export function parseDetachKeys(keys: string): Buffer {
  if (keys === "") return DEFAULT_DETACH_KEYS;
  const codes: number[] = [];
  for (const key of keys.split(",")) {
    if (key.length === 1) codes.push(key.charCodeAt(0));
    else if (key === "DEL") codes.push(127);
    else {
      const m = /^ctrl-([a-z@[\\\]^_])$/.exec(key);
      if (!m) throw invalidArgument(`Invalid detach keys (${keys}) provided`);
      const c = m[1]!;
      codes.push(c >= "a" && c <= "z" ? c.charCodeAt(0) - 96 : "@abcdefghijklmnopqrstuvwxyz[\\]^_".indexOf(c));
    }
  }
  if (codes.some((c) => c > 255)) throw invalidArgument(`Invalid detach keys (${keys}) provided`);
  return Buffer.from(codes);
}

/**
 * Streams a stdio session over a hijacked connection until the process ends, the client
 * leaves or it types the detach keys. Owns the session: it is closed when the client goes away.
 */
export function pumpSession(stream: HijackedStream, session: StdioSession, o: PumpOptions): void {
  const output = session.output;
  let detached = false;
  output.on("data", (chunk: OutputChunk) => {
    if (detached || o[chunk.stream] === false) return;
    if (stream.write(o.framed ? frame(chunk.stream, chunk.data) : chunk.data) || stream.gone) return;
    // A slow client: the session's own limit ends it rather than let memory grow.
    output.pause();
    stream.onDrain(() => output.resume());
  });
  output.once("end", () => {
    if (detached) return;
    if (o.beforeClose)
      void settled(o.beforeClose()).finally(() => stream.close()); // a failure shows in the inspect of what it waited for
    else stream.close();
  });
  output.once("error", () => stream.close());
  const stdin = o.stdin ? session.stdin : undefined;
  if (stdin) {
    const escape = o.detachKeys ? new EscapeSequenceFilter(o.detachKeys) : undefined;
    stream.input.on("data", (d: Buffer) => {
      if (detached) return;
      let data = d;
      if (escape) {
        const r = escape.push(d);
        data = r.forward;
        if (r.detached) detached = true;
      }
      if (data.length && !stdin.destroyed && !stdin.writableEnded) stdin.write(data);
      if (detached) {
        // Only this connection ends: the session is let go without closing the process's stdin.
        session.close();
        stream.close();
      }
    });
    stream.input.once("end", () => {
      if (!detached && o.closeStdinOnEof && !stdin.destroyed && !stdin.writableEnded) stdin.end();
    });
  }
  // Without stdin to forward, what the client sends is read and dropped, so its end is seen.
  // (Explicitly: reading exec start's body paused the socket, and a "data" listener does not undo that.)
  stream.input.resume();
  stream.onGone(() => {
    session.close();
    o.onClientGone?.();
  });
}

/**
 * Reads a JSON body from an upgraded connection (exec start sends {Detach, Tty} before switching).
 * @throws InvalidArgument for a body that is not JSON; Canceled when the client leaves mid-body.
 */
export async function readUpgradeBody(ctx: RequestContext): Promise<{ body: Record<string, unknown>; rest: Buffer }> {
  const length = Number(ctx.req.headers["content-length"] ?? 0);
  if (!ctx.upgrade) {
    const chunks: Buffer[] = [];
    for await (const c of ctx.req) chunks.push(c as Buffer);
    return { body: parseBody(Buffer.concat(chunks).toString("utf8")), rest: Buffer.alloc(0) };
  }
  const socket: Duplex = ctx.upgrade.socket;
  let buf = ctx.upgrade.head;
  while (buf.length < length) {
    const chunk = await new Promise<Buffer | null>((resolve) => {
      const onData = (d: Buffer) => {
        cleanup();
        resolve(d);
      };
      const onEnd = () => {
        cleanup();
        resolve(null);
      };
      const cleanup = () => {
        socket.off("data", onData);
        socket.off("end", onEnd);
        socket.off("close", onEnd);
        socket.pause();
      };
      if (socket.destroyed || socket.readableEnded) return resolve(null);
      socket.on("data", onData);
      socket.once("end", onEnd);
      socket.once("close", onEnd);
      socket.resume();
    });
    if (!chunk) break;
    buf = Buffer.concat([buf, chunk]);
  }
  if (buf.length < length) throw canceled(`the client closed the connection after ${buf.length} of ${length} bytes of the request body`);
  const text = buf.subarray(0, length).toString("utf8");
  ctx.upgrade.head = buf.subarray(length);
  return { body: parseBody(text), rest: buf.subarray(length) };
}

function parseBody(text: string): Record<string, unknown> {
  if (!text.trim()) return {};
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw invalidArgument(`invalid JSON in request body: ${(e as Error).message}`, e);
  }
}
