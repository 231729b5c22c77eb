/**
 * Optional TOTP two-factor sign-in (RFC 6238 through `otpauth`: SHA-1, 6 digits, 30 s,
 * what every authenticator app reads from the QR code), with single-use recovery codes.
 *
 * - The shared secret is sealed with the console's SecretBox, bound to "totp:<user id>".
 *   Enrolment stores it pending (totpEnabledAt null) and turns it on only when the user
 *   proves their app with a code.
 * - A code is accepted once: the last accepted time step is stored and a code of the
 *   same or an earlier step is refused (no replay of an observed code).
 * - Recovery codes are 80 random bits each; only their SHA-256 is kept (like tokens,
 *   they are uniformly random, so a slow hash adds nothing), and using one marks it used
 *   in the same statement that checks it.
 */
import { randomBytes } from "node:crypto";
import * as OTPAuth from "otpauth";
import QRCode from "qrcode";
import type { PrismaClient } from "../db/generated/client.ts";
import type { SecretBox } from "./secret-box.ts";
import { hashToken } from "./tokens.ts";

export const TOTP_ISSUER = "Berth";
const PERIOD_SECONDS = 30;
/** One step either side: phones drift, people type slowly. */
const WINDOW = 1;
export const RECOVERY_CODE_COUNT = 10;

export class TwoFactorError extends Error {
  override name = "TwoFactorError";
}

function purpose(userId: string): string {
  return `totp:${userId}`;
}

function totpOf(secretBase32: string, label: string): OTPAuth.TOTP {
  return new OTPAuth.TOTP({
    issuer: TOTP_ISSUER,
    label,
    algorithm: "SHA1",
    digits: 6,
    period: PERIOD_SECONDS,
    secret: OTPAuth.Secret.fromBase32(secretBase32),
  });
}

export interface Enrolment {
  /** Base32, for typing into an app by hand. */
  secret: string;
  /** otpauth://totp/… the QR code holds. */
  uri: string;
  /** The QR code as a data: URL (PNG). */
  qrDataUrl: string;
}

/** Starts (or restarts) enrolment: a new pending secret. @throws TwoFactorError when two-factor is already on. */
export async function beginEnrolment(prisma: PrismaClient, box: SecretBox, user: { id: string; email: string }): Promise<Enrolment> {
  const row = await prisma.user.findUniqueOrThrow({ where: { id: user.id }, select: { totpEnabledAt: true } });
  if (row.totpEnabledAt) throw new TwoFactorError("two-factor sign-in is already on for this account: turn it off first to enrol a new device");
  const secret = new OTPAuth.Secret({ size: 20 }).base32;
  await prisma.user.update({ where: { id: user.id }, data: { totpSecretSealed: box.seal(secret, purpose(user.id)), totpLastStep: null } });
  const uri = totpOf(secret, user.email).toString();
  return { secret, uri, qrDataUrl: await QRCode.toDataURL(uri, { errorCorrectionLevel: "M", margin: 2, width: 220 }) };
}

/** The time step `token` belongs to under the user's secret, or null when it is not a current code. */
function matchStep(secretBase32: string, token: string, now: number): number | null {
  const clean = token.replace(/\s+/g, "");
  if (!/^\d{6}$/.test(clean)) return null;
  const delta = totpOf(secretBase32, "x").validate({ token: clean, timestamp: now, window: WINDOW });
  return delta === null ? null : Math.floor(now / 1000 / PERIOD_SECONDS) + delta;
}

/** Accepts `token` once for the user's secret (pending or on). */
async function acceptCode(prisma: PrismaClient, box: SecretBox, userId: string, token: string, now: number, opts: { enabledOnly: boolean }): Promise<boolean> {
  const row = await prisma.user.findUnique({ where: { id: userId }, select: { totpSecretSealed: true, totpEnabledAt: true } });
  if (!row?.totpSecretSealed || (opts.enabledOnly && !row.totpEnabledAt)) return false;
  const step = matchStep(box.open(row.totpSecretSealed, purpose(userId)), token, now);
  if (step === null) return false;
  // Compare-and-set on the last step: two requests with one code cannot both pass.
  const { count } = await prisma.user.updateMany({
    where: { id: userId, OR: [{ totpLastStep: null }, { totpLastStep: { lt: BigInt(step) } }] },
    data: { totpLastStep: BigInt(step) },
  });
  return count === 1;
}

/** A fresh set of recovery codes, stored hashed (replacing any older set); the codes are returned once. */
export async function newRecoveryCodes(prisma: PrismaClient, userId: string): Promise<string[]> {
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, () => formatRecoveryCode(randomBytes(10)));
  await prisma.$transaction([
    prisma.recoveryCode.deleteMany({ where: { userId } }),
    prisma.recoveryCode.createMany({ data: codes.map((c) => ({ userId, codeHash: hashRecoveryCode(c) })) }),
  ]);
  return codes;
}

const BASE32 = "abcdefghijkmnpqrstuvwxyz23456789"; // no l, o, 0, 1: read off paper
function formatRecoveryCode(bytes: Buffer): string {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out.match(/.{1,4}/g)!.join("-");
}

function hashRecoveryCode(code: string): string {
  return hashToken(`recovery:${code.toLowerCase().replace(/[^a-z0-9]/g, "")}`);
}

/**
 * Turns two-factor on when `token` is a current code of the pending secret.
 * @returns the recovery codes (shown once), or null for a wrong code.
 */
export async function confirmEnrolment(prisma: PrismaClient, box: SecretBox, userId: string, token: string, now = Date.now()): Promise<string[] | null> {
  const row = await prisma.user.findUniqueOrThrow({ where: { id: userId }, select: { totpEnabledAt: true, totpSecretSealed: true } });
  if (row.totpEnabledAt) throw new TwoFactorError("two-factor sign-in is already on for this account");
  if (!row.totpSecretSealed) throw new TwoFactorError("start enrolment first: no authenticator secret is pending");
  if (!(await acceptCode(prisma, box, userId, token, now, { enabledOnly: false }))) return null;
  await prisma.user.update({ where: { id: userId }, data: { totpEnabledAt: new Date(now) } });
  return newRecoveryCodes(prisma, userId);
}

export type SecondFactor = { token: string } | { recoveryCode: string };

/** True when the second factor is right: a current TOTP code not used before, or an unused recovery code (now used). */
export async function verifySecondFactor(prisma: PrismaClient, box: SecretBox, userId: string, factor: SecondFactor, now = Date.now()): Promise<boolean> {
  if ("token" in factor) return acceptCode(prisma, box, userId, factor.token, now, { enabledOnly: true });
  const code = factor.recoveryCode.trim();
  if (!code || code.length > 64) return false;
  const { count } = await prisma.recoveryCode.updateMany({
    where: { userId, codeHash: hashRecoveryCode(code), usedAt: null },
    data: { usedAt: new Date(now) },
  });
  return count === 1;
}

/** Turns two-factor off (the user, or an admin's reset): secret and recovery codes are gone. */
export async function disableTwoFactor(prisma: PrismaClient, userId: string): Promise<void> {
  await prisma.$transaction([
    prisma.user.update({ where: { id: userId }, data: { totpSecretSealed: null, totpEnabledAt: null, totpLastStep: null } }),
    prisma.recoveryCode.deleteMany({ where: { userId } }),
  ]);
}

/** Recovery codes left unused. */
export function unusedRecoveryCodes(prisma: PrismaClient, userId: string): Promise<number> {
  return prisma.recoveryCode.count({ where: { userId, usedAt: null } });
}

/** The current code of a secret (tests act as the authenticator app with it). */
export function currentCode(secretBase32: string, now = Date.now()): string {
  return totpOf(secretBase32, "x").generate({ timestamp: now });
}
