// What a `node.changed` notice refreshes in the browser. With hundreds of nodes a notice
// arrives many times a second; refetching every inventory query on each (as before) kept
// every open page refetching the whole fleet without pause. Now:
//  - queries keyed by the node that changed (its page, its containers/images/volumes/
//    networks, a container's inspect there) are refetched at once;
//  - fleet-wide queries (the fleet list, the lists across nodes, and queries keyed by a node
//    that show other nodes too, such as an image's "nodes holding it") are refetched at most
//    once per FLEET_REFRESH_MS, however many nodes changed meanwhile;
//  - queries keyed by another node are left alone.
// A refetch already running is not restarted (cancelRefetch: false): under a steady stream
// of notices a restarted fetch would never finish.
import type { Query, QueryClient } from "@tanstack/react-query";

/** The longest a fleet-wide list waits to show a change on a node. */
export const FLEET_REFRESH_MS = 1_500;

/** Routers whose queries show nodes or their inventory. */
const NODE_ROUTERS = new Set(["nodes", "inventory"]);
/** Queries keyed by one node that also show other nodes. */
const SPANS_NODES = new Set(["inventory.image"]);

/** The tRPC path ("inventory.containers") and the node id of a query's input, if any. */
export function queryScope(q: Pick<Query, "queryKey">): { path: string; nodeId?: string } | undefined {
  const [path, opts] = q.queryKey as [unknown, { input?: unknown } | undefined];
  if (!Array.isArray(path) || !NODE_ROUTERS.has(String(path[0]))) return undefined;
  const input = opts?.input as { nodeId?: unknown } | undefined;
  const nodeId = typeof input?.nodeId === "string" ? input.nodeId : undefined;
  return nodeId ? { path: path.join("."), nodeId } : { path: path.join(".") };
}

export class NodeRefresher {
  private lastFleet = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly client: QueryClient,
    private readonly windowMs = FLEET_REFRESH_MS,
  ) {}

  nodeChanged(nodeId: string): void {
    void this.client.invalidateQueries(
      {
        predicate: (q) => {
          const s = queryScope(q);
          return s?.nodeId === nodeId && !SPANS_NODES.has(s.path);
        },
      },
      { cancelRefetch: false },
    );
    this.scheduleFleet();
  }

  private scheduleFleet(): void {
    if (this.timer) return;
    const wait = Math.max(0, this.lastFleet + this.windowMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.lastFleet = Date.now();
      void this.client.invalidateQueries(
        {
          predicate: (q) => {
            const s = queryScope(q);
            return !!s && (!s.nodeId || SPANS_NODES.has(s.path));
          },
        },
        { cancelRefetch: false },
      );
    }, wait);
  }

  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
