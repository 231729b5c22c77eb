/**
 * The console of bench/fleet, in a process of its own so that its memory is measured
 * alone (the agents and the benchmark's own HTTP and socket clients live elsewhere).
 * Driven over the IPC channel by bench/fleet.ts: `start` answers `ready` with the URL,
 * an admin's session cookie and join tokens; `arrivals` answers with when the hub took
 * in each inventory delta (to split the event latency into agent→hub and hub→browser);
 * `stop` closes the console. A lost parent closes it too.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import pino from "pino";
import { startConsole, type RunningConsole } from "../server/console.ts";
import { createUser, sessionCookie } from "../test/helpers/console.ts";

export type ConsoleRequest = { type: "start"; databaseUrl: string; dataDir: string; tokens: number; ui: boolean } | { type: "arrivals" } | { type: "stop" };

export type ConsoleReply =
  | { type: "ready"; url: string; cookie: string; tokens: string[] }
  | { type: "arrivals"; arrivals: Array<{ nodeId: string; t: number }>; loopDelayP99Ms: number; loopDelayMaxMs: number }
  | { type: "stopped" }
  | { type: "error"; message: string };

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one machine. */
const wallNow = () => performance.timeOrigin + performance.now();

const send = (m: ConsoleReply) => process.send?.(m);
let running: RunningConsole | undefined;
const arrivals: Array<{ nodeId: string; t: number }> = [];
const loopDelay = monitorEventLoopDelay({ resolution: 10 });

async function start(req: Extract<ConsoleRequest, { type: "start" }>): Promise<void> {
  running = await startConsole({
    port: 0,
    host: "127.0.0.1",
    dataDir: req.dataDir,
    databaseUrl: req.databaseUrl,
    // The pages (a `next build` in .next) only when the benchmark drives browsers.
    ui: req.ui,
    // Info level logs a line per node connection and request: 500 nodes' worth of that is the benchmark measuring pino.
    logger: pino({ level: process.env.BERTH_BENCH_LOG ?? "warn" }),
    firstAdminEmail: "admin@bench.local",
  });
  // Deltas only: the snapshots on connect are not events a browser waits for.
  running.services.hub.on("node.inventory", (i) => {
    if (i.changes) arrivals.push({ nodeId: i.nodeId, t: wallNow() });
  });
  const admin = await createUser(running, "admin", { email: "bench-admin@bench.local" });
  const cookie = await sessionCookie(running, admin.id);
  const tokens: string[] = [];
  for (let i = 0; i < req.tokens; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, req.tokens - i) }, () =>
        running!.services.nodeRegistry.createJoinToken({ ttlMs: 2 * 3600 * 1000, note: "bench/fleet" }),
      ),
    );
    tokens.push(...batch.map((t) => t.token));
  }
  loopDelay.enable();
  send({ type: "ready", url: running.url, cookie, tokens });
}

async function stop(): Promise<void> {
  await running?.close();
  running = undefined;
  send({ type: "stopped" });
  process.exit(0);
}

process.on("message", (raw) => {
  const req = raw as ConsoleRequest;
  const fail = (e: unknown) => send({ type: "error", message: (e as Error).stack ?? String(e) });
  if (req.type === "start") start(req).catch(fail);
  else if (req.type === "arrivals") {
    send({ type: "arrivals", arrivals: arrivals.splice(0), loopDelayP99Ms: loopDelay.percentile(99) / 1e6, loopDelayMaxMs: loopDelay.max / 1e6 });
    loopDelay.reset(); // each answer covers the time since the previous one
  } else if (req.type === "stop") stop().catch(fail);
});
// The benchmark died without stopping us: leave no console behind.
process.on("disconnect", () => void stop().catch(() => process.exit(1)));
