/**
 * tRPC for the console: the context every procedure gets, and the procedure kinds.
 *
 * - `authedProcedure`: a live session (checked against the database on every call).
 * - `adminProcedure`: the admin role.
 * - node-scoped work calls `requireNodes(ctx, nodeIds, permission)` inside the procedure,
 *   because which nodes are touched depends on the input.
 *
 * Every mutation is written to the audit log by one middleware, with its outcome
 * (success, failure, or denied) and the nodes it touched (`ctx.audit.nodeIds`).
 */
import { initTRPC, TRPCError } from "@trpc/server";
import { ZodError } from "zod";
import type { Logger } from "pino";
import type { ValidSession } from "../auth/sessions.ts";
import type { PrismaClient } from "../db/generated/client.ts";
import { recordAudit } from "../db/audit.ts";
import { bestEffort } from "../../shared/best-effort.ts";
import { accountSetupPending } from "../auth/settings.ts";
import { inScope, nodeScopeOf, roleAllows, type NodeScope, type Permission } from "./authz.ts";
import type { ConsoleServices } from "../services.ts";

export interface AuditNote {
  nodeIds: Set<string>;
  details: Record<string, unknown>;
}

export interface Context {
  services: ConsoleServices;
  session: ValidSession | null;
  ip?: string;
}

const t = initTRPC.context<Context>().create({
  errorFormatter({ shape, error }) {
    // Input validation failures carry their issues by field, for forms to show each under its control (app/lib/form-errors.ts).
    const issues =
      error.code === "BAD_REQUEST" && error.cause instanceof ZodError
        ? error.cause.issues.slice(0, 50).map((i) => ({ path: i.path.map((p) => (typeof p === "symbol" ? String(p) : p)), message: i.message }))
        : undefined;
    return {
      ...shape,
      data: {
        ...shape.data,
        stack: undefined,
        cause: error.cause instanceof Error && error.code !== "INTERNAL_SERVER_ERROR" && !issues ? error.cause.message : undefined,
        issues,
      },
    };
  },
});

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;
export const publicProcedure = t.procedure;

/** Refusals the audit log records as "denied" rather than "failure". */
const DENIED_CODES = new Set(["UNAUTHORIZED", "FORBIDDEN"]);

/**
 * The input as the audit log keeps it: file contents sent inline (fields named `…Base64`, a
 * build's context archive) become their size, not 4 KiB of base64 nobody can read.
 */
function auditedInput(input: unknown, depth = 0): unknown {
  if (!input || typeof input !== "object" || depth > 4) return input;
  if (Array.isArray(input)) return input.map((v) => auditedInput(v, depth + 1));
  return Object.fromEntries(
    Object.entries(input).map(([k, v]) => [
      k,
      k.endsWith("Base64") && typeof v === "string" ? `[${Math.floor((v.length * 3) / 4)} bytes]` : auditedInput(v, depth + 1),
    ]),
  );
}

function nodeIdsOfInput(input: unknown): string[] {
  if (!input || typeof input !== "object") return [];
  const o = input as { nodeId?: unknown; nodeIds?: unknown; sourceNodeId?: unknown; targetNodeIds?: unknown };
  const out: string[] = [];
  for (const v of [o.nodeId, o.sourceNodeId]) if (typeof v === "string") out.push(v);
  for (const v of [o.nodeIds, o.targetNodeIds]) if (Array.isArray(v)) out.push(...v.filter((x): x is string => typeof x === "string"));
  return out;
}

const audited = t.middleware(async ({ ctx, type, path, getRawInput, next }) => {
  if (type !== "mutation") return next({ ctx: { audit: { nodeIds: new Set<string>(), details: {} } as AuditNote } });
  const audit: AuditNote = { nodeIds: new Set(), details: {} };
  const result = await next({ ctx: { audit } });
  const input = await getRawInput().catch(bestEffort(ctx.services.logger, `read the input of ${path} for its audit record`)); // the record goes without node ids
  const nodeIds = audit.nodeIds.size ? [...audit.nodeIds] : nodeIdsOfInput(input);
  const outcome = result.ok ? "success" : DENIED_CODES.has(result.error.code) ? "denied" : "failure";
  const user = ctx.session?.user;
  await recordAudit(ctx.services.prisma, {
    actorUserId: user?.id ?? null,
    actorLabel: user?.email ?? "anonymous",
    action: path,
    targetNodeIds: nodeIds.filter((id) => /^[0-9a-f-]{36}$/i.test(id)),
    outcome,
    details: { input: auditedInput(input), ...audit.details, ...(result.ok ? {} : { error: result.error.message }) },
    ip: ctx.ip ?? null,
  }).catch((e: unknown) => ctx.services.logger.error({ err: e, action: path }, "cannot write the audit log"));
  return result;
});

/** A signed-in user whose session and account are valid right now. */
/** What a user who must first change the password or enrol two-factor may still call. */
const ACCOUNT_SETUP_PATHS = new Set(["auth.me", "auth.changePassword", "auth.sessions", "auth.revokeSession", "auth.logoutEverywhere"]);

export const authedProcedure = publicProcedure.use(audited).use(async ({ ctx, path, next }) => {
  const session = ctx.session;
  if (!session) throw new TRPCError({ code: "UNAUTHORIZED", message: "not signed in, or the session has expired: sign in again" });
  if (!ACCOUNT_SETUP_PATHS.has(path)) {
    const pending = await accountSetupPending(ctx.services.prisma, session.user);
    // Enrolling is what an admin without two-factor must do; a one-time password comes first.
    if (pending && !(path.startsWith("auth.twoFactor.") && !session.user.mustChangePassword)) throw new TRPCError({ code: "FORBIDDEN", message: pending });
  }
  let scope: Promise<NodeScope> | undefined;
  return next({
    ctx: {
      session,
      user: session.user,
      /** The nodes this user reaches, computed once per call. */
      nodeScope: () => (scope ??= nodeScopeOf(ctx.services.prisma, session.user)),
    },
  });
});

export const adminProcedure = authedProcedure.use(({ ctx, path, next }) => {
  if (ctx.user.role !== "admin") throw new TRPCError({ code: "FORBIDDEN", message: `${path} needs the admin role; you are ${ctx.user.role}` });
  return next();
});

const PERMISSION_WORDS: Record<Permission, string> = {
  read: "see",
  operate: "change anything on",
  exec: "open a shell on",
  admin: "administer",
};

export type AuthedContext = Context & {
  session: ValidSession;
  user: ValidSession["user"];
  nodeScope: () => Promise<NodeScope>;
  audit: AuditNote;
};

/**
 * Refuses unless the user's role grants `permission` and every node is one of theirs.
 * Records the nodes for the audit log either way.
 */
export async function requireNodes(ctx: AuthedContext, nodeIds: readonly string[], permission: Permission): Promise<void> {
  for (const id of nodeIds) ctx.audit.nodeIds.add(id);
  if (!roleAllows(ctx.user.role, permission)) {
    throw new TRPCError({ code: "FORBIDDEN", message: `the ${ctx.user.role} role may not ${PERMISSION_WORDS[permission]} nodes` });
  }
  const scope = await ctx.nodeScope();
  const outside = nodeIds.filter((id) => !inScope(scope, id));
  if (outside.length) {
    throw new TRPCError({ code: "FORBIDDEN", message: `node ${outside.join(", ")} is not in a node group of your teams` });
  }
}

export type { PrismaClient, Logger };
