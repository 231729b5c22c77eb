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
import type { MethodName, ParamsOf, ProgressEventWire } from "../../agent/link/contract.ts";
import { parseNormalizedReference } from "../../shared/reference.ts";
import type { LiveUpdates } from "../live/live-updates.ts";
import { bestEffort } from "../../shared/best-effort.ts";
import { CONTAINER_MAKING_ACTIONS, hostRulesOfNodes, judgeHostAccess } from "../auth/host-access.ts";
import { hostOptionsMessage, NO_HOST_ACCESS } from "../auth/host-options.ts";

/** A step runs one link method, or `container.run` (create, then start). */
export type StepAction = Exclude<MethodName, "inventory.snapshot" | "system.info" | "container.logs" | "container.exec" | "image.history" | "system.df" | "volume.inspect"> | "container.run";

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
}

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

export class JobService {
  private readonly running = new Map<string, { abort: AbortController; done: Promise<void> }>();
  private closed = false;

  constructor(
    private readonly deps: { prisma: PrismaClient; hub: AgentHub; registries: RegistryStore; live: LiveUpdates; logger: Logger; offlineWaitMs?: number },
  ) {}

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
      select: { id: true },
    });
    this.start(job.id);
    return { jobId: job.id };
  }

  /** Runs again every job left queued or running by a previous console process. */
  async resumeUnfinished(): Promise<number> {
    const jobs = await this.deps.prisma.job.findMany({ where: { status: { in: ["queued", "running"] } }, select: { id: true } });
    for (const j of jobs) this.start(j.id);
    if (jobs.length) this.deps.logger.info({ jobs: jobs.length }, "resuming unfinished jobs");
    return jobs.length;
  }

  /** Cancels a job: running steps are aborted on their nodes, pending ones never start. */
  async cancel(jobId: string): Promise<void> {
    this.running.get(jobId)?.abort.abort();
    await this.deps.prisma.jobStep.updateMany({ where: { jobId, status: "pending" }, data: { status: "canceled", finishedAt: new Date() } });
    const j = await this.deps.prisma.job.updateMany({ where: { id: jobId, status: { in: ["queued", "running"] } }, data: { status: "canceled", finishedAt: new Date() } });
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
      .finally(() => this.running.delete(jobId));
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
    const onStream = (e: ProgressEventWire) => {
      progress.status = e.status;
      if (e.id) {
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
        prisma.jobStep.update({ where: { id: step.id }, data: { progress: progress as unknown as InputJsonObject } }).catch(bestEffort(this.deps.logger, `save the progress of job step ${step.id}`));
      }
    };

    try {
      await this.waitOnline(step.nodeId, signal);
      const judged = await this.judgeAtRunTime(createdById, step.nodeId, step.action, params);
      const result = await this.send(step.id, step.nodeId, step.action as StepAction, judged, onStream, signal, credentials);
      await prisma.jobStep.update({
        where: { id: step.id },
        data: { status: "succeeded", finishedAt: new Date(), result: (result ?? {}) as InputJsonObject, progress: progress.layers.length ? (progress as unknown as InputJsonObject) : undefined },
      });
      this.notify(jobId, { stepId: step.id, nodeId: step.nodeId, status: "succeeded", progress }, createdById);
    } catch (e) {
      if (this.closed) return; // left "running": the next console process resumes it
      const canceled = e instanceof LinkRequestError && e.kind === "Canceled";
      const message = e instanceof Error ? e.message : String(e);
      await prisma.jobStep.update({ where: { id: step.id }, data: { status: canceled ? "canceled" : "failed", finishedAt: new Date(), error: message.slice(0, 4000) } });
      this.notify(jobId, { stepId: step.id, nodeId: step.nodeId, status: canceled ? "canceled" : "failed" }, createdById);
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
    // A volume whose driver options bind a host path is judged like that bind.
    if (!CONTAINER_MAKING_ACTIONS.has(action) && action !== "volume.create") return params;
    const { prisma } = this.deps;
    const creator = createdById ? await prisma.user.findUnique({ where: { id: createdById }, select: { role: true, disabled: true } }) : null;
    if (creator?.disabled) throw new Error("refused when the step ran: the account that created this job is disabled");
    // A job whose creator was deleted keeps only what any operator may do.
    const role = creator?.role ?? "operator";
    const { refused } = await judgeHostAccess(prisma, { role }, [{ nodeId, action, params }]);
    if (refused.length) throw new Error(`refused when the step ran (the host policy or the creator's role changed since the job was created): ${hostOptionsMessage(refused)}`);
    if (action === "volume.create") return params;
    const { hostPathRules: _fromRequest, ...rest } = params;
    if (role === "admin") return rest;
    const rules = (await hostRulesOfNodes(prisma, [nodeId])).get(nodeId)?.rules ?? NO_HOST_ACCESS;
    return { ...rest, hostPathRules: rules.bindMounts };
  }

  private async waitOnline(nodeId: string, signal: AbortSignal): Promise<void> {
    const waitMs = this.deps.offlineWaitMs ?? DEFAULT_OFFLINE_WAIT_MS;
    const deadline = Date.now() + waitMs;
    while (!this.deps.hub.node(nodeId)?.online) {
      const st = this.deps.hub.node(nodeId);
      if (st?.revoked) throw new LinkRequestError("Unavailable", `node ${st.hostname} is revoked`, nodeId, "job");
      if (Date.now() > deadline) throw new LinkRequestError("Unavailable", `node ${st?.hostname ?? nodeId} is offline (waited ${waitMs / 1000} s for it)`, nodeId, "job");
      if (signal.aborted) throw new LinkRequestError("Canceled", "the job was canceled", nodeId, "job");
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** The registry settings for a reference, looked up once per stage of a job (every step pulls the same image). */
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
    onStream: (e: ProgressEventWire) => void,
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
          // `docker run` pulls a missing image first; so does the console.
          if (!(e instanceof LinkRequestError && e.kind === "NotFound" && /image/i.test(e.message))) throw e;
          const access = await this.registryAccess(create.image, cache);
          await hub.request(nodeId, "image.pull", { reference: create.image, ...access }, { requestId: derivedRequestId(stepId, "pull"), signal, onStream });
          created = await hub.request(nodeId, "container.create", create, { requestId: derivedRequestId(stepId, "create"), signal });
        }
        await hub.request(nodeId, "container.start", { id: created.id }, { requestId: derivedRequestId(stepId, "start"), signal });
        return created;
      }
      default:
        return hub.request(nodeId, action, params as never, opts);
    }
  }

  private notify(jobId: string, p: { stepId?: string; nodeId?: string; status?: string; progress?: unknown }, createdById?: string | null): void {
    this.deps.live.jobChanged({ jobId, createdById: createdById ?? null, nodeIds: p.nodeId ? [p.nodeId] : [], ...p });
  }
}
