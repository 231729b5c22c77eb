/**
 * NodeRegistry on the console's database (see server/hub/node-registry.ts for the
 * contract and call order). Join tokens and node credentials are 256-bit random
 * secrets stored as SHA-256 (server/auth/tokens.ts); the clear values leave this
 * class once, from createJoinToken() and createNode().
 *
 * Revocation is a property of the node, not of its credential: after revokeNode(),
 * verifyNode() still recognises the credential, and isRevoked() is what refuses it,
 * so the hub can tell the agent "revoked" rather than "unauthorized".
 */
import type { HostFactsWire, InventorySnapshot } from "../../agent/link/contract.ts";
import type { NodeRegistry } from "../hub/node-registry.ts";
import { generateToken, hashesEqual, hashToken } from "../auth/tokens.ts";
import type { PrismaClient } from "./generated/client.ts";
import type { InputJsonObject } from "./generated/internal/prismaNamespace.ts";
import { isUuid } from "./ids.ts";

export const DEFAULT_JOIN_TOKEN_TTL_MS = 60 * 60 * 1000;
/** The longest a join token may live: it is a bearer secret that enrolls machines. */
export const MAX_JOIN_TOKEN_TTL_MS = 7 * 24 * 60 * 60 * 1000;

export interface CreateJoinTokenOptions {
  /** Default one hour, at most seven days. */
  ttlMs?: number;
  /** The admin who asked for it. */
  createdById?: string;
  /** The group the node joins. */
  nodeGroupId?: string;
  note?: string;
}

export interface IssuedJoinToken {
  id: string;
  /** The clear token: show it once, it is not stored. */
  token: string;
  expiresAt: Date;
}

export type ConsumeJoinTokenResult = { ok: true; joinTokenId: string; nodeGroupId: string | null } | { ok: false; reason: string };

export interface CreateNodeOptions {
  /** The consumed join token (from consumeJoinToken): links the node to it and puts it in the token's group. */
  joinTokenId?: string;
  agentVersion?: string;
}

export class DbNodeRegistry implements NodeRegistry {
  readonly #prisma: PrismaClient;
  readonly #now: () => Date;

  /** @param options.now the clock, for tests of expiry. */
  constructor(prisma: PrismaClient, options: { now?: () => Date } = {}) {
    this.#prisma = prisma;
    this.#now = options.now ?? (() => new Date());
  }

  /** Issues a join token. @throws RangeError for a ttl outside (0, 7 days]. */
  async createJoinToken(options: CreateJoinTokenOptions = {}): Promise<IssuedJoinToken> {
    const ttlMs = options.ttlMs ?? DEFAULT_JOIN_TOKEN_TTL_MS;
    if (!(ttlMs > 0 && ttlMs <= MAX_JOIN_TOKEN_TTL_MS)) throw new RangeError(`join token lifetime must be within 1 ms..7 days, got ${ttlMs} ms`);
    const token = generateToken("bjt");
    const expiresAt = new Date(this.#now().getTime() + ttlMs);
    const row = await this.#prisma.joinToken.create({
      data: {
        tokenHash: hashToken(token),
        expiresAt,
        createdById: options.createdById ?? null,
        nodeGroupId: options.nodeGroupId ?? null,
        note: options.note ?? "",
      },
      select: { id: true },
    });
    return { id: row.id, token, expiresAt };
  }

  /**
   * Uses up a join token, atomically: the conditional update lets exactly one of
   * several concurrent callers through.
   */
  async consumeJoinToken(token: string): Promise<ConsumeJoinTokenResult> {
    if (typeof token !== "string" || token.length === 0 || token.length > 512) return { ok: false, reason: "unknown join token" };
    const tokenHash = hashToken(token);
    const now = this.#now();
    const { count } = await this.#prisma.joinToken.updateMany({
      where: { tokenHash, usedAt: null, expiresAt: { gt: now } },
      data: { usedAt: now },
    });
    const row = await this.#prisma.joinToken.findUnique({ where: { tokenHash }, select: { id: true, nodeGroupId: true, usedAt: true, expiresAt: true } });
    if (count === 1 && row) return { ok: true, joinTokenId: row.id, nodeGroupId: row.nodeGroupId };
    if (!row) return { ok: false, reason: "unknown join token" };
    if (row.usedAt) return { ok: false, reason: "join token already used" };
    return { ok: false, reason: "join token expired" };
  }

  async releaseJoinToken(token: string): Promise<void> {
    if (typeof token !== "string" || token.length === 0 || token.length > 512) return;
    await this.#prisma.joinToken.updateMany({ where: { tokenHash: hashToken(token), nodeId: null }, data: { usedAt: null } });
  }

  async createNode(hostname: string, facts: HostFactsWire, options: CreateNodeOptions = {}): Promise<{ nodeId: string; credential: string }> {
    const credential = generateToken("bnc");
    const nodeId = await this.#prisma.$transaction(async (tx) => {
      let groupId: string | null = null;
      if (options.joinTokenId) {
        const t = await tx.joinToken.findUnique({ where: { id: options.joinTokenId }, select: { nodeGroupId: true, usedAt: true, nodeId: true } });
        if (!t || !t.usedAt || t.nodeId) throw new Error(`join token ${options.joinTokenId} was not consumed for this node`);
        groupId = t.nodeGroupId;
      }
      const node = await tx.node.create({
        data: {
          hostname,
          name: hostname,
          groupId,
          facts: facts as unknown as InputJsonObject,
          agentVersion: options.agentVersion ?? null,
          credentials: { create: { secretHash: hashToken(credential) } },
        },
        select: { id: true },
      });
      if (options.joinTokenId) await tx.joinToken.update({ where: { id: options.joinTokenId }, data: { nodeId: node.id } });
      return node.id;
    });
    return { nodeId, credential };
  }

  /** Whether `credential` is one of the node's live credentials (constant-time comparison of hashes). */
  async verifyNode(nodeId: string, credential: string): Promise<boolean> {
    if (!isUuid(nodeId) || typeof credential !== "string" || credential.length === 0) return false;
    const presented = hashToken(credential);
    const rows = await this.#prisma.nodeCredential.findMany({ where: { nodeId, revokedAt: null }, select: { secretHash: true } });
    let ok = false;
    for (const r of rows) ok = hashesEqual(presented, r.secretHash) || ok;
    return ok;
  }

  /** True when the node was revoked, and for an unknown node (fail closed). */
  async isRevoked(nodeId: string): Promise<boolean> {
    if (!isUuid(nodeId)) return true;
    const node = await this.#prisma.node.findUnique({ where: { id: nodeId }, select: { revokedAt: true } });
    return !node || node.revokedAt !== null;
  }

  /** Revokes the node (idempotent: the first revocation time is kept). */
  async revokeNode(nodeId: string): Promise<void> {
    if (!isUuid(nodeId)) return;
    await this.#prisma.node.updateMany({ where: { id: nodeId, revokedAt: null }, data: { revokedAt: this.#now() } });
  }

  /** Records `at` as last seen, never moving it backwards. Unknown nodes are ignored. */
  async markSeen(nodeId: string, at: Date): Promise<void> {
    if (!isUuid(nodeId)) return;
    await this.#prisma.node.updateMany({
      where: { id: nodeId, OR: [{ lastSeenAt: null }, { lastSeenAt: { lt: at } }] },
      data: { lastSeenAt: at },
    });
  }

  /** Keeps the snapshot, and the agent version and facts it carries on the node. Unknown nodes are ignored. */
  async saveInventory(nodeId: string, snapshot: InventorySnapshot): Promise<void> {
    if (!isUuid(nodeId)) return;
    const json = snapshot as unknown as InputJsonObject;
    await this.#prisma.$transaction(async (tx) => {
      const { count } = await tx.node.updateMany({
        where: { id: nodeId },
        data: { agentVersion: snapshot.agentVersion, facts: snapshot.facts as unknown as InputJsonObject },
      });
      if (count === 0) return;
      const updatedAt = this.#now();
      await tx.inventorySnapshot.upsert({
        where: { nodeId },
        create: { nodeId, snapshot: json, updatedAt },
        update: { snapshot: json, updatedAt },
      });
    });
  }
}
