// Stats parsing for both cgroup versions, on cgroup files written by the test (this
// machine's runc uses v1; the live v1 path is covered by the docker stats CLI test).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readContainerStats } from "./stats.ts";

test("cgroup v2: CPU in ns from usage_usec, memory, pids and io from the unified files", async (t) => {
  const root = await mkdtemp(join(tmpdir(), "berth-cg2-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  await writeFile(join(root, "cgroup.controllers"), "cpu memory pids io\n");
  const dir = join(root, "berth", "abc");
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "cpu.stat"), "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 7\nnr_throttled 2\nthrottled_usec 30\n");
  await writeFile(join(dir, "memory.current"), "4096000\n");
  await writeFile(join(dir, "memory.max"), "16777216\n");
  await writeFile(join(dir, "memory.stat"), "anon 100\ninactive_file 2000\n");
  await writeFile(join(dir, "pids.current"), "3\n");
  await writeFile(join(dir, "pids.max"), "max\n");
  await writeFile(join(dir, "io.stat"), "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n");
  const s = await readContainerStats("/berth/abc", 0, 2, root);
  assert.equal(s.cpu.totalUsage, 1_500_000);
  assert.equal(s.cpu.user, 1_000_000);
  assert.equal(s.cpu.throttledPeriods, 2);
  assert.equal(s.memory.usage, 4_096_000);
  assert.equal(s.memory.limit, 16_777_216);
  assert.equal(s.memory.stats.inactive_file, 2000);
  assert.deepEqual(s.pids, { current: 3, limit: 0 });
  assert.deepEqual(s.blkio, [
    { major: 8, minor: 0, op: "read", value: 4096 },
    { major: 8, minor: 0, op: "write", value: 8192 },
  ]);
});

test("cgroup v1: per-controller directories", async (t) => {
  const root = await mkdtemp(join(tmpdir(), "berth-cg1-"));
  t.after(() => rm(root, { recursive: true, force: true }));
  const at = async (ctl: string, file: string, text: string) => {
    await mkdir(join(root, ctl, "berth", "abc"), { recursive: true });
    await writeFile(join(root, ctl, "berth", "abc", file), text);
  };
  await at("cpuacct", "cpuacct.usage", "2000000\n");
  await at("cpuacct", "cpuacct.usage_percpu", "1500000 500000\n");
  await at("cpuacct", "cpuacct.stat", "user 10\nsystem 5\n");
  await at("memory", "memory.usage_in_bytes", "8192\n");
  await at("memory", "memory.limit_in_bytes", "33554432\n");
  await at("pids", "pids.current", "1\n");
  const s = await readContainerStats("/berth/abc", 0, 2, root);
  assert.equal(s.cpu.totalUsage, 2_000_000);
  assert.deepEqual(s.cpu.perCpu, [1_500_000, 500_000]);
  assert.equal(s.cpu.user, 100_000_000);
  assert.equal(s.memory.limit, 33_554_432);
  assert.equal(s.pids.current, 1);
});
