/**
 * One inventory across the fleet, from each node's last-known inventory (live for
 * connected nodes, the saved one for the others), filtered and paginated here so the
 * browser never receives the whole fleet.
 */
import { z } from "zod";
import type { InventoryContainer, InventoryImage, InventoryNetwork, InventoryVolume, LinkErrorKind, LogLine } from "../../../agent/link/contract.ts";
import { LinkRequestError } from "../../hub/agent-hub.ts";
import { TRPCError } from "@trpc/server";
import { authedProcedure, requireNodes, router, type AuthedContext } from "../trpc.ts";
import { visibleNodeRefs, type NodeRef } from "./nodes.ts";

const Page = {
  nodeId: z.uuid().optional(),
  search: z.string().max(300).optional(),
  page: z.number().int().min(1).max(100_000).default(1),
  pageSize: z.number().int().min(1).max(500).default(50),
};

export type { NodeRef };

async function nodesWithInventory(ctx: AuthedContext, nodeId: string | undefined) {
  if (nodeId) await requireNodes(ctx, [nodeId], "read");
  else await requireNodes(ctx, [], "read");
  const nodes = (await visibleNodeRefs(ctx)).filter((n) => !nodeId || n.id === nodeId);
  return nodes.map((node: NodeRef) => ({ node, inv: ctx.services.hub.node(node.id)?.inventory }));
}

function paginate<T>(rows: T[], page: number, pageSize: number) {
  const total = rows.length;
  return { total, page, pageSize, pages: Math.max(1, Math.ceil(total / pageSize)), items: rows.slice((page - 1) * pageSize, page * pageSize) };
}

const has = (q: string | undefined, ...values: Array<string | undefined>) => !q || values.some((v) => v?.toLowerCase().includes(q));

export interface FleetImage {
  repository: string;
  tag: string;
  id: string;
  digest: string | null;
  size: number;
  created: number;
  nodes: NodeRef[];
}

export interface FleetContainer extends Omit<InventoryContainer, "labels"> {
  node: NodeRef;
}

/**
 * The digest `docker images --digests` shows for a repository: the registry digest of that
 * repository, if the image was pulled from or pushed to it; none for a local-only tag
 * (`web:v2` of an image pulled as `nginx`), however many digests the image has elsewhere.
 */
export function cliDigest(repository: string, repoDigests: readonly string[]): string | null {
  if (repository === "<none>") return repoDigests[0]?.split("@")[1] ?? null;
  const d = repoDigests.find((rd) => rd.slice(0, rd.lastIndexOf("@")) === repository);
  return d ? d.slice(d.lastIndexOf("@") + 1) : null;
}

export const inventoryRouter = router({
  /**
   * One image on one node, from its inventory: tags with their CLI digests, the containers
   * using it there, and every node (visible to the user) holding the same image ID.
   */
  image: authedProcedure.input(z.object({ nodeId: z.uuid(), id: z.string().min(1).max(200) })).query(async ({ ctx, input }) => {
    await requireNodes(ctx, [input.nodeId], "read");
    const all = await nodesWithInventory(ctx, undefined);
    const here = all.find((x) => x.node.id === input.nodeId);
    const wanted = input.id.startsWith("sha256:") ? input.id : `sha256:${input.id}`;
    const img = here?.inv?.images.find((i) => i.id === wanted);
    if (!here || !img)
      throw new TRPCError({
        code: "NOT_FOUND",
        message: `image ${input.id} is not on this node${here?.node.online === false ? " (as last known: the node is offline)" : ""}`,
      });
    const tags = img.repoTags.map((rt) => {
      const i = rt.lastIndexOf(":");
      const repository = rt.slice(0, i);
      return { repository, tag: rt.slice(i + 1), digest: cliDigest(repository, img.repoDigests) };
    });
    return {
      node: here.node,
      id: img.id,
      tags,
      repoDigests: img.repoDigests,
      size: img.size,
      created: img.created,
      labels: img.labels,
      containers: (here.inv?.containers ?? []).filter((c) => c.imageId === img.id).map((c) => ({ id: c.id, name: c.name, state: c.state, status: c.status })),
      nodes: all.filter((x) => x.inv?.images.some((i) => i.id === img.id)).map((x) => x.node),
    };
  }),

  /** Images by repository:tag and ID, each with the nodes holding it. `digest` answers "which nodes hold this digest". */
  images: authedProcedure
    .input(z.object({ ...Page, digest: z.string().max(100).optional(), dangling: z.boolean().optional() }))
    .query(async ({ ctx, input }) => {
      const q = input.search?.trim().toLowerCase();
      const rows = new Map<string, FleetImage>();
      for (const { node, inv } of await nodesWithInventory(ctx, input.nodeId)) {
        for (const img of inv?.images ?? []) {
          if (input.digest && !img.repoDigests.some((d) => d.endsWith(`@${input.digest}`)) && img.id !== input.digest) continue;
          const tags = img.repoTags.length ? img.repoTags : ["<none>:<none>"];
          if (input.dangling !== undefined && input.dangling !== (img.repoTags.length === 0)) continue;
          for (const rt of tags) {
            const i = rt.lastIndexOf(":");
            const repository = rt.slice(0, i);
            const tag = rt.slice(i + 1);
            if (!has(q, repository, tag, img.id, ...img.repoDigests)) continue;
            const key = `${rt}|${img.id}`;
            let row = rows.get(key);
            if (!row)
              rows.set(
                key,
                (row = { repository, tag, id: img.id, digest: cliDigest(repository, img.repoDigests), size: img.size, created: img.created, nodes: [] }),
              );
            row.nodes.push(node);
          }
        }
      }
      const sorted = [...rows.values()].sort((a, b) => b.created - a.created || a.repository.localeCompare(b.repository) || a.tag.localeCompare(b.tag));
      return paginate(sorted, input.page, input.pageSize);
    }),

  /** Containers with their node ("where does this container run"). */
  containers: authedProcedure
    .input(z.object({ ...Page, state: z.enum(["created", "running", "paused", "restarting", "removing", "exited", "dead"]).optional() }))
    .query(async ({ ctx, input }) => {
      const q = input.search?.trim().toLowerCase();
      // 10,000s of containers in a big fleet: filter and sort references, copy only the page.
      const matches: Array<{ c: InventoryContainer; node: NodeRef }> = [];
      for (const { node, inv } of await nodesWithInventory(ctx, input.nodeId)) {
        for (const c of inv?.containers ?? []) {
          if (input.state && c.state !== input.state) continue;
          if (!has(q, c.name, c.id, c.image, c.command, node.name)) continue;
          matches.push({ c, node });
        }
      }
      matches.sort((a, b) => b.c.created - a.c.created || (a.c.name < b.c.name ? -1 : a.c.name > b.c.name ? 1 : 0));
      const page = paginate(matches, input.page, input.pageSize);
      return {
        ...page,
        items: page.items.map(({ c, node }): FleetContainer => {
          const { labels: _labels, ...rest } = c;
          return { ...rest, node };
        }),
      };
    }),

  volumes: authedProcedure.input(z.object(Page)).query(async ({ ctx, input }) => {
    const q = input.search?.trim().toLowerCase();
    const rows: Array<Omit<InventoryVolume, "labels"> & { node: NodeRef }> = [];
    for (const { node, inv } of await nodesWithInventory(ctx, input.nodeId)) {
      for (const v of inv?.volumes ?? [])
        if (has(q, v.name, v.driver, node.name))
          rows.push({ name: v.name, driver: v.driver, mountpoint: v.mountpoint, createdAt: v.createdAt, anonymous: v.anonymous, node });
    }
    rows.sort((a, b) => a.name.localeCompare(b.name) || a.node.name.localeCompare(b.node.name));
    return paginate(rows, input.page, input.pageSize);
  }),

  networks: authedProcedure.input(z.object(Page)).query(async ({ ctx, input }) => {
    const q = input.search?.trim().toLowerCase();
    const rows: Array<Omit<InventoryNetwork, "labels"> & { node: NodeRef }> = [];
    for (const { node, inv } of await nodesWithInventory(ctx, input.nodeId)) {
      for (const n of inv?.networks ?? [])
        if (has(q, n.name, n.id, n.driver, n.subnet, node.name))
          rows.push({
            id: n.id,
            name: n.name,
            driver: n.driver,
            subnet: n.subnet,
            gateway: n.gateway,
            internal: n.internal,
            created: n.created,
            containers: n.containers,
            node,
          });
    }
    rows.sort((a, b) => a.name.localeCompare(b.name) || a.node.name.localeCompare(b.node.name));
    return paginate(rows, input.page, input.pageSize);
  }),

  /** One volume, read from its node now, with the containers that use it. */
  volume: authedProcedure.input(z.object({ nodeId: z.uuid(), name: z.string().min(1).max(256) })).query(async ({ ctx, input }) => {
    await requireNodes(ctx, [input.nodeId], "read");
    try {
      return await ctx.services.hub.request(input.nodeId, "volume.inspect", { name: input.name }, { timeoutMs: 30_000 });
    } catch (e) {
      throw linkError(e);
    }
  }),

  /** One container's last log lines, read from its node now. */
  containerLogs: authedProcedure
    .input(z.object({ nodeId: z.uuid(), id: z.string().min(1).max(128), tail: z.number().int().min(0).max(10_000).default(200) }))
    .query(async ({ ctx, input }): Promise<{ lines: LogLine[]; truncated: boolean }> => {
      await requireNodes(ctx, [input.nodeId], "read");
      try {
        return await ctx.services.hub.request(input.nodeId, "container.logs", { id: input.id, tail: input.tail }, { timeoutMs: 30_000 });
      } catch (e) {
        throw linkError(e);
      }
    }),

  /** One container as its node keeps it (the container page, and the Run form's prefill). */
  containerInspect: authedProcedure.input(z.object({ nodeId: z.uuid(), id: z.string().min(1).max(128) })).query(async ({ ctx, input }) => {
    await requireNodes(ctx, [input.nodeId], "read");
    try {
      const inspect = await ctx.services.hub.request(input.nodeId, "container.inspect", { id: input.id }, { timeoutMs: 30_000 });
      const st = ctx.services.hub.node(input.nodeId);
      return {
        ...inspect,
        node: { id: input.nodeId, hostname: st?.facts?.hostname ?? st?.hostname ?? "", online: !!st?.online, address: st?.remoteAddress ?? null },
      };
    } catch (e) {
      throw linkError(e);
    }
  }),

  /** The `docker image history` of an image on a node. */
  imageHistory: authedProcedure.input(z.object({ nodeId: z.uuid(), reference: z.string().min(1).max(512) })).query(async ({ ctx, input }) => {
    await requireNodes(ctx, [input.nodeId], "read");
    try {
      return await ctx.services.hub.request(input.nodeId, "image.history", { reference: input.reference }, { timeoutMs: 30_000 });
    } catch (e) {
      throw linkError(e);
    }
  }),
});

/** Each kind of a failed link request, once, as the tRPC code the browser can act on. */
const TRPC_CODE_OF: Record<LinkErrorKind, TRPCError["code"]> = {
  InvalidArgument: "BAD_REQUEST",
  NotFound: "NOT_FOUND",
  AlreadyExists: "CONFLICT",
  Conflict: "CONFLICT",
  // A registry refused the credentials: not the console session (401 would read as "signed out").
  Unauthorized: "PRECONDITION_FAILED",
  Unavailable: "SERVICE_UNAVAILABLE",
  DataLoss: "UNPROCESSABLE_CONTENT",
  NotImplemented: "NOT_IMPLEMENTED",
  Canceled: "CLIENT_CLOSED_REQUEST",
  Internal: "INTERNAL_SERVER_ERROR",
  Interrupted: "INTERNAL_SERVER_ERROR",
};

/** A link failure as the API's error: the engine's message, with a code the browser can act on. */
export function linkError(e: unknown): TRPCError {
  if (!(e instanceof LinkRequestError)) return new TRPCError({ code: "INTERNAL_SERVER_ERROR", message: (e as Error).message, cause: e });
  return new TRPCError({ code: TRPC_CODE_OF[e.kind], message: e.message, cause: e });
}

export type { InventoryImage };
