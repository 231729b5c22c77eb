/**
 * Opens the console's database: a Prisma client (Rust-free, through
 * @prisma/adapter-pg) on an up-to-date schema.
 *
 * - With `url` (the console passes DATABASE_URL): that PostgreSQL server.
 * - Without it, with `dataDir`: an embedded PostgreSQL in `<dataDir>/postgres`
 *   (server/db/embedded-postgres.ts), started now and stopped by close().
 *
 * Either way the migrations in prisma/migrations/ are applied first
 * (server/db/migrate.ts), so a new console version upgrades the schema on start.
 * This module reads no environment: the composition root decides, e.g.
 *   openDatabase({ url: process.env.DATABASE_URL, dataDir: config.dataDir })
 */
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "./generated/client.ts";
import { startEmbeddedPostgres } from "./embedded-postgres.ts";
import { applyMigrations } from "./migrate.ts";
import type { DebugLog } from "../../shared/best-effort.ts";

export interface OpenDatabaseOptions {
  /** A PostgreSQL connection string; when set, dataDir is not used. */
  url?: string;
  /** The console's data directory, for the embedded PostgreSQL when there is no url. */
  dataDir?: string;
  /** Progress and server log lines. */
  log?: (message: string) => void;
  /** Where failures that change nothing go (at debug). */
  logger?: DebugLog;
  /** Connection pool size of the client (default 10). */
  poolSize?: number;
}

export interface Database {
  prisma: PrismaClient;
  /** Connection string in use (holds the password: do not log it). */
  url: string;
  /** True when this process started the server (embedded PostgreSQL). */
  embedded: boolean;
  /** Migrations applied by this open. */
  applied: string[];
  /** Disconnects, and stops the embedded server if there is one. Idempotent. */
  close(): Promise<void>;
}

/**
 * @throws TypeError when neither url nor dataDir is given; MigrationError when the
 *   schema cannot be brought up to date; Error when the embedded server cannot start.
 */
export async function openDatabase(options: OpenDatabaseOptions): Promise<Database> {
  let url = options.url;
  let stopServer: (() => Promise<void>) | undefined;
  if (!url) {
    if (!options.dataDir) throw new TypeError("openDatabase needs a url (DATABASE_URL) or a dataDir for the embedded PostgreSQL");
    const server = await startEmbeddedPostgres({ dataDir: options.dataDir, ...(options.log ? { log: options.log } : {}) });
    url = server.url;
    stopServer = server.stop;
  }
  let applied: string[];
  try {
    ({ applied } = await applyMigrations(url, { ...(options.log ? { log: options.log } : {}), ...(options.logger ? { logger: options.logger } : {}) }));
  } catch (e) {
    await stopServer?.();
    throw e;
  }
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: url, max: options.poolSize ?? 10 }) });
  let closed = false;
  return {
    prisma,
    url,
    embedded: stopServer !== undefined,
    applied,
    async close() {
      if (closed) return;
      closed = true;
      try {
        await prisma.$disconnect();
      } finally {
        await stopServer?.();
      }
    },
  };
}
