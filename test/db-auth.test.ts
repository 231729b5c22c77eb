// Console logins against a real PostgreSQL: the password hash, the first admin made
// exactly once, password login with its refusals, and database sessions.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { hashPassword, needsRehash, verifyPassword, MAX_PASSWORD_BYTES } from "../server/auth/password.ts";
import { createFirstAdmin, DEFAULT_FIRST_ADMIN_EMAIL } from "../server/auth/first-admin.ts";
import { authenticatePassword } from "../server/auth/login.ts";
import { createSession, revokeSession, revokeUserSessions, validateSession } from "../server/auth/sessions.ts";
import { openTestDatabase, type MigratedTestDatabase } from "./helpers/postgres.ts";

describe("password hashing (scrypt)", () => {
  test("verifies the right password and refuses others", async () => {
    const h = await hashPassword("correct horse battery staple");
    assert.match(h, /^\$scrypt\$ln=16,r=8,p=1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
    assert.equal(await verifyPassword("correct horse battery staple", h), true);
    assert.equal(await verifyPassword("correct horse battery stapler", h), false);
    assert.equal(await verifyPassword("Correct horse battery staple", h), false);
    assert.equal(await verifyPassword("", h), false);
  });

  test("salts: the same password hashes differently each time", async () => {
    const [a, b] = await Promise.all([hashPassword("same"), hashPassword("same")]);
    assert.notEqual(a, b);
    assert.equal(await verifyPassword("same", a), true);
    assert.equal(await verifyPassword("same", b), true);
  });

  test("refuses malformed, weak or absent stored hashes instead of throwing", async () => {
    const h = await hashPassword("pw-1234");
    assert.equal(await verifyPassword("pw-1234", null), false);
    assert.equal(await verifyPassword("pw-1234", "plaintext"), false);
    assert.equal(await verifyPassword("pw-1234", h.replace("ln=16", "ln=10")), false, "below the N=2^15 floor");
    assert.equal(await verifyPassword("pw-1234", h.replace("ln=16", "ln=30")), false, "a cost that would be a denial of service");
    assert.equal(await verifyPassword("x".repeat(MAX_PASSWORD_BYTES + 1), h), false);
    await assert.rejects(hashPassword(""), TypeError);
    await assert.rejects(hashPassword("x".repeat(MAX_PASSWORD_BYTES + 1)), RangeError);
  });

  test("older, cheaper hashes still verify and ask for a rehash", async () => {
    const old = await hashPassword("pw", { ln: 15, r: 8, p: 1 });
    assert.equal(await verifyPassword("pw", old), true);
    assert.equal(needsRehash(old), true);
    assert.equal(needsRehash(await hashPassword("pw")), false);
  });
});

describe("first admin and logins", () => {
  let db: MigratedTestDatabase;
  before(async () => {
    db = await openTestDatabase("db_auth");
  });
  after(() => db?.close());

  let adminPassword = "";

  test("the first start creates one admin with a random password, once, even when starts race", async () => {
    const results = await Promise.all([createFirstAdmin(db.prisma), createFirstAdmin(db.prisma), createFirstAdmin(db.prisma)]);
    const created = results.filter((r) => r.created);
    assert.equal(created.length, 1);
    const r = created[0]!;
    assert.ok(r.created);
    assert.equal(r.email, DEFAULT_FIRST_ADMIN_EMAIL);
    assert.ok(r.password.length >= 20);
    adminPassword = r.password;
    const users = await db.prisma.user.findMany();
    assert.equal(users.length, 1);
    assert.equal(users[0]!.role, "admin");
    assert.equal(users[0]!.mustChangePassword, true);
    assert.notEqual(users[0]!.passwordHash, r.password);
    assert.ok(!users[0]!.passwordHash!.includes(r.password));
    assert.deepEqual(await createFirstAdmin(db.prisma), { created: false }, "a later start does nothing");
    const audit = await db.prisma.auditLog.findMany({ where: { action: "user.create" } });
    assert.equal(audit.length, 1);
    assert.ok(!JSON.stringify(audit[0]!.details).includes(r.password), "the audit entry does not hold the password");
  });

  test("password login: right password, wrong password, unknown email, disabled user", async () => {
    const ok = await authenticatePassword(db.prisma, `  ${DEFAULT_FIRST_ADMIN_EMAIL.toUpperCase()} `, adminPassword);
    assert.equal(ok?.email, DEFAULT_FIRST_ADMIN_EMAIL);
    assert.equal(ok?.role, "admin");
    assert.equal(await authenticatePassword(db.prisma, DEFAULT_FIRST_ADMIN_EMAIL, adminPassword + "x"), null);
    assert.equal(await authenticatePassword(db.prisma, "nobody@example.com", adminPassword), null);
    const viewer = await db.prisma.user.create({ data: { email: "v@example.com", passwordHash: await hashPassword("viewer-pw"), role: "viewer" } });
    assert.equal((await authenticatePassword(db.prisma, "v@example.com", "viewer-pw"))?.id, viewer.id);
    await db.prisma.user.update({ where: { id: viewer.id }, data: { disabled: true } });
    assert.equal(await authenticatePassword(db.prisma, "v@example.com", "viewer-pw"), null);
  });

  test("a weaker stored hash is replaced at the next successful login", async () => {
    const u = await db.prisma.user.create({ data: { email: "old@example.com", passwordHash: await hashPassword("old-pw", { ln: 15, r: 8, p: 1 }) } });
    assert.ok(await authenticatePassword(db.prisma, "old@example.com", "old-pw"));
    const after = await db.prisma.user.findUniqueOrThrow({ where: { id: u.id } });
    assert.match(after.passwordHash!, /^\$scrypt\$ln=16,/);
    assert.ok(await authenticatePassword(db.prisma, "old@example.com", "old-pw"));
  });

  test("sessions: stored hashed, expire, end at logout, and follow the user's state", async () => {
    const user = await db.prisma.user.create({ data: { email: "op@example.com", role: "operator" } });
    const s = await createSession(db.prisma, user.id, { userAgent: "test" });
    assert.match(s.token, /^bst_/);
    const row = await db.prisma.session.findUniqueOrThrow({ where: { id: s.sessionId } });
    assert.notEqual(row.tokenHash, s.token);
    assert.ok(!row.tokenHash.includes(s.token.slice(4)));

    assert.equal((await validateSession(db.prisma, s.token))?.user.role, "operator");
    // A role change applies to the very next request.
    await db.prisma.user.update({ where: { id: user.id }, data: { role: "viewer" } });
    assert.equal((await validateSession(db.prisma, s.token))?.user.role, "viewer");
    // A disabled user's session stops working at once.
    await db.prisma.user.update({ where: { id: user.id }, data: { disabled: true } });
    assert.equal(await validateSession(db.prisma, s.token), null);
    await db.prisma.user.update({ where: { id: user.id }, data: { disabled: false } });
    assert.ok(await validateSession(db.prisma, s.token));
    // Expiry.
    assert.equal(await validateSession(db.prisma, s.token, new Date(s.expiresAt.getTime() + 1)), null);
    // Logout, and a token that was never issued.
    await revokeSession(db.prisma, s.token);
    assert.equal(await validateSession(db.prisma, s.token), null);
    assert.equal(await validateSession(db.prisma, "bst_" + "A".repeat(43)), null);
    assert.equal(await validateSession(db.prisma, "not a token"), null);
    // Ending every session of a user.
    await createSession(db.prisma, user.id);
    const s3 = await createSession(db.prisma, user.id);
    assert.equal(await revokeUserSessions(db.prisma, user.id), 2);
    assert.equal(await validateSession(db.prisma, s3.token), null);
  });
});
