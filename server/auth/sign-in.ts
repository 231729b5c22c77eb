/**
 * One email + password sign-in attempt, as the credentials provider runs it:
 *
 * 1. refused at once, without checking the password, while the account or the address
 *    is locked or waiting out its delay (server/auth/throttle.ts);
 * 2. the password (unknown emails cost the same scrypt: server/auth/login.ts);
 * 3. for accounts with two-factor on, a current TOTP code or an unused recovery code;
 * 4. every refusal counts a failure on the account and the address, and is audited
 *    with the address; a failure that starts a lock is audited as `auth.lock`.
 */
import type { Logger } from "pino";
import type { PrismaClient } from "../db/generated/client.ts";
import { recordAudit } from "../db/audit.ts";
import { normalizeEmail } from "./email.ts";
import { authenticatePassword } from "./login.ts";
import type { SecretBox } from "./secret-box.ts";
import type { SessionUser } from "./sessions.ts";
import { ACCOUNT_RULE, ADDRESS_RULE, clearThrottle, recordFailure, throttleBlock, throttleKey, type ThrottleBlock, type ThrottleScope } from "./throttle.ts";
import { unusedRecoveryCodes, verifySecondFactor } from "./two-factor.ts";

export const WRONG_CREDENTIALS = "Wrong email or password, or the account is disabled.";
/** What the sign-in form receives when the password was right and a second factor is needed. */
export const SECOND_FACTOR_NEEDED = "second-factor-needed";

export interface SignInAttempt {
  email: string;
  password: string;
  /** A 6-digit code from the authenticator app. */
  token?: string;
  recoveryCode?: string;
  /** The client's address (the socket's, or a trusted proxy's X-Forwarded-For). */
  address: string | null;
}

export type SignInResult =
  | { ok: true; user: SessionUser; method: string }
  | { ok: false; reason: "invalid" | "blocked" | "second-factor-needed" | "second-factor-wrong"; message: string };

type Refusal = Extract<SignInResult, { ok: false }>["reason"];

function clock(d: Date): string {
  return `${d.toISOString().slice(11, 19)} UTC`;
}

export function blockMessage(b: ThrottleBlock, now: Date): string {
  if (b.kind === "locked") {
    const whose = b.scope === "account" ? "this account" : "your address";
    return `Too many failed sign-ins for ${whose}: it is locked until ${clock(b.until)}. An admin can unlock it sooner.`;
  }
  return `Too many failed sign-ins: wait ${Math.max(1, Math.ceil((b.until.getTime() - now.getTime()) / 1000))} s before trying again.`;
}

export async function signInWithPassword(
  deps: { prisma: PrismaClient; secretBox: SecretBox; logger: Logger },
  attempt: SignInAttempt,
  now: () => Date = () => new Date(),
): Promise<SignInResult> {
  const { prisma } = deps;
  const email = normalizeEmail(attempt.email).slice(0, 320);
  const keys: Array<{ scope: ThrottleScope; key: string }> = [{ scope: "account", key: throttleKey("account", email) }];
  if (attempt.address) keys.push({ scope: "address", key: throttleKey("address", attempt.address) });
  const audit = (outcome: "success" | "denied", details: Record<string, unknown>, userId?: string) =>
    recordAudit(prisma, {
      actorUserId: userId ?? null,
      actorLabel: email || "anonymous",
      action: "auth.login",
      outcome,
      details: { method: "password", ...details },
      ip: attempt.address,
    }).catch((err: unknown) => deps.logger.error({ err, email, outcome }, "could not write the audit record of a sign-in"));

  const block = await throttleBlock(prisma, keys, now());
  if (block) {
    await audit("denied", {
      reason: block.kind === "locked" ? `${block.scope} locked until ${block.until.toISOString()}` : `${block.scope} slowed until ${block.until.toISOString()}`,
      checked: false,
    });
    return { ok: false, reason: "blocked", message: blockMessage(block, now()) };
  }

  const fail = async (reason: Refusal, why: string, userId?: string): Promise<SignInResult> => {
    for (const { scope, key } of keys) {
      const r = await recordFailure(prisma, key, scope === "account" ? ACCOUNT_RULE : ADDRESS_RULE, attempt.address, now());
      if (r.lockedUntil) {
        await recordAudit(prisma, {
          actorUserId: userId ?? null,
          actorLabel: email || "anonymous",
          action: "auth.lock",
          outcome: "success",
          details: { scope, subject: scope === "account" ? email : attempt.address, failures: r.failures, lockedUntil: r.lockedUntil.toISOString() },
          ip: attempt.address,
        }).catch((err: unknown) => deps.logger.error({ err, scope }, "could not write the audit record of a lock-out"));
      }
    }
    await audit("denied", { reason: why }, userId);
    return { ok: false, reason, message: reason === "second-factor-wrong" ? "The two-factor code is wrong or was already used." : WRONG_CREDENTIALS };
  };

  const user = email && attempt.password ? await authenticatePassword(prisma, email, attempt.password) : null;
  if (!user) return fail("invalid", "wrong email or password, or the account is disabled");

  let method = "password";
  if (user.twoFactor) {
    const factor = attempt.recoveryCode?.trim() ? { recoveryCode: attempt.recoveryCode } : attempt.token?.trim() ? { token: attempt.token } : null;
    // The password was right: asking for the code is not a failure.
    if (!factor) return { ok: false, reason: "second-factor-needed", message: SECOND_FACTOR_NEEDED };
    if (!(await verifySecondFactor(prisma, deps.secretBox, user.id, factor, now().getTime()))) {
      return fail("second-factor-wrong", "recoveryCode" in factor ? "wrong or used recovery code" : "wrong or reused two-factor code", user.id);
    }
    method = "recoveryCode" in factor ? "password + recovery code" : "password + authenticator code";
  }
  await clearThrottle(prisma, throttleKey("account", email));
  await audit("success", { method, ...(method.includes("recovery") ? { recoveryCodesLeft: await unusedRecoveryCodes(prisma, user.id) } : {}) }, user.id);
  return { ok: true, user, method };
}
