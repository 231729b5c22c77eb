/**
 * Browser sessions kept in the database. The browser holds a random `bst_` token
 * (an HttpOnly cookie); the table holds only its SHA-256. Every request resolves the
 * session together with its user, so logout, a disabled user or a role change
 * applies to the very next request (and the socket layer re-checks the same way).
 */
import type { PrismaClient } from "../db/generated/client.ts";
import type { Role } from "../db/generated/enums.ts";
import { getSecuritySettings } from "./settings.ts";
import { generateToken, hashToken, isTokenOfKind } from "./tokens.ts";

export const DEFAULT_SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/** lastUsedAt is written at most this often per session. */
const TOUCH_INTERVAL_MS = 60 * 1000;

export interface SessionUser {
  id: string;
  email: string;
  name: string;
  role: Role;
  mustChangePassword: boolean;
  /** TOTP two-factor sign-in is on for this account. */
  twoFactor: boolean;
}

export interface ValidSession {
  sessionId: string;
  expiresAt: Date;
  user: SessionUser;
}

export async function createSession(
  prisma: PrismaClient,
  userId: string,
  options: { ttlMs?: number; userAgent?: string; ip?: string; now?: Date } = {},
): Promise<{ token: string; sessionId: string; expiresAt: Date }> {
  const token = generateToken("bst");
  const now = options.now ?? new Date();
  const expiresAt = new Date(now.getTime() + (options.ttlMs ?? DEFAULT_SESSION_TTL_MS));
  const row = await prisma.session.create({
    data: { userId, tokenHash: hashToken(token), expiresAt, lastUsedAt: now, userAgent: options.userAgent?.slice(0, 512) ?? null, ip: options.ip ?? null },
    select: { id: true },
  });
  return { token, sessionId: row.id, expiresAt };
}

/**
 * The session and its user, or null when the token is unknown, expired (absolute
 * timeout: expiresAt; idle timeout: unused for the configured minutes, within
 * TOUCH_INTERVAL_MS), or the user is disabled. An idle-expired session is deleted.
 */
export async function validateSession(prisma: PrismaClient, token: string, now: Date = new Date()): Promise<ValidSession | null> {
  if (!isTokenOfKind(token, "bst")) return null;
  const [row, settings] = await Promise.all([
    prisma.session.findUnique({
      where: { tokenHash: hashToken(token) },
      select: {
        id: true,
        expiresAt: true,
        createdAt: true,
        lastUsedAt: true,
        user: { select: { id: true, email: true, name: true, role: true, disabled: true, mustChangePassword: true, totpEnabledAt: true } },
      },
    }),
    getSecuritySettings(prisma, now.getTime()),
  ]);
  if (!row || row.expiresAt <= now || row.user.disabled) return null;
  const lastUsed = row.lastUsedAt ?? row.createdAt;
  if (settings.sessionIdleMinutes > 0 && now.getTime() - lastUsed.getTime() > settings.sessionIdleMinutes * 60_000) {
    await prisma.session.deleteMany({ where: { id: row.id } });
    return null;
  }
  if (!row.lastUsedAt || now.getTime() - row.lastUsedAt.getTime() > TOUCH_INTERVAL_MS) {
    await prisma.session.updateMany({ where: { id: row.id }, data: { lastUsedAt: now } });
  }
  const { disabled: _disabled, totpEnabledAt, ...user } = row.user;
  return { sessionId: row.id, expiresAt: row.expiresAt, user: { ...user, twoFactor: totpEnabledAt !== null } };
}

export interface SessionListing {
  id: string;
  createdAt: string;
  lastUsedAt: string | null;
  expiresAt: string;
  userAgent: string | null;
  ip: string | null;
}

/** A user's live sessions, newest use first (what the Account page lists). */
export async function listUserSessions(prisma: PrismaClient, userId: string, now: Date = new Date()): Promise<SessionListing[]> {
  const rows = await prisma.session.findMany({
    where: { userId, expiresAt: { gt: now } },
    orderBy: [{ lastUsedAt: { sort: "desc", nulls: "last" } }, { createdAt: "desc" }],
    select: { id: true, createdAt: true, lastUsedAt: true, expiresAt: true, userAgent: true, ip: true },
  });
  return rows.map((r) => ({
    id: r.id,
    createdAt: r.createdAt.toISOString(),
    lastUsedAt: r.lastUsedAt?.toISOString() ?? null,
    expiresAt: r.expiresAt.toISOString(),
    userAgent: r.userAgent,
    ip: r.ip,
  }));
}

/** Ends one session of a user by its ID; false when the user has no such session. */
export async function revokeSessionById(prisma: PrismaClient, userId: string, sessionId: string): Promise<boolean> {
  const { count } = await prisma.session.deleteMany({ where: { id: sessionId, userId } });
  return count > 0;
}

/** Logout: ends the session of `token` (no error when it is already gone). */
export async function revokeSession(prisma: PrismaClient, token: string): Promise<void> {
  if (!isTokenOfKind(token, "bst")) return;
  await prisma.session.deleteMany({ where: { tokenHash: hashToken(token) } });
}

/** Ends every session of a user (password change, disable, admin action). */
export async function revokeUserSessions(prisma: PrismaClient, userId: string): Promise<number> {
  const { count } = await prisma.session.deleteMany({ where: { userId } });
  return count;
}

/** Removes expired sessions; the console calls it now and then. */
export async function pruneExpiredSessions(prisma: PrismaClient, now: Date = new Date()): Promise<number> {
  const { count } = await prisma.session.deleteMany({ where: { expiresAt: { lte: now } } });
  return count;
}
