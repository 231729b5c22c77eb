/**
 * Actions on one node or many, each recorded as a durable job (server/jobs/job-service.ts).
 * The mutation returns the job's ID at once; progress arrives over the browser socket
 * and through jobs.get.
 */
import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { parseNormalizedReference } from "../../../shared/reference.ts";
import { createOptionsFromForm, hostRequestOfForm, RunFormError, RunFormSchema } from "../run-form.ts";
import { authedProcedure, requireNodes, router } from "../trpc.ts";
import { requireHostAccess, startJob } from "../start-job.ts";
import { storageJobs } from "./storage-jobs.ts";

const NodeIds = z.array(z.uuid({ error: "not a node ID" })).min(1, "choose at least one node").max(1000);
const Reference = z
  .string()
  .trim()
  .min(1, "image reference is required")
  .max(512)
  .superRefine((s, c) => {
    try {
      parseNormalizedReference(s);
    } catch (e) {
      c.addIssue({ code: "custom", message: `${JSON.stringify(s)}: ${(e as Error).message}` });
    }
  });
const ContainerAction = z.enum(["start", "stop", "restart", "pause", "unpause", "kill", "remove"]);

const JOB_LIST_STATUS = z.enum(["queued", "running", "succeeded", "failed", "partial", "canceled"]);

/** What the job list and a job's page both show of it. */
function jobSummary<Kind extends string, Status extends string>(j: { id: string; kind: Kind; params: unknown; status: Status; createdBy: { email: string } | null; createdAt: Date; finishedAt: Date | null }) {
  return {
    id: j.id,
    kind: j.kind,
    params: j.params as Record<string, unknown>,
    status: j.status,
    createdBy: j.createdBy?.email ?? null,
    createdAt: j.createdAt.toISOString(),
    finishedAt: j.finishedAt?.toISOString() ?? null,
  };
}

export const jobsRouter = router({
  ...storageJobs,
  list: authedProcedure
    .input(z.object({ page: z.number().int().min(1).default(1), pageSize: z.number().int().min(1).max(200).default(30), status: JOB_LIST_STATUS.optional(), nodeId: z.uuid().optional() }))
    .query(async ({ ctx, input }) => {
      await requireNodes(ctx, input.nodeId ? [input.nodeId] : [], "read");
      const scope = await ctx.nodeScope();
      const where = {
        ...(input.status ? { status: input.status } : {}),
        ...(input.nodeId ? { steps: { some: { nodeId: input.nodeId } } } : scope.all ? {} : { steps: { some: { nodeId: { in: [...scope.nodeIds] } } } }),
      };
      const [total, jobs] = await Promise.all([
        ctx.services.prisma.job.count({ where }),
        ctx.services.prisma.job.findMany({
          where,
          orderBy: { createdAt: "desc" },
          skip: (input.page - 1) * input.pageSize,
          take: input.pageSize,
          include: { createdBy: { select: { email: true } }, steps: { select: { status: true, nodeId: true } } },
        }),
      ]);
      return {
        total,
        page: input.page,
        pageSize: input.pageSize,
        items: jobs.map((j) => ({
          ...jobSummary(j),
          nodes: new Set(j.steps.map((s) => s.nodeId)).size,
          steps: { total: j.steps.length, succeeded: j.steps.filter((s) => s.status === "succeeded").length, failed: j.steps.filter((s) => s.status === "failed").length },
        })),
      };
    }),

  get: authedProcedure.input(z.object({ jobId: z.uuid() })).query(async ({ ctx, input }) => {
    const job = await ctx.services.prisma.job.findUnique({
      where: { id: input.jobId },
      include: { createdBy: { select: { email: true } }, steps: { orderBy: [{ seq: "asc" }], include: { node: { select: { name: true } } } } },
    });
    if (!job) throw new TRPCError({ code: "NOT_FOUND", message: `job ${input.jobId} does not exist` });
    await requireNodes(ctx, [...new Set(job.steps.map((s) => s.nodeId))], "read");
    return {
      ...jobSummary(job),
      startedAt: job.startedAt?.toISOString() ?? null,
      steps: job.steps.map((s) => ({
        id: s.id,
        seq: s.seq,
        nodeId: s.nodeId,
        nodeName: s.node.name,
        action: s.action,
        status: s.status,
        progress: s.progress as unknown,
        result: s.result as unknown,
        error: s.error,
        startedAt: s.startedAt?.toISOString() ?? null,
        finishedAt: s.finishedAt?.toISOString() ?? null,
      })),
    };
  }),

  cancel: authedProcedure.input(z.object({ jobId: z.uuid() })).mutation(async ({ ctx, input }) => {
    const steps = await ctx.services.prisma.jobStep.findMany({ where: { jobId: input.jobId }, select: { nodeId: true } });
    if (!steps.length) throw new TRPCError({ code: "NOT_FOUND", message: `job ${input.jobId} does not exist` });
    await requireNodes(ctx, [...new Set(steps.map((s) => s.nodeId))], "operate");
    await ctx.services.jobs.cancel(input.jobId);
    return { ok: true };
  }),

  pull: authedProcedure.input(z.object({ nodeIds: NodeIds, reference: Reference })).mutation(({ ctx, input }) =>
    startJob(ctx, "image.pull", { reference: input.reference }, input.nodeIds.map((nodeId) => ({ nodeId, action: "image.pull", params: { reference: input.reference } }))),
  ),

  push: authedProcedure.input(z.object({ nodeIds: NodeIds, reference: Reference })).mutation(({ ctx, input }) =>
    startJob(ctx, "image.push", { reference: input.reference }, input.nodeIds.map((nodeId) => ({ nodeId, action: "image.push", params: { reference: input.reference } }))),
  ),

  tag: authedProcedure.input(z.object({ nodeIds: NodeIds, source: z.string().trim().min(1).max(512), target: Reference })).mutation(({ ctx, input }) =>
    startJob(ctx, "image.tag", { source: input.source, target: input.target }, input.nodeIds.map((nodeId) => ({ nodeId, action: "image.tag", params: { source: input.source, target: input.target } }))),
  ),

  removeImage: authedProcedure.input(z.object({ nodeIds: NodeIds, reference: z.string().trim().min(1).max(512), force: z.boolean().default(false) })).mutation(({ ctx, input }) =>
    startJob(ctx, "image.remove", { reference: input.reference, force: input.force }, input.nodeIds.map((nodeId) => ({ nodeId, action: "image.remove", params: { reference: input.reference, force: input.force } }))),
  ),

  prune: authedProcedure.input(z.object({ nodeIds: NodeIds, all: z.boolean().default(false) })).mutation(({ ctx, input }) =>
    startJob(ctx, "image.prune", { all: input.all }, input.nodeIds.map((nodeId) => ({ nodeId, action: "image.prune", params: { all: input.all } }))),
  ),

  /** Image distribution: push from one node to its registry, then pull on the others. */
  distribute: authedProcedure
    .input(z.object({ sourceNodeId: z.uuid(), targetNodeIds: NodeIds, reference: Reference }))
    .mutation(({ ctx, input }) => {
      if (input.targetNodeIds.includes(input.sourceNodeId)) throw new TRPCError({ code: "BAD_REQUEST", message: "the source node cannot also be a target" });
      return startJob(ctx, "image.distribute", { reference: input.reference, sourceNodeId: input.sourceNodeId }, [
        { nodeId: input.sourceNodeId, seq: 0, action: "image.push", params: { reference: input.reference } },
        ...input.targetNodeIds.map((nodeId) => ({ nodeId, seq: 1, action: "image.pull" as const, params: { reference: input.reference } })),
      ]);
    }),

  /** The container lifecycle on containers anywhere in the fleet. */
  container: authedProcedure
    .input(
      z.object({
        action: ContainerAction,
        targets: z.array(z.object({ nodeId: z.uuid(), id: z.string().min(1).max(128) })).min(1, "choose at least one container").max(1000),
        force: z.boolean().default(false),
        signal: z.string().max(16).optional(),
        timeoutSeconds: z.number().int().min(0).max(3600).optional(),
      }),
    )
    .mutation(({ ctx, input }) => {
      const params = (id: string): Record<string, unknown> => {
        switch (input.action) {
          case "remove":
            return { id, force: input.force };
          case "kill":
            return { id, ...(input.signal ? { signal: input.signal } : {}) };
          case "stop":
          case "restart":
            return { id, ...(input.timeoutSeconds !== undefined ? { timeoutSeconds: input.timeoutSeconds } : {}) };
          default:
            return { id };
        }
      };
      return startJob(
        ctx,
        `container.${input.action}`,
        { containers: input.targets.length },
        input.targets.map((t) => ({ nodeId: t.nodeId, action: `container.${input.action}` as const, params: params(t.id) })),
      );
    }),

  /** Run a container from the form on one node (pulls the image first when the node lacks it). */
  run: authedProcedure.input(RunFormSchema).mutation(async ({ ctx, input }) => {
    let options;
    try {
      await requireNodes(ctx, [input.nodeId], "operate");
      // Judged on the form first, so an operator hears which option is refused even when the engine could not apply it.
      await requireHostAccess(ctx, [{ nodeId: input.nodeId, action: "container.run", params: hostRequestOfForm(input) }]);
      options = createOptionsFromForm(input);
    } catch (e) {
      if (e instanceof RunFormError) throw new TRPCError({ code: "BAD_REQUEST", message: e.message });
      throw e;
    }
    return startJob(ctx, "container.run", { image: input.image, name: input.name ?? null }, [{ nodeId: input.nodeId, action: "container.run", params: options }]);
  }),
});
