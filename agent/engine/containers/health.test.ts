// The health check's pure parts, against what Docker 20.10 does (moby daemon/health.go,
// daemon/commit.go merge, and runs observed on dockerd): the state machine, the merge of
// --health-* with the image's HEALTHCHECK, the probe's command line and output limit.
import { test } from "node:test";
import assert from "node:assert/strict";
import { applyProbeResult, effectiveHealthcheck, goDuration, healthProbe, LimitedOutput, startingHealth, validateHealthcheck } from "./health.ts";
import type { HealthResult, HealthState } from "./container-record.ts";

const STARTED = "2026-01-01T00:00:00.000Z";
const at = (sec: number, exitCode: number): HealthResult => {
  const t = new Date(Date.parse(STARTED) + sec * 1000).toISOString();
  return { start: t, end: t, exitCode, output: "" };
};
const run = (results: HealthResult[], probe = { retries: 3, startPeriodMs: 0 }, from: HealthState = startingHealth(undefined)) => {
  const states: HealthState[] = [];
  let h = from;
  for (const r of results) states.push((h = applyProbeResult(h, r, probe, STARTED)));
  return states;
};

test("failures count up to `retries`, then unhealthy; one success is healthy and resets the streak", () => {
  const s = run([at(1, 1), at(2, 1), at(3, 0), at(4, 1), at(5, 2), at(6, -1)], { retries: 2, startPeriodMs: 0 });
  assert.deepEqual(
    s.map((h) => [h.status, h.failingStreak]),
    [
      ["starting", 1],
      ["unhealthy", 2],
      ["healthy", 0],
      ["healthy", 1],
      ["unhealthy", 2], // exit 2 (reserved) and -1 (timeout) are failures like any non-zero code
      ["unhealthy", 3],
    ],
  );
});

test("an unhealthy container becomes healthy on the first success", () => {
  const s = run([at(1, 1), at(2, 0)], { retries: 1, startPeriodMs: 0 });
  assert.deepEqual(
    s.map((h) => h.status),
    ["unhealthy", "healthy"],
  );
});

test("start period: failures of probes begun within it do not count while starting; later ones do", () => {
  // Docker run: --health-retries 1 --health-start-period 3s --health-interval 1s, check `false`.
  const s = run([at(1, 1), at(2, 1), at(3, 1), at(4, 1)], { retries: 1, startPeriodMs: 3000 });
  assert.deepEqual(
    s.map((h) => [h.status, h.failingStreak]),
    [
      ["starting", 0],
      ["starting", 0],
      ["unhealthy", 1],
      ["unhealthy", 2],
    ],
  );
  assert.equal(s[1]!.log.length, 2, "results within the start period are logged all the same");
});

test("start period: once healthy, failures within it count", () => {
  const s = run([at(1, 0), at(2, 1)], { retries: 1, startPeriodMs: 60_000 });
  assert.deepEqual(
    s.map((h) => [h.status, h.failingStreak]),
    [
      ["healthy", 0],
      ["unhealthy", 1],
    ],
  );
});

test("the log keeps the last five results, oldest first; a restart keeps the log and starts again", () => {
  const s = run([0, 1, 2, 3, 4, 5, 6].map((i) => ({ ...at(i, 1), output: `run ${i}` })));
  assert.deepEqual(
    s.at(-1)!.log.map((r) => r.output),
    ["run 2", "run 3", "run 4", "run 5", "run 6"],
  );
  const again = startingHealth(s.at(-1));
  assert.equal(again.status, "starting");
  assert.equal(again.failingStreak, 0);
  assert.equal(again.log.length, 5);
  assert.deepEqual(startingHealth(undefined), { status: "starting", failingStreak: 0, log: [] });
});

test("merge with the image's HEALTHCHECK: unset run-time fields come from the image", () => {
  const image = { Test: ["CMD", "/check"], Interval: 5e9, Timeout: 2e9, Retries: 4 };
  assert.deepEqual(effectiveHealthcheck(image, undefined), { test: ["CMD", "/check"], interval: 5e9, timeout: 2e9, startPeriod: 0, retries: 4 });
  assert.deepEqual(effectiveHealthcheck(image, { test: [], interval: 1e9, timeout: 0, startPeriod: 0, retries: 0 }), {
    test: ["CMD", "/check"],
    interval: 1e9,
    timeout: 2e9,
    startPeriod: 0,
    retries: 4,
  });
  assert.deepEqual(effectiveHealthcheck(image, { test: ["NONE"], interval: 0, timeout: 0, startPeriod: 0, retries: 0 })?.test, ["NONE"]);
  assert.equal(effectiveHealthcheck(undefined, undefined), undefined);
  assert.equal(effectiveHealthcheck(null, undefined), undefined);
});

test("the probe: CMD as given, CMD-SHELL under /bin/sh -c (or the image's SHELL), NONE and unknown kinds run nothing; Docker's defaults", () => {
  const base = { interval: 0, timeout: 0, startPeriod: 0, retries: 0 };
  const cmd = healthProbe({ ...base, test: ["CMD", "test", "-f", "/tmp/ok"] });
  assert.deepEqual(cmd, {
    cmd: ["test", "-f", "/tmp/ok"],
    intervalMs: 30_000,
    timeoutMs: 30_000,
    retries: 3,
    startPeriodMs: 0,
    timeoutText: "Health check exceeded timeout (30s)",
  });
  assert.deepEqual(healthProbe({ ...base, test: ["CMD-SHELL", "test -f /tmp/ok"] })?.cmd, ["/bin/sh", "-c", "test -f /tmp/ok"]);
  assert.deepEqual(healthProbe({ ...base, test: ["CMD-SHELL", "exit 0"] }, ["/bin/bash", "-ec"])?.cmd, ["/bin/bash", "-ec", "exit 0"]);
  assert.equal(healthProbe({ ...base, test: ["NONE"] }), undefined);
  assert.equal(healthProbe({ ...base, test: [] }), undefined);
  assert.equal(healthProbe({ ...base, test: ["WHAT", "x"] }), undefined);
  assert.equal(healthProbe(undefined), undefined);
  const timed = healthProbe({ test: ["CMD", "true"], interval: 1e9, timeout: 1.5e9, startPeriod: 3e9, retries: 2 });
  assert.deepEqual(timed, {
    cmd: ["true"],
    intervalMs: 1000,
    timeoutMs: 1500,
    retries: 2,
    startPeriodMs: 3000,
    timeoutText: "Health check exceeded timeout (1.5s)",
  });
});

test("Go's duration text in the timeout message", () => {
  assert.equal(goDuration(1e9), "1s");
  assert.equal(goDuration(30e9), "30s");
  assert.equal(goDuration(90e9), "1m30s");
  assert.equal(goDuration(3600e9), "1h0m0s");
  assert.equal(goDuration(500e6), "500ms");
  assert.equal(goDuration(1e6), "1ms");
});

test("create refuses what Docker refuses, with its texts", () => {
  const h = { test: ["CMD", "true"], interval: 0, timeout: 0, startPeriod: 0, retries: 0 };
  validateHealthcheck(h);
  validateHealthcheck({ ...h, interval: 1e6 }); // 1ms is the minimum, and allowed
  assert.throws(
    () => validateHealthcheck({ ...h, interval: 999_999 }),
    /^Error: Interval in Healthcheck cannot be less than 1ms$|Interval in Healthcheck cannot be less than 1ms/,
  );
  assert.throws(() => validateHealthcheck({ ...h, timeout: -1 }), /Timeout in Healthcheck cannot be less than 1ms/);
  assert.throws(() => validateHealthcheck({ ...h, retries: -1 }), /Retries in Healthcheck cannot be negative/);
  assert.throws(() => validateHealthcheck({ ...h, startPeriod: 5 }), /StartPeriod in Healthcheck cannot be less than 1ms/);
});

test('output: the first 4096 bytes, then "..."', () => {
  const small = new LimitedOutput();
  small.write(Buffer.from("ok\n"));
  assert.equal(small.toString(), "ok\n");
  const big = new LimitedOutput();
  big.write(Buffer.alloc(3000, "a"));
  big.write(Buffer.alloc(2000, "b"));
  const out = big.toString();
  assert.equal(out.length, 4099);
  assert.ok(out.endsWith("bbb..."));
  const exact = new LimitedOutput();
  exact.write(Buffer.alloc(4096, "c"));
  assert.equal(exact.toString().length, 4096);
});
