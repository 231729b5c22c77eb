import { Agent as HttpsAgent, type AgentOptions } from "node:https";
import { connect, type ConnectionOptions, type TLSSocket } from "node:tls";
import type { Duplex } from "node:stream";

/**
 * "AB:CD:…", "abcd…", "sha256:abcd…" or openssl's "sha256 Fingerprint=AB:CD:…" → "AB:CD:…"
 * (Node's `fingerprint256` form).
 * @throws Error when it is not 32 bytes of hex
 */
export function normalizeFingerprint(value: string): string {
  const hex = value
    .trim()
    .replace(/^sha256( fingerprint)?[:=]?\s*/i, "")
    .replace(/[:\s]/g, "")
    .toUpperCase();
  if (!/^[0-9A-F]{64}$/.test(hex)) throw new Error(`not a SHA-256 certificate fingerprint (64 hex digits, colons allowed): ${value}`);
  return hex.match(/../g)!.join(":");
}

/**
 * An https agent that trusts exactly one certificate: the console's, named by its SHA-256
 * fingerprint. The usual chain and host name checks are replaced by the pin (a pinned
 * console may use a self-signed certificate); a certificate with another fingerprint
 * ends the connection right after the TLS handshake, before the link sends anything.
 */
export class PinnedAgent extends HttpsAgent {
  readonly fingerprint: string;
  /** Called with the refusal when a connection presented another certificate. */
  onMismatch?: (error: Error) => void;

  constructor(fingerprint: string, options: AgentOptions = {}) {
    super({ ...options, keepAlive: false });
    this.fingerprint = normalizeFingerprint(fingerprint);
  }

  /** Node's Agent uses the returned socket (its callback form is for custom agents that cannot return one). */
  override createConnection(options: ConnectionOptions): Duplex {
    const socket: TLSSocket = connect({ ...options, rejectUnauthorized: false });
    socket.once("secureConnect", () => {
      const seen = socket.getPeerCertificate()?.fingerprint256;
      if (seen !== this.fingerprint) {
        const err = new Error(`the console's certificate has fingerprint ${seen ?? "(none)"}, not the pinned ${this.fingerprint}; refusing to talk to it`);
        this.onMismatch?.(err);
        socket.destroy(err);
      }
    });
    return socket;
  }
}
