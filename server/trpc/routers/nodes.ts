import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { LinkRequestError, type NodeStatus } from "../../hub/agent-hub.ts";
import { linkError } from "./inventory.ts";
import { labelsSchema } from "../labels.ts";
import { adminProcedure, authedProcedure, requireNodes, router, type AuthedContext } from "../trpc.ts";

const NodeId = z.uuid({ error: "not a node ID" });

/** Node labels: keys as `docker --label` writes them, so "env=prod" selects cleanly. */
const Labels = labelsSchema({
  key: /^[A-Za-z0-9][A-Za-z0-9._\/-]*$/,
  keyRule: "letters, digits and . _ / - only (no spaces, no =)",
  maxKey: 128,
  maxValue: 256,
  maxLabels: 64,
});

/** The labels column as stored (anything not a string map counts as none). */
export function labelsOf(json: unknown): Record<string, string> {
  if (!json || typeof json !== "object" || Array.isArray(json)) return {};
  return Object.fromEntries(Object.entries(json as Record<string, unknown>).filter((e): e is [string, string] => typeof e[1] === "string"));
}

/**
 * How old an offline node's inventory is: the link keeps it current while connected, so
 * it is as of the moment the node was last seen (or when it was taken, if later).
 */
export function lastKnownAt(st: NodeStatus | undefined): number | null {
  const t = Math.max(st?.lastSeen ?? 0, st?.inventory?.takenAt ?? 0, st?.inventoryAt ?? 0);
  return t > 0 ? t : null;
}

/** The first 8 hex digits of a node ID: enough to tell two nodes apart on screen. */
export const shortId = (id: string): string => id.replace(/-/g, "").slice(0, 8);

/**
 * Whether a node matches a search: "key=value" matches a label exactly, "key=" any node
 * with that label; anything else a substring of name, ID, address, label or the facts.
 */
export function nodeMatches(n: Pick<NodeSummary, "id" | "name" | "hostname" | "labels" | "addresses"> & Partial<NodeSummary>, query: string): boolean {
  const q = query.trim().toLowerCase();
  if (!q) return true;
  const eq = /^([^=\s]+)=(.*)$/.exec(q);
  if (eq) {
    const [, k, v] = eq as unknown as [string, string, string];
    return Object.entries(n.labels).some(([lk, lv]) => lk.toLowerCase() === k && (v === "" || lv.toLowerCase() === v));
  }
  return [
    n.name,
    n.hostname,
    n.id,
    shortId(n.id),
    n.os,
    n.kernel,
    n.group?.name,
    n.agentVersion,
    n.architecture,
    ...n.addresses,
    ...Object.entries(n.labels).map(([k, v]) => `${k}=${v}`),
  ].some((v) => v?.toLowerCase().includes(q));
}

export interface NodeSummary {
  id: string;
  shortId: string;
  name: string;
  hostname: string;
  /** The node's own addresses, as its agent last reported them. */
  addresses: string[];
  labels: Record<string, string>;
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
  /** Offline nodes: what their inventory shows is as of then (unix ms). */
  lastKnownAt: number | null;
  createdAt: string;
}

type NodeRow = {
  id: string;
  name: string;
  hostname: string;
  createdAt: Date;
  revokedAt: Date | null;
  lastSeenAt: Date | null;
  agentVersion: string | null;
  labels: unknown;
  facts: unknown;
  group: { id: string; name: string } | null;
};
export const NODE_ROW_SELECT = {
  id: true,
  name: true,
  hostname: true,
  createdAt: true,
  revokedAt: true,
  lastSeenAt: true,
  agentVersion: true,
  labels: true,
  facts: true,
  group: { select: { id: true, name: true } },
} as const;

export function summarizeNode(row: NodeRow, st: NodeStatus | undefined): NodeSummary {
  const inv = st?.inventory;
  const facts = st?.facts ?? inv?.facts;
  const stored = row.facts as { addresses?: unknown } | null;
  const cs = inv?.containers ?? [];
  const running = cs.filter((c) => c.state === "running" || c.state === "restarting").length;
  const paused = cs.filter((c) => c.state === "paused").length;
  return {
    id: row.id,
    shortId: shortId(row.id),
    name: row.name,
    hostname: row.hostname,
    addresses: facts?.addresses ?? (Array.isArray(stored?.addresses) ? stored.addresses.filter((a): a is string => typeof a === "string") : []),
    labels: labelsOf(row.labels),
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
    lastKnownAt: st?.online ? null : lastKnownAt(st),
    createdAt: row.createdAt.toISOString(),
  };
}

/** The nodes the user may see, as summaries, in name order. */
export async function visibleNodes(ctx: AuthedContext): Promise<NodeSummary[]> {
  const scope = await ctx.nodeScope();
  const rows = await ctx.services.prisma.node.findMany({
    where: scope.all ? {} : { id: { in: [...scope.nodeIds] } },
    select: NODE_ROW_SELECT,
    orderBy: { name: "asc" },
  });
  return rows.map((r) => summarizeNode(r, ctx.services.hub.node(r.id)));
}

/**
 * A node as the inventory tables show it: name, short ID and first address tell two
 * nodes with one hostname apart; `asOf` (unix ms) is set when the node is offline and
 * what is listed is its last-known inventory of that time.
 */
export interface NodeRef {
  id: string;
  name: string;
  shortId: string;
  address: string | null;
  online: boolean;
  asOf: number | null;
}

/**
 * The nodes the user may see as NodeRefs: what the inventory queries need,
 * without building every node's summary (they run on each page of a fleet-wide table).
 */
export async function visibleNodeRefs(ctx: AuthedContext): Promise<NodeRef[]> {
  const scope = await ctx.nodeScope();
  const rows = await ctx.services.prisma.node.findMany({
    where: scope.all ? {} : { id: { in: [...scope.nodeIds] } },
    select: { id: true, name: true, facts: true },
    orderBy: { name: "asc" },
  });
  return rows.map((r) => {
    const st = ctx.services.hub.node(r.id);
    const online = st?.online ?? false;
    const stored = r.facts as { addresses?: unknown } | null;
    const address = st?.facts?.addresses?.[0] ?? (Array.isArray(stored?.addresses) && typeof stored.addresses[0] === "string" ? stored.addresses[0] : null);
    return { id: r.id, name: r.name, shortId: shortId(r.id), address, online, asOf: online ? null : lastKnownAt(st) };
  });
}

export const nodesRouter = router({
  /** The fleet dashboard: every node the user may see, with status and the `docker info` set; `search` matches name, ID, address, label ("env=prod"), OS, kernel, group, version. */
  list: authedProcedure
    .input(z.object({ search: z.string().max(200).optional(), status: z.enum(["online", "offline", "revoked"]).optional() }).optional())
    .query(async ({ ctx, input }) => {
      await requireNodes(ctx, [], "read");
      const all = await visibleNodes(ctx);
      let nodes = all;
      const q = input?.search?.trim();
      if (q) nodes = nodes.filter((n) => nodeMatches(n, q));
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
      select: NODE_ROW_SELECT,
    });
    if (!row) throw new TRPCError({ code: "NOT_FOUND", message: `node ${input.nodeId} does not exist` });
    const st = ctx.services.hub.node(row.id);
    return { ...summarizeNode(row, st), facts: st?.facts ?? st?.inventory?.facts ?? null };
  }),

  /** The engine's settings and versions (`docker info`), read from the node now. */
  engine: authedProcedure.input(z.object({ nodeId: NodeId })).query(async ({ ctx, input }) => {
    await requireNodes(ctx, [input.nodeId], "read");
    try {
      return await ctx.services.hub.request(input.nodeId, "system.info", {}, { timeoutMs: 30_000 });
    } catch (e) {
      throw linkError(e);
    }
  }),

  /** What images, containers and volumes take on the node (`docker system df`), read now. */
  diskUsage: authedProcedure.input(z.object({ nodeId: NodeId })).query(async ({ ctx, input }) => {
    await requireNodes(ctx, [input.nodeId], "read");
    try {
      return await ctx.services.hub.request(input.nodeId, "system.df", {}, { timeoutMs: 120_000 });
    } catch (e) {
      throw linkError(e);
    }
  }),

  /**
   * Asks the node's agent to restart itself: it answers, stops (containers keep running),
   * and its supervisor (systemd, or what --supervised names) starts it again, which adopts
   * the containers. Refused when nothing supervises the agent: it would not come back.
   */
  restartAgent: adminProcedure.input(z.object({ nodeId: NodeId })).mutation(async ({ ctx, input }) => {
    ctx.audit.nodeIds.add(input.nodeId);
    const st = ctx.services.hub.node(input.nodeId);
    if (!st) throw new TRPCError({ code: "NOT_FOUND", message: `node ${input.nodeId} does not exist` });
    if (st.revoked) throw new TRPCError({ code: "PRECONDITION_FAILED", message: `node ${st.hostname} is revoked` });
    if (!st.online) throw new TRPCError({ code: "PRECONDITION_FAILED", message: `node ${st.hostname} is offline: its agent cannot be asked to restart` });
    try {
      const r = await ctx.services.hub.request(input.nodeId, "agent.restart", {}, { timeoutMs: 30_000 });
      ctx.audit.details.supervisor = r.supervisor;
      return r;
    } catch (e) {
      if (e instanceof LinkRequestError && e.kind === "Conflict") throw new TRPCError({ code: "PRECONDITION_FAILED", message: e.message, cause: e });
      throw linkError(e);
    }
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
    .input(
      z.object({
        nodeId: NodeId,
        name: z.string().trim().min(1, "a name is needed").max(253).optional(),
        groupId: z.uuid().nullable().optional(),
        labels: Labels.optional(),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      ctx.audit.nodeIds.add(input.nodeId);
      if (input.groupId) {
        const g = await ctx.services.prisma.nodeGroup.findUnique({ where: { id: input.groupId }, select: { id: true } });
        if (!g) throw new TRPCError({ code: "NOT_FOUND", message: `node group ${input.groupId} does not exist` });
      }
      const r = await ctx.services.prisma.node.updateMany({
        where: { id: input.nodeId },
        data: {
          ...(input.name !== undefined ? { name: input.name } : {}),
          ...(input.groupId !== undefined ? { groupId: input.groupId } : {}),
          ...(input.labels !== undefined ? { labels: input.labels } : {}),
        },
      });
      if (!r.count) throw new TRPCError({ code: "NOT_FOUND", message: `node ${input.nodeId} does not exist` });
      ctx.services.live.nodeChanged(input.nodeId, "status");
      if (input.groupId !== undefined) await ctx.services.live.refreshAll();
      return { ok: true };
    }),
});
