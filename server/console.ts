/**
 * The console process: one HTTP(S) server on one port serving the Next.js pages,
 * the tRPC API (/api/trpc), next-auth (/api/auth, a Next route), socket.io for agents
 * (/agents) and browsers (/ui), and a health probe (/api/health).
 *
 * startConsole() owns everything it opens (database, embedded PostgreSQL, sockets,
 * timers) and close() releases it in reverse order.
 */
import { hkdfSync, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import pino, { type Logger } from "pino";
import { Server as IoServer } from "socket.io";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import type { AuthOptions } from "next-auth";
import { LINK_MAX_MESSAGE_BYTES, MAX_BUILD_CONTEXT_BYTES } from "../agent/link/contract.ts";
import { openDatabase, type Database } from "./db/open-database.ts";
import { DbNodeRegistry } from "./db/node-registry-db.ts";
import { RegistryStore } from "./db/registries.ts";
import { parseSecretKey, SecretBox, SECRET_KEY_ENV } from "./auth/secret-box.ts";
import { createFirstAdmin, forgetFirstAdminLogin, keepFirstAdminLogin, type FirstAdminResult } from "./auth/first-admin.ts";
import { sessionFromCookie } from "./auth/request-session.ts";
import { buildAuthOptions } from "./auth/next-auth-options.ts";
import { clientAddress, stampClientAddress } from "./auth/client-address.ts";
import { pruneThrottles } from "./auth/throttle.ts";
import { pruneExpiredSessions } from "./auth/sessions.ts";
import { AgentHub } from "./hub/agent-hub.ts";
import { LiveUpdates } from "./live/live-updates.ts";
import { JobService } from "./jobs/job-service.ts";
import { agentUpgradeStep } from "./installer/upgrade.ts";
import { InstallRuns } from "./installer/runs.ts";
import { appRouter } from "./trpc/router.ts";
import type { ConsoleServices } from "./services.ts";
import type { HostFactsWire, InventorySnapshot } from "../agent/link/contract.ts";
import { handleDownloads } from "./installer-routes.ts";
import { cjsDefault } from "./cjs-default.ts";
import { bestEffort } from "../shared/best-effort.ts";

/** A tRPC call's largest body: a build's context as base64 (4/3 of its bytes) and the rest of the form. */
const TRPC_MAX_BODY_BYTES = Math.ceil(MAX_BUILD_CONTEXT_BYTES / 3) * 4 + 1024 * 1024;

export const PROJECT_ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));

export interface ConsoleOptions {
  /** TCP port (0: any free one). */
  port: number;
  host?: string;
  /** Keeps the embedded PostgreSQL, the secret key file and artifacts. */
  dataDir: string;
  /** An external PostgreSQL; without it an embedded one runs in dataDir. */
  databaseUrl?: string;
  /** The URL browsers and agents use; default http(s)://<host>:<port>. */
  publicUrl?: string;
  /** More browser origins allowed on the websocket and for API calls (besides publicUrl's). */
  extraOrigins?: string[];
  tls?: { cert: string; key: string };
  /** Serve the Next.js pages (default true). API-only consoles (tests, benchmarks) skip building them. */
  ui?: boolean;
  /** Next.js in development mode (hot reload). */
  dev?: boolean;
  /** 32-byte key for secrets at rest (BERTH_SECRET_KEY); default: <dataDir>/secret.key, made on first start. */
  secretKey?: Buffer;
  logger?: Logger;
  /**
   * Behind a reverse proxy: take the client's address from the last X-Forwarded-For
   * entry (for sign-in throttling and the audit log). Off, a client could pick its own.
   */
  trustProxy?: boolean;
  /** Options for the hub (tests shorten heartbeats). */
  socketPingIntervalMs?: number;
  socketPingTimeoutMs?: number;
  /** How long a job step waits for its offline node to come back (ms, default 60 s). */
  jobOfflineWaitMs?: number;
  /** First admin's email on a fresh database. */
  firstAdminEmail?: string;
}

export interface RunningConsole {
  url: string;
  /** The address and port the server really listens on ("0.0.0.0:8080"). */
  listenAddress: string;
  port: number;
  services: ConsoleServices;
  firstAdmin: FirstAdminResult;
  /** next-auth's signing secret (tests sign cookies with it). */
  authSecret: string;
  close(): Promise<void>;
}

async function loadSecretKey(dataDir: string, given?: Buffer): Promise<Buffer> {
  if (given) return given;
  const fromEnv = process.env[SECRET_KEY_ENV];
  if (fromEnv) return parseSecretKey(fromEnv);
  const file = join(dataDir, "secret.key");
  if (existsSync(file)) return parseSecretKey(await readFile(file, "utf8"));
  const key = randomBytes(32);
  await writeFile(file, `${key.toString("hex")}\n`, { mode: 0o600, flag: "wx" });
  return key;
}

function originOf(url: string): string {
  return new URL(url).origin;
}

export async function startConsole(options: ConsoleOptions): Promise<RunningConsole> {
  const logger = options.logger ?? pino({ level: process.env.BERTH_LOG_LEVEL ?? "info" });
  const cleanups: Array<() => Promise<void> | void> = [];
  const closeAll = async () => {
    for (const c of cleanups.splice(0).reverse()) {
      try {
        await c();
      } catch (e) {
        logger.error({ err: e }, "error while closing the console");
      }
    }
  };
  try {
    await mkdir(options.dataDir, { recursive: true, mode: 0o711 });
    await chmod(options.dataDir, 0o711);
    const secretKey = await loadSecretKey(options.dataDir, options.secretKey);
    const authSecret = Buffer.from(hkdfSync("sha256", secretKey, Buffer.alloc(0), "berth next-auth", 32)).toString("base64url");

    const db: Database = await openDatabase({
      ...(options.databaseUrl ? { url: options.databaseUrl } : {}),
      dataDir: options.dataDir,
      log: (m) => logger.debug({ concern: "postgres" }, m),
      logger: logger.child({ concern: "postgres" }),
      // Enrollment storms and inventory saves of many nodes at once share this pool.
      poolSize: 20,
    });
    cleanups.push(() => db.close());
    const prisma = db.prisma;

    const http: HttpServer = options.tls ? createHttpsServer({ cert: options.tls.cert, key: options.tls.key }) : createHttpServer();
    let requestHandler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
      res.writeHead(503, { "content-type": "text/plain" }).end("Berth console is starting\n");
    };
    http.on("request", (req, res) => {
      // socket.io answers its own path on the same server.
      if (req.url?.startsWith("/socket.io/")) return;
      requestHandler(req, res);
    });
    await new Promise<void>((ok, fail) => {
      http.once("error", fail);
      http.listen(options.port, options.host ?? "0.0.0.0", () => ok());
    });
    cleanups.push(() => new Promise<void>((ok) => http.close(() => ok())));
    http.on("error", (e) => logger.error({ err: e }, "http server error"));
    const bound = http.address() as AddressInfo;
    const port = bound.port;
    const listenAddress = `${bound.family === "IPv6" ? `[${bound.address}]` : bound.address}:${port}`;
    const scheme = options.tls ? "https" : "http";
    const publicUrl = (options.publicUrl ?? `${scheme}://${!options.host || options.host === "0.0.0.0" ? "127.0.0.1" : options.host}:${port}`).replace(
      /\/+$/,
      "",
    );
    // The console's own loopback addresses are always its own origins (a browser on this host or
    // through an SSH tunnel), whatever the public URL says.
    const allowedOrigins = [
      ...new Set([originOf(publicUrl), ...(options.extraOrigins ?? []).map(originOf), `${scheme}://127.0.0.1:${port}`, `${scheme}://localhost:${port}`]),
    ];

    const io = new IoServer(http, {
      maxHttpBufferSize: LINK_MAX_MESSAGE_BYTES,
      pingInterval: options.socketPingIntervalMs ?? 10_000,
      pingTimeout: options.socketPingTimeoutMs ?? 10_000,
    });
    cleanups.push(() => io.close());

    const nodeRegistry = new DbNodeRegistry(prisma);
    const hub = new AgentHub({ io, registry: nodeRegistry, logger, allowedOrigins });
    cleanups.push(() => hub.close());
    await seedHub(prisma, hub);

    const secretBox = new SecretBox(secretKey);
    const registries = new RegistryStore(prisma, secretBox);
    const live = new LiveUpdates({ io, prisma, hub, authSecret, allowedOrigins, logger });
    cleanups.push(() => live.close());
    const installs = new InstallRuns();
    const buildContextsDir = join(options.dataDir, "build-contexts");
    await mkdir(buildContextsDir, { recursive: true, mode: 0o700 });
    const jobs = new JobService({
      prisma,
      hub,
      registries,
      live,
      logger,
      buildContextsDir,
      consoleSteps: { "agent.upgrade": agentUpgradeStep({ prisma, hub, secretBox, installs, publicUrl, logger }) },
      ...(options.jobOfflineWaitMs !== undefined ? { offlineWaitMs: options.jobOfflineWaitMs } : {}),
    });
    cleanups.push(() => jobs.close());

    // Small notices: the page refetches the run through `installer.run`, where access is checked again.
    installs.onChange((run, change) =>
      live.installOutput({ runId: run.view.id, step: change.step, status: change.status, ...(change.line !== undefined ? { line: change.line } : {}) }),
    );
    cleanups.push(() => installs.close());

    const services: ConsoleServices = { prisma, hub, nodeRegistry, registries, secretBox, jobs, live, installs, logger, publicUrl, dataDir: options.dataDir };

    const firstAdmin = await createFirstAdmin(prisma, options.firstAdminEmail ? { email: options.firstAdminEmail } : {});
    if (firstAdmin.created) await keepFirstAdminLogin(options.dataDir, firstAdmin, publicUrl);
    else await forgetFirstAdminLogin(options.dataDir, prisma);

    const authOptions: AuthOptions = buildAuthOptions({ prisma, secretBox, authSecret, logger, secureCookies: publicUrl.startsWith("https:") });
    // The next-auth route (app/api/auth/[...nextauth]/route.ts) runs inside Next.js in this
    // process and takes its options from here, so that Next's bundle holds no database code.
    (globalThis as { berthAuthOptions?: AuthOptions }).berthAuthOptions = authOptions;
    process.env.NEXTAUTH_URL = publicUrl;
    process.env.NEXTAUTH_SECRET = authSecret;

    const trpc = createHTTPHandler({
      router: appRouter,
      basePath: "/api/trpc/",
      // The largest call is a build with its context archive as base64 (jobs.build: 64 MiB, 4/3 of it as text).
      maxBodySize: TRPC_MAX_BODY_BYTES,
      createContext: async ({ req }) => ({
        services,
        session: await sessionFromCookie(prisma, req.headers.cookie, authSecret),
        ip: clientAddress(req, options.trustProxy ?? false),
      }),
      onError: ({ error, path }) => {
        if (error.code === "INTERNAL_SERVER_ERROR") logger.error({ path, err: error }, "tRPC procedure failed"); // pino's err serializer carries the cause and its stack
      },
    });

    let nextHandler: ((req: IncomingMessage, res: ServerResponse) => Promise<void>) | undefined;
    if (options.ui ?? true) {
      const next = cjsDefault((await import("next")).default);
      const app = next({ dev: options.dev ?? false, dir: PROJECT_ROOT, hostname: "127.0.0.1", port, quiet: true });
      await app.prepare();
      nextHandler = app.getRequestHandler();
      cleanups.push(() => app.close());
    }

    requestHandler = (req, res) => {
      const url = req.url ?? "/";
      stampClientAddress(req, options.trustProxy ?? false);
      if (url.startsWith("/api/trpc/")) {
        const origin = req.headers.origin;
        if (origin && !allowedOrigins.includes(origin)) {
          res.writeHead(403, { "content-type": "application/json" }).end(JSON.stringify({ error: `origin ${origin} may not call this API` }));
          return;
        }
        trpc(req, res);
        return;
      }
      if (url === "/api/health") {
        // The public URL is no secret (the login page shows it): bin/berth-up prints it from here.
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ok: true, service: "berth-console", url: publicUrl }));
        return;
      }
      if (handleDownloads(req, res, services)) return;
      if (nextHandler) {
        nextHandler(req, res).catch((e: unknown) => {
          logger.error({ err: e, url }, "page failed");
          if (!res.headersSent) res.writeHead(500).end("internal error");
        });
        return;
      }
      res.writeHead(404, { "content-type": "text/plain" }).end("not found (this console serves no pages)\n");
    };

    await jobs.resumeUnfinished();
    const pruneTimer = setInterval(
      () => {
        pruneExpiredSessions(prisma).catch(bestEffort(logger, "prune expired sessions"));
        pruneThrottles(prisma).catch(bestEffort(logger, "prune sign-in throttles"));
      },
      60 * 60 * 1000,
    );
    pruneTimer.unref();
    cleanups.push(() => clearInterval(pruneTimer));

    // The first admin's password is not logged: the caller prints it once (bin/berth-console), and
    // it is kept in a 0600 file until changed (keepFirstAdminLogin).
    logger.info({ url: publicUrl, listen: listenAddress, embeddedPostgres: db.embedded }, "Berth console listening");
    return { url: publicUrl, listenAddress, port, services, firstAdmin, authSecret, close: closeAll };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** Nodes known from earlier runs: shown offline with their last inventory until they connect. */
async function seedHub(prisma: Database["prisma"], hub: AgentHub): Promise<void> {
  const nodes = await prisma.node.findMany({ include: { inventory: true } });
  hub.seed(
    nodes.map((n) => ({
      nodeId: n.id,
      hostname: n.hostname,
      revoked: n.revokedAt !== null,
      ...(n.lastSeenAt ? { lastSeen: n.lastSeenAt.getTime() } : {}),
      ...(n.agentVersion ? { agentVersion: n.agentVersion } : {}),
      ...(n.facts && typeof n.facts === "object" && "hostname" in (n.facts as object) ? { facts: n.facts as unknown as HostFactsWire } : {}),
      ...(n.inventory ? { inventory: n.inventory.snapshot as unknown as InventorySnapshot, inventoryAt: n.inventory.updatedAt.getTime() } : {}),
    })),
  );
}
