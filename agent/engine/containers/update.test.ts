// docker update's decision against Docker 20.10's answers (observed with dockerd on this machine).
import { test } from "node:test";
import assert from "node:assert/strict";
import { CreateOptionsSchema } from "./container-record.ts";
import { applyUpdate } from "./update.ts";

const base = CreateOptionsSchema.parse({ image: "busybox" });
const mib = 1024 * 1024;

test("memory: fits under the swap limit Docker recorded (twice --memory), which is kept; above it needs --memory-swap", () => {
  const created = { ...base, memory: 32 * mib };
  const next = applyUpdate("c1", created, { memory: 64 * mib }, true);
  assert.equal(next.memory, 64 * mib);
  assert.equal(next.memorySwap, 64 * mib, "the recorded swap limit is kept, not recomputed");
  assert.throws(
    () => applyUpdate("c1", created, { memory: 65 * mib }, true),
    /Cannot update container c1: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time/,
  );
  // Without any limit there is no swap limit on record either: Docker refuses a memory-only update.
  assert.throws(() => applyUpdate("c1", base, { memory: 64 * mib }, true), /Memory limit should be smaller/);
  assert.equal(applyUpdate("c1", base, { memory: 64 * mib, memorySwap: 128 * mib }, true).memorySwap, 128 * mib);
});

test("CPU: NanoCpus and CFS quota/period exclude each other, in Docker's words", () => {
  const nano = { ...base, nanoCpus: 5e8 };
  assert.throws(() => applyUpdate("c", nano, { cpuQuota: 20000 }, true), /Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set/);
  assert.throws(() => applyUpdate("c", nano, { cpuPeriod: 20000 }, true), /Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set/);
  assert.throws(() => applyUpdate("c", { ...base, cpuQuota: 20000 }, { nanoCpus: 1e9 }, true), /Nano CPUs cannot be updated as CPU Quota has already been set/);
  assert.throws(
    () => applyUpdate("c", { ...base, cpuPeriod: 20000 }, { nanoCpus: 1e9 }, true),
    /Nano CPUs cannot be updated as CPU Period has already been set/,
  );
  const next = applyUpdate("c", base, { nanoCpus: 5e8, cpuShares: 512, cpusetCpus: "0", pidsLimit: 50 }, true);
  assert.deepEqual([next.nanoCpus, next.cpuShares, next.cpusetCpus, next.pidsLimit], [5e8, 512, "0", 50]);
});

test("zero values change nothing; the restart policy is refused for --rm containers unless unchanged", () => {
  const set = { ...base, cpuShares: 256, pidsLimit: 10 };
  assert.deepEqual(applyUpdate("c", set, {}, true), set);
  assert.deepEqual(applyUpdate("c", base, { restartPolicy: { name: "always", maximumRetryCount: 0 } }, true).restartPolicy, {
    name: "always",
    maximumRetryCount: 0,
  });
  const rm = { ...base, autoRemove: true };
  assert.throws(
    () => applyUpdate("c", rm, { restartPolicy: { name: "always", maximumRetryCount: 0 } }, true),
    /Restart policy cannot be updated because AutoRemove is enabled for the container/,
  );
  assert.doesNotThrow(() => applyUpdate("c", rm, { restartPolicy: { name: "no", maximumRetryCount: 0 } }, true));
});
