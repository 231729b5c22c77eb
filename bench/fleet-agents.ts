/**
 * A worker of bench/fleet: plays a slice of the simulated fleet. Each node is a real
 * ConsoleLink (agent/link/link-client.ts: enrollment with a join token, credential
 * file, snapshot on connect, coalesced inventory deltas, requests with acks and
 * progress streams) in front of a STAND-IN ENGINE (bench/stand-in-engine.ts), so the
 * console sees the real link protocol from 500 nodes without 500 engines.
 *
 * Driven by bench/fleet.ts over the IPC channel (messages below).
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import pino from "pino";
import { ConsoleLink } from "../agent/link/link-client.ts";
import { StandInEngine } from "./stand-in-engine.ts";

export type WorkerRequest =
  | {
      type: "start";
      url: string;
      dir: string;
      agents: Array<{ index: number; token: string }>;
      enrollConcurrency: number;
      connectTimeoutMs: number;
      pullReference: string;
    }
  | { type: "toggle"; index: number; sample: number }
  | { type: "stop" };

export type WorkerReply =
  | { type: "enrolled"; index: number; nodeId: string }
  | { type: "refused"; index: number; message: string }
  | { type: "toggled"; sample: number; t: number }
  | { type: "pull"; index: number; t: number }
  | { type: "stopped" }
  | { type: "error"; message: string };

/** Wall-clock milliseconds with sub-millisecond precision, comparable across processes on one machine. */
const wallNow = () => performance.timeOrigin + performance.now();

const send = (m: WorkerReply) => process.send?.(m);
const nodes = new Map<number, { engine: StandInEngine; link: ConsoleLink }>();
const logger = pino({ level: process.env.BERTH_BENCH_LOG ?? "warn", base: { service: "bench-fleet-agent", pid: process.pid } });

async function start(req: Extract<WorkerRequest, { type: "start" }>): Promise<void> {
  // At most `enrollConcurrency` joins in flight per worker: the fleet enrolls as fast as the
  // console takes it, as a rollout would, rather than all at one instant (see bench/fleet.ts).
  let inFlight = 0;
  const freed: Array<() => void> = [];
  const release = () => {
    inFlight -= 1;
    freed.shift()?.();
  };
  for (const { index, token } of req.agents) {
    while (inFlight >= req.enrollConcurrency) await new Promise<void>((r) => freed.push(r));
    inFlight += 1;
    const dataRoot = join(req.dir, `node-${index}`);
    await mkdir(dataRoot, { recursive: true, mode: 0o700 });
    const engine = new StandInEngine({
      nodeIndex: index,
      dataRoot,
      onPull: (reference) => {
        if (reference === req.pullReference) send({ type: "pull", index, t: wallNow() });
      },
    });
    const link = new ConsoleLink({
      url: req.url,
      engine,
      credentialFile: join(dataRoot, "credential.json"),
      joinToken: token,
      logger: logger.child({ node: engine.hostname }),
      connectTimeoutMs: req.connectTimeoutMs,
    });
    let settled = false;
    const settle = () => {
      if (!settled) {
        settled = true;
        release();
      }
    };
    link.once("enrolled", (nodeId: string) => {
      settle();
      send({ type: "enrolled", index, nodeId });
    });
    link.on("refused", (r: { code: string; message: string }) => {
      settle();
      send({ type: "refused", index, message: `${r.code}: ${r.message}` });
    });
    link.on("revoked", (reason: string) => send({ type: "refused", index, message: `revoked: ${reason}` }));
    nodes.set(index, { engine, link });
    await link.start();
  }
}

async function toggle(req: Extract<WorkerRequest, { type: "toggle" }>): Promise<void> {
  const node = nodes.get(req.index);
  if (!node) throw new Error(`no simulated node ${req.index} in this worker`);
  // Stamped before the engine announces the change: everything after it is the link's and the console's time.
  const t = wallNow();
  await node.engine.toggle();
  send({ type: "toggled", sample: req.sample, t });
}

async function stop(): Promise<void> {
  await Promise.all([...nodes.values()].map((n) => n.link.stop()));
  nodes.clear();
  send({ type: "stopped" });
  process.exit(0);
}

process.on("message", (raw) => {
  const req = raw as WorkerRequest;
  const fail = (e: unknown) => send({ type: "error", message: (e as Error).stack ?? String(e) });
  if (req.type === "start") start(req).catch(fail);
  else if (req.type === "toggle") toggle(req).catch(fail);
  else if (req.type === "stop") stop().catch(fail);
});
// The benchmark died without stopping us: leave no links dialling.
process.on("disconnect", () => void stop().catch(() => process.exit(1)));
