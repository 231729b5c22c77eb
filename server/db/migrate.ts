/**
 * Applies the SQL migrations in prisma/migrations/ to a PostgreSQL database, in
 * name order, each in its own transaction, recorded in Prisma's own
 * `_prisma_migrations` table (same columns and checksum: SHA-256 of migration.sql),
 * so `prisma migrate status` and `prisma migrate deploy` agree with what ran here.
 *
 * This runs at every console start; it needs no Prisma engine. Concurrent starts
 * (several replicas) serialise on a PostgreSQL advisory lock. It refuses, rather
 * than guesses, when the database and the code disagree: a migration that failed
 * earlier, a migration file edited after it was applied, or a database that has
 * migrations this code does not know (an older console on a newer database).
 */
import { createHash, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { bestEffort, type DebugLog } from "../../shared/best-effort.ts";

export const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL("../../prisma/migrations/", import.meta.url));

/** pg_advisory_lock key: "berthmig" as an int64. */
const LOCK_KEY = "7090199032658487655";

export interface Migration {
  /** The folder name, e.g. 20261123180000_init. */
  name: string;
  sql: string;
  /** SHA-256 of migration.sql, hex (as Prisma computes it). */
  checksum: string;
}

export interface ApplyMigrationsOptions {
  migrationsDir?: string;
  log?: (message: string) => void;
  /** Where failures that change nothing go (a ROLLBACK on a connection about to be closed). */
  logger?: DebugLog;
}

export class MigrationError extends Error {
  override name = "MigrationError";
}

/** Reads the migrations folder: every sub-folder with a migration.sql, sorted by name. */
export async function readMigrations(dir: string = DEFAULT_MIGRATIONS_DIR): Promise<Migration[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  const out: Migration[] = [];
  for (const name of names) {
    const bytes = await readFile(join(dir, name, "migration.sql"));
    out.push({ name, sql: bytes.toString("utf8"), checksum: createHash("sha256").update(bytes).digest("hex") });
  }
  return out;
}

const CREATE_TABLE = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
  "id"                  VARCHAR(36) PRIMARY KEY NOT NULL,
  "checksum"            VARCHAR(64) NOT NULL,
  "finished_at"         TIMESTAMPTZ,
  "migration_name"      VARCHAR(255) NOT NULL,
  "logs"                TEXT,
  "rolled_back_at"      TIMESTAMPTZ,
  "started_at"          TIMESTAMPTZ NOT NULL DEFAULT now(),
  "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)`;

interface AppliedRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
}

/**
 * Brings the database at `connectionString` up to date.
 * @returns the names of the migrations applied by this call (empty when up to date).
 * @throws MigrationError when the database's history does not match the files, or a
 *   migration fails (its transaction is rolled back; nothing of it remains).
 */
export async function applyMigrations(connectionString: string, options: ApplyMigrationsOptions = {}): Promise<{ applied: string[] }> {
  const migrations = await readMigrations(options.migrationsDir);
  const quiet: DebugLog = options.logger ?? { debug: () => undefined };
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    await client.query("SELECT pg_advisory_lock($1)", [LOCK_KEY]);
    try {
      await client.query(CREATE_TABLE);
      const { rows } = await client.query<AppliedRow>(
        `SELECT migration_name, checksum, finished_at FROM "_prisma_migrations" WHERE rolled_back_at IS NULL ORDER BY started_at`,
      );
      const known = new Map(migrations.map((m) => [m.name, m]));
      const done = new Set<string>();
      for (const row of rows) {
        if (row.finished_at === null) {
          throw new MigrationError(
            `migration ${row.migration_name} started earlier and did not finish; repair the database by hand and mark it with \`prisma migrate resolve\``,
          );
        }
        const m = known.get(row.migration_name);
        if (!m) {
          throw new MigrationError(`the database has migration ${row.migration_name}, which this console does not have: it was migrated by a newer version`);
        }
        if (m.checksum !== row.checksum) {
          throw new MigrationError(`migration ${m.name} was changed after it was applied (checksum differs); add a new migration instead`);
        }
        done.add(row.migration_name);
      }
      const applied: string[] = [];
      for (const m of migrations) {
        if (done.has(m.name)) continue;
        options.log?.(`applying migration ${m.name}`);
        await client.query("BEGIN");
        try {
          const id = randomUUID();
          await client.query(`INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at) VALUES ($1, $2, $3, now())`, [
            id,
            m.checksum,
            m.name,
          ]);
          await client.query(m.sql);
          await client.query(`UPDATE "_prisma_migrations" SET finished_at = now(), applied_steps_count = 1 WHERE id = $1`, [id]);
          await client.query("COMMIT");
        } catch (cause) {
          await client.query("ROLLBACK").catch(bestEffort(quiet, "ROLLBACK")); // ending the connection below undoes it anyway
          throw new MigrationError(`migration ${m.name} failed: ${(cause as Error).message}`, { cause });
        }
        applied.push(m.name);
      }
      return { applied };
    } finally {
      await client.query("SELECT pg_advisory_unlock($1)", [LOCK_KEY]).catch(bestEffort(quiet, "release the migration lock")); // so does the end of the connection
    }
  } finally {
    await client.end();
  }
}
