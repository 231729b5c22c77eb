/**
 * Sign-in throttling: failed attempts counted per account (the email as typed,
 * normalised, whether or not the account exists, so a lock says nothing about
 * existence) and per client address. After a few free failures each further one
 * doubles the wait before the next attempt is checked at all; after more, the key is
 * locked for a while. An admin can unlock (delete the row).
 *
 * The counters are rows of `login_throttles` in PostgreSQL, updated with one atomic
 * upsert per failure, so they hold across console restarts and replicas. (A table of
 * our own through Prisma rather than rate-limiter-flexible's PostgreSQL store: that
 * store creates and alters its own table at run time outside the migrations, and the
 * admin page needs to list and clear locks with who and from where, which its
 * key/points rows do not keep.)
 */
import type { PrismaClient } from "../db/generated/client.ts";

export interface ThrottleRule {
  /** Failures before any delay. */
  freeFailures: number;
  /** The first delay; each further failure doubles it, up to maxDelayMs. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** Failures that lock the key for lockMs. */
  lockAfter: number;
  lockMs: number;
  /** Failures older than this (with no lock in force) are forgotten. */
  windowMs: number;
}

export const ACCOUNT_RULE: ThrottleRule = {
  freeFailures: 3,
  baseDelayMs: 1_000,
  maxDelayMs: 30_000,
  lockAfter: 10,
  lockMs: 15 * 60_000,
  windowMs: 60 * 60_000,
};
/** An address may be a whole office behind NAT: more room before it is slowed. */
export const ADDRESS_RULE: ThrottleRule = {
  freeFailures: 10,
  baseDelayMs: 1_000,
  maxDelayMs: 60_000,
  lockAfter: 50,
  lockMs: 30 * 60_000,
  windowMs: 60 * 60_000,
};

export type ThrottleScope = "account" | "address";

export function throttleKey(scope: ThrottleScope, value: string): string {
  return `${scope}:${value}`;
}

export interface ThrottleBlock {
  scope: ThrottleScope;
  kind: "locked" | "wait";
  until: Date;
}

/** The first block in force on any of the keys, or null when an attempt may be checked now. */
export async function throttleBlock(
  prisma: PrismaClient,
  keys: Array<{ scope: ThrottleScope; key: string }>,
  now: Date = new Date(),
): Promise<ThrottleBlock | null> {
  const rows = await prisma.loginThrottle.findMany({
    where: { key: { in: keys.map((k) => k.key) } },
    select: { key: true, lockedUntil: true, notBefore: true },
  });
  for (const { scope, key } of keys) {
    const r = rows.find((x) => x.key === key);
    if (r?.lockedUntil && r.lockedUntil > now) return { scope, kind: "locked", until: r.lockedUntil };
  }
  for (const { scope, key } of keys) {
    const r = rows.find((x) => x.key === key);
    if (r?.notBefore && r.notBefore > now) return { scope, kind: "wait", until: r.notBefore };
  }
  return null;
}

export interface FailureOutcome {
  failures: number;
  /** Set when this failure started a lock. */
  lockedUntil?: Date;
  notBefore?: Date;
}

/** The wait after `failures` failures under `rule` (0 while free). */
export function delayAfter(failures: number, rule: ThrottleRule): number {
  if (failures <= rule.freeFailures) return 0;
  return Math.min(rule.baseDelayMs * 2 ** (failures - rule.freeFailures - 1), rule.maxDelayMs);
}

/** Counts one failure on `key` (atomically) and sets its delay, or its lock when the count reaches the rule's limit. */
export async function recordFailure(
  prisma: PrismaClient,
  key: string,
  rule: ThrottleRule,
  address: string | null,
  now: Date = new Date(),
): Promise<FailureOutcome> {
  const windowStart = new Date(now.getTime() - rule.windowMs);
  const [row] = await prisma.$queryRaw<Array<{ failures: number; locked_until: Date | null }>>`
    INSERT INTO login_throttles (key, failures, last_failure_at, last_address)
    VALUES (${key}, 1, ${now}, ${address})
    ON CONFLICT (key) DO UPDATE SET
      failures = CASE
        WHEN login_throttles.last_failure_at < ${windowStart} AND (login_throttles.locked_until IS NULL OR login_throttles.locked_until <= ${now}) THEN 1
        ELSE login_throttles.failures + 1 END,
      last_failure_at = ${now},
      last_address = ${address}
    RETURNING failures, locked_until`;
  const failures = row?.failures ?? 1;
  const lockInForce = row?.locked_until && row.locked_until > now;
  if (failures >= rule.lockAfter && !lockInForce) {
    const lockedUntil = new Date(now.getTime() + rule.lockMs);
    await prisma.loginThrottle.update({ where: { key }, data: { lockedUntil, notBefore: null } });
    return { failures, lockedUntil };
  }
  const delay = delayAfter(failures, rule);
  if (delay > 0) {
    const notBefore = new Date(now.getTime() + delay);
    await prisma.loginThrottle.update({ where: { key }, data: { notBefore } });
    return { failures, notBefore };
  }
  return { failures };
}

/** A successful sign-in clears its account's counter (never the address's: one good account must not launder guesses at others). */
export async function clearThrottle(prisma: PrismaClient, key: string): Promise<boolean> {
  const { count } = await prisma.loginThrottle.deleteMany({ where: { key } });
  return count > 0;
}

export interface ThrottleListing {
  key: string;
  scope: ThrottleScope;
  subject: string;
  failures: number;
  lastFailureAt: string | null;
  lastAddress: string | null;
  lockedUntil: string | null;
  waitUntil: string | null;
}

/** Accounts and addresses locked or slowed now, for the admin page. */
export async function listThrottles(prisma: PrismaClient, now: Date = new Date()): Promise<ThrottleListing[]> {
  const rows = await prisma.loginThrottle.findMany({
    where: { OR: [{ lockedUntil: { gt: now } }, { notBefore: { gt: now } }] },
    orderBy: { lastFailureAt: "desc" },
    take: 500,
  });
  return rows.map((r) => {
    const i = r.key.indexOf(":");
    return {
      key: r.key,
      scope: r.key.slice(0, i) as ThrottleScope,
      subject: r.key.slice(i + 1),
      failures: r.failures,
      lastFailureAt: r.lastFailureAt?.toISOString() ?? null,
      lastAddress: r.lastAddress,
      lockedUntil: r.lockedUntil && r.lockedUntil > now ? r.lockedUntil.toISOString() : null,
      waitUntil: r.notBefore && r.notBefore > now ? r.notBefore.toISOString() : null,
    };
  });
}

/** Delete old rows now and then (nothing locked or waiting, no failure within the window). */
export async function pruneThrottles(prisma: PrismaClient, now: Date = new Date()): Promise<number> {
  const before = new Date(now.getTime() - Math.max(ACCOUNT_RULE.windowMs, ADDRESS_RULE.windowMs));
  const { count } = await prisma.loginThrottle.deleteMany({
    where: { lastFailureAt: { lt: before }, OR: [{ lockedUntil: null }, { lockedUntil: { lte: now } }] },
  });
  return count;
}
