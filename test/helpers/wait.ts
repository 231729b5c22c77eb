/** Waiting in tests for what the user would see, with the last error and an agent's log tail when it does not come. */
import type { AgentHandle } from "./agent.ts";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls `fn` every `everyMs` until it returns a truthy value (returned), or fails after `timeoutMs`
 * naming `what`, the last error `fn` threw, and `context`: an agent's log tail or a text of the caller's.
 */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  context?: AgentHandle | (() => string),
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) break;
    await sleep(everyMs);
  }
  const more = typeof context === "function" ? `\n${context()}` : context ? `\nagent log tail:\n${context.logs().split("\n").slice(-25).join("\n")}` : "";
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ""}${more}`);
}

/** Polls `fn` until it returns a truthy value or `timeoutMs` passes; returns the last value, for an assertion that shows it. */
export async function poll<T>(fn: () => Promise<T>, timeoutMs = 10_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = await fn();
  while (!v && Date.now() < deadline) {
    await sleep(everyMs);
    v = await fn();
  }
  return v;
}
