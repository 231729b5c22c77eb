/**
 * Console-wide security settings an admin changes at run time, kept in the `settings`
 * table so every replica applies the same: session timeouts and whether admins must
 * use two-factor sign-in. Read on every request, so each process keeps them for a few
 * seconds (a change made on another replica applies within SETTINGS_CACHE_MS).
 */
import { z } from "zod";
import type { PrismaClient } from "../db/generated/client.ts";
import type { InputJsonObject } from "../db/generated/internal/prismaNamespace.ts";

const SETTINGS_KEY = "security";
export const SETTINGS_CACHE_MS = 5_000;

export const SecuritySettingsSchema = z.object({
  /** A session unused this long ends (minutes; 0: never). */
  sessionIdleMinutes: z
    .number()
    .int()
    .min(0)
    .max(30 * 24 * 60, "the idle timeout is at most 30 days")
    .default(120),
  /** A session ends this long after sign-in, used or not (minutes). */
  sessionAbsoluteMinutes: z
    .number()
    .int()
    .min(5, "the absolute timeout is at least 5 minutes")
    .max(90 * 24 * 60, "the absolute timeout is at most 90 days")
    .default(12 * 60),
  /** Admins without two-factor may only enrol until they have it. */
  requireAdminTwoFactor: z.boolean().default(false),
});
export type SecuritySettings = z.output<typeof SecuritySettingsSchema>;

const cache = new WeakMap<PrismaClient, { at: number; value: Promise<SecuritySettings> }>();

/** The settings (defaults for what was never set). A stored value that no longer parses gives the defaults. */
export function getSecuritySettings(prisma: PrismaClient, now = Date.now()): Promise<SecuritySettings> {
  const hit = cache.get(prisma);
  if (hit && now - hit.at < SETTINGS_CACHE_MS) return hit.value;
  const value = prisma.setting.findUnique({ where: { key: SETTINGS_KEY }, select: { value: true } }).then((row) => {
    const parsed = SecuritySettingsSchema.safeParse(row?.value ?? {});
    return parsed.success ? parsed.data : SecuritySettingsSchema.parse({});
  });
  cache.set(prisma, { at: now, value });
  value.catch(() => cache.delete(prisma));
  return value;
}

/** Changes some settings; this process sees the change at once. */
export async function updateSecuritySettings(prisma: PrismaClient, change: Partial<SecuritySettings>): Promise<SecuritySettings> {
  cache.delete(prisma);
  const next = SecuritySettingsSchema.parse({ ...(await getSecuritySettings(prisma)), ...change });
  await prisma.setting.upsert({
    where: { key: SETTINGS_KEY },
    create: { key: SETTINGS_KEY, value: next as InputJsonObject },
    update: { value: next as InputJsonObject },
  });
  cache.delete(prisma);
  return next;
}

/**
 * Why this signed-in user may do nothing yet but finish setting up their account (a
 * one-time password to change; two-factor to turn on when admins must have it), or
 * null. The API and the browser socket both ask.
 */
export async function accountSetupPending(
  prisma: PrismaClient,
  user: { role: string; mustChangePassword: boolean; twoFactor: boolean },
): Promise<string | null> {
  if (user.mustChangePassword) return "change the one-time password first (Account page)";
  if (user.role === "admin" && !user.twoFactor && (await getSecuritySettings(prisma)).requireAdminTwoFactor) {
    return "two-factor sign-in is required for admins: turn it on on the Account page first";
  }
  return null;
}
