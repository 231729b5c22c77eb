import type { HostFactsWire, InventorySnapshot } from "../../agent/link/contract.ts";

/**
 * What the agent hub needs to remember about nodes. The console's database implements
 * it (Prisma); `MemoryNodeRegistry` is the in-memory stand-in for tests.
 *
 * Secrets: join tokens and node credentials are stored hashed, never in clear; the
 * clear credential leaves `createNode` once, for the hub to hand to the agent. Every
 * method may throw when the store is unreachable; the hub then refuses the agent with
 * `unavailable` (it retries) rather than guessing.
 *
 * Call order for a new node: `consumeJoinToken` → `createNode` (the hub calls it only
 * after the token was consumed) → `markSeen` / `saveInventory` while it is connected.
 * For a known node: `verifyNode` → `isRevoked` → `markSeen` / `saveInventory`.
 */
export interface NodeRegistry {
  /**
   * Uses up a join token: valid only once and only before it expires. Must be atomic,
   * so two agents presenting one token cannot both get `ok`.
   * @returns `{ ok: false, reason }` with a reason the agent's log shows ("join token already used")
   */
  consumeJoinToken(token: string): Promise<{ ok: true; joinTokenId?: string } | { ok: false; reason: string }>;

  /**
   * Gives back a join token consumed by a handshake that then failed before the node was
   * created (the database was busy): the agent retries, and must not find its token used up.
   * Does nothing once a node holds the token.
   */
  releaseJoinToken(token: string): Promise<void>;

  /** Records a new node; returns its ID and its credential in clear, the one time it exists so. */
  createNode(
    hostname: string,
    facts: HostFactsWire,
    options?: { joinTokenId?: string; agentVersion?: string },
  ): Promise<{ nodeId: string; credential: string }>;

  /** Whether `credential` is this node's (constant-time comparison of hashes); false for unknown nodes. */
  verifyNode(nodeId: string, credential: string): Promise<boolean>;

  isRevoked(nodeId: string): Promise<boolean>;

  /** Marks the node revoked for good: it is refused from now on. */
  revokeNode(nodeId: string): Promise<void>;

  markSeen(nodeId: string, at: Date): Promise<void>;

  /** Keeps the node's last-known inventory (the hub calls it throttled, and on disconnect). */
  saveInventory(nodeId: string, snapshot: InventorySnapshot): Promise<void>;
}
