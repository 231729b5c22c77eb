/**
 * Volumes, networks and stopped containers as jobs: create, remove and prune on one node
 * or many (the jobs router spreads these in, so they share its path and its authorisation).
 */
import { z } from "zod";
import { authedProcedure } from "../trpc.ts";
import { startJob } from "../start-job.ts";
import { labelsSchema } from "../labels.ts";

const NodeIds = z
  .array(z.uuid({ error: "not a node ID" }))
  .min(1, "choose at least one node")
  .max(1000);
const Labels = labelsSchema({ key: /^[^=\s]+$/, keyRule: "no spaces and no =", maxKey: 256, maxValue: 4096, maxLabels: 64 });
/** Docker's volume and network name rule. */
const ResourceName = z
  .string()
  .trim()
  .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, "letters, digits and _ . - only, starting with a letter or digit")
  .max(128);
const Cidr = z
  .string()
  .trim()
  .regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/, "an IPv4 subnet in CIDR form, e.g. 10.30.0.0/24")
  .optional();
const Ip = z
  .string()
  .trim()
  .regex(/^(\d{1,3}\.){3}\d{1,3}$/, "an IPv4 address, e.g. 10.30.0.1")
  .optional();

const perNode = <P extends Record<string, unknown>>(
  nodeIds: string[],
  action: "volume.create" | "volume.remove" | "volume.prune" | "network.create" | "network.remove" | "network.prune" | "container.prune",
  params: P,
) => nodeIds.map((nodeId) => ({ nodeId, action, params }));

export const storageJobs = {
  createVolume: authedProcedure
    .input(
      z.object({
        nodeIds: NodeIds,
        name: ResourceName.optional(),
        driverOpts: z.record(z.string().trim().min(1).max(256), z.string().max(4096)).default({}),
        labels: Labels.default({}),
      }),
    )
    .mutation(({ ctx, input }) => {
      const params = { ...(input.name ? { name: input.name } : {}), driverOpts: input.driverOpts, labels: input.labels };
      return startJob(ctx, "volume.create", { name: input.name ?? null }, perNode(input.nodeIds, "volume.create", params));
    }),

  /** Removes volumes, each on its own node. */
  removeVolumes: authedProcedure
    .input(
      z.object({
        targets: z
          .array(z.object({ nodeId: z.uuid(), name: z.string().min(1).max(256) }))
          .min(1, "choose at least one volume")
          .max(1000),
        force: z.boolean().default(false),
      }),
    )
    .mutation(({ ctx, input }) =>
      startJob(
        ctx,
        "volume.remove",
        { volumes: input.targets.length },
        input.targets.map((t) => ({ nodeId: t.nodeId, action: "volume.remove" as const, params: { name: t.name, force: input.force } })),
      ),
    ),

  /** Removes unused volumes: anonymous ones, or with `all` named ones too. */
  pruneVolumes: authedProcedure
    .input(z.object({ nodeIds: NodeIds, all: z.boolean().default(false) }))
    .mutation(({ ctx, input }) => startJob(ctx, "volume.prune", { all: input.all }, perNode(input.nodeIds, "volume.prune", { all: input.all }))),

  createNetwork: authedProcedure
    .input(
      z
        .object({
          nodeIds: NodeIds,
          name: ResourceName.min(1, "a network needs a name"),
          subnet: Cidr,
          gateway: Ip,
          internal: z.boolean().default(false),
          labels: Labels.default({}),
        })
        .refine((v) => !v.gateway || v.subnet, { path: ["gateway"], message: "a gateway needs a subnet" }),
    )
    .mutation(({ ctx, input }) => {
      const params = {
        name: input.name,
        ...(input.subnet ? { subnet: input.subnet } : {}),
        ...(input.gateway ? { gateway: input.gateway } : {}),
        internal: input.internal,
        labels: input.labels,
      };
      return startJob(ctx, "network.create", { name: input.name }, perNode(input.nodeIds, "network.create", params));
    }),

  removeNetworks: authedProcedure
    .input(
      z.object({
        targets: z
          .array(z.object({ nodeId: z.uuid(), id: z.string().min(1).max(256) }))
          .min(1, "choose at least one network")
          .max(1000),
      }),
    )
    .mutation(({ ctx, input }) =>
      startJob(
        ctx,
        "network.remove",
        { networks: input.targets.length },
        input.targets.map((t) => ({ nodeId: t.nodeId, action: "network.remove" as const, params: { id: t.id } })),
      ),
    ),

  pruneNetworks: authedProcedure
    .input(z.object({ nodeIds: NodeIds }))
    .mutation(({ ctx, input }) => startJob(ctx, "network.prune", {}, perNode(input.nodeIds, "network.prune", {}))),

  /** Removes every stopped container on the nodes. */
  pruneContainers: authedProcedure
    .input(z.object({ nodeIds: NodeIds }))
    .mutation(({ ctx, input }) => startJob(ctx, "container.prune", {}, perNode(input.nodeIds, "container.prune", {}))),
};
