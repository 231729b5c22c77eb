/**
 * A client of conmon's attach socket and control fifo, as a `StdioSession`.
 *
 * Protocol (conmon `conn_sock.c`, `ctrl.c`; podman `oci_conmon_attach_linux.go`):
 * - `BUNDLE/attach` is a SOCK_SEQPACKET socket (Node's net module cannot speak
 *   it, hence `node-unix-socket`). Each packet from conmon is one read of the
 *   process's output, prefixed by one byte naming the stream, conmon's
 *   `stdpipe_t`: 2 stdout, 3 stderr (1 would be stdin; with a TTY everything
 *   is 2). Packets sent to it are stdin, each at
 *   most conmon's buffer (32 KiB, kept well below here); an empty packet reads
 *   as end-of-file, so none is ever sent. Shutting down the writing half (or
 *   disconnecting) closes the process's stdin when conmon runs without
 *   `--leave-stdin-open`.
 * - `BUNDLE/ctl` is a fifo read by conmon: the line `1 ROWS COLS\n` resizes
 *   the terminal (2 reopens the log file).
 * Socket paths longer than sun_path (108 bytes) are reached through
 * `/proc/self/fd/N/attach`, N an open descriptor of the directory, as conmon and
 * podman do.
 */
import { closeSync, constants as fsConstants, openSync } from "node:fs";
import { open } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { Readable, Writable } from "node:stream";
import { SeqpacketSocket } from "./seqpacket-socket.ts";
import { conflict, EngineError } from "../errors.ts";
import type { OutputChunk, StdioSession } from "./monitor.ts";

/** Largest stdin packet sent (conmon reads up to CONN_SOCK_BUF_SIZE-1 = 32767 bytes per packet). */
const STDIN_PACKET = 16 * 1024;
/** Output chunks (each at most 8 KiB) queued for a consumer that does not read, before the session fails. */
export const MAX_QUEUED_CHUNKS = 1024;
const SUN_PATH_MAX = 107;

/** conmon's `stdpipe_t` (NO_PIPE, STDIN_PIPE, STDOUT_PIPE, STDERR_PIPE), podman's AttachPipeStdout/Stderr. */
const STREAM_STDOUT = 2;
const STREAM_STDERR = 3;

/**
 * Connects to a SOCK_SEQPACKET socket.
 * @throws Conflict "… is not running" when nothing listens there (no socket file, monitor gone).
 */
export async function connectSeqpacket(path: string, what: string): Promise<SeqpacketSocket> {
  let dirFd: number | undefined;
  let target = path;
  if (Buffer.byteLength(path) > SUN_PATH_MAX) {
    try {
      dirFd = openSync(dirname(path), fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
    } catch (e) {
      throw conflict(`${what} is not running`, e);
    }
    target = `/proc/self/fd/${dirFd}/${basename(path)}`;
  }
  const sock = new SeqpacketSocket();
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once("error", reject);
      try {
        sock.connect(target, () => {
          sock.off("error", reject);
          resolve();
        });
      } catch (e) {
        reject(e);
      }
    });
    return sock;
  } catch (e) {
    sock.destroy();
    throw conflict(`${what} is not running (${e instanceof Error ? e.message : String(e)})`, e);
  } finally {
    if (dirFd !== undefined) closeSync(dirFd);
  }
}

/**
 * Writes one control line to conmon's `ctl` fifo without blocking.
 * @throws Conflict if no monitor reads the fifo any more.
 */
export async function writeCtl(ctlPath: string, line: string, what: string): Promise<void> {
  let fh;
  try {
    fh = await open(ctlPath, fsConstants.O_WRONLY | fsConstants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENXIO" || code === "ENOENT") throw conflict(`${what} is not running`, e);
    throw e;
  }
  try {
    await fh.write(line);
  } finally {
    await fh.close();
  }
}

/** `1 ROWS COLS\n` after checking the size as conmon does (0..1000). */
export function resizeLine(cols: number, rows: number): string {
  for (const [name, v] of [
    ["cols", cols],
    ["rows", rows],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 1000) throw new EngineError("InvalidArgument", `invalid terminal ${name} ${v}: must be an integer from 0 to 1000`);
  }
  return `1 ${rows} ${cols}\n`;
}

/**
 * Wraps a connected attach socket as a StdioSession. Owns the socket: `close()`
 * (or the end of the output) releases it.
 */
export function stdioSession(sock: SeqpacketSocket, opts: { stdin: boolean; stdout: boolean; stderr: boolean; ctlPath: string; what: string }): StdioSession {
  let ended = false;
  let closed = false;
  const output = new Readable({ objectMode: true, read() {} });
  // A consumer that only reads "data" (it learns the end from the process's exit) must not
  // take the agent down when the session fails; those that listen still get the error.
  output.on("error", () => undefined);
  const finish = (err?: Error) => {
    if (ended) return;
    ended = true;
    if (err) output.destroy(err);
    else output.push(null);
  };
  const release = () => {
    if (closed) return;
    closed = true;
    sock.destroy();
  };

  sock.on("data", (buf: Buffer) => {
    if (ended || buf.length < 1) return;
    const kind = buf[0];
    let chunk: OutputChunk | undefined;
    if (kind === STREAM_STDOUT && opts.stdout) chunk = { stream: "stdout", data: buf.subarray(1) };
    else if (kind === STREAM_STDERR && opts.stderr) chunk = { stream: "stderr", data: buf.subarray(1) };
    if (!chunk || chunk.data.length === 0) return;
    if (output.readableLength >= MAX_QUEUED_CHUNKS) {
      finish(new EngineError("Unavailable", `${opts.what}: output consumer too slow (more than ${MAX_QUEUED_CHUNKS} chunks waiting)`));
      release();
      return;
    }
    output.push(chunk);
  });
  sock.on("end", () => {
    finish();
    release();
  });
  sock.on("close", () => finish());
  sock.on("error", () => {
    // The monitor going away at the process's exit can surface as a reset: that is an end.
    finish();
    release();
  });
  output.on("close", release);

  let stdin: Writable | undefined;
  if (opts.stdin) {
    stdin = new Writable({
      write(chunk: Buffer, _enc, cb) {
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
        if (buf.length === 0) return cb();
        if (closed) return cb(conflict(`${opts.what}: stdin is closed`));
        try {
          for (let off = 0; off < buf.length; off += STDIN_PACKET) {
            const last = off + STDIN_PACKET >= buf.length;
            sock.write(buf, off, Math.min(STDIN_PACKET, buf.length - off), last ? () => cb() : undefined);
          }
        } catch (e) {
          cb(e as Error);
        }
      },
      final(cb) {
        if (closed) return cb();
        try {
          sock.end(() => cb());
        } catch (e) {
          cb(e as Error);
        }
      },
    });
    stdin.on("error", () => undefined); // reported to the writer's callbacks; never crash the agent
  }

  return {
    stdin,
    output,
    resize: async (cols, rows) => writeCtl(opts.ctlPath, resizeLine(cols, rows), opts.what),
    close: () => {
      finish();
      release();
      stdin?.destroy();
    },
  };
}
