/**
 * The console side of "wait for the node": builds InstallOptions.waitForNode from the
 * agent hub and the database. A new node is the one its join token enrolled
 * (join_tokens.node_id), online in the hub; an upgraded node is online again on a
 * connection made after the wait began, reporting the new version.
 */
import type { AgentHub } from "../hub/agent-hub.ts";
import type { PrismaClient } from "../db/generated/client.ts";

export interface NodeWaiterOptions {
  hub: AgentHub;
  prisma: PrismaClient;
  /** The join token put in the node's config (DbNodeRegistry.createJoinToken().id). */
  joinTokenId?: string;
  /** The node, when it is known (an upgrade: SshHost.nodeId). */
  nodeId?: string;
  /** Poll interval (default 250 ms). */
  intervalMs?: number;
}

export type WaitForNode = (ctx: { upgrade: boolean; version?: string; signal: AbortSignal }) => Promise<{ nodeId: string }>;

/** A waitForNode for installAgent(). Rejects when the signal fires. */
export function nodeWaiter(opts: NodeWaiterOptions): WaitForNode {
  const since = Date.now();
  return async ({ upgrade, version, signal }) => {
    const interval = opts.intervalMs ?? 250;
    for (;;) {
      if (signal.aborted) throw new Error("stopped waiting for the node");
      let nodeId = opts.nodeId;
      if (!nodeId && opts.joinTokenId) {
        const row = await opts.prisma.joinToken.findUnique({ where: { id: opts.joinTokenId }, select: { nodeId: true } });
        nodeId = row?.nodeId ?? undefined;
      }
      const status = nodeId ? opts.hub.node(nodeId) : undefined;
      if (nodeId && status?.online) {
        const fresh = !upgrade || (status.connectedAt ?? 0) >= since;
        const rightVersion = !version || !upgrade || status.agentVersion === version;
        if (fresh && rightVersion) return { nodeId };
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, interval);
        signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
      });
    }
  };
}
