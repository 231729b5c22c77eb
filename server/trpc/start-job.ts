/** The one way a procedure starts a job: scope, host-level options, then the durable job. */
import { TRPCError } from "@trpc/server";
import type { StepSpec } from "../jobs/job-service.ts";
import { judgeHostAccess, type StepRequest } from "../auth/host-access.ts";
import { hostOptionsMessage } from "../auth/host-options.ts";
import { requireNodes, type AuthedContext } from "./trpc.ts";

/**
 * Refuses host-level options (bind mounts of host paths, host network, --privileged, a
 * volume whose driver options bind a host path…) the user's role and the nodes' host
 * policies do not allow; the ones used are noted in the audit log either way.
 */
export async function requireHostAccess(ctx: AuthedContext, steps: readonly StepRequest[]): Promise<void> {
  const { used, refused } = await judgeHostAccess(ctx.services.prisma, ctx.user, steps);
  if (used.length) ctx.audit.details.hostOptions = used.map((u) => `${u.option} ${u.value}`);
  if (refused.length) throw new TRPCError({ code: "FORBIDDEN", message: hostOptionsMessage(refused) });
}

/** The caller may operate every node of the steps, and use the host-level options they hold. */
export async function requireStepAccess(ctx: AuthedContext, steps: readonly StepSpec[]): Promise<void> {
  await requireNodes(
    ctx,
    steps.map((s) => s.nodeId),
    "operate",
  );
  await requireHostAccess(
    ctx,
    steps.map((s) => ({ nodeId: s.nodeId, action: s.action, params: s.params })),
  );
}

export async function startJob(ctx: AuthedContext, kind: string, params: Record<string, unknown>, steps: StepSpec[]): Promise<{ jobId: string }> {
  // Every job passes here, so no procedure that makes a container can skip the host check.
  await requireStepAccess(ctx, steps);
  const { jobId } = await ctx.services.jobs.create({ kind, params, steps, createdById: ctx.user.id });
  ctx.audit.details.jobId = jobId;
  return { jobId };
}
