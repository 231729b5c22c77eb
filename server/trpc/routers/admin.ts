/**
 * Administration: users, teams, node groups, join tokens, registries and the audit log.
 * Every procedure is admin-only. Changes that alter what someone may do (role, disabled,
 * memberships, grants, groups) are pushed to live sockets at once through `live`, and
 * other admin browsers are told to refetch with `live.adminChanged`.
 *
 * Nothing here returns a password hash, a token hash or a sealed credential: queries
 * select columns explicitly, and one-time secrets (generated passwords, join tokens)
 * leave only in the response to the mutation that made them.
 */
import { randomBytes } from "node:crypto";
import { TRPCError } from "@trpc/server";
import { manualInstallCommand } from "../../installer/manual-script.ts";
import { z } from "zod";
import { normalizeEmail } from "../../auth/email.ts";
import { hashPassword, MAX_PASSWORD_BYTES } from "../../auth/password.ts";
import { revokeUserSessions } from "../../auth/sessions.ts";
import { MIN_PASSWORD_LENGTH } from "./auth.ts";
import { securityRouter } from "./security.ts";
import { adminProcedure, router, type AuthedContext } from "../trpc.ts";

const ROLES = ["admin", "operator", "viewer"] as const;
const Role = z.enum(ROLES, { error: `role must be one of ${ROLES.join(", ")}` });
const uuidOf = (what: string) => z.uuid({ error: `not a ${what} ID` });
const UserId = uuidOf("user");
const TeamId = uuidOf("team");
const GroupId = uuidOf("node group");

const Email = z
  .string({ error: "email is required" })
  .trim()
  .max(254, "email is longer than 254 characters")
  .regex(/^[^\s@]+@[^\s@]+$/, "email must look like name@example.com");
const PersonName = z.string().trim().max(200, "name is longer than 200 characters");
/** Team and group names: shown in lists and error messages, so printable and short. */
const nameOf = (what: string) =>
  z
    .string({ error: `${what} name is required` })
    .trim()
    .min(1, `${what} name is required`)
    .max(64, `${what} name is longer than 64 characters`)
    .regex(/^[^\p{Cc}]+$/u, `${what} name may not hold control characters`);
const Password = z
  .string()
  .min(MIN_PASSWORD_LENGTH, `the password needs at least ${MIN_PASSWORD_LENGTH} characters`)
  .max(MAX_PASSWORD_BYTES, `the password is longer than ${MAX_PASSWORD_BYTES} characters`);
const Instant = (what: string) => z.string().refine((s) => !Number.isNaN(Date.parse(s)), `${what} is not a date and time`);

/** A one-time password for a new or reset account: 120 random bits, typed once by a person. */
function oneTimePassword(): string {
  return randomBytes(15).toString("base64url");
}

function isUniqueViolation(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { code?: unknown }).code === "P2002";
}

function isNotFound(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { code?: unknown }).code === "P2025";
}

async function userOrThrow(ctx: AuthedContext, userId: string) {
  const u = await ctx.services.prisma.user.findUnique({ where: { id: userId }, select: { id: true, email: true, role: true, disabled: true, name: true } });
  if (!u) throw new TRPCError({ code: "NOT_FOUND", message: `user ${userId} does not exist` });
  return u;
}

async function teamOrThrow(ctx: AuthedContext, teamId: string) {
  const t = await ctx.services.prisma.team.findUnique({ where: { id: teamId }, select: { id: true, name: true } });
  if (!t) throw new TRPCError({ code: "NOT_FOUND", message: `team ${teamId} does not exist` });
  return t;
}

/** Who reaches which nodes changed: every open browser socket re-reads its scope, and the admin pages their teams. */
async function teamAccessChanged(ctx: AuthedContext) {
  await ctx.services.live.refreshAll();
  ctx.services.live.adminChanged("teams");
}

async function groupOrThrow(ctx: AuthedContext, groupId: string) {
  const g = await ctx.services.prisma.nodeGroup.findUnique({ where: { id: groupId }, select: { id: true, name: true } });
  if (!g) throw new TRPCError({ code: "NOT_FOUND", message: `node group ${groupId} does not exist` });
  return g;
}

// ---------------------------------------------------------------- users

const usersRouter = router({
  list: adminProcedure.query(async ({ ctx }) => {
    const { prisma } = ctx.services;
    const [users, logins] = await Promise.all([
      prisma.user.findMany({
        orderBy: { email: "asc" },
        select: {
          id: true,
          email: true,
          name: true,
          role: true,
          disabled: true,
          mustChangePassword: true,
          totpEnabledAt: true,
          createdAt: true,
          memberships: { select: { team: { select: { id: true, name: true } } }, orderBy: { team: { name: "asc" } } },
        },
      }),
      // Sessions are where sign-ins leave a trace; logout or expiry pruning removes them,
      // so this is the last sign-in among the sessions still on record.
      prisma.session.groupBy({ by: ["userId"], _max: { createdAt: true, lastUsedAt: true } }),
    ]);
    const byUser = new Map(logins.map((l) => [l.userId, l._max]));
    return users.map((u) => {
      const l = byUser.get(u.id);
      return {
        id: u.id,
        email: u.email,
        name: u.name,
        role: u.role,
        disabled: u.disabled,
        mustChangePassword: u.mustChangePassword,
        twoFactor: u.totpEnabledAt !== null,
        teams: u.memberships.map((m) => m.team),
        createdAt: u.createdAt.toISOString(),
        lastLoginAt: l?.createdAt?.toISOString() ?? null,
        lastActiveAt: l?.lastUsedAt?.toISOString() ?? null,
      };
    });
  }),

  /** Makes a user who must choose a new password at the first sign-in; without `password` one is generated and returned once. */
  create: adminProcedure
    .input(
      z.object({
        email: Email,
        name: PersonName.default(""),
        role: Role,
        password: z.preprocess((v) => (v === "" || v === null ? undefined : v), Password.optional()),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const { prisma } = ctx.services;
      const email = normalizeEmail(input.email);
      if (await prisma.user.findUnique({ where: { email }, select: { id: true } })) {
        throw new TRPCError({ code: "CONFLICT", message: `a user with email ${email} already exists` });
      }
      const generated = input.password === undefined ? oneTimePassword() : undefined;
      const passwordHash = await hashPassword(input.password ?? generated!);
      let user: { id: string; email: string };
      try {
        user = await prisma.user.create({
          data: { email, name: input.name, role: input.role, passwordHash, mustChangePassword: true },
          select: { id: true, email: true },
        });
      } catch (e) {
        if (isUniqueViolation(e)) throw new TRPCError({ code: "CONFLICT", message: `a user with email ${email} already exists` });
        throw e;
      }
      ctx.audit.details.userId = user.id;
      ctx.services.live.adminChanged("users");
      return { id: user.id, email: user.email, oneTimePassword: generated ?? null };
    }),

  update: adminProcedure
    .input(
      z.object({
        userId: UserId,
        name: PersonName.optional(),
        role: Role.optional(),
        disabled: z.boolean({ error: "disabled must be true or false" }).optional(),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const { prisma } = ctx.services;
      const before = await userOrThrow(ctx, input.userId);
      ctx.audit.details.email = before.email;
      if (input.userId === ctx.user.id) {
        if (input.disabled === true) throw new TRPCError({ code: "BAD_REQUEST", message: "you may not disable your own account; ask another admin" });
        if (input.role !== undefined && input.role !== "admin")
          throw new TRPCError({ code: "BAD_REQUEST", message: `you may not change your own role to ${input.role}; ask another admin` });
      }
      await prisma.user.update({
        where: { id: input.userId },
        data: {
          ...(input.name !== undefined ? { name: input.name } : {}),
          ...(input.role !== undefined ? { role: input.role } : {}),
          ...(input.disabled !== undefined ? { disabled: input.disabled } : {}),
        },
      });
      const roleChanged = input.role !== undefined && input.role !== before.role;
      const disabledChanged = input.disabled !== undefined && input.disabled !== before.disabled;
      if (input.disabled === true) await revokeUserSessions(prisma, input.userId);
      if (roleChanged || disabledChanged || input.disabled === true) await ctx.services.live.refreshUser(input.userId);
      ctx.services.live.adminChanged("users");
      return { ok: true };
    }),

  /** A new one-time password (returned once); the user's sessions end now. */
  resetPassword: adminProcedure.input(z.object({ userId: UserId })).mutation(async ({ ctx, input }) => {
    const { prisma } = ctx.services;
    const u = await userOrThrow(ctx, input.userId);
    ctx.audit.details.email = u.email;
    if (u.id === ctx.user.id) throw new TRPCError({ code: "BAD_REQUEST", message: "you may not reset your own password here; change it on the Account page" });
    const password = oneTimePassword();
    await prisma.user.update({ where: { id: u.id }, data: { passwordHash: await hashPassword(password), mustChangePassword: true } });
    await revokeUserSessions(prisma, u.id);
    await ctx.services.live.refreshUser(u.id);
    ctx.services.live.adminChanged("users");
    return { email: u.email, oneTimePassword: password };
  }),

  delete: adminProcedure.input(z.object({ userId: UserId })).mutation(async ({ ctx, input }) => {
    const u = await userOrThrow(ctx, input.userId);
    ctx.audit.details.email = u.email;
    if (u.id === ctx.user.id) throw new TRPCError({ code: "BAD_REQUEST", message: "you may not delete your own account; ask another admin" });
    // Sessions and memberships go with the user (cascade); jobs and audit entries keep their label.
    await ctx.services.prisma.user.delete({ where: { id: u.id } }).catch((e: unknown) => {
      if (isNotFound(e)) throw new TRPCError({ code: "NOT_FOUND", message: `user ${u.email} does not exist` });
      throw e;
    });
    await ctx.services.live.refreshUser(u.id);
    ctx.services.live.adminChanged("users");
    return { ok: true };
  }),
});

// ---------------------------------------------------------------- teams

async function teamNameFree(ctx: AuthedContext, name: string, except?: string): Promise<void> {
  const other = await ctx.services.prisma.team.findFirst({
    where: { name: { equals: name, mode: "insensitive" }, ...(except ? { id: { not: except } } : {}) },
    select: { id: true },
  });
  if (other) throw new TRPCError({ code: "CONFLICT", message: `team "${name}" already exists` });
}

const teamsRouter = router({
  list: adminProcedure.query(async ({ ctx }) => {
    const teams = await ctx.services.prisma.team.findMany({
      orderBy: { name: "asc" },
      select: {
        id: true,
        name: true,
        createdAt: true,
        memberships: { select: { user: { select: { id: true, email: true, name: true, role: true, disabled: true } } }, orderBy: { user: { email: "asc" } } },
        grants: { select: { nodeGroup: { select: { id: true, name: true } } }, orderBy: { nodeGroup: { name: "asc" } } },
      },
    });
    return teams.map((t) => ({
      id: t.id,
      name: t.name,
      createdAt: t.createdAt.toISOString(),
      members: t.memberships.map((m) => m.user),
      groups: t.grants.map((g) => g.nodeGroup),
    }));
  }),

  create: adminProcedure.input(z.object({ name: nameOf("team") })).mutation(async ({ ctx, input }) => {
    await teamNameFree(ctx, input.name);
    const t = await ctx.services.prisma.team.create({ data: { name: input.name }, select: { id: true } }).catch((e: unknown) => {
      if (isUniqueViolation(e)) throw new TRPCError({ code: "CONFLICT", message: `team "${input.name}" already exists` });
      throw e;
    });
    ctx.services.live.adminChanged("teams");
    return { id: t.id };
  }),

  rename: adminProcedure.input(z.object({ teamId: TeamId, name: nameOf("team") })).mutation(async ({ ctx, input }) => {
    await teamOrThrow(ctx, input.teamId);
    await teamNameFree(ctx, input.name, input.teamId);
    await ctx.services.prisma.team.update({ where: { id: input.teamId }, data: { name: input.name } }).catch((e: unknown) => {
      if (isUniqueViolation(e)) throw new TRPCError({ code: "CONFLICT", message: `team "${input.name}" already exists` });
      throw e;
    });
    ctx.services.live.adminChanged("teams");
    return { ok: true };
  }),

  delete: adminProcedure.input(z.object({ teamId: TeamId })).mutation(async ({ ctx, input }) => {
    const t = await teamOrThrow(ctx, input.teamId);
    ctx.audit.details.team = t.name;
    await ctx.services.prisma.team.delete({ where: { id: t.id } });
    await teamAccessChanged(ctx);
    return { ok: true };
  }),

  addMember: adminProcedure.input(z.object({ teamId: TeamId, userId: UserId })).mutation(async ({ ctx, input }) => {
    const t = await teamOrThrow(ctx, input.teamId);
    const u = await userOrThrow(ctx, input.userId);
    ctx.audit.details.team = t.name;
    ctx.audit.details.email = u.email;
    const r = await ctx.services.prisma.membership.createMany({ data: [{ teamId: t.id, userId: u.id }], skipDuplicates: true });
    if (r.count === 0) throw new TRPCError({ code: "CONFLICT", message: `${u.email} is already a member of team "${t.name}"` });
    await teamAccessChanged(ctx);
    return { ok: true };
  }),

  removeMember: adminProcedure.input(z.object({ teamId: TeamId, userId: UserId })).mutation(async ({ ctx, input }) => {
    const t = await teamOrThrow(ctx, input.teamId);
    const u = await userOrThrow(ctx, input.userId);
    ctx.audit.details.team = t.name;
    ctx.audit.details.email = u.email;
    const r = await ctx.services.prisma.membership.deleteMany({ where: { teamId: t.id, userId: u.id } });
    if (r.count === 0) throw new TRPCError({ code: "NOT_FOUND", message: `${u.email} is not a member of team "${t.name}"` });
    await teamAccessChanged(ctx);
    return { ok: true };
  }),

  grantGroup: adminProcedure.input(z.object({ teamId: TeamId, nodeGroupId: GroupId })).mutation(async ({ ctx, input }) => {
    const t = await teamOrThrow(ctx, input.teamId);
    const g = await groupOrThrow(ctx, input.nodeGroupId);
    ctx.audit.details.team = t.name;
    ctx.audit.details.group = g.name;
    const r = await ctx.services.prisma.teamNodeGroup.createMany({ data: [{ teamId: t.id, nodeGroupId: g.id }], skipDuplicates: true });
    if (r.count === 0) throw new TRPCError({ code: "CONFLICT", message: `team "${t.name}" already has node group "${g.name}"` });
    await teamAccessChanged(ctx);
    return { ok: true };
  }),

  revokeGroup: adminProcedure.input(z.object({ teamId: TeamId, nodeGroupId: GroupId })).mutation(async ({ ctx, input }) => {
    const t = await teamOrThrow(ctx, input.teamId);
    const g = await groupOrThrow(ctx, input.nodeGroupId);
    ctx.audit.details.team = t.name;
    ctx.audit.details.group = g.name;
    const r = await ctx.services.prisma.teamNodeGroup.deleteMany({ where: { teamId: t.id, nodeGroupId: g.id } });
    if (r.count === 0) throw new TRPCError({ code: "NOT_FOUND", message: `team "${t.name}" does not have node group "${g.name}"` });
    await teamAccessChanged(ctx);
    return { ok: true };
  }),
});

// ---------------------------------------------------------------- node groups

async function groupNameFree(ctx: AuthedContext, name: string, except?: string): Promise<void> {
  const other = await ctx.services.prisma.nodeGroup.findFirst({
    where: { name: { equals: name, mode: "insensitive" }, ...(except ? { id: { not: except } } : {}) },
    select: { id: true },
  });
  if (other) throw new TRPCError({ code: "CONFLICT", message: `node group "${name}" already exists` });
}

const groupsRouter = router({
  list: adminProcedure.query(async ({ ctx }) => {
    const groups = await ctx.services.prisma.nodeGroup.findMany({
      orderBy: { name: "asc" },
      select: {
        id: true,
        name: true,
        createdAt: true,
        nodes: { select: { id: true, name: true, hostname: true, revokedAt: true }, orderBy: { name: "asc" } },
        grants: { select: { team: { select: { id: true, name: true } } }, orderBy: { team: { name: "asc" } } },
      },
    });
    return groups.map((g) => ({
      id: g.id,
      name: g.name,
      createdAt: g.createdAt.toISOString(),
      nodeCount: g.nodes.length,
      nodes: g.nodes.map((n) => ({ id: n.id, name: n.name, hostname: n.hostname, revoked: n.revokedAt !== null })),
      teams: g.grants.map((x) => x.team),
    }));
  }),

  create: adminProcedure.input(z.object({ name: nameOf("node group") })).mutation(async ({ ctx, input }) => {
    await groupNameFree(ctx, input.name);
    const g = await ctx.services.prisma.nodeGroup.create({ data: { name: input.name }, select: { id: true } }).catch((e: unknown) => {
      if (isUniqueViolation(e)) throw new TRPCError({ code: "CONFLICT", message: `node group "${input.name}" already exists` });
      throw e;
    });
    ctx.services.live.adminChanged("groups");
    return { id: g.id };
  }),

  rename: adminProcedure.input(z.object({ groupId: GroupId, name: nameOf("node group") })).mutation(async ({ ctx, input }) => {
    await groupOrThrow(ctx, input.groupId);
    await groupNameFree(ctx, input.name, input.groupId);
    await ctx.services.prisma.nodeGroup.update({ where: { id: input.groupId }, data: { name: input.name } }).catch((e: unknown) => {
      if (isUniqueViolation(e)) throw new TRPCError({ code: "CONFLICT", message: `node group "${input.name}" already exists` });
      throw e;
    });
    ctx.services.live.adminChanged("groups");
    return { ok: true };
  }),

  /** Deletes the group: its nodes stay, in no group (so only admins reach them), and teams lose the grant. */
  delete: adminProcedure.input(z.object({ groupId: GroupId })).mutation(async ({ ctx, input }) => {
    const g = await groupOrThrow(ctx, input.groupId);
    const nodes = await ctx.services.prisma.node.findMany({ where: { groupId: g.id }, select: { id: true } });
    for (const n of nodes) ctx.audit.nodeIds.add(n.id);
    ctx.audit.details.group = g.name;
    await ctx.services.prisma.nodeGroup.delete({ where: { id: g.id } });
    await ctx.services.live.refreshAll();
    for (const n of nodes) ctx.services.live.nodeChanged(n.id, "status");
    ctx.services.live.adminChanged("groups");
    return { ok: true, nodesUngrouped: nodes.length };
  }),
});

// ---------------------------------------------------------------- join tokens

/** The commands an admin copies to a new node; the token is inside, so they are shown once. */
export function enrollCommands(publicUrl: string, token: string): { agentCommand: string; installCommand: string } {
  return {
    agentCommand: `berth-agent --console-url ${publicUrl} --join-token ${token}`,
    installCommand: manualInstallCommand(`${publicUrl}/install.sh?token=${encodeURIComponent(token)}`),
  };
}

const tokensRouter = router({
  list: adminProcedure.query(async ({ ctx }) => {
    const rows = await ctx.services.prisma.joinToken.findMany({
      orderBy: { createdAt: "desc" },
      select: {
        id: true,
        note: true,
        createdAt: true,
        expiresAt: true,
        usedAt: true,
        nodeGroup: { select: { id: true, name: true } },
        createdBy: { select: { email: true } },
        node: { select: { id: true, name: true } },
      },
    });
    const now = Date.now();
    return rows.map((t) => ({
      id: t.id,
      note: t.note,
      group: t.nodeGroup,
      createdBy: t.createdBy?.email ?? null,
      createdAt: t.createdAt.toISOString(),
      expiresAt: t.expiresAt.toISOString(),
      usedAt: t.usedAt?.toISOString() ?? null,
      node: t.node,
      status: (t.usedAt ? "used" : t.expiresAt.getTime() <= now ? "expired" : "unused") as "used" | "expired" | "unused",
    }));
  }),

  /** Issues a join token; the clear token and the commands holding it are returned only here. */
  create: adminProcedure
    .input(
      z.object({
        note: z.string().trim().max(200, "note is longer than 200 characters").default(""),
        nodeGroupId: GroupId.nullish(),
        ttlHours: z
          .number({ error: "ttlHours must be a number of hours" })
          .int("ttlHours must be a whole number of hours")
          .min(1, "a join token lives at least 1 hour")
          .max(168, "a join token lives at most 168 hours (7 days)")
          .default(24),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      if (input.nodeGroupId) ctx.audit.details.group = (await groupOrThrow(ctx, input.nodeGroupId)).name;
      const issued = await ctx.services.nodeRegistry.createJoinToken({
        ttlMs: input.ttlHours * 3600_000,
        createdById: ctx.user.id,
        ...(input.nodeGroupId ? { nodeGroupId: input.nodeGroupId } : {}),
        note: input.note,
      });
      ctx.audit.details.joinTokenId = issued.id;
      ctx.services.live.adminChanged("tokens");
      return { id: issued.id, token: issued.token, expiresAt: issued.expiresAt.toISOString(), ...enrollCommands(ctx.services.publicUrl, issued.token) };
    }),

  /** Deletes a token that has not enrolled a node yet (a used one is history: revoke the node instead). */
  revoke: adminProcedure.input(z.object({ tokenId: uuidOf("join token") })).mutation(async ({ ctx, input }) => {
    const { prisma } = ctx.services;
    const { count } = await prisma.joinToken.deleteMany({ where: { id: input.tokenId, usedAt: null } });
    if (count === 0) {
      const t = await prisma.joinToken.findUnique({ where: { id: input.tokenId }, select: { node: { select: { id: true, name: true } } } });
      if (!t) throw new TRPCError({ code: "NOT_FOUND", message: `join token ${input.tokenId} does not exist` });
      if (t.node) ctx.audit.nodeIds.add(t.node.id);
      throw new TRPCError({
        code: "PRECONDITION_FAILED",
        message: `join token ${input.tokenId} was already used${t.node ? ` by node ${t.node.name}` : ""}; revoke the node instead`,
      });
    }
    ctx.services.live.adminChanged("tokens");
    return { ok: true };
  }),
});

// ---------------------------------------------------------------- registries

const Address = z
  .string({ error: "registry address is required" })
  .trim()
  .min(1, "registry address is required")
  .max(260, "registry address is too long")
  .regex(
    /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:]+\](:\d{1,5})?$/,
    "registry address must be host[:port], e.g. registry.example.com:5000 (no scheme, no path)",
  );

const registriesRouter = router({
  list: adminProcedure.query(async ({ ctx }) => {
    const rows = await ctx.services.registries.list();
    return rows.map((r) => ({
      id: r.id,
      address: r.address,
      username: r.username,
      hasPassword: r.hasPassword,
      insecure: r.insecure,
      createdAt: r.createdAt.toISOString(),
      updatedAt: r.updatedAt.toISOString(),
    }));
  }),

  /** Creates or updates the registry at `address`. An empty or absent password keeps the stored one; `clearPassword` removes it. */
  save: adminProcedure
    .input(
      z.object({
        address: Address,
        username: z.string().trim().max(256, "username is longer than 256 characters").optional(),
        password: z.string().max(4096, "password is longer than 4096 characters").optional(),
        clearPassword: z.boolean().optional(),
        insecure: z.boolean({ error: "insecure must be true or false" }).default(false),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      if (input.clearPassword && input.password) throw new TRPCError({ code: "BAD_REQUEST", message: "give a new password or clear it, not both" });
      const password = input.clearPassword ? null : input.password ? input.password : undefined;
      try {
        const r = await ctx.services.registries.save({
          address: input.address,
          ...(input.username !== undefined ? { username: input.username || null } : {}),
          ...(password !== undefined ? { password } : {}),
          insecure: input.insecure,
        });
        ctx.services.live.adminChanged("registries");
        return { id: r.id, address: r.address, username: r.username, hasPassword: r.hasPassword, insecure: r.insecure };
      } catch (e) {
        if (e instanceof TypeError) throw new TRPCError({ code: "BAD_REQUEST", message: e.message });
        throw e;
      }
    }),

  remove: adminProcedure.input(z.object({ address: Address })).mutation(async ({ ctx, input }) => {
    if (!(await ctx.services.registries.remove(input.address))) throw new TRPCError({ code: "NOT_FOUND", message: `registry ${input.address} does not exist` });
    ctx.services.live.adminChanged("registries");
    return { ok: true };
  }),
});

// ---------------------------------------------------------------- audit log

const OUTCOMES = ["success", "failure", "denied"] as const;

const auditRouter = router({
  /** Newest first, filtered on the server. `actor` matches part of the email; `action` is a prefix ("admin.users." or "jobs.pull"). */
  list: adminProcedure
    .input(
      z
        .object({
          actor: z.string().trim().max(254).optional(),
          action: z.string().trim().max(200).optional(),
          nodeId: uuidOf("node").optional(),
          outcome: z.enum(OUTCOMES, { error: `outcome must be one of ${OUTCOMES.join(", ")}` }).optional(),
          from: Instant("from").optional(),
          to: Instant("to").optional(),
          page: z.number().int().min(1, "page starts at 1").default(1),
          pageSize: z.number().int().min(1).max(200, "pageSize is at most 200").default(50),
        })
        .default({ page: 1, pageSize: 50 }),
    )
    .query(async ({ ctx, input }) => {
      const from = input.from ? new Date(input.from) : undefined;
      const to = input.to ? new Date(input.to) : undefined;
      if (from && to && from > to) throw new TRPCError({ code: "BAD_REQUEST", message: "from is after to" });
      const where = {
        ...(input.actor ? { actorLabel: { contains: input.actor, mode: "insensitive" as const } } : {}),
        ...(input.action ? { action: { startsWith: input.action } } : {}),
        ...(input.nodeId ? { targetNodeIds: { has: input.nodeId } } : {}),
        ...(input.outcome ? { outcome: input.outcome } : {}),
        ...(from || to ? { at: { ...(from ? { gte: from } : {}), ...(to ? { lte: to } : {}) } } : {}),
      };
      const { prisma } = ctx.services;
      const [total, rows] = await Promise.all([
        prisma.auditLog.count({ where }),
        prisma.auditLog.findMany({ where, orderBy: [{ at: "desc" }, { id: "desc" }], skip: (input.page - 1) * input.pageSize, take: input.pageSize }),
      ]);
      return {
        total,
        page: input.page,
        pageSize: input.pageSize,
        pages: Math.max(1, Math.ceil(total / input.pageSize)),
        items: rows.map((r) => ({
          id: r.id.toString(),
          at: r.at.toISOString(),
          actorUserId: r.actorUserId,
          actor: r.actorLabel,
          action: r.action,
          nodeIds: r.targetNodeIds,
          outcome: r.outcome,
          // Always an object (recordAudit writes one); a plain type keeps the client's inference shallow.
          details: r.details as Record<string, unknown>,
          ip: r.ip,
        })),
      };
    }),

  /** The distinct actions on record, for the filter's suggestions. */
  actions: adminProcedure.query(async ({ ctx }) => {
    const rows = await ctx.services.prisma.auditLog.findMany({ distinct: ["action"], select: { action: true }, orderBy: { action: "asc" } });
    return rows.map((r) => r.action);
  }),
});

export const adminRouter = router({
  users: usersRouter,
  teams: teamsRouter,
  groups: groupsRouter,
  tokens: tokensRouter,
  registries: registriesRouter,
  audit: auditRouter,
  security: securityRouter,
});
