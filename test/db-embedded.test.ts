// The console's embedded PostgreSQL (no DATABASE_URL): openDatabase({ dataDir })
// initialises a cluster as an unprivileged user (these tests run as root, which
// initdb refuses), applies the migrations, keeps data across restarts, recovers
// after the console was killed, and explains a data directory it cannot use.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { readMigrations } from "../server/db/migrate.ts";
import { openDatabase, type Database } from "../server/db/open-database.ts";

const isRoot = process.getuid?.() === 0;

describe("openDatabase with the embedded PostgreSQL", () => {
  const tmps: string[] = [];
  const open: Database[] = [];
  after(async () => {
    for (const db of open) await db.close().catch(() => {});
    for (const d of tmps) await rm(d, { recursive: true, force: true });
  });
  const tmp = async () => {
    const d = await mkdtemp(join(tmpdir(), "berth-embedded-"));
    await chmod(d, 0o755);
    tmps.push(d);
    return d;
  };

  test("needs a url or a data directory", async () => {
    await assert.rejects(openDatabase({}), /needs a url \(DATABASE_URL\) or a dataDir/);
  });

  test("first start initialises and migrates; a restart keeps the data and migrates nothing", async () => {
    const dataDir = join(await tmp(), "data");
    const migrations = await readMigrations();
    const db1 = await openDatabase({ dataDir });
    open.push(db1);
    assert.equal(db1.embedded, true);
    assert.deepEqual(
      db1.applied,
      migrations.map((m) => m.name),
    );
    assert.match(db1.url, /^postgresql:\/\/berth:[^@]+@127\.0\.0\.1:\d+\/berth$/);
    await db1.prisma.user.create({ data: { email: "kept@example.com" } });
    if (isRoot) {
      const st = await stat(join(dataDir, "postgres"));
      assert.notEqual(st.uid, 0, "PGDATA belongs to the unprivileged server user");
      assert.equal(st.mode & 0o777, 0o700);
      assert.equal((await stat(join(dataDir, "postgres-auth.json"))).mode & 0o777, 0o600);
    }
    await db1.close();

    const db2 = await openDatabase({ dataDir });
    open.push(db2);
    assert.deepEqual(db2.applied, []);
    assert.equal(await db2.prisma.user.count({ where: { email: "kept@example.com" } }), 1);
    await db2.close();
  });

  test("after the console was killed (its server left running), the next start takes over", async () => {
    const dataDir = join(await tmp(), "data");
    const script = `
      import { openDatabase } from ${JSON.stringify(new URL("../server/db/open-database.ts", import.meta.url).href)};
      const db = await openDatabase({ dataDir: process.argv[1] });
      await db.prisma.user.create({ data: { email: "before-crash@example.com" } });
      console.log("READY");
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script, dataDir], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    for (let i = 0; i < 600 && !out.includes("READY") && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(out, /READY/, "the first console started");
    child.kill("SIGKILL");
    await once(child, "exit");
    const leftover = Number((await readFile(join(dataDir, "postgres", "postmaster.pid"), "utf8")).split("\n")[0]);
    assert.ok(existsSync(`/proc/${leftover}`), "the killed console's server is still running");

    const db = await openDatabase({ dataDir });
    open.push(db);
    assert.equal(await db.prisma.user.count({ where: { email: "before-crash@example.com" } }), 1);
    assert.ok(!existsSync(`/proc/${leftover}`), "the leftover server was stopped");
    await db.close();
  });

  test("a data directory the server user cannot reach is a clear error", { skip: !isRoot && "only root runs the server as another user" }, async () => {
    const closed = await tmp();
    await chmod(closed, 0o700);
    const dataDir = join(closed, "inner", "data");
    await mkdir(dataDir, { recursive: true });
    await assert.rejects(openDatabase({ dataDir }), /runs as user "postgres" .* cannot (reach|use) .*chmod o\+x/s);
  });
});
