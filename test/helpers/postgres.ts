/**
 * A fresh PostgreSQL database per test file, on a real server.
 *
 * The server is the one in DATABASE_URL, or by default Debian's cluster as
 * scripts/start-test-postgres.sh sets it up (what .ci/run does):
 *   postgresql://berth:berth@127.0.0.1:5432/postgres
 * The role needs CREATEDB. Each call creates `berth_t_<label>_<pid>_<random>` and
 * drop() removes it (WITH (FORCE), so leftover connections do not block it).
 * Databases left by crashed runs of this machine (their pid is gone) are dropped on
 * the next call. When no server answers, the test fails with a message naming what
 * to run: it never skips silently.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { applyMigrations } from "../../server/db/migrate.ts";
import { PrismaClient } from "../../server/db/generated/client.ts";
import { PrismaPg } from "@prisma/adapter-pg";

export const DEFAULT_TEST_DATABASE_URL = "postgresql://berth:berth@127.0.0.1:5432/postgres";
const PREFIX = "berth_t_";

export interface TestDatabase {
  /** Connection string of the new, empty database. */
  url: string;
  name: string;
  /** Drops the database. Idempotent. */
  drop(): Promise<void>;
}

/** The server the tests use: DATABASE_URL or the default above. */
export function testServerUrl(): string {
  return process.env.DATABASE_URL || DEFAULT_TEST_DATABASE_URL;
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparsable DATABASE_URL)";
  }
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function adminClient(): Promise<pg.Client> {
  const url = testServerUrl();
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
  } catch (cause) {
    await client.end().catch(() => {});
    throw new Error(
      `The database tests need PostgreSQL and cannot reach ${redact(url)}: ${(cause as Error).message}.\n` +
        `  On Debian, as root: apt-get install postgresql && bash scripts/start-test-postgres.sh   (what .ci/run does)\n` +
        `  Or set DATABASE_URL to a server where the role may CREATE DATABASE (its database is only used to create and drop per-test databases).`,
      { cause },
    );
  }
  return client;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

async function dropStale(client: pg.Client): Promise<void> {
  const host = new URL(testServerUrl()).hostname;
  if (!["127.0.0.1", "localhost", "::1", "[::1]", ""].includes(host)) return; // pids are only meaningful on this machine
  const { rows } = await client.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE 'berth\\_t\\_%'`);
  for (const { datname } of rows) {
    const pid = Number(/_(\d+)_[0-9a-f]{8}$/.exec(datname)?.[1]);
    if (pid && pid !== process.pid && !pidAlive(pid)) {
      await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(datname)} WITH (FORCE)`).catch(() => {});
    }
  }
}

/** Whether the test server holds a database of this name (to check that a run dropped its own). */
export async function databaseExists(name: string): Promise<boolean> {
  const client = await adminClient();
  try {
    return ((await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name])).rowCount ?? 0) > 0;
  } finally {
    await client.end();
  }
}

/** Creates an empty database for one test file. @param label a short name, e.g. the test file's. */
export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const safe = label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .slice(0, 30);
  const name = `${PREFIX}${safe}_${process.pid}_${randomBytes(4).toString("hex")}`;
  const client = await adminClient();
  try {
    await dropStale(client);
    await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
  let dropped = false;
  return {
    name,
    url: withDatabase(testServerUrl(), name),
    async drop() {
      if (dropped) return;
      dropped = true;
      const c = await adminClient();
      try {
        // FORCE ends our own leftover connections; an autovacuum worker busy on the database
        // belongs to the superuser and cannot be ended by the test role (42501): it finishes
        // within moments, so try again.
        for (let attempt = 1; ; attempt++) {
          try {
            await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(name)} WITH (FORCE)`);
            break;
          } catch (e) {
            const code = (e as { code?: string }).code;
            if (attempt >= 50 || (code !== "42501" && code !== "55006")) throw e;
            await new Promise((r) => setTimeout(r, 200));
          }
        }
      } finally {
        await c.end();
      }
    },
  };
}

export interface MigratedTestDatabase extends TestDatabase {
  prisma: PrismaClient;
  /** Disconnects the client and drops the database. */
  close(): Promise<void>;
}

/** A fresh database with every migration applied and a Prisma client on it. */
export async function openTestDatabase(label: string): Promise<MigratedTestDatabase> {
  const db = await createTestDatabase(label);
  try {
    await applyMigrations(db.url);
  } catch (e) {
    await db.drop();
    throw e;
  }
  const prisma = new PrismaClient({ adapter: new PrismaPg({ connectionString: db.url }) });
  return {
    ...db,
    prisma,
    async close() {
      await prisma.$disconnect();
      await db.drop();
    },
  };
}
