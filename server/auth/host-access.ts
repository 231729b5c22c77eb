/**
 * The host-level option check against the database: which node group each node is
 * in and what its host policy grants operators (server/auth/host-options.ts holds
 * the rules). Called for every job before it is created, whatever the procedure.
 */
import type { PrismaClient } from "../db/generated/client.ts";
import type { Role } from "../db/generated/enums.ts";
import {
  HostPolicyRulesSchema,
  hostOptionUses,
  NO_HOST_ACCESS,
  refusedHostOptions,
  type HostOptionRefusal,
  type HostOptionUse,
  type HostPolicyRules,
} from "./host-options.ts";

/** Job step actions whose params are the options of a new container. */
export const CONTAINER_MAKING_ACTIONS: ReadonlySet<string> = new Set(["container.run", "container.create", "container.recreate"]);

export interface StepRequest {
  nodeId: string;
  action: string;
  params?: Record<string, unknown>;
}

export interface NodeHostRules {
  groupName: string | null;
  rules: HostPolicyRules;
}

/** Each node's group and host policy (no group, no policy: no host access). */
export async function hostRulesOfNodes(prisma: PrismaClient, nodeIds: readonly string[]): Promise<Map<string, NodeHostRules>> {
  const nodes = await prisma.node.findMany({
    where: { id: { in: [...new Set(nodeIds)] } },
    select: { id: true, group: { select: { name: true, hostPolicy: { select: { allowHostNetwork: true, bindMounts: true } } } } },
  });
  const out = new Map<string, NodeHostRules>();
  for (const n of nodes) {
    const p = n.group?.hostPolicy;
    // A stored policy that no longer parses grants nothing rather than failing open.
    const parsed = p ? HostPolicyRulesSchema.safeParse({ allowHostNetwork: p.allowHostNetwork, bindMounts: p.bindMounts }) : undefined;
    out.set(n.id, { groupName: n.group?.name ?? null, rules: parsed?.success ? parsed.data : NO_HOST_ACCESS });
  }
  return out;
}

export interface HostAccessDecision {
  /** Host-level options the steps use (for the audit log, also when allowed). */
  used: Array<HostOptionUse & { nodeId: string }>;
  refused: Array<HostOptionRefusal & { nodeId: string }>;
}

/** Judges every step of a job for `user`: admins may use everything, operators what their nodes' policies grant. */
export async function judgeHostAccess(prisma: PrismaClient, user: { role: Role }, steps: readonly StepRequest[]): Promise<HostAccessDecision> {
  const used: HostAccessDecision["used"] = [];
  const candidates = steps.filter((s) => s.params && hostOptionUses(s.params, CONTAINER_MAKING_ACTIONS.has(s.action)).length > 0);
  for (const s of candidates)
    for (const u of hostOptionUses(s.params!, CONTAINER_MAKING_ACTIONS.has(s.action))) used.push({ option: u.option, value: u.value, nodeId: s.nodeId });
  if (!candidates.length || user.role === "admin") return { used, refused: [] };
  const rules = await hostRulesOfNodes(
    prisma,
    candidates.map((s) => s.nodeId),
  );
  const refused: HostAccessDecision["refused"] = [];
  for (const s of candidates) {
    const r = rules.get(s.nodeId) ?? { groupName: null, rules: NO_HOST_ACCESS };
    for (const x of refusedHostOptions(s.params!, r.rules, { container: CONTAINER_MAKING_ACTIONS.has(s.action), groupName: r.groupName }))
      refused.push({ ...x, nodeId: s.nodeId });
  }
  return { used, refused };
}
