/**
 * Long-lived container sessions on a browser socket: terminals (`exec.*` events → a
 * `container.exec` request on the node, bytes both ways) and followed logs (`logs.*` →
 * `container.logs` with follow) and followed usage (`stats.*` → `container.stats`). Each start is authorised at that moment against the
 * database (session still valid, role with exec or read, node in the user's teams);
 * terminals are recorded in the audit log, start and end. A session lives only as long as
 * its socket: a disconnect (logout, disabled user, role change) ends it on the node.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Socket } from "socket.io";
import { z } from "zod";
import type { PrismaClient } from "../db/generated/client.ts";
import { recordAudit } from "../db/audit.ts";
import { sessionFromCookie } from "../auth/request-session.ts";
import { accountSetupPending } from "../auth/settings.ts";
import { inScope, nodeScopeOf, roleAllows } from "../trpc/authz.ts";
import type { AgentHub } from "../hub/agent-hub.ts";
import { EXEC_INPUT_MAX_BYTES, type LogLine, type StatsSample } from "../../agent/link/contract.ts";
import type { ValidSession } from "../auth/sessions.ts";
import type { Permission } from "../trpc/authz.ts";

/** browser → console */
export interface SessionClientEvents {
  "exec.start": (
    req: { nodeId: string; containerId: string; cmd?: string[]; user?: string; cols?: number; rows?: number },
    ack: (r: { ok: true; sessionId: string } | { ok: false; error: string }) => void,
  ) => void;
  "exec.input": (m: { sessionId: string; data: string }) => void;
  "exec.resize": (m: { sessionId: string; cols: number; rows: number }) => void;
  "exec.close": (m: { sessionId: string }) => void;
  /** Follows a container's log from its last `tail` lines on. */
  "logs.follow": (
    req: { nodeId: string; containerId: string; tail?: number },
    ack: (r: { ok: true; sessionId: string } | { ok: false; error: string }) => void,
  ) => void;
  "logs.stop": (m: { sessionId: string }) => void;
  /** Follows a container's usage (`docker stats`), one sample a second. */
  "stats.follow": (req: { nodeId: string; containerId: string }, ack: (r: { ok: true; sessionId: string } | { ok: false; error: string }) => void) => void;
  "stats.stop": (m: { sessionId: string }) => void;
}

/** console → browser */
export interface SessionServerEvents {
  "exec.output": (m: { sessionId: string; data: string }) => void;
  "exec.exit": (m: { sessionId: string; exitCode?: number; error?: string }) => void;
  "logs.line": (m: { sessionId: string; line: LogLine }) => void;
  "logs.end": (m: { sessionId: string; error?: string }) => void;
  "stats.sample": (m: { sessionId: string; sample: StatsSample }) => void;
  "stats.end": (m: { sessionId: string; error?: string }) => void;
}

const StartSchema = z.object({
  nodeId: z.uuid(),
  containerId: z.string().min(1).max(128),
  cmd: z.array(z.string().max(4096)).min(1).max(64).optional(),
  /** As `docker exec --user`: name or uid[:gid]; absent: the container's user. */
  user: z.string().trim().max(256).optional(),
  cols: z.number().int().min(1).max(1000).default(80),
  rows: z.number().int().min(1).max(1000).default(24),
});
const InputSchema = z.object({ sessionId: z.uuid(), data: z.string().max(EXEC_INPUT_MAX_BYTES) });
const ResizeSchema = z.object({ sessionId: z.uuid(), cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) });
const CloseSchema = z.object({ sessionId: z.uuid() });
const FollowSchema = z.object({ nodeId: z.uuid(), containerId: z.string().min(1).max(128), tail: z.number().int().min(0).max(10_000).default(200) });
const StatsSchema = z.object({ nodeId: z.uuid(), containerId: z.string().min(1).max(128) });
/** How long a followed log may stay open. */
const FOLLOW_LIMIT_MS = 12 * 60 * 60 * 1000;

const PERMISSION_WORDS: Partial<Record<Permission, string>> = { exec: "open a shell on", read: "see" };

/** The session behind the socket now, and whether it may `permission` on `nodeId`: a refusal names why. */
async function authorise(
  socket: AnySocket,
  deps: SessionDeps,
  nodeId: string,
  permission: Permission,
): Promise<{ session: ValidSession | null; refusal?: string; reason?: string }> {
  // Checked now, not at connection time: the role or team may have changed since.
  const session = await sessionFromCookie(deps.prisma, socket.handshake.headers.cookie, deps.authSecret).catch((err: unknown) => {
    deps.logger.warn({ err }, "could not check a live session's cookie: treated as signed out");
    return null;
  });
  if (!session) return { session, refusal: "not signed in, or the session has expired: sign in again", reason: "no valid session" };
  const pending = await accountSetupPending(deps.prisma, session.user);
  if (pending) return { session, refusal: pending, reason: "account setup pending" };
  if (!roleAllows(session.user.role, permission))
    return {
      session,
      refusal: `the ${session.user.role} role may not ${PERMISSION_WORDS[permission] ?? permission} nodes`,
      reason: `role ${session.user.role}`,
    };
  if (!inScope(await nodeScopeOf(deps.prisma, session.user), nodeId))
    return { session, refusal: `node ${nodeId} is not in a node group of your teams`, reason: "node outside the user's teams" };
  return { session };
}

function invalid(event: string, error: z.ZodError): string {
  return `${event}: ${error.issues.map((i) => `${i.path.join(".") || "input"}: ${i.message}`).join("; ")}`;
}

export interface SessionDeps {
  prisma: PrismaClient;
  hub: AgentHub;
  authSecret: string;
  logger: Logger;
}

// A loose socket type: the namespace's own event maps are merged in live-updates.ts.
type AnySocket = Socket;

export function attachContainerSessions(socket: AnySocket, deps: SessionDeps): void {
  const sessions = new Map<string, { nodeId: string }>();
  const ip = socket.handshake.address;

  socket.on("exec.start", async (raw: unknown, ack: unknown) => {
    const reply = typeof ack === "function" ? (ack as Parameters<SessionClientEvents["exec.start"]>[1]) : () => undefined;
    const parsed = StartSchema.safeParse(raw);
    if (!parsed.success) return reply({ ok: false, error: invalid("exec.start", parsed.error) });
    const req = parsed.data;
    const cmd = req.cmd ?? ["/bin/sh"];
    const { session, refusal, reason } = await authorise(socket, deps, req.nodeId, "exec");
    const audit = (outcome: "success" | "failure" | "denied", details: Record<string, unknown>) =>
      recordAudit(deps.prisma, {
        actorUserId: session?.user.id ?? null,
        actorLabel: session?.user.email ?? "anonymous",
        action: "container.exec",
        targetNodeIds: [req.nodeId],
        outcome,
        details: { containerId: req.containerId, cmd, ...(req.user ? { user: req.user } : {}), ...details },
        ip,
      }).catch((e: unknown) => deps.logger.error({ err: e }, "cannot write the audit log"));
    if (refusal) {
      await audit("denied", { reason });
      if (!session) socket.disconnect(true);
      return reply({ ok: false, error: refusal });
    }
    const sessionId = randomUUID();
    const startedAt = Date.now();
    sessions.set(sessionId, { nodeId: req.nodeId });
    let answered = false;
    const done = deps.hub.request(
      req.nodeId,
      "container.exec",
      { id: req.containerId, cmd, tty: true, cols: req.cols, rows: req.rows, ...(req.user ? { user: req.user } : {}) },
      {
        requestId: sessionId,
        onStream: (e) => {
          if (!answered) {
            answered = true;
            reply({ ok: true, sessionId });
          }
          socket.emit("exec.output", { sessionId, data: e.data });
        },
      },
    );
    // The terminal opens as soon as the node accepted; a shell that prints nothing still gets its answer.
    const opened = setTimeout(() => {
      if (!answered && sessions.has(sessionId)) {
        answered = true;
        reply({ ok: true, sessionId });
      }
    }, 300);
    done.then(
      async (r) => {
        clearTimeout(opened);
        if (!answered) reply({ ok: true, sessionId });
        answered = true;
        sessions.delete(sessionId);
        await audit("success", { exitCode: r.exitCode, seconds: Math.round((Date.now() - startedAt) / 1000) });
        socket.emit("exec.exit", { sessionId, exitCode: r.exitCode });
      },
      async (e: Error) => {
        clearTimeout(opened);
        sessions.delete(sessionId);
        await audit("failure", { error: e.message, seconds: Math.round((Date.now() - startedAt) / 1000) });
        if (!answered) reply({ ok: false, error: e.message });
        else socket.emit("exec.exit", { sessionId, error: e.message });
        answered = true;
      },
    );
  });

  const owned = (sessionId: string) => sessions.get(sessionId);
  socket.on("exec.input", (raw: unknown) => {
    const m = InputSchema.safeParse(raw);
    const s = m.success ? owned(m.data.sessionId) : undefined;
    if (m.success && s) deps.hub.sendInput(s.nodeId, { requestId: m.data.sessionId, data: Buffer.from(m.data.data, "utf8").toString("base64") });
  });
  socket.on("exec.resize", (raw: unknown) => {
    const m = ResizeSchema.safeParse(raw);
    const s = m.success ? owned(m.data.sessionId) : undefined;
    if (m.success && s) deps.hub.sendInput(s.nodeId, { requestId: m.data.sessionId, resize: { cols: m.data.cols, rows: m.data.rows } });
  });
  socket.on("exec.close", (raw: unknown) => {
    const m = CloseSchema.safeParse(raw);
    const s = m.success ? owned(m.data.sessionId) : undefined;
    if (m.success && s) deps.hub.cancel(s.nodeId, m.data.sessionId);
  });
  /**
   * A followed stream (logs, stats): the request is checked and authorised, answered with a
   * session ID, then the node's stream is relayed until it ends, the browser stops it or leaves.
   */
  function follow<T extends { nodeId: string }>(
    event: "logs.follow" | "stats.follow",
    schema: z.ZodType<T>,
    relay: (req: T, sessionId: string) => Promise<unknown>,
    endEvent: "logs.end" | "stats.end",
    stopEvent: "logs.stop" | "stats.stop",
  ): void {
    socket.on(event, async (raw: unknown, ack: unknown) => {
      const reply = typeof ack === "function" ? (ack as Parameters<SessionClientEvents[typeof event]>[1]) : () => undefined;
      const parsed = schema.safeParse(raw);
      if (!parsed.success) return reply({ ok: false, error: invalid(event, parsed.error) });
      const req = parsed.data;
      const { session, refusal } = await authorise(socket, deps, req.nodeId, "read");
      if (refusal) {
        if (!session) socket.disconnect(true);
        return reply({ ok: false, error: refusal });
      }
      const sessionId = randomUUID();
      sessions.set(sessionId, { nodeId: req.nodeId });
      reply({ ok: true, sessionId });
      relay(req, sessionId)
        .then(
          () => socket.emit(endEvent, { sessionId }),
          (e: Error) => socket.emit(endEvent, { sessionId, error: e.message }),
        )
        .finally(() => sessions.delete(sessionId));
    });
    socket.on(stopEvent, (raw: unknown) => {
      const m = CloseSchema.safeParse(raw);
      const s = m.success ? owned(m.data.sessionId) : undefined;
      if (m.success && s) deps.hub.cancel(s.nodeId, m.data.sessionId);
    });
  }
  follow(
    "logs.follow",
    FollowSchema,
    (req, sessionId) =>
      deps.hub.request(
        req.nodeId,
        "container.logs",
        { id: req.containerId, tail: req.tail, follow: true },
        { requestId: sessionId, timeoutMs: FOLLOW_LIMIT_MS, onStream: (line) => socket.emit("logs.line", { sessionId, line }) },
      ),
    "logs.end",
    "logs.stop",
  );
  follow(
    "stats.follow",
    StatsSchema,
    (req, sessionId) =>
      deps.hub.request(
        req.nodeId,
        "container.stats",
        { id: req.containerId },
        { requestId: sessionId, timeoutMs: FOLLOW_LIMIT_MS, onStream: (sample) => socket.emit("stats.sample", { sessionId, sample }) },
      ),
    "stats.end",
    "stats.stop",
  );
  socket.on("disconnect", () => {
    for (const [id, s] of sessions) deps.hub.cancel(s.nodeId, id);
    sessions.clear();
  });
}
