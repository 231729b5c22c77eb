// The restart decision against Docker's documented behaviour (docs "Start containers
// automatically", moby restartmanager): no, always, unless-stopped, on-failure[:N], and the
// back-off that doubles from 100 ms, resets after 10 s of running, and stops at a minute.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decideRestart, type RestartDecision, type RestartInput } from "./restart-policy.ts";

const base: RestartInput = {
  policy: { name: "no", maximumRetryCount: 0 },
  restartCount: 0,
  exitCode: 1,
  manualStop: false,
  shuttingDown: false,
  ranForMs: 50,
  previousDelayMs: 0,
};
const now = (delayMs = 100): RestartDecision => ({ restart: true, delayMs });
const no: RestartDecision = { restart: false };

const cases: Array<[string, Partial<RestartInput>, RestartDecision]> = [
  ["no: never, failing", {}, no],
  ["no: never, exit 0", { exitCode: 0 }, no],
  ["always: after a failure", { policy: { name: "always", maximumRetryCount: 0 } }, now()],
  ["always: after exit 0", { policy: { name: "always", maximumRetryCount: 0 }, exitCode: 0 }, now()],
  ["always: not after a manual stop", { policy: { name: "always", maximumRetryCount: 0 }, manualStop: true }, no],
  ["always: not while the engine shuts down", { policy: { name: "always", maximumRetryCount: 0 }, shuttingDown: true }, no],
  ["unless-stopped: after exit 0", { policy: { name: "unless-stopped", maximumRetryCount: 0 }, exitCode: 0 }, now()],
  ["unless-stopped: after a failure", { policy: { name: "unless-stopped", maximumRetryCount: 0 }, exitCode: 137 }, now()],
  ["unless-stopped: not after a manual stop", { policy: { name: "unless-stopped", maximumRetryCount: 0 }, manualStop: true }, no],
  ["on-failure: after a non-zero exit", { policy: { name: "on-failure", maximumRetryCount: 0 } }, now()],
  ["on-failure: not after exit 0", { policy: { name: "on-failure", maximumRetryCount: 0 }, exitCode: 0 }, no],
  [
    "on-failure (no limit): after many restarts",
    { policy: { name: "on-failure", maximumRetryCount: 0 }, restartCount: 1000, previousDelayMs: 60_000 },
    now(60_000),
  ],
  ["on-failure:3: the third restart", { policy: { name: "on-failure", maximumRetryCount: 3 }, restartCount: 2, previousDelayMs: 200 }, now(400)],
  ["on-failure:3: no fourth", { policy: { name: "on-failure", maximumRetryCount: 3 }, restartCount: 3, previousDelayMs: 400 }, no],
  ["on-failure:3: not after a manual stop", { policy: { name: "on-failure", maximumRetryCount: 3 }, manualStop: true }, no],
  ["back-off: doubles after a quick failure", { policy: { name: "always", maximumRetryCount: 0 }, previousDelayMs: 100 }, now(200)],
  ["back-off: keeps doubling", { policy: { name: "always", maximumRetryCount: 0 }, previousDelayMs: 25_600 }, now(51_200)],
  ["back-off: at most a minute", { policy: { name: "always", maximumRetryCount: 0 }, previousDelayMs: 51_200 }, now(60_000)],
  ["back-off: stays at a minute", { policy: { name: "always", maximumRetryCount: 0 }, previousDelayMs: 60_000 }, now(60_000)],
  [
    "back-off: from 100 ms again after 10 s of running",
    { policy: { name: "always", maximumRetryCount: 0 }, previousDelayMs: 60_000, ranForMs: 10_000 },
    now(100),
  ],
  ["back-off: not reset by 9.9 s of running", { policy: { name: "always", maximumRetryCount: 0 }, previousDelayMs: 800, ranForMs: 9_900 }, now(1600)],
];

for (const [name, input, expected] of cases) {
  test(`decideRestart: ${name}`, () => {
    assert.deepEqual(decideRestart({ ...base, ...input }), expected);
  });
}

test("decideRestart: a container failing fast waits 100, 200, 400 … ms, as Docker's restart manager", () => {
  const delays: number[] = [];
  let previousDelayMs = 0;
  for (let restartCount = 0; restartCount < 12; restartCount++) {
    const d = decideRestart({ ...base, policy: { name: "always", maximumRetryCount: 0 }, restartCount, previousDelayMs });
    assert.ok(d.restart);
    delays.push(d.delayMs);
    previousDelayMs = d.delayMs;
  }
  assert.deepEqual(delays, [100, 200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 51_200, 60_000, 60_000]);
});
