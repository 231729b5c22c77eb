// DbNodeRegistry (server/db/node-registry-db.ts) against a real PostgreSQL: join
// tokens are hashed, single use (also under a race) and expire; node credentials
// are hashed and verified; revocation; last seen; the saved inventory.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { HostFactsWire, InventorySnapshot } from "../agent/link/contract.ts";
import { DbNodeRegistry } from "../server/db/node-registry-db.ts";
import type { NodeRegistry } from "../server/hub/node-registry.ts";
import { openTestDatabase, type MigratedTestDatabase } from "./helpers/postgres.ts";

const facts: HostFactsWire = {
  hostname: "node-a",
  kernelVersion: "6.1.0",
  operatingSystem: "Debian GNU/Linux 12 (bookworm)",
  osVersion: "12",
  architecture: "x86_64",
  goArch: "amd64",
  ncpu: 2,
  memTotal: 24 * 2 ** 30,
  cgroupVersion: "1",
};

function snapshot(agentVersion: string): InventorySnapshot {
  return {
    protocol: 1,
    agentVersion,
    engineId: "engine-1",
    facts: { ...facts, kernelVersion: "6.1.1" },
    images: [{ id: "sha256:" + "a".repeat(64), repoTags: ["busybox:latest"], repoDigests: [], size: 1234, created: 1, labels: {}, containers: 0 }],
    containers: [],
    volumes: [],
    networks: [],
    takenAt: Date.now(),
  };
}

describe("DbNodeRegistry", () => {
  let db: MigratedTestDatabase;
  let clock = new Date("2030-01-01T00:00:00Z");
  let reg: DbNodeRegistry;
  before(async () => {
    db = await openTestDatabase("db_node_registry");
    reg = new DbNodeRegistry(db.prisma, { now: () => clock });
  });
  after(() => db?.close());

  test("implements the hub's NodeRegistry", () => {
    const asInterface: NodeRegistry = reg;
    assert.ok(asInterface);
  });

  test("a join token is stored hashed, enrolls one node into its group, and only once", async () => {
    const group = await db.prisma.nodeGroup.create({ data: { name: "edge" } });
    const admin = await db.prisma.user.create({ data: { email: "admin@example.com", role: "admin" } });
    const issued = await reg.createJoinToken({ createdById: admin.id, nodeGroupId: group.id, note: "rack 4" });
    assert.match(issued.token, /^bjt_[A-Za-z0-9_-]{43}$/);
    const row = await db.prisma.joinToken.findUniqueOrThrow({ where: { id: issued.id } });
    assert.notEqual(row.tokenHash, issued.token);
    assert.ok(!row.tokenHash.includes(issued.token.slice(4)));
    assert.equal(row.usedAt, null);

    const consumed = await reg.consumeJoinToken(issued.token);
    assert.deepEqual(consumed, { ok: true, joinTokenId: issued.id, nodeGroupId: group.id });
    const again = await reg.consumeJoinToken(issued.token);
    assert.deepEqual(again, { ok: false, reason: "join token already used" });

    const { nodeId, credential } = await reg.createNode("node-a", facts, { joinTokenId: issued.id, agentVersion: "0.1.0" });
    const node = await db.prisma.node.findUniqueOrThrow({ where: { id: nodeId }, include: { credentials: true, joinToken: true } });
    assert.equal(node.groupId, group.id);
    assert.equal(node.hostname, "node-a");
    assert.equal(node.agentVersion, "0.1.0");
    assert.deepEqual(node.facts, facts);
    assert.equal(node.joinToken?.id, issued.id);
    assert.equal(node.credentials.length, 1);
    assert.notEqual(node.credentials[0]!.secretHash, credential);
    assert.ok(!node.credentials[0]!.secretHash.includes(credential.slice(4)));
    // The token cannot enroll a second node either.
    await assert.rejects(reg.createNode("node-b", facts, { joinTokenId: issued.id }), /was not consumed for this node/);
  });

  test("two agents racing with one token: exactly one gets in", async () => {
    const { token } = await reg.createJoinToken();
    const results = await Promise.all(Array.from({ length: 8 }, () => reg.consumeJoinToken(token)));
    assert.equal(results.filter((r) => r.ok).length, 1);
    for (const r of results.filter((r) => !r.ok)) assert.deepEqual(r, { ok: false, reason: "join token already used" });
  });

  test("a token consumed by a handshake that failed before its node was made is given back; one that made a node is not", async () => {
    const { token, id } = await reg.createJoinToken();
    assert.equal((await reg.consumeJoinToken(token)).ok, true);
    await reg.releaseJoinToken(token);
    assert.deepEqual(await reg.consumeJoinToken(token), { ok: true, joinTokenId: id, nodeGroupId: null });
    await reg.createNode("node-r", facts, { joinTokenId: id });
    await reg.releaseJoinToken(token);
    assert.deepEqual(await reg.consumeJoinToken(token), { ok: false, reason: "join token already used" });
  });

  test("a join token expires, and unknown tokens are refused", async () => {
    const { token, expiresAt } = await reg.createJoinToken({ ttlMs: 60_000 });
    assert.equal(expiresAt.getTime(), clock.getTime() + 60_000);
    const saved = clock;
    clock = new Date(expiresAt.getTime());
    try {
      assert.deepEqual(await reg.consumeJoinToken(token), { ok: false, reason: "join token expired" });
    } finally {
      clock = saved;
    }
    assert.deepEqual(await reg.consumeJoinToken("bjt_" + "x".repeat(43)), { ok: false, reason: "unknown join token" });
    assert.deepEqual(await reg.consumeJoinToken(""), { ok: false, reason: "unknown join token" });
    await assert.rejects(reg.createJoinToken({ ttlMs: 0 }), RangeError);
    await assert.rejects(reg.createJoinToken({ ttlMs: 8 * 24 * 3600_000 }), RangeError);
  });

  test("node credentials verify; wrong, foreign or malformed ones do not", async () => {
    const a = await reg.createNode("a", facts);
    const b = await reg.createNode("b", facts);
    assert.equal(await reg.verifyNode(a.nodeId, a.credential), true);
    assert.equal(await reg.verifyNode(b.nodeId, b.credential), true);
    assert.equal(await reg.verifyNode(a.nodeId, b.credential), false, "another node's credential");
    assert.equal(await reg.verifyNode(a.nodeId, a.credential + "x"), false);
    assert.equal(await reg.verifyNode(a.nodeId, ""), false);
    assert.equal(await reg.verifyNode(randomUUID(), a.credential), false, "unknown node");
    assert.equal(await reg.verifyNode("not-a-uuid", a.credential), false);
    // A credential revoked on its own (rotation) no longer verifies.
    await db.prisma.nodeCredential.updateMany({ where: { nodeId: b.nodeId }, data: { revokedAt: new Date() } });
    assert.equal(await reg.verifyNode(b.nodeId, b.credential), false);
  });

  test("revoking a node: isRevoked from then on, idempotent, unknown nodes count as revoked", async () => {
    const n = await reg.createNode("c", facts);
    assert.equal(await reg.isRevoked(n.nodeId), false);
    await reg.revokeNode(n.nodeId);
    assert.equal(await reg.isRevoked(n.nodeId), true);
    const first = (await db.prisma.node.findUniqueOrThrow({ where: { id: n.nodeId } })).revokedAt;
    clock = new Date(clock.getTime() + 1000);
    await reg.revokeNode(n.nodeId);
    assert.deepEqual((await db.prisma.node.findUniqueOrThrow({ where: { id: n.nodeId } })).revokedAt, first);
    // The credential is still recognised, so the hub can answer "revoked" rather than "unauthorized".
    assert.equal(await reg.verifyNode(n.nodeId, n.credential), true);
    assert.equal(await reg.isRevoked(randomUUID()), true);
    assert.equal(await reg.isRevoked("nope"), true);
  });

  test("markSeen never moves last seen backwards", async () => {
    const n = await reg.createNode("d", facts);
    const t1 = new Date("2030-01-01T00:00:10Z");
    const t0 = new Date("2030-01-01T00:00:05Z");
    await reg.markSeen(n.nodeId, t1);
    await reg.markSeen(n.nodeId, t0);
    assert.deepEqual((await db.prisma.node.findUniqueOrThrow({ where: { id: n.nodeId } })).lastSeenAt, t1);
    await reg.markSeen(randomUUID(), t1); // unknown: ignored
  });

  test("saveInventory keeps the last snapshot and the agent version and facts it carries", async () => {
    const n = await reg.createNode("e", facts);
    await reg.saveInventory(n.nodeId, snapshot("0.1.0"));
    await reg.saveInventory(n.nodeId, snapshot("0.2.0"));
    const inv = await db.prisma.inventorySnapshot.findUniqueOrThrow({ where: { nodeId: n.nodeId } });
    assert.equal((inv.snapshot as { agentVersion: string }).agentVersion, "0.2.0");
    const node = await db.prisma.node.findUniqueOrThrow({ where: { id: n.nodeId } });
    assert.equal(node.agentVersion, "0.2.0");
    assert.equal((node.facts as { kernelVersion: string }).kernelVersion, "6.1.1");
    await reg.saveInventory(randomUUID(), snapshot("0.2.0")); // unknown: ignored
    assert.equal(await db.prisma.inventorySnapshot.count({ where: { nodeId: { not: n.nodeId } } }), 0);
  });
});
