/**
 * A real console for tests: server/console.ts on a fresh PostgreSQL database (the test
 * server), on 127.0.0.1 and a free port, with users made directly in the database and
 * signed-in browser cookies made the way next-auth makes them (its JWT, holding a real
 * database session). Pages are served only with `ui: true` (needs `next build` first).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import pino from "pino";
import { encode } from "next-auth/jwt";
import { createTRPCClient, httpLink, TRPCClientError } from "@trpc/client";
import { startConsole, type ConsoleOptions, type RunningConsole } from "../../server/console.ts";
import { hashPassword } from "../../server/auth/password.ts";
import { createSession } from "../../server/auth/sessions.ts";
import { SESSION_COOKIE } from "../../server/auth/request-session.ts";
import type { AppRouter } from "../../server/trpc/router.ts";
import type { Role } from "../../server/db/generated/enums.ts";
import { createTestDatabase, type TestDatabase } from "./postgres.ts";

export interface TestConsole extends RunningConsole {
  db: TestDatabase;
  dataDir: string;
  /** Stops the console; `keepDatabase` leaves the database for a restart on the same data. */
  stop(opts?: { keepDatabase?: boolean }): Promise<void>;
}

export async function startTestConsole(label: string, opts: Partial<ConsoleOptions> & { db?: TestDatabase; dataDir?: string } = {}): Promise<TestConsole> {
  const db = opts.db ?? (await createTestDatabase(label));
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), "berth-console-")));
  const { db: _db, dataDir: _d, ...rest } = opts;
  let running: RunningConsole;
  try {
    running = await startConsole({
      port: 0,
      host: "127.0.0.1",
      dataDir,
      databaseUrl: db.url,
      ui: false,
      secretKey: Buffer.alloc(32, 7),
      logger: pino({ level: process.env.BERTH_TEST_LOG ?? "silent" }),
      firstAdminEmail: "admin@test.local",
      socketPingIntervalMs: 1_000,
      socketPingTimeoutMs: 1_500,
      jobOfflineWaitMs: 3_000,
      ...rest,
    });
  } catch (e) {
    if (!opts.db) await db.drop();
    throw e;
  }
  return {
    ...running,
    db,
    dataDir,
    async stop(stopOpts = {}) {
      await running.close();
      if (!stopOpts.keepDatabase) {
        await db.drop();
        if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
      }
    },
  };
}

export interface TestUser {
  id: string;
  email: string;
  password: string;
  role: Role;
}

/** A user with a known password (no forced change), optionally in teams. */
export async function createUser(c: RunningConsole, role: Role, opts: { email?: string; teamIds?: string[]; disabled?: boolean } = {}): Promise<TestUser> {
  const email = opts.email ?? `${role}-${randomBytes(3).toString("hex")}@test.local`;
  const password = `pw-${randomBytes(9).toString("base64url")}`;
  const u = await c.services.prisma.user.create({
    data: {
      email,
      role,
      passwordHash: await hashPassword(password, { ln: 15, r: 8, p: 1 }),
      disabled: opts.disabled ?? false,
      memberships: { create: (opts.teamIds ?? []).map((teamId) => ({ teamId })) },
    },
  });
  return { id: u.id, email, password, role };
}

/** A team that reaches the given node group. */
export async function createTeamWithGroup(c: RunningConsole, name: string, groupId: string): Promise<string> {
  const t = await c.services.prisma.team.create({ data: { name, grants: { create: [{ nodeGroupId: groupId }] } } });
  return t.id;
}

/** The Cookie header of a browser signed in as `userId` (a real database session inside next-auth's JWT). */
export async function sessionCookie(c: RunningConsole, userId: string, opts: { ttlMs?: number; now?: Date } = {}): Promise<string> {
  const s = await createSession(c.services.prisma, userId, {
    ...(opts.ttlMs !== undefined ? { ttlMs: opts.ttlMs } : {}),
    ...(opts.now ? { now: opts.now } : {}),
  });
  const jwt = await encode({ token: { sub: userId, bst: s.token }, secret: c.authSecret });
  return `${SESSION_COOKIE}=${jwt}`;
}

/** A tRPC client of the console's API, as a browser with `cookie` (none: signed out). */
export function apiClient(c: RunningConsole, cookie?: string, origin?: string) {
  return createTRPCClient<AppRouter>({
    links: [
      httpLink({
        url: `${c.url}/api/trpc`,
        headers: () => ({ ...(cookie ? { cookie } : {}), ...(origin ? { origin } : {}) }),
      }),
    ],
  });
}

export type ApiClient = ReturnType<typeof apiClient>;

/** The tRPC error code of a refused call (UNAUTHORIZED, FORBIDDEN, …), or "OK". */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (e) {
    if (e instanceof TRPCClientError)
      return (e.data as { code?: string } | undefined)?.code ?? `HTTP ${(e.meta?.response as Response | undefined)?.status ?? "?"}`;
    throw e;
  }
}
