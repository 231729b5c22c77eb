/**
 * Terminals in the browser: `exec.*` events on a browser socket become a `container.exec`
 * request on the node, with the bytes going both ways. Each start is authorised at that
 * moment against the database (role with exec, node in the user's teams, session still
 * valid) and recorded in the audit log, as is its end. A session lives only as long as
 * its socket: a disconnect (logout, disabled user, role change) ends it on the node.
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { Socket } from "socket.io";
import { z } from "zod";
import type { PrismaClient } from "../db/generated/client.ts";
import { recordAudit } from "../db/audit.ts";
import { sessionFromCookie } from "../auth/request-session.ts";
import { inScope, nodeScopeOf, roleAllows } from "../trpc/authz.ts";
import type { AgentHub } from "../hub/agent-hub.ts";
import { EXEC_INPUT_MAX_BYTES } from "../../agent/link/contract.ts";

/** browser → console */
export interface ExecClientEvents {
  "exec.start": (req: { nodeId: string; containerId: string; cmd?: string[]; cols?: number; rows?: number }, ack: (r: { ok: true; sessionId: string } | { ok: false; error: string }) => void) => void;
  "exec.input": (m: { sessionId: string; data: string }) => void;
  "exec.resize": (m: { sessionId: string; cols: number; rows: number }) => void;
  "exec.close": (m: { sessionId: string }) => void;
}

/** console → browser */
export interface ExecServerEvents {
  "exec.output": (m: { sessionId: string; data: string }) => void;
  "exec.exit": (m: { sessionId: string; exitCode?: number; error?: string }) => void;
}

const StartSchema = z.object({
  nodeId: z.uuid(),
  containerId: z.string().min(1).max(128),
  cmd: z.array(z.string().max(4096)).min(1).max(64).optional(),
  cols: z.number().int().min(1).max(1000).default(80),
  rows: z.number().int().min(1).max(1000).default(24),
});
const InputSchema = z.object({ sessionId: z.uuid(), data: z.string().max(EXEC_INPUT_MAX_BYTES) });
const ResizeSchema = z.object({ sessionId: z.uuid(), cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) });
const CloseSchema = z.object({ sessionId: z.uuid() });

export interface ExecDeps {
  prisma: PrismaClient;
  hub: AgentHub;
  authSecret: string;
  logger: Logger;
}

// A loose socket type: the namespace's own event maps are merged in live-updates.ts.
type AnySocket = Socket;

export function attachExecHandlers(socket: AnySocket, deps: ExecDeps): void {
  const sessions = new Map<string, { nodeId: string }>();
  const ip = socket.handshake.address;

  socket.on("exec.start", async (raw: unknown, ack: unknown) => {
    const reply = typeof ack === "function" ? (ack as Parameters<ExecClientEvents["exec.start"]>[1]) : () => undefined;
    const parsed = StartSchema.safeParse(raw);
    if (!parsed.success) return reply({ ok: false, error: `exec.start: ${parsed.error.issues.map((i) => `${i.path.join(".") || "input"}: ${i.message}`).join("; ")}` });
    const req = parsed.data;
    const cmd = req.cmd ?? ["/bin/sh"];
    // Checked now, not at connection time: the role or team may have changed since.
    const session = await sessionFromCookie(deps.prisma, socket.handshake.headers.cookie, deps.authSecret).catch(() => null);
    const audit = (outcome: "success" | "failure" | "denied", details: Record<string, unknown>) =>
      recordAudit(deps.prisma, {
        actorUserId: session?.user.id ?? null,
        actorLabel: session?.user.email ?? "anonymous",
        action: "container.exec",
        targetNodeIds: [req.nodeId],
        outcome,
        details: { containerId: req.containerId, cmd, ...details },
        ip,
      }).catch((e: unknown) => deps.logger.error({ err: (e as Error).message }, "cannot write the audit log"));
    if (!session) {
      await audit("denied", { reason: "no valid session" });
      socket.disconnect(true);
      return reply({ ok: false, error: "not signed in, or the session has expired: sign in again" });
    }
    if (!roleAllows(session.user.role, "exec")) {
      await audit("denied", { reason: `role ${session.user.role}` });
      return reply({ ok: false, error: `the ${session.user.role} role may not open a shell on nodes` });
    }
    if (!inScope(await nodeScopeOf(deps.prisma, session.user), req.nodeId)) {
      await audit("denied", { reason: "node outside the user's teams" });
      return reply({ ok: false, error: `node ${req.nodeId} is not in a node group of your teams` });
    }
    const sessionId = randomUUID();
    const startedAt = Date.now();
    sessions.set(sessionId, { nodeId: req.nodeId });
    let answered = false;
    const done = deps.hub.request(
      req.nodeId,
      "container.exec",
      { id: req.containerId, cmd, tty: true, cols: req.cols, rows: req.rows },
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
  socket.on("disconnect", () => {
    for (const [id, s] of sessions) deps.hub.cancel(s.nodeId, id);
    sessions.clear();
  });
}
