// Secrets at rest against a real PostgreSQL: registry passwords are sealed with
// AES-256-GCM under BERTH_SECRET_KEY (the column never holds the clear text), the
// key is required and checked, and audit rows hold no secrets whatever callers pass.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { parseSecretKey, SecretBox, SecretKeyError, secretKeyFromEnv } from "../server/auth/secret-box.ts";
import { generateToken } from "../server/auth/tokens.ts";
import { recordAudit, REDACTED, redactSecrets } from "../server/db/audit.ts";
import { RegistryStore } from "../server/db/registries.ts";
import { openTestDatabase, type MigratedTestDatabase } from "./helpers/postgres.ts";

/** Every row of a table as text, read with plain SQL (not through the code under test). */
async function tableText(url: string, table: string): Promise<string> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const { rows } = await c.query(`SELECT t::text AS row FROM ${c.escapeIdentifier(table)} t`);
    return rows.map((r: { row: string }) => r.row).join("\n");
  } finally {
    await c.end();
  }
}

describe("the secret key", () => {
  test("missing or malformed BERTH_SECRET_KEY is a clear error", () => {
    assert.throws(
      () => secretKeyFromEnv({}),
      (e: unknown) => e instanceof SecretKeyError && /BERTH_SECRET_KEY is not set.*openssl rand -hex 32/s.test(e.message),
    );
    assert.throws(() => secretKeyFromEnv({ BERTH_SECRET_KEY: "short" }), /must be 32 bytes/);
    assert.throws(() => secretKeyFromEnv({ BERTH_SECRET_KEY: "ab".repeat(31) }), /must be 32 bytes/);
  });

  test("hex and base64 keys are accepted", () => {
    const key = randomBytes(32);
    assert.deepEqual(secretKeyFromEnv({ BERTH_SECRET_KEY: key.toString("hex") }), key);
    assert.deepEqual(parseSecretKey(key.toString("base64")), key);
    assert.deepEqual(parseSecretKey(key.toString("base64url")), key);
  });

  test("a sealed value opens only with the same key and purpose, and not after tampering", () => {
    const box = new SecretBox(randomBytes(32));
    const sealed = box.seal("hunter2", "registry-password:1");
    assert.notEqual(box.seal("hunter2", "registry-password:1"), sealed, "a fresh IV each time");
    assert.equal(box.open(sealed, "registry-password:1"), "hunter2");
    assert.throws(() => box.open(sealed, "registry-password:2"), /failed authentication/);
    assert.throws(() => new SecretBox(randomBytes(32)).open(sealed, "registry-password:1"), /sealed with another BERTH_SECRET_KEY/);
    const parts = sealed.split(".");
    const ct = Buffer.from(parts[3]!, "base64url");
    ct[0]! ^= 1;
    parts[3] = ct.toString("base64url");
    assert.throws(() => box.open(parts.join("."), "registry-password:1"), /failed authentication/);
    assert.throws(() => box.open("garbage", "x"), /not a sealed secret/);
  });
});

describe("registries and audit rows in the database", () => {
  let db: MigratedTestDatabase;
  const key = randomBytes(32);
  let store: RegistryStore;
  before(async () => {
    db = await openTestDatabase("db_secrets");
    store = new RegistryStore(db.prisma, new SecretBox(key));
  });
  after(() => db?.close());

  test("a registry password round-trips, and the column never holds the clear text", async () => {
    const password = "s3cret-registry-Passw0rd";
    const view = await store.save({ address: "registry.example.com:5000", username: "ci", password, insecure: true });
    assert.deepEqual(Object.keys(view).sort(), ["address", "createdAt", "hasPassword", "id", "insecure", "updatedAt", "username"]);
    assert.equal(view.hasPassword, true);
    assert.deepEqual(await store.getCredentials("registry.example.com:5000"), { username: "ci", password, insecure: true });

    const text = await tableText(db.url, "registries");
    assert.ok(!text.includes(password), "plaintext in the registries table");
    assert.ok(!text.includes(Buffer.from(password).toString("base64")), "base64 of the plaintext in the table");
    assert.ok(!text.includes(Buffer.from(password).toString("hex")), "hex of the plaintext in the table");
    assert.match(text, /v1\.[0-9a-f]{8}\./);

    // Updating other fields keeps the password; a new password replaces it; null removes it.
    await store.save({ address: "registry.example.com:5000", insecure: false });
    assert.equal((await store.getCredentials("registry.example.com:5000"))?.password, password);
    await store.save({ address: "registry.example.com:5000", password: "another-one" });
    assert.equal((await store.getCredentials("registry.example.com:5000"))?.password, "another-one");
    await store.save({ address: "registry.example.com:5000", password: null });
    assert.equal((await store.getCredentials("registry.example.com:5000"))?.password, null);
    assert.equal((await store.list())[0]?.hasPassword, false);
    assert.equal(await store.getCredentials("unknown.example.com"), null);
    await assert.rejects(store.save({ address: "https://bad/" }), /host\[:port\]/);
  });

  test("a sealed password cannot be opened with another key, or moved to another registry", async () => {
    await store.save({ address: "a.example.com", password: "pw-a" });
    await store.save({ address: "b.example.com", password: "pw-b" });
    const other = new RegistryStore(db.prisma, new SecretBox(randomBytes(32)));
    await assert.rejects(other.getCredentials("a.example.com"), /sealed with another BERTH_SECRET_KEY/);
    const a = await db.prisma.registry.findUniqueOrThrow({ where: { address: "a.example.com" } });
    await db.prisma.registry.update({ where: { address: "b.example.com" }, data: { passwordEncrypted: a.passwordEncrypted } });
    await assert.rejects(store.getCredentials("b.example.com"), /failed authentication/);
  });

  test("audit rows hold no secrets, whatever the caller puts in details", async () => {
    const joinToken = generateToken("bjt");
    const secrets = ["hunter2-registry", joinToken, "eyJhbGciOiJIUzI1NiJ9.payload.sig", "dXNlcjpwYXNz", "url-pass-123", "MIIEvQIBADANBgkq"];
    const user = await db.prisma.user.create({ data: { email: "op@example.com", role: "operator" } });
    await recordAudit(db.prisma, {
      actorUserId: user.id,
      actorLabel: user.email,
      action: "registry.save",
      targetNodeIds: [],
      outcome: "success",
      details: {
        address: "registry.example.com",
        username: "ci",
        password: "hunter2-registry",
        nested: { joinToken, headers: { Authorization: "Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig" } },
        note: `enrolled with ${joinToken}`,
        raw: "Authorization: Basic dXNlcjpwYXNz",
        mirror: "https://ci:url-pass-123@mirror.example.com/v2/",
        key: "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq\n-----END PRIVATE KEY-----",
        credentials: { username: "ci", password: "x" },
      },
    });
    const text = await tableText(db.url, "audit_log");
    for (const s of secrets) assert.ok(!text.includes(s), `audit row holds a secret: ${s}`);
    const row = await db.prisma.auditLog.findFirstOrThrow({ where: { action: "registry.save" } });
    const d = row.details as Record<string, unknown>;
    assert.equal(d.address, "registry.example.com", "what is not secret is kept");
    assert.equal(d.username, "ci");
    assert.equal(d.password, REDACTED);
    assert.equal(d.mirror, `https://ci:${REDACTED}@mirror.example.com/v2/`);
    assert.equal(row.actorUserId, user.id);
    assert.equal(row.outcome, "success");
  });

  test("redactSecrets bounds what it keeps", () => {
    const deep: Record<string, unknown> = {};
    let cur = deep;
    for (let i = 0; i < 20; i++) cur = cur.next = {} as Record<string, unknown>;
    assert.match(JSON.stringify(redactSecrets(deep)), /too deep/);
    assert.equal((redactSecrets("x".repeat(10_000)) as string).length < 5000, true);
    assert.equal((redactSecrets(Array.from({ length: 1000 }, (_, i) => i)) as unknown[]).length, 500);
    assert.deepEqual(redactSecrets({ a: undefined, b: () => 1, c: 10n, d: new Date(0) }), { c: "10", d: "1970-01-01T00:00:00.000Z" });
  });
});
