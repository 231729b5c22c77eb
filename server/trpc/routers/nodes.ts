import { TRPCError } from "@trpc/server";
import { z } from "zod";
import type { NodeStatus } from "../../hub/agent-hub.ts";
import { adminProcedure, authedProcedure, requireNodes, router, type AuthedContext } from "../trpc.ts";

const NodeId = z.uuid({ error: "not a node ID" });

export interface NodeSummary {
  id: string;
  name: string;
  hostname: string;
  group: { id: string; name: string } | null;
  online: boolean;
  revoked: boolean;
  lastSeen: number | null;
  agentVersion: string | null;
  kernel: string | null;
  os: string | null;
  architecture: string | null;
  cpus: number | null;
  memory: number | null;
  disk: { total: number; free: number } | null;
  containers: { total: number; running: number; paused: number; stopped: number };
  images: number;
  inventoryAt: number | null;
  createdAt: string;
}

export function summarizeNode(
  row: {
    id: string;
    name: string;
    hostname: string;
    createdAt: Date;
    revokedAt: Date | null;
    lastSeenAt: Date | null;
    agentVersion: string | null;
    group: { id: string; name: string } | null;
  },
  st: NodeStatus | undefined,
): NodeSummary {
  const inv = st?.inventory;
  const facts = st?.facts ?? inv?.facts;
  const cs = inv?.containers ?? [];
  const running = cs.filter((c) => c.state === "running" || c.state === "restarting").length;
  const paused = cs.filter((c) => c.state === "paused").length;
  return {
    id: row.id,
    name: row.name,
    hostname: row.hostname,
    group: row.group,
    online: st?.online ?? false,
    revoked: row.revokedAt !== null || (st?.revoked ?? false),
    lastSeen: st?.lastSeen || row.lastSeenAt?.getTime() || null,
    agentVersion: st?.agentVersion ?? row.agentVersion,
    kernel: facts?.kernelVersion ?? null,
    os: facts?.operatingSystem ?? null,
    architecture: facts?.architecture ?? null,
    cpus: facts?.ncpu ?? null,
    memory: facts?.memTotal ?? null,
    disk: inv?.disk ?? null,
    containers: { total: cs.length, running, paused, stopped: cs.length - running - paused },
    images: inv?.images.length ?? 0,
    inventoryAt: st?.inventoryAt ?? null,
    createdAt: row.createdAt.toISOString(),
  };
}

/** The nodes the user may see, as summaries, in name order. */
export async function visibleNodes(ctx: AuthedContext): Promise<NodeSummary[]> {
  const scope = await ctx.nodeScope();
  const rows = await ctx.services.prisma.node.findMany({
    where: scope.all ? {} : { id: { in: [...scope.nodeIds] } },
    select: {
      id: true,
      name: true,
      hostname: true,
      createdAt: true,
      revokedAt: true,
      lastSeenAt: true,
      agentVersion: true,
      group: { select: { id: true, name: true } },
    },
    orderBy: { name: "asc" },
  });
  return rows.map((r) => summarizeNode(r, ctx.services.hub.node(r.id)));
}

/**
 * The nodes the user may see as {id, name, online}: what the inventory queries need,
 * without building every node's summary (they run on each page of a fleet-wide table).
 */
export async function visibleNodeRefs(ctx: AuthedContext): Promise<Array<{ id: string; name: string; online: boolean }>> {
  const scope = await ctx.nodeScope();
  const rows = await ctx.services.prisma.node.findMany({
    where: scope.all ? {} : { id: { in: [...scope.nodeIds] } },
    select: { id: true, name: true },
    orderBy: { name: "asc" },
  });
  return rows.map((r) => ({ id: r.id, name: r.name, online: ctx.services.hub.node(r.id)?.online ?? false }));
}

export const nodesRouter = router({
  /** The fleet dashboard: every node the user may see, with status and the `docker info` set; `search` matches name, hostname, OS, kernel, group, version. */
  list: authedProcedure
    .input(z.object({ search: z.string().max(200).optional(), status: z.enum(["online", "offline", "revoked"]).optional() }).optional())
    .query(async ({ ctx, input }) => {
      await requireNodes(ctx, [], "read");
      const all = await visibleNodes(ctx);
      let nodes = all;
      const q = input?.search?.trim().toLowerCase();
      if (q)
        nodes = nodes.filter((n) =>
          [n.name, n.hostname, n.os, n.kernel, n.group?.name, n.agentVersion, n.architecture].some((v) => v?.toLowerCase().includes(q)),
        );
      if (input?.status === "online") nodes = nodes.filter((n) => n.online);
      if (input?.status === "offline") nodes = nodes.filter((n) => !n.online && !n.revoked);
      if (input?.status === "revoked") nodes = nodes.filter((n) => n.revoked);
      return {
        nodes,
        totals: {
          nodes: all.length,
          online: all.filter((n) => n.online).length,
          containers: all.reduce((a, n) => a + n.containers.total, 0),
          running: all.reduce((a, n) => a + n.containers.running, 0),
          images: all.reduce((a, n) => a + n.images, 0),
        },
      };
    }),

  get: authedProcedure.input(z.object({ nodeId: NodeId })).query(async ({ ctx, input }) => {
    await requireNodes(ctx, [input.nodeId], "read");
    const row = await ctx.services.prisma.node.findUnique({
      where: { id: input.nodeId },
      select: {
        id: true,
        name: true,
        hostname: true,
        createdAt: true,
        revokedAt: true,
        lastSeenAt: true,
        agentVersion: true,
        group: { select: { id: true, name: true } },
      },
    });
    if (!row) throw new TRPCError({ code: "NOT_FOUND", message: `node ${input.nodeId} does not exist` });
    const st = ctx.services.hub.node(row.id);
    return { ...summarizeNode(row, st), facts: st?.facts ?? st?.inventory?.facts ?? null };
  }),

  /** Revokes a node: its credential stops working and its connection is closed now. */
  revoke: adminProcedure.input(z.object({ nodeId: NodeId })).mutation(async ({ ctx, input }) => {
    ctx.audit.nodeIds.add(input.nodeId);
    const row = await ctx.services.prisma.node.findUnique({ where: { id: input.nodeId }, select: { id: true } });
    if (!row) throw new TRPCError({ code: "NOT_FOUND", message: `node ${input.nodeId} does not exist` });
    await ctx.services.hub.revoke(input.nodeId, `revoked by ${ctx.user.email}`);
    return { ok: true };
  }),

  /** Deletes a revoked node's record (its inventory and job history with it). */
  delete: adminProcedure.input(z.object({ nodeId: NodeId })).mutation(async ({ ctx, input }) => {
    ctx.audit.nodeIds.add(input.nodeId);
    const row = await ctx.services.prisma.node.findUnique({ where: { id: input.nodeId }, select: { revokedAt: true } });
    if (!row) throw new TRPCError({ code: "NOT_FOUND", message: `node ${input.nodeId} does not exist` });
    if (!row.revokedAt) throw new TRPCError({ code: "PRECONDITION_FAILED", message: "revoke the node before deleting it" });
    await ctx.services.prisma.node.delete({ where: { id: input.nodeId } });
    ctx.services.hub.forget(input.nodeId);
    ctx.services.live.nodeChanged(input.nodeId, "removed");
    return { ok: true };
  }),

  update: adminProcedure
    .input(z.object({ nodeId: NodeId, name: z.string().trim().min(1).max(253).optional(), groupId: z.uuid().nullable().optional() }))
    .mutation(async ({ ctx, input }) => {
      ctx.audit.nodeIds.add(input.nodeId);
      if (input.groupId) {
        const g = await ctx.services.prisma.nodeGroup.findUnique({ where: { id: input.groupId }, select: { id: true } });
        if (!g) throw new TRPCError({ code: "NOT_FOUND", message: `node group ${input.groupId} does not exist` });
      }
      const r = await ctx.services.prisma.node.updateMany({
        where: { id: input.nodeId },
        data: { ...(input.name !== undefined ? { name: input.name } : {}), ...(input.groupId !== undefined ? { groupId: input.groupId } : {}) },
      });
      if (!r.count) throw new TRPCError({ code: "NOT_FOUND", message: `node ${input.nodeId} does not exist` });
      ctx.services.live.nodeChanged(input.nodeId, "status");
      if (input.groupId !== undefined) await ctx.services.live.refreshAll();
      return { ok: true };
    }),
});
