import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import { invalidArgument } from "../errors.ts";
import { bestEffort, type DebugLog } from "../../../shared/best-effort.ts";
import type { ExecSession, OutputChunk } from "../monitor/monitor.ts";
import { killProcessTree, killProcessTreeSync } from "../monitor/process-tree.ts";
import type { ContainerRecord, HealthcheckSpec, HealthResult, HealthState } from "./container-record.ts";

/**
 * Container health checks with Docker's semantics (moby daemon/health.go): a probe runs as
 * an exec in the container every interval; a probe that outlives its timeout is killed
 * (with everything it started) and counts as a failure; `retries` failures in a row make
 * the container unhealthy, one success makes it healthy; failures within the start period
 * do not count while the container has never been healthy. The last five results are kept.
 */

const NS_PER_MS = 1e6;
export const DEFAULT_INTERVAL_NS = 30e9;
export const DEFAULT_TIMEOUT_NS = 30e9;
export const DEFAULT_RETRIES = 3;
/** Docker keeps this many results in State.Health.Log. */
export const MAX_LOG_ENTRIES = 5;
/** Docker stores this many bytes of a probe's output, then "...". */
export const MAX_OUTPUT_BYTES = 4096;
/** Docker's container.MinimumDuration for the health check's durations. */
const MINIMUM_DURATION_NS = 1e6;
/** How long output may still arrive after the probe exited (a background child holding stdout must not hang the monitor). */
const OUTPUT_GRACE_MS = 1000;

/** The check a running container gets: the command line and timings, defaults applied. */
export interface HealthProbe {
  cmd: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
  /** Docker's text for a timeout, e.g. "Health check exceeded timeout (1s)". */
  timeoutText: string;
}

/** The image's Healthcheck (Docker JSON), read leniently: the image config keeps it unparsed. */
export function imageHealthcheck(raw: unknown): HealthcheckSpec | undefined {
  if (!raw || typeof raw !== "object") return undefined;
  const h = raw as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === "number" && Number.isInteger(v) && v > 0 ? v : 0);
  return {
    test: Array.isArray(h.Test) ? h.Test.filter((x): x is string => typeof x === "string") : [],
    interval: num(h.Interval),
    timeout: num(h.Timeout),
    startPeriod: num(h.StartPeriod),
    retries: num(h.Retries),
  };
}

/**
 * Docker's merge of `--health-*` with the image's HEALTHCHECK (daemon/commit.go `merge`):
 * without run-time settings the image's check; otherwise each unset field (empty test, zero
 * duration or retries) taken from the image.
 */
export function effectiveHealthcheck(imageRaw: unknown, run: HealthcheckSpec | undefined): HealthcheckSpec | undefined {
  const image = imageHealthcheck(imageRaw);
  if (!run) return image;
  if (!image) return run;
  return {
    test: run.test.length ? run.test : image.test,
    interval: run.interval || image.interval,
    timeout: run.timeout || image.timeout,
    startPeriod: run.startPeriod || image.startPeriod,
    retries: run.retries || image.retries,
  };
}

/** Docker's JSON of a check (Config.Healthcheck, also in an image config): zero fields left out. */
export function healthcheckToDocker(h: HealthcheckSpec): { Test?: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; Retries?: number } {
  return {
    ...(h.test.length ? { Test: h.test } : {}),
    ...(h.interval ? { Interval: h.interval } : {}),
    ...(h.timeout ? { Timeout: h.timeout } : {}),
    ...(h.startPeriod ? { StartPeriod: h.startPeriod } : {}),
    ...(h.retries ? { Retries: h.retries } : {}),
  };
}

/** Docker's checks at create, with its texts (daemon/container.go verifyContainerSettings). */
export function validateHealthcheck(h: HealthcheckSpec | undefined): void {
  if (!h) return;
  const tooShort = (ns: number) => ns !== 0 && ns < MINIMUM_DURATION_NS;
  if (tooShort(h.interval)) throw invalidArgument("Interval in Healthcheck cannot be less than 1ms");
  if (tooShort(h.timeout)) throw invalidArgument("Timeout in Healthcheck cannot be less than 1ms");
  if (h.retries < 0) throw invalidArgument("Retries in Healthcheck cannot be negative");
  if (tooShort(h.startPeriod)) throw invalidArgument("StartPeriod in Healthcheck cannot be less than 1ms");
}

/**
 * What runs, or undefined for no check: "NONE", an empty test and unknown kinds (Docker
 * logs those and runs nothing). CMD-SHELL runs under the image's SHELL, else /bin/sh -c.
 */
export function healthProbe(h: HealthcheckSpec | undefined, shell?: readonly string[] | null): HealthProbe | undefined {
  if (!h || h.test.length === 0) return undefined;
  const [kind, ...rest] = h.test;
  let cmd: string[];
  if (kind === "CMD") cmd = rest;
  else if (kind === "CMD-SHELL") cmd = [...(shell?.length ? shell : ["/bin/sh", "-c"]), ...rest];
  else return undefined;
  if (cmd.length === 0) return undefined;
  const timeoutNs = h.timeout || DEFAULT_TIMEOUT_NS;
  return {
    cmd,
    intervalMs: (h.interval || DEFAULT_INTERVAL_NS) / NS_PER_MS,
    timeoutMs: timeoutNs / NS_PER_MS,
    retries: h.retries > 0 ? h.retries : DEFAULT_RETRIES,
    startPeriodMs: h.startPeriod / NS_PER_MS,
    timeoutText: `Health check exceeded timeout (${goDuration(timeoutNs)})`,
  };
}

/** Go's time.Duration.String() for the durations a health check is given ("1s", "1m30s", "500ms"). */
export function goDuration(ns: number): string {
  if (ns === 0) return "0s";
  if (ns < 1e3) return `${ns}ns`;
  if (ns < 1e6) return `${trimNum(ns / 1e3)}µs`;
  if (ns < 1e9) return `${trimNum(ns / 1e6)}ms`;
  const h = Math.floor(ns / 3600e9);
  const m = Math.floor((ns % 3600e9) / 60e9);
  const s = (ns % 60e9) / 1e9;
  return `${h ? `${h}h` : ""}${h || m ? `${m}m` : ""}${trimNum(s)}s`;
}

function trimNum(n: number): string {
  return String(Number(n.toFixed(9)));
}

/** The state a container's health starts from at each start: Docker keeps the log, resets the rest. */
export function startingHealth(previous: HealthState | undefined): HealthState {
  return { status: "starting", failingStreak: 0, log: previous?.log ?? [] };
}

/**
 * Docker's handleProbeResult: the new health after one result. `startedAt` is the
 * container's start (ISO 8601): a failure whose probe began within the start period,
 * while the container has not been healthy yet, does not count.
 */
export function applyProbeResult(
  health: HealthState,
  result: HealthResult,
  probe: Pick<HealthProbe, "retries" | "startPeriodMs">,
  startedAt: string,
): HealthState {
  const log = [...health.log, result].slice(-MAX_LOG_ENTRIES);
  if (result.exitCode === 0) return { status: "healthy", failingStreak: 0, log };
  if (health.status === "starting" && Date.parse(result.start) - Date.parse(startedAt) < probe.startPeriodMs) {
    return { ...health, log };
  }
  const failingStreak = health.failingStreak + 1;
  return { status: failingStreak >= probe.retries ? "unhealthy" : health.status, failingStreak, log };
}

/** Keeps the first MAX_OUTPUT_BYTES of a probe's output (Docker's limitedBuffer). */
export class LimitedOutput {
  private readonly parts: Buffer[] = [];
  private size = 0;
  private truncated = false;

  write(data: Buffer): void {
    const keep = Math.min(MAX_OUTPUT_BYTES - this.size, data.length);
    if (keep > 0) {
      this.parts.push(data.subarray(0, keep));
      this.size += keep;
    }
    if (keep < data.length) this.truncated = true;
  }

  toString(): string {
    return Buffer.concat(this.parts).toString("utf8") + (this.truncated ? "..." : "");
  }
}

/**
 * Runs one probe to its end: output collected, and when `signal` fires the process is killed
 * with everything it started, and awaited (dying probes must not pile up).
 */
export async function runProbe(session: ExecSession, signal: AbortSignal, log: DebugLog): Promise<{ exitCode: number; output: string }> {
  const output = new LimitedOutput();
  const kill = () => void killProcessTree(session.pid).catch(bestEffort(log, `kill the health probe ${session.pid}`));
  signal.addEventListener("abort", kill, { once: true });
  if (signal.aborted) kill();
  try {
    const drained = (async () => {
      for await (const chunk of session.output as AsyncIterable<OutputChunk>) output.write(chunk.data);
    })().catch(bestEffort(log, "read the output of a health probe"));
    const exitCode = await session.wait();
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([drained, new Promise<void>((r) => (grace = setTimeout(r, OUTPUT_GRACE_MS)))]);
    clearTimeout(grace);
    return { exitCode, output: output.toString() };
  } finally {
    signal.removeEventListener("abort", kill);
    session.close();
  }
}

export interface HealthMonitorDeps {
  /** Starts the probe's command as an exec in the running container, nothing attached but its output. */
  exec(containerId: string, cmd: string[]): Promise<ExecSession>;
  /** The container's record as it is now; undefined once removed. */
  record(id: string): ContainerRecord | undefined;
  save(record: ContainerRecord): Promise<void>;
  /** An event about the container (Docker's "health_status: healthy", the probe's exec_* events). */
  event(record: ContainerRecord, action: string, attributes?: Record<string, string>): void;
  logger: Logger;
}

/**
 * Runs the health checks of running containers: one loop per container, started with the
 * container (and again when the agent adopts it), stopped when it stops. The loop owns its
 * probe: stopping it kills a probe under way and waits for its end.
 */
export class HealthMonitor {
  private readonly loops = new Map<string, { stop: AbortController; done: Promise<void> }>();
  /** Host PIDs of the probes running now, by container. */
  private readonly probing = new Map<string, number>();

  constructor(private readonly deps: HealthMonitorDeps) {}

  /**
   * Starts checking a container that was just started (or adopted), if it has a check:
   * sets State.Health to "starting" (the caller saves the record).
   */
  start(record: ContainerRecord, probe: HealthProbe | undefined): void {
    this.abort(record.id);
    if (!probe) {
      delete record.state.health;
      return;
    }
    record.state.health = startingHealth(record.state.health);
    this.run(record, probe);
  }

  /**
   * Checks again after an unpause. As Docker, the status is left as the pause made it
   * (unhealthy) until the next result.
   */
  resume(record: ContainerRecord, probe: HealthProbe | undefined): void {
    if (!probe || this.loops.has(record.id)) return;
    record.state.health ??= startingHealth(undefined);
    this.run(record, probe);
  }

  private run(record: ContainerRecord, probe: HealthProbe): void {
    const stop = new AbortController();
    const done = this.loop(record.id, probe, stop.signal).catch((err: unknown) => this.deps.logger.warn({ err, id: record.id }, "the health monitor failed"));
    this.loops.set(record.id, { stop, done });
  }

  /**
   * Stops checking (the container stopped or was paused): a probe under way is killed and
   * awaited. As Docker, a container whose monitor stopped is unhealthy (the caller saves the record).
   */
  async stop(record: ContainerRecord): Promise<void> {
    await this.abort(record.id)?.done;
    // Also when no loop ran (the container exited while the agent was away).
    if (record.state.health) record.state.health.status = "unhealthy";
  }

  /**
   * Stops every loop (the agent is shutting down; containers keep their recorded health).
   * The probes under way are killed at once: the agent may exit before the loops end.
   */
  close(): void {
    for (const pid of this.probing.values()) killProcessTreeSync(pid);
    for (const id of [...this.loops.keys()]) this.abort(id);
  }

  private abort(id: string) {
    const loop = this.loops.get(id);
    if (!loop) return undefined;
    this.loops.delete(id);
    loop.stop.abort();
    return loop;
  }

  private async loop(id: string, probe: HealthProbe, stop: AbortSignal): Promise<void> {
    while (await delay(probe.intervalMs, stop)) {
      const start = new Date();
      const result = await this.probeOnce(id, probe, stop, start);
      // Docker drops the result of a probe cut short by the container stopping.
      if (stop.aborted) return;
      const record = this.deps.record(id);
      if (!record?.state.health) return;
      const before = record.state.health.status;
      record.state.health = applyProbeResult(record.state.health, result, probe, record.state.startedAt);
      await this.deps.save(record).catch((err: unknown) => this.deps.logger.warn({ err, id }, "could not save the health check's result"));
      const after = record.state.health.status;
      if (after !== before) this.deps.event(record, `health_status: ${after}`);
    }
  }

  private async probeOnce(id: string, probe: HealthProbe, stop: AbortSignal, start: Date): Promise<HealthResult> {
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), probe.timeoutMs);
    const onStop = () => timeout.abort();
    stop.addEventListener("abort", onStop, { once: true });
    const record = this.deps.record(id);
    const command = probe.cmd.join(" ");
    // Docker's events of a probe's exec, as for any exec.
    const execID = randomBytes(32).toString("hex");
    const event = (action: string, extra: Record<string, string> = {}) => record && this.deps.event(record, action, { execID, ...extra });
    try {
      event(`exec_create: ${command}`);
      const session = await this.deps.exec(id, probe.cmd);
      this.probing.set(id, session.pid);
      event(`exec_start: ${command}`);
      const { exitCode, output } = await runProbe(session, timeout.signal, this.deps.logger);
      event("exec_die", { exitCode: String(exitCode) });
      if (timeout.signal.aborted) return { start: start.toISOString(), end: new Date().toISOString(), exitCode: -1, output: probe.timeoutText };
      return { start: start.toISOString(), end: new Date().toISOString(), exitCode, output };
    } catch (e) {
      // Docker records an exec that could not start (paused container, missing binary) as a failure.
      return { start: start.toISOString(), end: new Date().toISOString(), exitCode: -1, output: e instanceof Error ? e.message : String(e) };
    } finally {
      this.probing.delete(id);
      clearTimeout(timer);
      stop.removeEventListener("abort", onStop);
    }
  }
}

/** Resolves true after `ms`, or false as soon as `signal` fires. */
function delay(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(false);
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
