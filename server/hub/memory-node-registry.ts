import { createHash, randomBytes, randomUUID, scrypt as scryptCb, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import type { HostFactsWire, InventorySnapshot } from "../../agent/link/contract.ts";
import type { NodeRegistry } from "./node-registry.ts";

const scrypt = promisify(scryptCb) as (password: string, salt: Buffer, keylen: number) => Promise<Buffer>;
const KEY_LENGTH = 32;

interface MemoryNode {
  nodeId: string;
  hostname: string;
  facts: HostFactsWire;
  salt: Buffer;
  hash: Buffer;
  revoked: boolean;
  createdAt: Date;
  lastSeen?: Date;
  inventory?: InventorySnapshot;
}

interface MemoryToken {
  expiresAt: number;
  usedAt?: number;
}

/** Join tokens are high-entropy random strings: a plain SHA-256 is enough to store them. */
const tokenKey = (token: string) => createHash("sha256").update(token).digest("hex");

/**
 * NodeRegistry in memory, FOR TESTS ONLY: nothing survives the process. Credentials are
 * hashed with scrypt (a salt per node) and compared in constant time; join tokens are
 * stored as SHA-256 hashes, single use, expiring.
 */
export class MemoryNodeRegistry implements NodeRegistry {
  readonly nodes = new Map<string, MemoryNode>();
  private readonly tokens = new Map<string, MemoryToken>();

  /** Creates a join token valid for `ttlMs` (default one hour); the clear token is returned once. */
  createJoinToken(ttlMs = 3_600_000): string {
    const token = `bjt_${randomBytes(24).toString("base64url")}`;
    this.tokens.set(tokenKey(token), { expiresAt: Date.now() + ttlMs });
    return token;
  }

  async consumeJoinToken(token: string): Promise<{ ok: true } | { ok: false; reason: string }> {
    const t = this.tokens.get(tokenKey(token));
    if (!t) return { ok: false, reason: "unknown join token" };
    if (t.usedAt !== undefined) return { ok: false, reason: "join token already used" };
    if (Date.now() >= t.expiresAt) return { ok: false, reason: "join token expired" };
    t.usedAt = Date.now();
    return { ok: true };
  }

  async releaseJoinToken(token: string): Promise<void> {
    const t = this.tokens.get(tokenKey(token));
    if (t) t.usedAt = undefined;
  }

  async createNode(hostname: string, facts: HostFactsWire): Promise<{ nodeId: string; credential: string }> {
    const nodeId = randomUUID();
    const credential = `bnc_${randomBytes(32).toString("base64url")}`;
    const salt = randomBytes(16);
    const hash = await scrypt(credential, salt, KEY_LENGTH);
    this.nodes.set(nodeId, { nodeId, hostname, facts, salt, hash, revoked: false, createdAt: new Date() });
    return { nodeId, credential };
  }

  async verifyNode(nodeId: string, credential: string): Promise<boolean> {
    const node = this.nodes.get(nodeId);
    // Unknown nodes cost the same scrypt as known ones, so timing does not tell them apart.
    const salt = node?.salt ?? randomBytes(16);
    const hash = await scrypt(credential, salt, KEY_LENGTH);
    if (!node) return false;
    return timingSafeEqual(hash, node.hash);
  }

  async isRevoked(nodeId: string): Promise<boolean> {
    return this.nodes.get(nodeId)?.revoked ?? false;
  }

  async revokeNode(nodeId: string): Promise<void> {
    const node = this.nodes.get(nodeId);
    if (node) node.revoked = true;
  }

  async markSeen(nodeId: string, at: Date): Promise<void> {
    const node = this.nodes.get(nodeId);
    if (node) node.lastSeen = at;
  }

  async saveInventory(nodeId: string, snapshot: InventorySnapshot): Promise<void> {
    const node = this.nodes.get(nodeId);
    if (node) node.inventory = snapshot;
  }
}
