import type { ProgressEventWire } from "./contract.ts";

/**
 * Thins a request's progress events for the wire. Byte counters ("Downloading" with
 * `current`) arrive per chunk; per item and status at most one goes out every
 * `intervalMs`, always the latest. Any other event (a status change) first sends what is
 * held back for its item, so order per item is kept. `flush()` sends everything held.
 */
export class ProgressCoalescer {
  private readonly held = new Map<string, ProgressEventWire>();
  private readonly lastSent = new Map<string, number>();
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly send: (event: ProgressEventWire) => void,
    private readonly intervalMs = 100,
  ) {}

  push(event: ProgressEventWire): void {
    const item = event.id ?? "";
    if (event.current === undefined) {
      this.flushItem(item);
      this.send(event);
      return;
    }
    const key = `${item}\u0000${event.status}`;
    const last = this.lastSent.get(key) ?? 0;
    const now = Date.now();
    if (now - last >= this.intervalMs && !this.held.has(key)) {
      this.lastSent.set(key, now);
      this.send(event);
      return;
    }
    this.held.set(key, event);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.intervalMs);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const now = Date.now();
    for (const [key, event] of this.held) {
      this.lastSent.set(key, now);
      this.send(event);
    }
    this.held.clear();
  }

  private flushItem(item: string): void {
    const now = Date.now();
    for (const [key, event] of this.held) {
      if ((event.id ?? "") !== item) continue;
      this.held.delete(key);
      this.lastSent.set(key, now);
      this.send(event);
    }
  }
}
