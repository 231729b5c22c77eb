// bench/fleet on a tiny fleet, so the benchmark the closing notes quote keeps running:
// a real console, real ConsoleLinks in their own (bundled) processes, every figure printed
// and met, and nothing left behind (its database is dropped, its processes gone).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import pg from "pg";
import { testServerUrl } from "./helpers/postgres.ts";

const ROOT = resolve(import.meta.dirname, "..");

test("bench/fleet prints every figure for 6 agent processes and each target is met", { timeout: 300_000 }, async () => {
  const child = spawn("bash", [resolve(ROOT, "bench/fleet"), "--agents", "6", "--samples", "10", "--pull-nodes", "4"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => child.on("close", r));
  assert.equal(code, 0, `bench/fleet failed:\n${err.slice(-3000)}`);

  assert.match(out, /6 simulated nodes over 6 worker processes/);
  for (const figure of [
    "console RSS, 6 agents connected (idle)",
    "containers query, first page",
    "containers query, search",
    "event on a node → browser socket p95",
    "pull job on 4 nodes: POST answered",
    "pull job: request reached all 4 nodes",
    "pull job: finished (browser), 4/4 succeeded",
  ]) {
    assert.ok(out.includes(figure), `missing figure "${figure}" in:\n${out}`);
  }
  const targetRows = out.split("\n").filter((l) => /\|\s*< /.test(l));
  assert.equal(targetRows.length, 5, `five figures have a target:\n${out}`);
  for (const row of targetRows) assert.match(row, /\|\s*met\s*$/, `target not met: ${row}`);
  assert.match(err, /cleaning up|total/, "the run reports its end");
  const database = /database (berth_t_fleet_\S+)/.exec(err)?.[1];
  assert.ok(database, `the run names its database:\n${err}`);

  const admin = new pg.Client({ connectionString: testServerUrl() });
  await admin.connect();
  try {
    const left = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
    assert.equal(left.rowCount, 0, `database ${database} is dropped`);
  } finally {
    await admin.end();
  }
  const ps = await new Promise<string>((r) => {
    let text = "";
    const p = spawn("ps", ["-eo", "args"], { stdio: ["ignore", "pipe", "ignore"] });
    p.stdout.on("data", (d: Buffer) => (text += d.toString()));
    p.on("close", () => r(text));
  });
  assert.deepEqual(ps.split("\n").filter((l) => /fleet-(agents|console)/.test(l)), [], "no agent or console process of the run is left");
});
