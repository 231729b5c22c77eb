/**
 * The browsers' socket (`/ui` namespace): pushes what changed so open pages refresh
 * without reloading. A socket is accepted only with a live session and an allowed
 * Origin; it joins one room per node it may see (or the admins' room), so a change on
 * a node reaches exactly the users who may see that node. A role change, a disabled
 * user or a team change re-checks the affected sockets at once (refreshUser / refreshAll).
 *
 * Messages are small notices ("node X's containers changed", "job Y progressed"): the
 * page fetches the data itself through tRPC, where every read is authorised again.
 */
import type { Logger } from "pino";
import type { Namespace, Server, Socket } from "socket.io";
import type { PrismaClient } from "../db/generated/client.ts";
import type { ValidSession } from "../auth/sessions.ts";
import { sessionFromCookie } from "../auth/request-session.ts";
import { nodeScopeOf } from "../trpc/authz.ts";
import type { AgentHub } from "../hub/agent-hub.ts";
import { attachContainerSessions, type SessionServerEvents } from "./container-sessions.ts";

export const UI_NAMESPACE = "/ui";
const ADMINS_ROOM = "admins";
const nodeRoom = (nodeId: string) => `node:${nodeId}`;
const userRoom = (userId: string) => `user:${userId}`;

/** What the browser receives (socket event name → payload). */
export interface UiServerEvents extends SessionServerEvents {
  /** Node status, facts or inventory changed: refetch node and inventory queries. */
  "node.changed": (p: { nodeId: string; what: "status" | "inventory" | "removed" }) => void;
  /** A job or one of its steps changed; `progress` carries live per-layer bytes. */
  "job.changed": (p: { jobId: string; stepId?: string; nodeId?: string; status?: string; progress?: unknown }) => void;
  /** Users, teams, groups, tokens or registries changed (admins only). */
  "admin.changed": (p: { what: string }) => void;
  /** A step's output line (installer). */
  "install.output": (p: { runId: string; step: string; status: string; line?: string }) => void;
}

interface UiSocketData {
  session: ValidSession;
}

type UiSocket = Socket<Record<string, never>, UiServerEvents, Record<string, never>, UiSocketData>;

export interface LiveUpdatesOptions {
  io: Server;
  prisma: PrismaClient;
  hub: AgentHub;
  authSecret: string;
  allowedOrigins: readonly string[];
  logger: Logger;
  /** Shortest time between two inventory notices for one node (ms, default 200). */
  inventoryNoticeIntervalMs?: number;
}

export class LiveUpdates {
  private readonly nsp: Namespace<Record<string, never>, UiServerEvents, Record<string, never>, UiSocketData>;
  private readonly prisma: PrismaClient;
  private readonly log: Logger;
  private readonly allowedOrigins: Set<string>;
  private readonly throttled = new Map<string, { dirty: boolean; timer: NodeJS.Timeout }>();
  private readonly noticeIntervalMs: number;

  constructor(opts: LiveUpdatesOptions) {
    this.prisma = opts.prisma;
    this.log = opts.logger.child({ concern: "live-updates" });
    this.allowedOrigins = new Set(opts.allowedOrigins);
    this.noticeIntervalMs = opts.inventoryNoticeIntervalMs ?? 200;
    this.nsp = opts.io.of(UI_NAMESPACE) as unknown as typeof this.nsp;
    this.nsp.use((socket, next) => {
      const origin = socket.handshake.headers.origin;
      if (!origin || !this.allowedOrigins.has(origin)) {
        this.log.warn({ origin, address: socket.handshake.address }, "browser socket refused: foreign origin");
        next(new Error(`origin ${origin ?? "(none)"} is not allowed`));
        return;
      }
      sessionFromCookie(this.prisma, socket.handshake.headers.cookie, opts.authSecret).then(
        (session) => {
          if (!session) return next(new Error("not signed in, or the session has expired"));
          socket.data.session = session;
          next();
        },
        (e: unknown) => next(new Error(`cannot check the session: ${(e as Error).message}`)),
      );
    });
    this.nsp.on("connection", (socket) => {
      attachContainerSessions(socket as unknown as Socket, { prisma: this.prisma, hub: opts.hub, authSecret: opts.authSecret, logger: this.log });
      this.joinRooms(socket).catch((e: unknown) => {
        this.log.error({ err: e }, "cannot compute a browser socket's rooms");
        socket.disconnect(true);
      });
    });

    opts.hub.on("node.online", (s) => this.nodeChanged(s.nodeId, "status"));
    opts.hub.on("node.offline", (i) => this.nodeChanged(i.nodeId, "status"));
    opts.hub.on("node.revoked", (i) => this.nodeChanged(i.nodeId, "status"));
    opts.hub.on("node.enrolled", (i) => this.nodeChanged(i.nodeId, "status"));
    opts.hub.on("node.inventory", (i) => this.inventoryChanged(i.nodeId));
  }

  private async joinRooms(socket: UiSocket): Promise<void> {
    const user = socket.data.session.user;
    const rooms = [userRoom(user.id)];
    const scope = await nodeScopeOf(this.prisma, user);
    if (scope.all) rooms.push(ADMINS_ROOM);
    else for (const id of scope.nodeIds) rooms.push(nodeRoom(id));
    for (const r of socket.rooms) if (r !== socket.id && !rooms.includes(r)) await socket.leave(r);
    await socket.join(rooms);
  }

  nodeChanged(nodeId: string, what: "status" | "inventory" | "removed"): void {
    this.nsp.to([nodeRoom(nodeId), ADMINS_ROOM]).emit("node.changed", { nodeId, what });
  }

  /** Inventory deltas can come many per second from a busy node: at most one notice per interval, and the last change always gets one. */
  private inventoryChanged(nodeId: string): void {
    const pending = this.throttled.get(nodeId);
    if (pending) {
      pending.dirty = true;
      return;
    }
    this.nodeChanged(nodeId, "inventory");
    const entry = {
      dirty: false,
      timer: setTimeout(() => {
        this.throttled.delete(nodeId);
        if (entry.dirty) this.inventoryChanged(nodeId);
      }, this.noticeIntervalMs),
    };
    entry.timer.unref();
    this.throttled.set(nodeId, entry);
  }

  /** A job changed: its creator, the admins and everyone who sees the step's node are told. */
  jobChanged(p: {
    jobId: string;
    createdById?: string | null;
    nodeIds: readonly string[];
    stepId?: string;
    nodeId?: string;
    status?: string;
    progress?: unknown;
  }): void {
    const rooms = [ADMINS_ROOM, ...p.nodeIds.map(nodeRoom)];
    if (p.createdById) rooms.push(userRoom(p.createdById));
    const payload: Parameters<UiServerEvents["job.changed"]>[0] = { jobId: p.jobId };
    if (p.stepId) payload.stepId = p.stepId;
    if (p.nodeId) payload.nodeId = p.nodeId;
    if (p.status) payload.status = p.status;
    if (p.progress !== undefined) payload.progress = p.progress;
    this.nsp.to(rooms).emit("job.changed", payload);
  }

  adminChanged(what: string): void {
    this.nsp.to(ADMINS_ROOM).emit("admin.changed", { what });
  }

  installOutput(p: { runId: string; step: string; status: string; line?: string }): void {
    this.nsp.to(ADMINS_ROOM).emit("install.output", p);
  }

  /** The user's role, status or sessions changed: their sockets are re-authenticated now. */
  async refreshUser(userId: string): Promise<void> {
    // Disconnecting makes the browser reconnect, which runs the handshake again: a disabled
    // user or ended session is refused there, a new role gets its new rooms.
    this.nsp.in(userRoom(userId)).disconnectSockets(true);
  }

  /** Teams, memberships or group grants changed: every socket's rooms are computed again. */
  async refreshAll(): Promise<void> {
    for (const socket of [...this.nsp.sockets.values()]) await this.joinRooms(socket).catch(() => socket.disconnect(true));
  }

  close(): void {
    for (const t of this.throttled.values()) clearTimeout(t.timer);
    this.throttled.clear();
    this.nsp.disconnectSockets(true);
  }
}
