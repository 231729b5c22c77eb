import { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import { notImplemented } from "../errors.ts";

/**
 * A SOCK_SEQPACKET unix-socket client (conmon's attach socket is one; Node's `net`
 * only speaks SOCK_STREAM). The socket itself is the N-API addon of the
 * `node-unix-socket` project (MIT), taken from its prebuilt platform package; this
 * file is a port of that project's small JavaScript wrapper, because its main
 * package lists optional platform packages that were never published, which makes
 * `npm ci` refuse the lock file.
 *
 * Events: "connect", "data" (one Buffer per packet), "end" (peer closed), "error", "close".
 */
interface SeqpacketWrap {
  init(self: SeqpacketWrap): void;
  connect(path: string): void;
  startRecv(): void;
  write(buf: Buffer, offset: number, length: number, cb?: () => void): void;
  shutdownWhenFlushed(): void;
  close(): void;
}

interface Addon {
  SeqpacketSocketWrap: new (emitter: EventEmitter, fd?: number) => SeqpacketWrap;
}

let addon: Addon | undefined;

function loadAddon(): Addon {
  if (addon) return addon;
  const pkg = `node-unix-socket-${process.platform}-${process.arch}-gnu`;
  try {
    addon = createRequire(import.meta.url)(pkg) as Addon;
    return addon;
  } catch (e) {
    throw notImplemented(
      `attaching to a container needs SOCK_SEQPACKET sockets, from the npm package ${pkg}, which is not installed (published for linux/x64 only)`,
      e,
    );
  }
}

export class SeqpacketSocket extends EventEmitter {
  private readonly wrap: SeqpacketWrap;
  private destroyed = false;
  private shutdown = false;
  private ended = false;
  private connectCb?: () => void;
  private shutdownCb?: () => void;

  constructor() {
    super();
    const { SeqpacketSocketWrap } = loadAddon();
    // The addon reports through events with a leading underscore on this emitter.
    this.emit = this.emit.bind(this);
    this.wrap = new SeqpacketSocketWrap(this);
    this.wrap.init(this.wrap);
    this.on("_data", (buf: Buffer) => this.emit("data", buf));
    this.on("end", () => {
      this.ended = true;
      this.closeWhenDone();
    });
    this.on("_connect", () => {
      this.wrap.startRecv();
      this.emit("connect");
      const cb = this.connectCb;
      this.connectCb = undefined;
      cb?.();
    });
    this.on("_error", (err: Error) => {
      process.nextTick(() => {
        this.emit("error", err);
        this.destroy();
      });
    });
    this.on("_shutdown", () => {
      this.shutdown = true;
      this.closeWhenDone();
      const cb = this.shutdownCb;
      this.shutdownCb = undefined;
      cb?.();
    });
  }

  private closeWhenDone(): void {
    if (this.ended && this.shutdown) this.destroy();
  }

  private checkDestroyed(): void {
    if (this.destroyed) throw new Error("SeqpacketSocket has been destroyed");
  }

  connect(path: string, cb?: () => void): void {
    this.checkDestroyed();
    this.connectCb = cb;
    this.wrap.connect(path);
  }

  /** Sends `length` bytes from `offset` as one packet. */
  write(buf: Buffer, offset = 0, length = buf.length - offset, cb?: () => void): void {
    this.checkDestroyed();
    this.wrap.write(buf, offset, length, cb);
  }

  /** Shuts down the sending side once queued packets are written. */
  end(cb?: () => void): void {
    this.shutdownCb = cb;
    this.wrap.shutdownWhenFlushed();
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.wrap.close();
  }
}
