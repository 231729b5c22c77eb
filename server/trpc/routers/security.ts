/**
 * Admin → Security: host access per node group (what operators may ask of a node's
 * host), sign-in locks (list, unlock), console-wide security settings (session
 * timeouts, two-factor required for admins) and a user's two-factor reset. Admin-only;
 * every change is audited by the tRPC middleware.
 */
import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { HostPolicyRulesSchema, NO_HOST_ACCESS } from "../../auth/host-options.ts";
import { revokeUserSessions } from "../../auth/sessions.ts";
import { getSecuritySettings, SecuritySettingsSchema, updateSecuritySettings } from "../../auth/settings.ts";
import { clearThrottle, listThrottles } from "../../auth/throttle.ts";
import { disableTwoFactor } from "../../auth/two-factor.ts";
import type { InputJsonArray } from "../../db/generated/internal/prismaNamespace.ts";
import { adminProcedure, router } from "../trpc.ts";

const GroupId = z.uuid({ error: "not a node group ID" });

const hostAccessRouter = router({
  /** Every node group with its host policy (none: host-level options are admin-only there). */
  list: adminProcedure.query(async ({ ctx }) => {
    const groups = await ctx.services.prisma.nodeGroup.findMany({
      orderBy: { name: "asc" },
      select: { id: true, name: true, hostPolicy: { select: { allowHostNetwork: true, bindMounts: true, updatedAt: true } } },
    });
    return groups.map((g) => {
      const parsed = g.hostPolicy ? HostPolicyRulesSchema.safeParse(g.hostPolicy) : undefined;
      return {
        groupId: g.id,
        groupName: g.name,
        rules: parsed?.success ? parsed.data : NO_HOST_ACCESS,
        updatedAt: g.hostPolicy?.updatedAt.toISOString() ?? null,
      };
    });
  }),

  /** Sets what operators of a group's nodes may use; an empty policy takes all host access back. */
  set: adminProcedure.input(z.object({ groupId: GroupId }).extend(HostPolicyRulesSchema.shape)).mutation(async ({ ctx, input }) => {
    const { prisma } = ctx.services;
    const g = await prisma.nodeGroup.findUnique({ where: { id: input.groupId }, select: { name: true } });
    if (!g) throw new TRPCError({ code: "NOT_FOUND", message: `node group ${input.groupId} does not exist` });
    ctx.audit.details.group = g.name;
    const paths = input.bindMounts.map((b) => b.path);
    const dup = paths.find((p, i) => paths.indexOf(p) !== i);
    if (dup) throw new TRPCError({ code: "BAD_REQUEST", message: `host path ${dup} is listed twice` });
    const data = { allowHostNetwork: input.allowHostNetwork, bindMounts: input.bindMounts as unknown as InputJsonArray };
    await prisma.hostPolicy.upsert({ where: { nodeGroupId: input.groupId }, create: { nodeGroupId: input.groupId, ...data }, update: data });
    ctx.services.live.adminChanged("groups");
    return { ok: true, rules: { allowHostNetwork: input.allowHostNetwork, bindMounts: input.bindMounts } };
  }),
});

const locksRouter = router({
  /** Accounts and addresses locked or slowed now, with the failures and where the last came from. */
  list: adminProcedure.query(({ ctx }) => listThrottles(ctx.services.prisma)),

  /** Ends a lock (and its delay) at once. */
  unlock: adminProcedure
    .input(z.object({ key: z.string().regex(/^(account|address):.{1,400}$/, "not a lock key (account:<email> or address:<ip>)") }))
    .mutation(async ({ ctx, input }) => {
      if (!(await clearThrottle(ctx.services.prisma, input.key))) throw new TRPCError({ code: "NOT_FOUND", message: `${input.key} is not locked` });
      ctx.services.live.adminChanged("users");
      return { ok: true };
    }),
});

export const securityRouter = router({
  hostAccess: hostAccessRouter,
  locks: locksRouter,

  settings: adminProcedure.query(({ ctx }) => getSecuritySettings(ctx.services.prisma)),

  updateSettings: adminProcedure.input(SecuritySettingsSchema.partial()).mutation(async ({ ctx, input }) => {
    if (input.requireAdminTwoFactor && !ctx.user.twoFactor) {
      throw new TRPCError({
        code: "BAD_REQUEST",
        message: "turn on two-factor sign-in for your own account first (Account page), or you would lock yourself out of admin pages",
      });
    }
    return updateSecuritySettings(ctx.services.prisma, input);
  }),

  /** Turns a user's two-factor off (lost phone and recovery codes); their sessions end. */
  resetTwoFactor: adminProcedure.input(z.object({ userId: z.uuid({ error: "not a user ID" }) })).mutation(async ({ ctx, input }) => {
    const u = await ctx.services.prisma.user.findUnique({ where: { id: input.userId }, select: { email: true, totpEnabledAt: true, totpSecretSealed: true } });
    if (!u) throw new TRPCError({ code: "NOT_FOUND", message: `user ${input.userId} does not exist` });
    ctx.audit.details.email = u.email;
    if (!u.totpEnabledAt && !u.totpSecretSealed) throw new TRPCError({ code: "BAD_REQUEST", message: `${u.email} does not use two-factor sign-in` });
    await disableTwoFactor(ctx.services.prisma, input.userId);
    await revokeUserSessions(ctx.services.prisma, input.userId);
    await ctx.services.live.refreshUser(input.userId);
    ctx.services.live.adminChanged("users");
    return { ok: true };
  }),
});
