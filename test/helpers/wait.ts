/** Waiting in tests for what the user would see, with the last error and an agent's log tail when it does not come. */
import type { AgentHandle } from "./agent.ts";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value (returned), or fails after `timeoutMs` naming `what`. */
export async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, agent?: AgentHandle): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}${agent ? `\nagent log tail:\n${agent.logs().split("\n").slice(-15).join("\n")}` : ""}`);
}
