/**
 * Durable jobs: an action on one node or many, kept in the database as a job with one
 * step per node (and per stage: a distribution pushes from one node at seq 0, then
 * pulls on the others at seq 1). The job outlives the browser that started it and
 * the console process: at start, `resumeUnfinished()` runs again what was queued or
 * running, sending each step with its own id as the link's idempotency key, so a
 * step the node already ran is answered from the node's ledger instead of running twice,
 * and a step the node was running when its agent died fails with the agent's Interrupted
 * answer ("the agent restarted while running this") instead of running again.
 *
 * Steps on one container are ordered by the console: a step waits for the steps on the
 * same container (node and container ID or name) that were queued before it, in any
 * job, so a Pause clicked during a Restart pauses the restarted container instead of
 * racing it.
 *
 * Registry credentials are never stored with a step: they are looked up from the
 * registries table each time the step is sent.
 */
import { createHash } from "node:crypto";
import type { Logger } from "pino";
import type { PrismaClient } from "../db/generated/client.ts";
import type { InputJsonObject } from "../db/generated/internal/prismaNamespace.ts";
import type { JobStatus, StepStatus } from "../db/generated/enums.ts";
import type { RegistryStore } from "../db/registries.ts";
import { LinkRequestError, type AgentHub } from "../hub/agent-hub.ts";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { BUILD_UPLOAD_CHUNK_BYTES, type BuildStreamEvent, type MethodName, type ParamsOf, type ProgressEventWire } from "../../agent/link/contract.ts";
import { parseNormalizedReference } from "../../shared/reference.ts";
import type { LiveUpdates } from "../live/live-updates.ts";
import { awaitedLater, bestEffort } from "../../shared/best-effort.ts";
import { CONTAINER_MAKING_ACTIONS, hostRulesOfNodes, judgeHostAccess } from "../auth/host-access.ts";
import { hostOptionsMessage, hostOptionUses, NO_HOST_ACCESS } from "../auth/host-options.ts";

/** A step runs one link method, or `container.run` (create, then start). */
export type StepAction =
  | Exclude<
      MethodName,
      | "inventory.snapshot"
      | "system.info"
      | "container.logs"
      | "container.exec"
      | "image.history"
      | "build.upload"
      | "container.inspect"
      | "container.stats"
      | "system.df"
      | "volume.inspect"
      | "agent.restart"
    >
  | "container.run"
  | ConsoleStepAction;

/**
 * Steps the console runs itself rather than sending to the node (the agent upgrade over
 * SSH): no waiting for the node to be online, progress reported as status and log text.
 */
export type ConsoleStepAction = "agent.upgrade";
export type ConsoleStepRunner = (step: {
  stepId: string;
  nodeId: string;
  params: Record<string, unknown>;
  signal: AbortSignal;
  /** A status line, or text for the step's log. */
  report: (e: { status: string } | { text: string }) => void;
}) => Promise<unknown>;

/**
 * The params of an `image.build` step as stored: the link's params without the context,
 * which is a file of the console's (`contextFile` in the build contexts directory, not in
 * the database) sent to the node in pieces when the step runs.
 */
export type BuildStepParams = Omit<ParamsOf<"image.build">, "context"> & { contextFile?: string; contextBytes?: number };
/** Names of the console's stored build contexts: what `contextFile` may be. */
export const CONTEXT_FILE = /^[0-9a-f-]{36}\.ctx$/;

export interface StepSpec {
  nodeId: string;
  /** Stage: steps of a stage run after every step of the previous stages succeeded. */
  seq?: number;
  action: StepAction;
  params: Record<string, unknown>;
}

/** What the console's registries table says for a step's registry. */
interface RegistryAccess {
  credentials?: NonNullable<ParamsOf<"image.pull">["credentials"]>;
  insecure?: true;
}

export interface LayerProgress {
  id: string;
  status: string;
  current?: number;
  total?: number;
}

export interface StepProgress {
  status: string;
  layers: LayerProgress[];
  /** A build's output (`Step 1/3 : FROM …`, RUN output), its last MAX_STEP_LOG characters. */
  log?: string;
}

/** How much of a build's output a step keeps (the start is dropped first). */
export const MAX_STEP_LOG = 256 * 1024;

const LIVE_INTERVAL_MS = 150;
const SAVE_INTERVAL_MS = 1_000;
/** How long a step waits for an offline node to come back (after a console restart agents reconnect within seconds). */
const DEFAULT_OFFLINE_WAIT_MS = 60_000;
const MAX_PARALLEL_STEPS = 200;

/** A second request id derived from a step's id (for the start after a create), stable across retries. */
function derivedRequestId(stepId: string, purpose: string): string {
  const h = createHash("sha256").update(`${stepId}:${purpose}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** The registry host of a reference, as the registries table keys it ("docker.io", "127.0.0.1:5000"). */
export function registryOf(reference: string): string | undefined {
  try {
    return parseNormalizedReference(reference).domain;
  } catch {
    return undefined;
  }
}

/** A step's place in the line of one container's steps. */
interface LineEntry {
  jobId: string;
  stepId: string;
  keys: string[];
  done: Promise<void>;
  release: () => void;
}

/** The container a step acts on, as keys shared by every step on it: its ID and its name. */
export function containerKeys(nodeId: string, action: string, params: Record<string, unknown>, known: ReadonlyArray<{ id: string; name: string }>): string[] {
  if (!action.startsWith("container.")) return [];
  const keys = new Set<string>();
  const add = (c: { id: string; name: string }) => {
    keys.add(`${nodeId}|id:${c.id}`);
    keys.add(`${nodeId}|name:${c.name.replace(/^\//, "")}`);
  };
  const ref = typeof params.id === "string" ? params.id : undefined;
  const name = typeof params.name === "string" && params.name ? params.name.replace(/^\//, "") : undefined;
  if (ref) {
    const r = ref.replace(/^\//, "");
    const c = known.find((k) => k.id === r || k.name.replace(/^\//, "") === r) ?? (r.length >= 4 ? known.find((k) => k.id.startsWith(r)) : undefined);
    if (c) add(c);
    else keys.add(`${nodeId}|ref:${r}`);
  }
  if (name) {
    keys.add(`${nodeId}|name:${name}`);
    const c = known.find((k) => k.name.replace(/^\//, "") === name);
    if (c) add(c);
  }
  return [...keys];
}

export class JobService {
  private readonly running = new Map<string, { abort: AbortController; done: Promise<void> }>();
  /** Unfinished container steps in the order they were queued (see containerKeys). */
  private readonly line: LineEntry[] = [];
  private closed = false;

  constructor(
    private readonly deps: {
      prisma: PrismaClient;
      hub: AgentHub;
      registries: RegistryStore;
      live: LiveUpdates;
      logger: Logger;
      offlineWaitMs?: number;
      /** Where build contexts wait for their job (`<dataDir>/build-contexts`); the build step removes its own when it ends. */
      buildContextsDir?: string;
      consoleSteps?: Partial<Record<ConsoleStepAction, ConsoleStepRunner>>;
    },
  ) {}

  /** Where a build context uploaded by a user waits for its job's build step. */
  buildContextPath(name: string): string {
    if (!this.deps.buildContextsDir) throw new Error("this console keeps no build contexts (no buildContextsDir)");
    if (!CONTEXT_FILE.test(name)) throw new RangeError(`not a build context name: ${name}`);
    return join(this.deps.buildContextsDir, name);
  }

  /** Records the job and starts it; returns at once (the job goes on without the caller). */
  async create(input: { kind: string; params: Record<string, unknown>; steps: StepSpec[]; createdById: string | null }): Promise<{ jobId: string }> {
    if (input.steps.length === 0) throw new RangeError("a job needs at least one step");
    const job = await this.deps.prisma.job.create({
      data: {
        kind: input.kind,
        params: input.params as InputJsonObject,
        createdById: input.createdById,
        steps: {
          create: input.steps.map((s) => ({ nodeId: s.nodeId, seq: s.seq ?? 0, action: s.action, params: s.params as InputJsonObject })),
        },
      },
      select: { id: true, steps: { select: { id: true, nodeId: true, action: true, params: true } } },
    });
    this.enqueue(job.id, job.steps);
    this.start(job.id);
    return { jobId: job.id };
  }

  /** Runs again every job left queued or running by a previous console process. */
  async resumeUnfinished(): Promise<number> {
    const jobs = await this.deps.prisma.job.findMany({
      where: { status: { in: ["queued", "running"] } },
      orderBy: { createdAt: "asc" },
      select: {
        id: true,
        steps: { where: { status: { in: ["pending", "running"] } }, orderBy: { seq: "asc" }, select: { id: true, nodeId: true, action: true, params: true } },
      },
    });
    for (const j of jobs) this.enqueue(j.id, j.steps);
    for (const j of jobs) this.start(j.id);
    if (jobs.length) this.deps.logger.info({ jobs: jobs.length }, "resuming unfinished jobs");
    return jobs.length;
  }

  /** Cancels a job: running steps are aborted on their nodes, pending ones never start. */
  async cancel(jobId: string): Promise<void> {
    this.running.get(jobId)?.abort.abort();
    await this.deps.prisma.jobStep.updateMany({ where: { jobId, status: "pending" }, data: { status: "canceled", finishedAt: new Date() } });
    const j = await this.deps.prisma.job.updateMany({
      where: { id: jobId, status: { in: ["queued", "running"] } },
      data: { status: "canceled", finishedAt: new Date() },
    });
    if (j.count) this.notify(jobId, { status: "canceled" });
  }

  /** Waits for the jobs this process runs (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.all([...this.running.values()].map((r) => r.done));
  }

  /** Stops running steps without marking them: the next console process resumes them. */
  async close(): Promise<void> {
    this.closed = true;
    for (const r of this.running.values()) r.abort.abort(new Error("console shutting down"));
    await Promise.allSettled([...this.running.values()].map((r) => r.done));
  }

  private start(jobId: string): void {
    if (this.running.has(jobId) || this.closed) return;
    const abort = new AbortController();
    const done = this.run(jobId, abort.signal)
      .catch((e: unknown) => this.deps.logger.error({ jobId, err: e }, "job failed to run"))
      .finally(() => {
        this.running.delete(jobId);
        // Steps that never ran (skipped, canceled) no longer hold up later steps on their containers.
        for (const e of this.line.filter((l) => l.jobId === jobId)) this.leave(e);
      });
    this.running.set(jobId, { abort, done });
  }

  private async run(jobId: string, signal: AbortSignal): Promise<void> {
    const { prisma } = this.deps;
    const job = await prisma.job.findUnique({ where: { id: jobId }, include: { steps: { orderBy: [{ seq: "asc" }] } } });
    if (!job || job.status === "canceled") return;
    if (job.status === "queued") {
      await prisma.job.update({ where: { id: jobId }, data: { status: "running", startedAt: new Date() } });
      this.notify(jobId, { status: "running" }, job.createdById);
    }
    const stages = [...new Set(job.steps.map((s) => s.seq))].sort((a, b) => a - b);
    let blocked: string | undefined;
    for (const seq of stages) {
      const steps = job.steps.filter((s) => s.seq === seq && (s.status === "pending" || s.status === "running"));
      if (blocked) {
        await prisma.jobStep.updateMany({ where: { id: { in: steps.map((s) => s.id) } }, data: { status: "skipped", error: blocked, finishedAt: new Date() } });
        for (const s of steps) this.notify(jobId, { stepId: s.id, nodeId: s.nodeId, status: "skipped" }, job.createdById);
        continue;
      }
      // One write marks the stage running, so sending to 100s of nodes does not wait on 100s of updates.
      await prisma.jobStep.updateMany({ where: { id: { in: steps.map((s) => s.id) } }, data: { status: "running", startedAt: new Date(), error: null } });
      for (const st of steps) this.notify(jobId, { stepId: st.id, nodeId: st.nodeId, status: "running" }, job.createdById);
      const credentials = new Map<string, Promise<RegistryAccess>>();
      for (let i = 0; i < steps.length; i += MAX_PARALLEL_STEPS) {
        await Promise.all(steps.slice(i, i + MAX_PARALLEL_STEPS).map((s) => this.runStep(jobId, job.createdById, s, signal, credentials)));
      }
      if (this.closed) return;
      const failed = await prisma.jobStep.count({ where: { jobId, seq, status: { not: "succeeded" } } });
      if (failed) blocked = `an earlier stage failed on ${failed} node${failed === 1 ? "" : "s"}`;
    }
    if (this.closed) return;
    const counts = await prisma.jobStep.groupBy({ by: ["status"], where: { jobId }, _count: true });
    const n = (st: StepStatus) => counts.find((c) => c.status === st)?._count ?? 0;
    const total = counts.reduce((a, c) => a + c._count, 0);
    let status: JobStatus = n("succeeded") === total ? "succeeded" : n("succeeded") === 0 ? "failed" : "partial";
    if (n("canceled") > 0 && n("failed") === 0) status = "canceled";
    const updated = await prisma.job.updateMany({ where: { id: jobId, status: "running" }, data: { status, finishedAt: new Date() } });
    if (updated.count) this.notify(jobId, { status }, job.createdById);
  }

  private async runStep(
    jobId: string,
    createdById: string | null,
    step: { id: string; nodeId: string; action: string; params: unknown },
    signal: AbortSignal,
    credentials: Map<string, Promise<RegistryAccess>>,
  ): Promise<void> {
    const { prisma } = this.deps;
    const params = (step.params ?? {}) as Record<string, unknown>;

    const progress: StepProgress = { status: "", layers: [] };
    let lastLive = 0;
    let lastSave = 0;
    let trailing: NodeJS.Timeout | undefined;
    let settled = false;
    const save = () => {
      prisma.jobStep
        .update({ where: { id: step.id }, data: { progress: progress as unknown as InputJsonObject } })
        .catch(bestEffort(this.deps.logger, `save the progress of job step ${step.id}`));
    };
    const onStream = (e: ProgressEventWire | BuildStreamEvent) => {
      if ("text" in e) {
        const log = (progress.log ?? "") + e.text;
        progress.log = log.length > MAX_STEP_LOG ? log.slice(log.length - MAX_STEP_LOG) : log;
      } else progress.status = e.status;
      if (!("text" in e) && e.id) {
        let layer = progress.layers.find((l) => l.id === e.id);
        if (!layer) progress.layers.push((layer = { id: e.id, status: e.status }));
        layer.status = e.status;
        if (e.current !== undefined) layer.current = e.current;
        if (e.total !== undefined) layer.total = e.total;
      }
      const now = Date.now();
      if (now - lastLive >= LIVE_INTERVAL_MS) {
        lastLive = now;
        this.notify(jobId, { stepId: step.id, nodeId: step.nodeId, status: "running", progress }, createdById);
      }
      if (now - lastSave >= SAVE_INTERVAL_MS) {
        lastSave = now;
        save();
      }
      // The last events before a quiet spell (a RUN that sleeps) still reach the browser and the database.
      trailing ??= setTimeout(() => {
        trailing = undefined;
        if (settled) return;
        lastLive = lastSave = Date.now();
        this.notify(jobId, { stepId: step.id, nodeId: step.nodeId, status: "running", progress }, createdById);
        save();
      }, SAVE_INTERVAL_MS);
    };

    const entry = () => this.line.find((l) => l.stepId === step.id);
    try {
      await this.waitForEarlierSteps(step.id, signal, () => {
        progress.status = "waiting for an earlier action on this container to finish";
        this.notify(jobId, { stepId: step.id, nodeId: step.nodeId, status: "running", progress }, createdById);
      });
      progress.status = "";
      const consoleStep = this.deps.consoleSteps?.[step.action as ConsoleStepAction];
      const result = await (async () => {
        if (consoleStep) return consoleStep({ stepId: step.id, nodeId: step.nodeId, params, signal, report: onStream });
        await this.waitOnline(step.nodeId, signal);
        const judged = await this.judgeAtRunTime(createdById, step.nodeId, step.action, params);
        return this.send(step.id, step.nodeId, step.action as StepAction, judged, onStream, signal, credentials);
      })().finally(() => {
        settled = true;
        clearTimeout(trailing);
      });
      await prisma.jobStep.update({
        where: { id: step.id },
        data: {
          status: "succeeded",
          finishedAt: new Date(),
          result: (result ?? {}) as InputJsonObject,
          progress: progress.layers.length || progress.log ? (progress as unknown as InputJsonObject) : undefined,
        },
      });
      this.notify(jobId, { stepId: step.id, nodeId: step.nodeId, status: "succeeded", progress }, createdById);
    } catch (e) {
      if (this.closed) return; // left "running": the next console process resumes it
      const canceled = e instanceof LinkRequestError && e.kind === "Canceled";
      const message = e instanceof Error ? e.message : String(e);
      await prisma.jobStep.update({
        where: { id: step.id },
        data: {
          status: canceled ? "canceled" : "failed",
          finishedAt: new Date(),
          error: message.slice(0, 4000),
          ...(progress.log ? { progress: progress as unknown as InputJsonObject } : {}),
        },
      });
      this.notify(jobId, { stepId: step.id, nodeId: step.nodeId, status: canceled ? "canceled" : "failed", progress }, createdById);
    } finally {
      // A build's context is needed until its step ends, also across a console restart (then `closed`).
      const file = params.contextFile;
      if (step.action === "image.build" && typeof file === "string" && !this.closed)
        await rm(this.buildContextPath(file), { force: true }).catch(bestEffort(this.deps.logger, `remove build context ${file}`));
      const e = entry();
      // On shutdown the step stays in line: the next console process runs it in its turn.
      if (e && !this.closed) this.leave(e);
    }
  }

  /**
   * Judged again when the step runs, not only when the job was created: a job may wait
   * a long time for an offline node, and meanwhile an admin may have narrowed the node
   * group's host policy, moved the node, demoted or disabled the job's creator. The
   * params sent carry the policy's host paths for an operator's container, so that the
   * agent also checks each bind source as it resolves on the node (a symbolic link made by
   * an earlier container inside an allowed prefix can point anywhere).
   */
  private async judgeAtRunTime(createdById: string | null, nodeId: string, action: string, params: Record<string, unknown>): Promise<Record<string, unknown>> {
    const makesContainer = CONTAINER_MAKING_ACTIONS.has(action);
    // Other steps only matter when they carry a host-level option (a build's host network).
    if (!makesContainer && hostOptionUses(params, false).length === 0) return params;
    const { prisma } = this.deps;
    const creator = createdById ? await prisma.user.findUnique({ where: { id: createdById }, select: { role: true, disabled: true } }) : null;
    if (creator?.disabled) throw new Error("refused when the step ran: the account that created this job is disabled");
    // A job whose creator was deleted keeps only what any operator may do.
    const role = creator?.role ?? "operator";
    const { refused } = await judgeHostAccess(prisma, { role }, [{ nodeId, action, params }]);
    if (refused.length)
      throw new Error(`refused when the step ran (the host policy or the creator's role changed since the job was created): ${hostOptionsMessage(refused)}`);
    if (!makesContainer) return params;
    const { hostPathRules: _fromRequest, ...rest } = params;
    if (role === "admin") return rest;
    const rules = (await hostRulesOfNodes(prisma, [nodeId])).get(nodeId)?.rules ?? NO_HOST_ACCESS;
    return { ...rest, hostPathRules: rules.bindMounts };
  }

  /** Puts a job's container steps at the end of their containers' lines. */
  private enqueue(jobId: string, steps: ReadonlyArray<{ id: string; nodeId: string; action: string; params: unknown }>): void {
    for (const st of steps) {
      const known = this.deps.hub.node(st.nodeId)?.inventory?.containers ?? [];
      const keys = containerKeys(st.nodeId, st.action, (st.params ?? {}) as Record<string, unknown>, known);
      if (!keys.length) continue;
      let release!: () => void;
      const done = new Promise<void>((r) => (release = r));
      this.line.push({ jobId, stepId: st.id, keys, done, release });
    }
  }

  private leave(entry: LineEntry): void {
    const i = this.line.indexOf(entry);
    if (i >= 0) this.line.splice(i, 1);
    entry.release();
  }

  /** Waits for the steps queued before this one on the same container; says so on the step meanwhile. */
  private async waitForEarlierSteps(stepId: string, signal: AbortSignal, waiting: () => void): Promise<void> {
    const me = this.line.find((l) => l.stepId === stepId);
    if (!me) return;
    const earlier = this.line.slice(0, this.line.indexOf(me)).filter((l) => l.keys.some((k) => me.keys.includes(k)));
    if (!earlier.length) return;
    waiting();
    const aborted = new Promise<never>((_, reject) => {
      const fail = () => reject(new LinkRequestError("Canceled", "the job was canceled", "", "job"));
      if (signal.aborted) fail();
      signal.addEventListener("abort", fail, { once: true });
    });
    // Raced below; when the earlier steps win, the cancel that may follow must not go unhandled.
    await Promise.race([Promise.all(earlier.map((l) => l.done)), awaitedLater(aborted)]);
  }

  private async waitOnline(nodeId: string, signal: AbortSignal): Promise<void> {
    const waitMs = this.deps.offlineWaitMs ?? DEFAULT_OFFLINE_WAIT_MS;
    const deadline = Date.now() + waitMs;
    while (!this.deps.hub.node(nodeId)?.online) {
      const st = this.deps.hub.node(nodeId);
      if (st?.revoked) throw new LinkRequestError("Unavailable", `node ${st.hostname} is revoked`, nodeId, "job");
      if (Date.now() > deadline)
        throw new LinkRequestError("Unavailable", `node ${st?.hostname ?? nodeId} is offline (waited ${waitMs / 1000} s for it)`, nodeId, "job");
      if (signal.aborted) throw new LinkRequestError("Canceled", "the job was canceled", nodeId, "job");
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** The registry settings for a reference, looked up once per stage of a job (every step pulls the same image). */
  /** Whether the node holds the image (`image.history` answers NotFound for one it lacks). */
  private async nodeHasImage(nodeId: string, reference: string, signal: AbortSignal): Promise<boolean> {
    try {
      await this.deps.hub.request(nodeId, "image.history", { reference }, { signal });
      return true;
    } catch (e) {
      if (e instanceof LinkRequestError && e.kind === "NotFound") return false;
      throw e;
    }
  }

  private registryAccess(reference: unknown, cache: Map<string, Promise<RegistryAccess>>): Promise<RegistryAccess> {
    const host = typeof reference === "string" ? registryOf(reference) : undefined;
    if (!host) return Promise.resolve({});
    let p = cache.get(host);
    if (!p) {
      p = this.deps.registries.getCredentials(host).then((c) => ({
        ...(c?.username && c.password ? { credentials: { username: c.username, password: c.password } } : {}),
        ...(c?.insecure ? { insecure: true as const } : {}),
      }));
      cache.set(host, p);
    }
    return p;
  }

  private async send(
    stepId: string,
    nodeId: string,
    action: StepAction,
    params: Record<string, unknown>,
    onStream: (e: ProgressEventWire | BuildStreamEvent) => void,
    signal: AbortSignal,
    cache: Map<string, Promise<RegistryAccess>>,
  ): Promise<unknown> {
    const { hub } = this.deps;
    const opts = { requestId: stepId, signal };
    switch (action) {
      case "image.pull":
      case "image.push": {
        const access = await this.registryAccess(params.reference, cache);
        return hub.request(nodeId, action, { ...(params as ParamsOf<"image.pull">), ...access }, { ...opts, onStream });
      }
      case "container.run": {
        const create = params as ParamsOf<"container.create">;
        let created: { id: string; name: string };
        try {
          created = await hub.request(nodeId, "container.create", create, opts);
        } catch (e) {
          // `docker run` pulls a missing image first; so does the console. Other things a create
          // can miss (a network, a --volumes-from container) are not pulled for: ask the node.
          if (!(e instanceof LinkRequestError && e.kind === "NotFound") || (await this.nodeHasImage(nodeId, create.image, signal))) throw e;
          const access = await this.registryAccess(create.image, cache);
          await hub.request(nodeId, "image.pull", { reference: create.image, ...access }, { requestId: derivedRequestId(stepId, "pull"), signal, onStream });
          created = await hub.request(nodeId, "container.create", create, { requestId: derivedRequestId(stepId, "create"), signal });
        }
        try {
          await hub.request(nodeId, "container.start", { id: created.id }, { requestId: derivedRequestId(stepId, "start"), signal });
        } catch (e) {
          if (e instanceof LinkRequestError && (e.kind === "Canceled" || e.kind === "Interrupted" || this.closed)) throw e;
          // `docker run` leaves a container that cannot start behind; the console does not:
          // the user asked for a running container, and a Created one only holds the name.
          const why = e instanceof Error ? e.message : String(e);
          try {
            await hub.request(nodeId, "container.remove", { id: created.id, force: true, volumes: true }, { requestId: derivedRequestId(stepId, "cleanup") });
          } catch (cleanup) {
            throw new Error(`the container could not start: ${why}; removing ${created.name} failed too: ${(cleanup as Error).message}`, { cause: e });
          }
          throw new Error(`the container could not start: ${why} (${created.name} was removed)`, { cause: e });
        }
        return created;
      }
      case "image.build": {
        const { contextFile, contextBytes: _size, ...build } = params as BuildStepParams;
        let context: ParamsOf<"image.build">["context"];
        if (contextFile) {
          // In pieces, each its own idempotent request: no link message grows past its limit, and a
          // piece sent again after a reconnect (or a console restart) lands on the same bytes.
          const data = await readFile(this.buildContextPath(contextFile));
          const uploadId = derivedRequestId(stepId, "context");
          for (let offset = 0; offset < data.length || offset === 0; offset += BUILD_UPLOAD_CHUNK_BYTES) {
            const chunk = data.subarray(offset, offset + BUILD_UPLOAD_CHUNK_BYTES).toString("base64");
            await hub.request(nodeId, "build.upload", { uploadId, offset, data: chunk }, { requestId: derivedRequestId(stepId, `upload:${offset}`), signal });
            if (data.length === 0) break;
          }
          context = { uploadId, size: data.length };
        }
        return hub.request(nodeId, "image.build", { ...build, ...(context ? { context } : {}) }, { ...opts, onStream });
      }
      case "agent.upgrade":
        throw new Error(`${action} is run by the console, and this console has no runner for it`);
      default:
        return hub.request(nodeId, action, params as never, opts);
    }
  }

  private notify(jobId: string, p: { stepId?: string; nodeId?: string; status?: string; progress?: unknown }, createdById?: string | null): void {
    this.deps.live.jobChanged({ jobId, createdById: createdById ?? null, nodeIds: p.nodeId ? [p.nodeId] : [], ...p });
  }
}
