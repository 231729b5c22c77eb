// Console logins against a real PostgreSQL: the password hash, the first admin made
// exactly once, password login with its refusals, and database sessions.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { hashPassword, needsRehash, verifyPassword, MAX_PASSWORD_BYTES } from "../server/auth/password.ts";
import { createFirstAdmin, DEFAULT_FIRST_ADMIN_EMAIL } from "../server/auth/first-admin.ts";
import { authenticatePassword } from "../server/auth/login.ts";
import { createSession, listUserSessions, revokeSession, revokeSessionById, revokeUserSessions, validateSession } from "../server/auth/sessions.ts";
import { randomUUID } from "node:crypto";
import { pino } from "pino";
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "../server/db/generated/client.ts";
import { SecretBox } from "../server/auth/secret-box.ts";
import { signInWithPassword } from "../server/auth/sign-in.ts";
import { ACCOUNT_RULE, ADDRESS_RULE, clearThrottle, listThrottles, throttleBlock } from "../server/auth/throttle.ts";
import { passwordWeakness } from "../server/auth/password-policy.ts";
import { beginEnrolment, confirmEnrolment, currentCode, disableTwoFactor } from "../server/auth/two-factor.ts";
import { updateSecuritySettings } from "../server/auth/settings.ts";
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

// --- sign-in that resists guessing ------------------------------------------------------
//
// The attempts run through signInWithPassword (what next-auth's credentials provider
// calls) on a real database with real scrypt; the clock is passed in, so delays and locks
// are stepped through without sleeping.

describe("sign-in throttling, password policy, two-factor, session timeouts", () => {
  let db: MigratedTestDatabase;
  const box = new SecretBox(Buffer.alloc(32, 3));
  const PASSWORD = "the right password for alice";
  let alice: { id: string };

  before(async () => {
    db = await openTestDatabase("db_auth_guard");
    alice = await db.prisma.user.create({
      data: { email: "alice@example.com", role: "operator", passwordHash: await hashPassword(PASSWORD, { ln: 15, r: 8, p: 1 }) },
    });
  });
  after(() => db?.close());

  const deps = () => ({ prisma: db.prisma, secretBox: box, logger: pino({ level: "silent" }) });
  const attempt = (email: string, password: string, address: string, at: Date, extra: { token?: string; recoveryCode?: string } = {}) =>
    signInWithPassword(deps(), { email, password, address, ...extra }, () => at);

  /** Guesses as fast as the throttle answers, waiting out each delay, until the account locks; the outcomes in order. */
  async function guessUntilLocked(email: string, address: string, start: Date): Promise<{ outcomes: string[]; end: Date; checked: number }> {
    let t = start.getTime();
    const outcomes: string[] = [];
    let checked = 0;
    for (let i = 0; i < 40; i++) {
      const r = await attempt(email, `guess ${i}`, address, new Date(t));
      outcomes.push(r.ok ? "ok" : r.reason === "blocked" ? r.message.split(":")[0]! : r.reason);
      if (!r.ok && r.reason === "blocked") {
        if (/locked/.test(r.message)) return { outcomes, end: new Date(t), checked };
        const row = await db.prisma.loginThrottle.findUniqueOrThrow({ where: { key: `account:${email}` } });
        t = row.notBefore!.getTime();
      } else {
        checked++;
      }
    }
    return { outcomes, end: new Date(t), checked };
  }

  test("a guess loop is slowed after 3 failures, locked after 10; the right password is refused while locked; unlock works", async () => {
    const t0 = new Date("2026-12-07T10:00:00Z");
    const { outcomes, end, checked } = await guessUntilLocked("alice@example.com", "192.0.2.10", t0);
    assert.equal(checked, ACCOUNT_RULE.lockAfter, "ten passwords are checked in all");
    assert.deepEqual(outcomes.slice(0, 4), ["invalid", "invalid", "invalid", "invalid"]);
    assert.equal(outcomes.at(-1), "Too many failed sign-ins for this account");
    // 1 + 2 + 4 + 8 + 16 + 30 s of delays between guesses 4 and 10.
    assert.equal((end.getTime() - t0.getTime()) / 1000, 61);

    const locked = await attempt("alice@example.com", PASSWORD, "192.0.2.11", new Date(end.getTime() + 14 * 60_000));
    assert.equal(locked.ok, false);
    assert.match(!locked.ok ? locked.message : "", /locked until 10:16:01 UTC\. An admin can unlock it sooner\./);

    const lock = await db.prisma.auditLog.findFirstOrThrow({ where: { action: "auth.lock" } });
    assert.equal(lock.ip, "192.0.2.10");
    assert.equal(lock.actorLabel, "alice@example.com");
    assert.deepEqual(lock.details, { scope: "account", subject: "alice@example.com", failures: 10, lockedUntil: "2026-12-07T10:16:01.000Z" });
    const refused = await db.prisma.auditLog.findMany({ where: { action: "auth.login", outcome: "denied", actorLabel: "alice@example.com" } });
    assert.ok(
      refused.some((r) => r.ip === "192.0.2.11" && (r.details as { checked?: boolean }).checked === false),
      "the locked attempt is audited with its address",
    );

    // The counters are rows in PostgreSQL: another console process (a restart, a replica) sees the lock.
    const replica = new PrismaClient({ adapter: new PrismaPg({ connectionString: db.url }) });
    try {
      assert.equal((await throttleBlock(replica, [{ scope: "account", key: "account:alice@example.com" }], new Date(end.getTime() + 60_000)))?.kind, "locked");
    } finally {
      await replica.$disconnect();
    }

    assert.deepEqual(
      (await listThrottles(db.prisma, end)).map((l) => [l.key, l.failures, l.lastAddress]),
      [["account:alice@example.com", 10, "192.0.2.10"]],
    );
    assert.equal(await clearThrottle(db.prisma, "account:alice@example.com"), true);
    const r = await attempt("alice@example.com", PASSWORD, "192.0.2.11", new Date(end.getTime() + 60_000));
    assert.equal(r.ok, true);
  });

  test("an unknown email is throttled and locked exactly like a real one (a lock tells nothing)", async () => {
    const a = await guessUntilLocked("ghost@example.com", "192.0.2.20", new Date("2026-12-07T11:00:00Z"));
    const b = await guessUntilLocked("alice@example.com", "192.0.2.21", new Date("2026-12-07T11:00:00Z"));
    assert.deepEqual(a.outcomes, b.outcomes);
    await clearThrottle(db.prisma, "account:alice@example.com");
  });

  test("one address guessing many accounts is slowed after 10 failures and locked after 50", async () => {
    let t = new Date("2026-12-07T12:00:00Z").getTime();
    let checked = 0;
    let message = "";
    for (let i = 0; i < 200 && !/your address: it is locked/.test(message); i++) {
      const r = await attempt(`user${i}@example.com`, "guess", "198.51.100.7", new Date(t));
      if (!r.ok && r.reason === "blocked") {
        message = r.message;
        const row = await db.prisma.loginThrottle.findUnique({ where: { key: "address:198.51.100.7" } });
        t = Math.max(t + 1, row?.notBefore?.getTime() ?? t);
      } else checked++;
    }
    assert.equal(checked, ADDRESS_RULE.lockAfter);
    assert.match(message, /your address: it is locked until/);
    // Another address is not affected.
    assert.equal((await attempt("alice@example.com", PASSWORD, "198.51.100.8", new Date(t))).ok, true);
  });

  test("the password policy refuses the trivially guessable with a sentence for the field", async () => {
    assert.match((await passwordWeakness("aaaaaaaaaaaa")) ?? "", /^the password is too easy to guess: Repeated characters like "aaa" are easy to guess/);
    assert.match((await passwordWeakness("password1234")) ?? "", /too easy to guess: This is similar to a commonly used password/);
    assert.match((await passwordWeakness("alice@example.com1", { email: "alice@example.com" })) ?? "", /too easy to guess/);
    assert.equal(await passwordWeakness("short"), "the password needs at least 12 characters");
    assert.equal(await passwordWeakness("violet kayak nineteen lantern"), null);
  });

  test("two-factor: enrol with a code, sign in with the app, a wrong or replayed code refused, a recovery code works once", async () => {
    const t0 = new Date("2026-12-07T13:00:00Z").getTime();
    const enrol = await beginEnrolment(db.prisma, box, { id: alice.id, email: "alice@example.com" });
    assert.match(enrol.uri, /^otpauth:\/\/totp\/Berth:alice%40example\.com\?issuer=Berth&secret=[A-Z2-7]+&algorithm=SHA1&digits=6&period=30$/);
    assert.match(enrol.qrDataUrl, /^data:image\/png;base64,/);
    const stored = await db.prisma.user.findUniqueOrThrow({ where: { id: alice.id } });
    assert.ok(stored.totpSecretSealed && !stored.totpSecretSealed.includes(enrol.secret), "the secret is sealed at rest");
    assert.equal(stored.totpEnabledAt, null, "not on before a code proves the app");

    const right = currentCode(enrol.secret, t0);
    const wrong = String((Number(right) + 1) % 1_000_000).padStart(6, "0");
    assert.equal(await confirmEnrolment(db.prisma, box, alice.id, wrong, t0), null);
    const codes = await confirmEnrolment(db.prisma, box, alice.id, right, t0);
    assert.equal(codes?.length, 10);
    const rows = await db.prisma.recoveryCode.findMany({ where: { userId: alice.id } });
    assert.ok(
      rows.every((r) => !codes!.some((c) => r.codeHash.includes(c.replace(/-/g, "")))),
      "recovery codes are stored hashed",
    );

    const at = (s: number) => new Date(t0 + s * 1000);
    const needs = await attempt("alice@example.com", PASSWORD, "192.0.2.30", at(60));
    assert.deepEqual(needs, { ok: false, reason: "second-factor-needed", message: "second-factor-needed" });
    assert.equal(await db.prisma.loginThrottle.count({ where: { key: "account:alice@example.com" } }), 0, "asking for the code is not a failure");
    const bad = await attempt("alice@example.com", PASSWORD, "192.0.2.30", at(60), {
      token: String((Number(currentCode(enrol.secret, at(60).getTime())) + 7) % 1_000_000).padStart(6, "0"),
    });
    assert.equal(bad.ok ? "" : bad.message, "The two-factor code is wrong or was already used.");
    assert.equal(
      (await db.prisma.loginThrottle.findUniqueOrThrow({ where: { key: "account:alice@example.com" } })).failures,
      1,
      "a wrong code counts as a failure",
    );
    const code = currentCode(enrol.secret, at(90).getTime());
    const good = await attempt("alice@example.com", PASSWORD, "192.0.2.30", at(90), { token: code });
    assert.equal(good.ok && good.method, "password + authenticator code");
    assert.equal((await attempt("alice@example.com", PASSWORD, "192.0.2.30", at(95), { token: code })).ok, false, "a code is good once");
    // The right code without the right password is nothing.
    assert.equal((await attempt("alice@example.com", "guess", "192.0.2.30", at(130), { token: currentCode(enrol.secret, at(130).getTime()) })).ok, false);

    const recovery = codes![3]!;
    const viaRecovery = await attempt("alice@example.com", PASSWORD, "192.0.2.30", at(200), { recoveryCode: recovery.toUpperCase() });
    assert.equal(viaRecovery.ok && viaRecovery.method, "password + recovery code");
    const again = await attempt("alice@example.com", PASSWORD, "192.0.2.30", at(201), { recoveryCode: recovery });
    assert.equal(again.ok, false, "a recovery code works once");
    const audit = await db.prisma.auditLog.findFirstOrThrow({
      where: { action: "auth.login", outcome: "success", details: { path: ["method"], equals: "password + recovery code" } },
    });
    assert.equal((audit.details as { recoveryCodesLeft?: number }).recoveryCodesLeft, 9);

    // An admin's reset: password alone signs in again.
    await disableTwoFactor(db.prisma, alice.id);
    await clearThrottle(db.prisma, "account:alice@example.com");
    assert.equal((await attempt("alice@example.com", PASSWORD, "192.0.2.30", at(300))).ok, true);
    assert.equal(await db.prisma.recoveryCode.count({ where: { userId: alice.id } }), 0);
  });

  test("sessions end after the idle timeout and the absolute timeout an admin sets; each is listed and revocable", async () => {
    await updateSecuritySettings(db.prisma, { sessionIdleMinutes: 30, sessionAbsoluteMinutes: 8 * 60 });
    const t0 = new Date();
    const s = await createSession(db.prisma, alice.id, { now: t0, ttlMs: 8 * 60 * 60_000, userAgent: "Mozilla/5.0 test", ip: "192.0.2.40" });
    const min = (m: number) => new Date(t0.getTime() + m * 60_000);
    assert.ok(await validateSession(db.prisma, s.token, min(29)), "used within the idle timeout");
    assert.ok(await validateSession(db.prisma, s.token, min(58)), "each use restarts the idle clock");
    assert.equal(await validateSession(db.prisma, s.token, min(89)), null, "idle for 31 minutes");
    assert.equal(await db.prisma.session.count({ where: { id: s.sessionId } }), 0, "an idle session is deleted");

    const a = await createSession(db.prisma, alice.id, { now: t0, ttlMs: 8 * 60 * 60_000, userAgent: "Mozilla/5.0 one", ip: "192.0.2.41" });
    const b = await createSession(db.prisma, alice.id, { now: t0, ttlMs: 8 * 60 * 60_000, userAgent: "Mozilla/5.0 two", ip: "192.0.2.42" });
    const listed = await listUserSessions(db.prisma, alice.id, t0);
    assert.deepEqual(
      listed.map((l) => [l.userAgent, l.ip]).sort(),
      [
        ["Mozilla/5.0 one", "192.0.2.41"],
        ["Mozilla/5.0 two", "192.0.2.42"],
      ].sort(),
    );
    assert.equal(await revokeSessionById(db.prisma, alice.id, a.sessionId), true);
    assert.equal(await validateSession(db.prisma, a.token, t0), null);
    assert.ok(await validateSession(db.prisma, b.token, t0));
    assert.equal(await revokeSessionById(db.prisma, randomUUID(), b.sessionId), false, "only the owner ends a session by ID");
    assert.equal(await validateSession(db.prisma, b.token, new Date(t0.getTime() + 8 * 60 * 60_000)), null, "the absolute timeout");
    await updateSecuritySettings(db.prisma, { sessionIdleMinutes: 120, sessionAbsoluteMinutes: 12 * 60 });
  });
});
