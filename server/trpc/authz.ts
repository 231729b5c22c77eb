/**
 * Who may do what on which node. One table (ROLE_PERMISSIONS) and one scope rule:
 * admins act on every node; operators and viewers only on the nodes whose node group
 * is granted to one of their teams. Every tRPC procedure and socket handler asks here;
 * the UI only hides buttons.
 */
import type { PrismaClient } from "../db/generated/client.ts";
import type { Role } from "../db/generated/enums.ts";

export type Permission =
  /** see nodes, inventory, jobs, logs of containers */
  | "read"
  /** pull, push, tag, remove, prune, run, lifecycle */
  | "operate"
  /** a shell inside a container */
  | "exec"
  /** users, teams, node groups, join tokens, registries, nodes themselves, the audit log */
  | "admin";

export const ROLE_PERMISSIONS: Record<Role, ReadonlySet<Permission>> = {
  admin: new Set<Permission>(["read", "operate", "exec", "admin"]),
  operator: new Set<Permission>(["read", "operate", "exec"]),
  viewer: new Set<Permission>(["read"]),
};

export function roleAllows(role: Role, permission: Permission): boolean {
  return ROLE_PERMISSIONS[role].has(permission);
}

/** The nodes a user's teams reach: "all" for admins. */
export type NodeScope = { all: true } | { all: false; nodeIds: ReadonlySet<string> };

export async function nodeScopeOf(prisma: PrismaClient, user: { id: string; role: Role }): Promise<NodeScope> {
  if (user.role === "admin") return { all: true };
  const rows = await prisma.node.findMany({
    where: { group: { grants: { some: { team: { memberships: { some: { userId: user.id } } } } } } },
    select: { id: true },
  });
  return { all: false, nodeIds: new Set(rows.map((r) => r.id)) };
}

export function inScope(scope: NodeScope, nodeId: string): boolean {
  return scope.all || scope.nodeIds.has(nodeId);
}
