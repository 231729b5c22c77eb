// bench/fleet on a tiny fleet, so the benchmark the closing notes quote keeps running:
// a real console, real ConsoleLinks in their own (bundled) processes, every figure printed
// with its verdict against its target, and nothing left behind (its database is dropped, its
// processes gone). Whether a target is met is the benchmark's figure to report, not a test's
// to assert: on a shared 2-core runner a timing says more about the neighbours than the code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, type ExecFileException } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { databaseExists } from "./helpers/postgres.ts";

const execFileP = promisify(execFile);

test("bench/fleet prints every figure for 6 agent processes, each target with its verdict", { timeout: 300_000 }, async () => {
  const bench = resolve(import.meta.dirname, "../bench/fleet");
  const { stdout: out, stderr: err } = await execFileP(
    "bash",
    [bench, "--agents", "6", "--samples", "10", "--pull-nodes", "4", "--browsers", "1", "--page-samples", "2", "--page-window-s", "2"],
    { maxBuffer: 16 << 20 },
  ).catch((e: ExecFileException & { stderr: string }) => assert.fail(`bench/fleet failed (exit ${e.code}):\n${e.stderr.slice(-3000)}`));

  assert.match(out, /6 simulated nodes over 6 worker processes/);
  for (const figure of [
    "console RSS, 6 agents connected (idle)",
    "containers query, first page",
    "containers query, search",
    "event on a node → browser socket p95",
    "pull job on 4 nodes: POST answered",
    "pull job: request reached all 4 nodes",
    "pull job: finished (browser), 4/4 succeeded",
    "fleet page: navigation to content p95",
    "containers page: navigation to content p95",
    "images page: navigation to content p95",
    "node page: navigation to content p95",
    "node page: queries per browser per node change",
    "per change on another node only",
    "per change on its own node only",
  ]) {
    assert.ok(out.includes(figure), `missing figure "${figure}" in:\n${out}`);
  }
  const targetRows = out.split("\n").filter((l) => /\|\s*< /.test(l));
  assert.equal(targetRows.length, 9, `nine figures have a target (four of them the pages'):\n${out}`);
  for (const row of targetRows) assert.match(row, /\|\s*(met|MISSED)\s*$/, `a target row without its verdict: ${row}`);
  assert.match(err, /cleaning up|total/, "the run reports its end");
  const database = /database (berth_t_fleet_\S+)/.exec(err)?.[1];
  assert.ok(database, `the run names its database:\n${err}`);

  assert.equal(await databaseExists(database), false, `database ${database} is dropped`);
  const { stdout: ps } = await execFileP("ps", ["-eo", "args"]);
  assert.deepEqual(
    ps.split("\n").filter((l) => /fleet-(agents|console)/.test(l)),
    [],
    "no agent or console process of the run is left",
  );
});
