/**
 * The registry stall timeout: a registry that makes no progress on a request (no answer)
 * or a body (less than STALL_MIN_BYTES in the limit, while the agent waits to read) fails
 * the request with RegistryStallError instead of holding a pull forever. Used by send() (http.ts).
 */
import { EngineError } from "../errors.ts";

/** How long a registry may keep a request without progress (agent flag --registry-stall-timeout). */
/**
 * Cancels a body nobody reads any more. cancel() rejects only with the body's own failure,
 * which is no news to a reader that has already stopped (and has its own error to report).
 */
export async function cancelBody(body: { cancel(reason?: unknown): Promise<void> } | null | undefined, reason?: unknown): Promise<void> {
  try {
    await body?.cancel(reason);
  } catch {
    // the body had already failed: nothing left to release
  }
}

export const DEFAULT_STALL_TIMEOUT_MS = 30_000;
/**
 * Progress means at least this many bytes in one stall window: a registry that drips a
 * byte a second is as stuck as one that sends nothing (curl's --speed-limit idea).
 */
export const STALL_MIN_BYTES = 1024;
/**
 * A request body (a push chunk of up to 8 MiB) leaves before any answer can come: the wait
 * for the answer's headers gets the time to send it at this floor rate on top of the limit.
 */
export const UPLOAD_FLOOR_BYTES_PER_S = 64 * 1024;

/**
 * A registry made no progress for the stall timeout: no answer to a request, or less than
 * STALL_MIN_BYTES of a body while the agent was waiting to read it. Unavailable, and
 * retried like a reset connection (withRetry; the puller retries blob bodies).
 */
export class RegistryStallError extends EngineError {
  constructor(
    readonly registry: string,
    readonly subject: string,
    readonly limitMs: number,
    phase: "answer" | "body",
  ) {
    const limit = limitMs % 1000 === 0 ? `${limitMs / 1000} s` : `${limitMs} ms`;
    const what = phase === "answer" ? "did not answer" : `sent less than ${STALL_MIN_BYTES} bytes`;
    super("Unavailable", `registry ${registry} stalled: it ${what} in ${limit} (the registry stall timeout) for ${subject}`);
  }
}

/** What a registry URL is about, for messages: "blob sha256:…", "manifest v1", else the path. */
export function requestSubject(url: string): string {
  const u = new URL(url);
  const m = /^\/v2\/(.+)\/(blobs|manifests)\/([^/]+)$/.exec(u.pathname);
  if (m) return `${m[2] === "blobs" ? "blob" : "manifest"} ${decodeURIComponent(m[3]!)} of ${m[1]}`;
  return `${u.pathname}`;
}

/**
 * Measures a registry's progress for one request. The clock runs only while the agent
 * waits on the registry (for the answer, or for a body chunk it asked for), never while
 * the agent's own side (disk, unpacking) holds the reading back.
 */
export class StallClock {
  private waitedMs = 0;
  private bytes = 0;
  private since = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly limitMs: number,
    private readonly onStall: (phase: "answer" | "body") => void,
  ) {}

  /** The agent starts waiting; `graceMs` extends this wait only (time to send a request body). */
  waiting(phase: "answer" | "body", graceMs = 0): void {
    this.stop();
    this.since = Date.now();
    this.timer = setTimeout(() => this.onStall(phase), Math.max(0, this.limitMs + graceMs - this.waitedMs));
  }

  /** `n` bytes (or the answer's head, n = 0) arrived. */
  arrived(n: number, phase: "answer" | "body"): void {
    if (this.timer) this.waitedMs += Date.now() - this.since;
    this.stop();
    this.bytes += n;
    if (phase === "answer" || this.bytes >= STALL_MIN_BYTES) {
      this.waitedMs = 0;
      this.bytes = 0;
    }
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/**
 * The response with its body read through the stall clock: a read the registry leaves
 * unanswered for the limit fails with the RegistryStallError and closes the connection.
 */
export function watchBody(res: Response, clock: StallClock, stallOf: () => RegistryStallError | undefined, release: () => void): Response {
  if (!res.body || [204, 205, 304].includes(res.status)) {
    release();
    return res;
  }
  const reader = res.body.getReader();
  const watched = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        clock.waiting("body");
        try {
          const { done, value } = await reader.read();
          clock.arrived(value?.byteLength ?? 0, "body");
          if (done) {
            clock.stop();
            release();
            controller.close();
          } else {
            controller.enqueue(value);
          }
        } catch (e) {
          clock.stop();
          release();
          controller.error(stallOf() ?? e);
        }
      },
      async cancel(reason) {
        clock.stop();
        release();
        await cancelBody(reader, reason);
      },
    },
    { highWaterMark: 0 },
  );
  // Response refuses a body with a null-body status; those have no body to watch anyway.
  return new Response(watched, { status: res.status, statusText: res.statusText, headers: res.headers });
}
