/**
 * Actions on one node or many, each recorded as a durable job (server/jobs/job-service.ts).
 * The mutation returns the job's ID at once; progress arrives over the browser socket
 * and through jobs.get.
 */
import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { parseNormalizedReference } from "../../../shared/reference.ts";
import { randomUUID } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { MAX_BUILD_CONTEXT_BYTES, MAX_DOCKERFILE_TEXT } from "../../../agent/link/contract.ts";
import { contextArchiveProblem } from "../../jobs/build-context.ts";
import type { BuildStepParams, StepSpec } from "../../jobs/job-service.ts";
import { createOptionsFromForm, hostRequestOfForm, RunFormError, RunFormSchema } from "../run-form.ts";
import { authedProcedure, requireNodes, router } from "../trpc.ts";
import { requireHostAccess, requireStepAccess, startJob } from "../start-job.ts";
import { storageJobs } from "./storage-jobs.ts";

const NodeIds = z
  .array(z.uuid({ error: "not a node ID" }))
  .min(1, "choose at least one node")
  .max(1000);
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

const MIB = 1024 * 1024;

/**
 * The Build form. The context archive comes inline as base64 (4/3 of its size): one
 * authenticated, authorised and audited call, with no second upload route to secure, which
 * is acceptable up to MAX_BUILD_CONTEXT_BYTES; larger contexts belong in a registry image or
 * a `docker build` on the node.
 */
const BuildInput = z
  .object({
    nodeId: z.uuid({ error: "choose the node to build on" }),
    dockerfile: z
      .string()
      .min(1, "the Dockerfile is empty")
      .max(MAX_DOCKERFILE_TEXT, `the Dockerfile is longer than ${MAX_DOCKERFILE_TEXT / 1024} KiB`),
    context: z
      .object({
        name: z.string().trim().min(1).max(255),
        contentBase64: z
          .base64("the context archive is not base64")
          .max(
            Math.ceil(MAX_BUILD_CONTEXT_BYTES / 3) * 4,
            `the context archive is larger than ${MAX_BUILD_CONTEXT_BYTES / MIB} MiB, the most a build through the console takes`,
          ),
      })
      .optional(),
    tags: z.array(Reference).max(32).default([]),
    buildArgs: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "a build arg name is letters, digits and _"), z.string().max(8192)).default({}),
    target: z.string().trim().max(256).optional(),
    noCache: z.boolean().default(false),
    pull: z.boolean().default(false),
    /** The network of RUN steps: `host` is a host-level option (admins, or where the host policy allows it). */
    networkMode: z.string().trim().min(1).max(256).default("bridge"),
    /** Push every tag to its registry (credentials from Admin → Registries). */
    push: z.boolean().default(false),
    /** Then pull the tags on these nodes (the Distribute job's stages). */
    distributeTo: z
      .array(z.uuid({ error: "not a node ID" }))
      .max(1000)
      .default([]),
  })
  .superRefine((b, c) => {
    if ((b.push || b.distributeTo.length) && b.tags.length === 0)
      c.addIssue({ code: "custom", path: ["tags"], message: "pushing or distributing a build needs a tag that names the registry" });
    if (b.distributeTo.includes(b.nodeId))
      c.addIssue({ code: "custom", path: ["distributeTo"], message: "the node that builds cannot also be a distribution target" });
  });

const JOB_LIST_STATUS = z.enum(["queued", "running", "succeeded", "failed", "partial", "canceled"]);

/** What the job list and a job's page both show of it. */
function jobSummary<Kind extends string, Status extends string>(j: {
  id: string;
  kind: Kind;
  params: unknown;
  status: Status;
  createdBy: { email: string } | null;
  createdAt: Date;
  finishedAt: Date | null;
}) {
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
    .input(
      z.object({
        page: z.number().int().min(1).default(1),
        pageSize: z.number().int().min(1).max(200).default(30),
        status: JOB_LIST_STATUS.optional(),
        nodeId: z.uuid().optional(),
      }),
    )
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
          steps: {
            total: j.steps.length,
            succeeded: j.steps.filter((s) => s.status === "succeeded").length,
            failed: j.steps.filter((s) => s.status === "failed").length,
          },
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
    startJob(
      ctx,
      "image.pull",
      { reference: input.reference },
      input.nodeIds.map((nodeId) => ({ nodeId, action: "image.pull", params: { reference: input.reference } })),
    ),
  ),

  push: authedProcedure.input(z.object({ nodeIds: NodeIds, reference: Reference })).mutation(({ ctx, input }) =>
    startJob(
      ctx,
      "image.push",
      { reference: input.reference },
      input.nodeIds.map((nodeId) => ({ nodeId, action: "image.push", params: { reference: input.reference } })),
    ),
  ),

  tag: authedProcedure.input(z.object({ nodeIds: NodeIds, source: z.string().trim().min(1).max(512), target: Reference })).mutation(({ ctx, input }) =>
    startJob(
      ctx,
      "image.tag",
      { source: input.source, target: input.target },
      input.nodeIds.map((nodeId) => ({ nodeId, action: "image.tag", params: { source: input.source, target: input.target } })),
    ),
  ),

  removeImage: authedProcedure
    .input(z.object({ nodeIds: NodeIds, reference: z.string().trim().min(1).max(512), force: z.boolean().default(false) }))
    .mutation(({ ctx, input }) =>
      startJob(
        ctx,
        "image.remove",
        { reference: input.reference, force: input.force },
        input.nodeIds.map((nodeId) => ({ nodeId, action: "image.remove", params: { reference: input.reference, force: input.force } })),
      ),
    ),

  prune: authedProcedure.input(z.object({ nodeIds: NodeIds, all: z.boolean().default(false) })).mutation(({ ctx, input }) =>
    startJob(
      ctx,
      "image.prune",
      { all: input.all },
      input.nodeIds.map((nodeId) => ({ nodeId, action: "image.prune", params: { all: input.all } })),
    ),
  ),

  /** Image distribution: push from one node to its registry, then pull on the others. */
  distribute: authedProcedure.input(z.object({ sourceNodeId: z.uuid(), targetNodeIds: NodeIds, reference: Reference })).mutation(({ ctx, input }) => {
    if (input.targetNodeIds.includes(input.sourceNodeId)) throw new TRPCError({ code: "BAD_REQUEST", message: "the source node cannot also be a target" });
    return startJob(ctx, "image.distribute", { reference: input.reference, sourceNodeId: input.sourceNodeId }, [
      { nodeId: input.sourceNodeId, seq: 0, action: "image.push", params: { reference: input.reference } },
      ...input.targetNodeIds.map((nodeId) => ({ nodeId, seq: 1, action: "image.pull" as const, params: { reference: input.reference } })),
    ]);
  }),

  /** Build an image on one node from a Dockerfile (and a context archive), then push it and pull it on other nodes. */
  build: authedProcedure.input(BuildInput).mutation(async ({ ctx, input }) => {
    const params: BuildStepParams = {
      dockerfile: input.dockerfile,
      tags: input.tags,
      buildArgs: input.buildArgs,
      ...(input.target ? { target: input.target } : {}),
      noCache: input.noCache,
      pull: input.pull,
      networkMode: input.networkMode,
      labels: {},
    };
    const distribute = input.push || input.distributeTo.length > 0;
    const steps: StepSpec[] = [
      { nodeId: input.nodeId, seq: 0, action: "image.build", params },
      ...(distribute ? input.tags.map((reference) => ({ nodeId: input.nodeId, seq: 1, action: "image.push" as const, params: { reference } })) : []),
      ...input.distributeTo.flatMap((nodeId) => input.tags.map((reference) => ({ nodeId, seq: 2, action: "image.pull" as const, params: { reference } }))),
    ];
    // Refused before the archive is decoded or stored: a viewer's 64 MiB costs nothing but the upload.
    await requireStepAccess(ctx, steps);
    let contextFile: string | undefined;
    if (input.context) {
      const archive = Buffer.from(input.context.contentBase64, "base64");
      const problem = contextArchiveProblem(archive, input.context.name);
      if (problem) throw new TRPCError({ code: "BAD_REQUEST", message: problem });
      contextFile = `${randomUUID()}.ctx`;
      await writeFile(ctx.services.jobs.buildContextPath(contextFile), archive, { mode: 0o600 });
      params.contextFile = contextFile;
      params.contextBytes = archive.length;
      ctx.audit.details.context = { name: input.context.name, bytes: archive.length };
    }
    try {
      return await startJob(
        ctx,
        "image.build",
        {
          reference: input.tags[0] ?? "",
          nodeId: input.nodeId,
          tags: input.tags,
          push: distribute,
          distributeTo: input.distributeTo,
          ...(input.context ? { context: input.context.name } : {}),
        },
        steps,
      );
    } catch (e) {
      if (contextFile) await rm(ctx.services.jobs.buildContextPath(contextFile), { force: true });
      throw e;
    }
  }),

  /** The container lifecycle on containers anywhere in the fleet. */
  container: authedProcedure
    .input(
      z.object({
        action: ContainerAction,
        targets: z
          .array(z.object({ nodeId: z.uuid(), id: z.string().min(1).max(128) }))
          .min(1, "choose at least one container")
          .max(1000),
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
  run: authedProcedure
    .input(
      RunFormSchema.extend({
        /** Pull the image first even when the node has it (`docker run --pull always`). */
        pullLatest: z.boolean().default(false),
        /** Recreate: this container is removed first (the new one takes its place); `keepVolumes` keeps its anonymous volumes. */
        replace: z.object({ id: z.string().min(1).max(128), keepVolumes: z.boolean().default(true) }).optional(),
      }),
    )
    .mutation(async ({ ctx, input }) => {
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
      // Stages: each runs only when the one before succeeded, so a failed pull leaves the old container in place.
      const steps: StepSpec[] = [];
      if (input.pullLatest) steps.push({ nodeId: input.nodeId, seq: steps.length, action: "image.pull", params: { reference: input.image } });
      if (input.replace)
        steps.push({
          nodeId: input.nodeId,
          seq: steps.length,
          action: "container.remove",
          params: { id: input.replace.id, force: true, volumes: !input.replace.keepVolumes },
        });
      steps.push({ nodeId: input.nodeId, seq: steps.length, action: "container.run", params: options });
      return startJob(
        ctx,
        input.replace ? "container.recreate" : "container.run",
        { image: input.image, name: input.name ?? null, ...(input.replace ? { replaces: input.replace.id } : {}) },
        steps,
      );
    }),
});
