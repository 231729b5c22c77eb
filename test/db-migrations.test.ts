// Migrations against a real PostgreSQL (test/helpers/postgres.ts): they apply to an
// empty database, are a no-op on the next start, serialise between concurrent
// starts, and refuse a database whose history does not match the files.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { applyMigrations, DEFAULT_MIGRATIONS_DIR, MigrationError, readMigrations } from "../server/db/migrate.ts";
import { createTestDatabase, type TestDatabase } from "./helpers/postgres.ts";

const EXPECTED_TABLES = [
  "_prisma_migrations",
  "accounts",
  "audit_log",
  "host_policies",
  "inventory_snapshots",
  "job_steps",
  "jobs",
  "join_tokens",
  "login_throttles",
  "memberships",
  "node_credentials",
  "node_groups",
  "nodes",
  "recovery_codes",
  "registries",
  "sessions",
  "settings",
  "ssh_hosts",
  "team_node_groups",
  "teams",
  "users",
];

async function query<T extends pg.QueryResultRow>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(sql, params)).rows;
  } finally {
    await c.end();
  }
}

describe("migrations", () => {
  const dbs: TestDatabase[] = [];
  const tmps: string[] = [];
  const fresh = async () => {
    const db = await createTestDatabase("db_migrations");
    dbs.push(db);
    return db;
  };
  const copyMigrations = async () => {
    const dir = await mkdtemp(join(tmpdir(), "berth-migrations-"));
    tmps.push(dir);
    await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
    return dir;
  };
  after(async () => {
    for (const db of dbs) await db.drop();
    for (const d of tmps) await rm(d, { recursive: true, force: true });
  });

  let files: Awaited<ReturnType<typeof readMigrations>>;
  before(async () => {
    files = await readMigrations();
  });

  test("there is at least the initial migration, and the last one matches prisma/schema.prisma", async () => {
    assert.ok(files.length >= 1);
    assert.match(files[0]!.name, /^\d{14}_init$/);
    // Comments and layout aside, the schema must be the one the last migration leads to:
    // a schema change without `npm run prisma:migration -- NAME` fails here.
    const strip = (s: string) =>
      s
        .replace(/\/\/.*$/gm, "")
        .replace(/\s+/g, " ")
        .trim();
    const snapshot = await readFile(join(DEFAULT_MIGRATIONS_DIR, files.at(-1)!.name, "schema.snapshot"), "utf8");
    const schema = await readFile(fileURLToPath(new URL("../prisma/schema.prisma", import.meta.url)), "utf8");
    assert.equal(strip(schema), strip(snapshot), "prisma/schema.prisma changed without a migration: run npm run prisma:migration -- NAME");
  });

  test("apply to an empty database, then nothing to do on the next start", async () => {
    const db = await fresh();
    const first = await applyMigrations(db.url);
    assert.deepEqual(
      first.applied,
      files.map((f) => f.name),
    );
    const tables = await query<{ tablename: string }>(db.url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename");
    assert.deepEqual(
      tables.map((t) => t.tablename),
      EXPECTED_TABLES,
    );
    const second = await applyMigrations(db.url);
    assert.deepEqual(second.applied, []);
    const rows = await query<{ migration_name: string; checksum: string; finished_at: Date | null; applied_steps_count: number }>(
      db.url,
      `SELECT migration_name, checksum, finished_at, applied_steps_count FROM "_prisma_migrations" ORDER BY migration_name`,
    );
    assert.deepEqual(
      rows.map((r) => r.migration_name),
      files.map((f) => f.name),
    );
    for (const [i, r] of rows.entries()) {
      assert.equal(r.checksum, files[i]!.checksum, "Prisma's checksum: SHA-256 of migration.sql");
      assert.ok(r.finished_at instanceof Date);
      assert.equal(r.applied_steps_count, 1);
    }
  });

  test("concurrent starts apply each migration once", async () => {
    const db = await fresh();
    const results = await Promise.all([applyMigrations(db.url), applyMigrations(db.url), applyMigrations(db.url)]);
    const all = results.flatMap((r) => r.applied).sort();
    assert.deepEqual(all, files.map((f) => f.name).sort());
    const rows = await query<{ n: string }>(db.url, `SELECT count(*) AS n FROM "_prisma_migrations"`);
    assert.equal(Number(rows[0]!.n), files.length);
  });

  test("a new migration is applied on the next start, in order", async () => {
    const db = await fresh();
    const dir = await copyMigrations();
    await applyMigrations(db.url, { migrationsDir: dir });
    await mkdir(join(dir, "29990101000000_add_thing"));
    await writeFile(join(dir, "29990101000000_add_thing", "migration.sql"), `CREATE TABLE "thing" (id int PRIMARY KEY);\n`);
    const r = await applyMigrations(db.url, { migrationsDir: dir });
    assert.deepEqual(r.applied, ["29990101000000_add_thing"]);
    assert.equal((await query(db.url, `SELECT 1 FROM pg_tables WHERE tablename = 'thing'`)).length, 1);
  });

  test("a failing migration leaves nothing behind and is reported by name", async () => {
    const db = await fresh();
    const dir = await copyMigrations();
    await mkdir(join(dir, "29990101000000_broken"));
    await writeFile(join(dir, "29990101000000_broken", "migration.sql"), `CREATE TABLE "half" (id int);\nSELECT no_such_function();\n`);
    await assert.rejects(applyMigrations(db.url, { migrationsDir: dir }), (e: unknown) => {
      assert.ok(e instanceof MigrationError);
      assert.match(e.message, /29990101000000_broken failed/);
      return true;
    });
    assert.equal((await query(db.url, `SELECT 1 FROM pg_tables WHERE tablename = 'half'`)).length, 0, "the failed migration's DDL was rolled back");
    const names = await query<{ migration_name: string }>(db.url, `SELECT migration_name FROM "_prisma_migrations"`);
    assert.ok(!names.some((n) => n.migration_name === "29990101000000_broken"));
  });

  test("refuses a migration edited after it was applied", async () => {
    const db = await fresh();
    const dir = await copyMigrations();
    await applyMigrations(db.url, { migrationsDir: dir });
    await writeFile(join(dir, files[0]!.name, "migration.sql"), files[0]!.sql + "\n-- edited\n");
    await assert.rejects(applyMigrations(db.url, { migrationsDir: dir }), /was changed after it was applied/);
  });

  test("refuses a database migrated by a newer console", async () => {
    const db = await fresh();
    await applyMigrations(db.url);
    await query(
      db.url,
      `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, finished_at, applied_steps_count) VALUES ('x', 'y', '29991231000000_future', now(), 1)`,
    );
    await assert.rejects(applyMigrations(db.url), /29991231000000_future, which this console does not have/);
  });

  test("refuses a database with an unfinished migration", async () => {
    const db = await fresh();
    await applyMigrations(db.url);
    await query(db.url, `UPDATE "_prisma_migrations" SET finished_at = NULL`);
    await assert.rejects(applyMigrations(db.url), /did not finish/);
  });
});
