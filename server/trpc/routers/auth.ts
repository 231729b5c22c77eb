import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { hashPassword, verifyPassword, MAX_PASSWORD_BYTES } from "../../auth/password.ts";
import { MIN_PASSWORD_LENGTH, passwordWeakness } from "../../auth/password-policy.ts";
import { listUserSessions, revokeSessionById, revokeUserSessions } from "../../auth/sessions.ts";
import { getSecuritySettings } from "../../auth/settings.ts";
import { beginEnrolment, confirmEnrolment, disableTwoFactor, newRecoveryCodes, TwoFactorError, unusedRecoveryCodes } from "../../auth/two-factor.ts";
import { forgetFirstAdminLogin } from "../../auth/first-admin.ts";
import { roleAllows } from "../authz.ts";
import { authedProcedure, publicProcedure, router, type AuthedContext } from "../trpc.ts";

export { MIN_PASSWORD_LENGTH };

/** Inputs named `password`/`token` are redacted from the audit log by server/db/audit.ts. */
const CurrentPassword = z.string({ error: "the current password is required" }).min(1, "the current password is required").max(MAX_PASSWORD_BYTES);
const Code = z
  .string()
  .trim()
  .regex(/^\d{6}$/, "the code is the 6 digits your authenticator app shows");

async function requirePassword(ctx: AuthedContext, password: string): Promise<void> {
  const row = await ctx.services.prisma.user.findUniqueOrThrow({ where: { id: ctx.user.id }, select: { passwordHash: true } });
  if (!(await verifyPassword(password, row.passwordHash))) throw new TRPCError({ code: "BAD_REQUEST", message: "the current password is wrong" });
}

function twoFactorError(e: unknown): never {
  if (e instanceof TwoFactorError) throw new TRPCError({ code: "BAD_REQUEST", message: e.message });
  throw e;
}

const twoFactorRouter = router({
  status: authedProcedure.query(async ({ ctx }) => ({
    enabled: ctx.user.twoFactor,
    recoveryCodesLeft: ctx.user.twoFactor ? await unusedRecoveryCodes(ctx.services.prisma, ctx.user.id) : 0,
    requiredForYou: ctx.user.role === "admin" && (await getSecuritySettings(ctx.services.prisma)).requireAdminTwoFactor,
  })),

  /** A new secret and its QR code; two-factor is on only after `confirm`. */
  begin: authedProcedure.input(z.object({ password: CurrentPassword })).mutation(async ({ ctx, input }) => {
    await requirePassword(ctx, input.password);
    return beginEnrolment(ctx.services.prisma, ctx.services.secretBox, ctx.user).catch(twoFactorError);
  }),

  /** Turns two-factor on with a code from the app; returns the recovery codes, once. */
  confirm: authedProcedure.input(z.object({ token: Code })).mutation(async ({ ctx, input }) => {
    const codes = await confirmEnrolment(ctx.services.prisma, ctx.services.secretBox, ctx.user.id, input.token).catch(twoFactorError);
    if (!codes) throw new TRPCError({ code: "BAD_REQUEST", message: "that code is wrong: type the 6 digits the app shows now (its clock must be right)" });
    return { recoveryCodes: codes };
  }),

  disable: authedProcedure.input(z.object({ password: CurrentPassword })).mutation(async ({ ctx, input }) => {
    await requirePassword(ctx, input.password);
    if (ctx.user.role === "admin" && (await getSecuritySettings(ctx.services.prisma)).requireAdminTwoFactor) {
      throw new TRPCError({ code: "FORBIDDEN", message: "two-factor sign-in is required for admins (Admin → Security): it cannot be turned off" });
    }
    await disableTwoFactor(ctx.services.prisma, ctx.user.id);
    return { ok: true };
  }),

  /** A new set of recovery codes (the old ones stop working). */
  newRecoveryCodes: authedProcedure.input(z.object({ password: CurrentPassword })).mutation(async ({ ctx, input }) => {
    await requirePassword(ctx, input.password);
    if (!ctx.user.twoFactor) throw new TRPCError({ code: "BAD_REQUEST", message: "two-factor sign-in is off: there are no recovery codes to renew" });
    return { recoveryCodes: await newRecoveryCodes(ctx.services.prisma, ctx.user.id) };
  }),
});

export const authRouter = router({
  /** Who is signed in (null when nobody): the pages decide what to show from it. */
  me: publicProcedure.query(async ({ ctx }) => {
    const u = ctx.session?.user;
    if (!u) return null;
    const mustEnrolTwoFactor = u.role === "admin" && !u.twoFactor && (await getSecuritySettings(ctx.services.prisma)).requireAdminTwoFactor;
    return {
      id: u.id,
      email: u.email,
      name: u.name,
      role: u.role,
      mustChangePassword: u.mustChangePassword,
      twoFactor: u.twoFactor,
      mustEnrolTwoFactor,
      can: { operate: roleAllows(u.role, "operate"), exec: roleAllows(u.role, "exec"), admin: roleAllows(u.role, "admin") },
    };
  }),

  changePassword: authedProcedure
    .input(
      z.object({
        current: z.string().max(MAX_PASSWORD_BYTES),
        next: z.string().min(MIN_PASSWORD_LENGTH, `the new password needs at least ${MIN_PASSWORD_LENGTH} characters`).max(MAX_PASSWORD_BYTES),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const { prisma } = ctx.services;
      const row = await prisma.user.findUniqueOrThrow({ where: { id: ctx.user.id }, select: { passwordHash: true } });
      if (!(await verifyPassword(input.current, row.passwordHash))) throw new TRPCError({ code: "BAD_REQUEST", message: "the current password is wrong" });
      if (input.current === input.next) throw new TRPCError({ code: "BAD_REQUEST", message: "the new password must differ from the current one" });
      const weakness = await passwordWeakness(input.next, { email: ctx.user.email, name: ctx.user.name });
      if (weakness) throw new TRPCError({ code: "BAD_REQUEST", message: `new password: ${weakness}` });
      await prisma.user.update({ where: { id: ctx.user.id }, data: { passwordHash: await hashPassword(input.next), mustChangePassword: false } });
      // Other browsers signed in as this user must sign in again; this one keeps its session.
      await prisma.session.deleteMany({ where: { userId: ctx.user.id, id: { not: ctx.session.sessionId } } });
      await forgetFirstAdminLogin(ctx.services.dataDir, prisma, ctx.user.id);
      return { ok: true };
    }),

  /** The signed-in user's sessions (browsers), this one marked. */
  sessions: authedProcedure.query(async ({ ctx }) => {
    const rows = await listUserSessions(ctx.services.prisma, ctx.user.id);
    return rows.map((r) => ({ ...r, current: r.id === ctx.session.sessionId }));
  }),

  /** Ends one of the signed-in user's sessions (another browser, or this one). */
  revokeSession: authedProcedure.input(z.object({ sessionId: z.uuid({ error: "not a session ID" }) })).mutation(async ({ ctx, input }) => {
    if (!(await revokeSessionById(ctx.services.prisma, ctx.user.id, input.sessionId)))
      throw new TRPCError({ code: "NOT_FOUND", message: `you have no session ${input.sessionId}` });
    await ctx.services.live.refreshUser(ctx.user.id);
    return { ok: true };
  }),

  /** Ends every session of the signed-in user (all browsers). */
  logoutEverywhere: authedProcedure.mutation(async ({ ctx }) => {
    const n = await revokeUserSessions(ctx.services.prisma, ctx.user.id);
    await ctx.services.live.refreshUser(ctx.user.id);
    return { ended: n };
  }),

  twoFactor: twoFactorRouter,
});
