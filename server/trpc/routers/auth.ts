import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { hashPassword, verifyPassword, MAX_PASSWORD_BYTES } from "../../auth/password.ts";
import { revokeUserSessions } from "../../auth/sessions.ts";
import { forgetFirstAdminLogin } from "../../auth/first-admin.ts";
import { roleAllows } from "../authz.ts";
import { authedProcedure, publicProcedure, router } from "../trpc.ts";

export const MIN_PASSWORD_LENGTH = 12;

export const authRouter = router({
  /** Who is signed in (null when nobody): the pages decide what to show from it. */
  me: publicProcedure.query(({ ctx }) => {
    const u = ctx.session?.user;
    if (!u) return null;
    return {
      id: u.id,
      email: u.email,
      name: u.name,
      role: u.role,
      mustChangePassword: u.mustChangePassword,
      can: { operate: roleAllows(u.role, "operate"), exec: roleAllows(u.role, "exec"), admin: roleAllows(u.role, "admin") },
    };
  }),

  changePassword: authedProcedure
    .input(z.object({ current: z.string().max(MAX_PASSWORD_BYTES), next: z.string().min(MIN_PASSWORD_LENGTH, `the new password needs at least ${MIN_PASSWORD_LENGTH} characters`).max(MAX_PASSWORD_BYTES) }))
    .mutation(async ({ ctx, input }) => {
      const { prisma } = ctx.services;
      const row = await prisma.user.findUniqueOrThrow({ where: { id: ctx.user.id }, select: { passwordHash: true } });
      if (!(await verifyPassword(input.current, row.passwordHash))) throw new TRPCError({ code: "BAD_REQUEST", message: "the current password is wrong" });
      if (input.current === input.next) throw new TRPCError({ code: "BAD_REQUEST", message: "the new password must differ from the current one" });
      await prisma.user.update({ where: { id: ctx.user.id }, data: { passwordHash: await hashPassword(input.next), mustChangePassword: false } });
      // Other browsers signed in as this user must sign in again; this one keeps its session.
      await prisma.session.deleteMany({ where: { userId: ctx.user.id, id: { not: ctx.session.sessionId } } });
      await forgetFirstAdminLogin(ctx.services.dataDir, prisma, ctx.user.id);
      return { ok: true };
    }),

  /** Ends every session of the signed-in user (all browsers). */
  logoutEverywhere: authedProcedure.mutation(async ({ ctx }) => {
    const n = await revokeUserSessions(ctx.services.prisma, ctx.user.id);
    await ctx.services.live.refreshUser(ctx.user.id);
    return { ended: n };
  }),
});
