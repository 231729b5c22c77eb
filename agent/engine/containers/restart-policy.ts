import type { RestartPolicy } from "../../../shared/container-options.ts";

/** Docker's restart back-off (moby restartmanager): 100 ms, doubled per quick failure, at most a minute. */
export const RESTART_BACKOFF_START_MS = 100;
export const RESTART_BACKOFF_MAX_MS = 60_000;
/** A container that ran at least this long starts its back-off again from 100 ms. */
export const RESTART_BACKOFF_RESET_AFTER_MS = 10_000;

export interface RestartInput {
  policy: RestartPolicy;
  /** Restarts the policy has made so far (Docker's RestartCount, before this one). */
  restartCount: number;
  exitCode: number;
  /** Stopped or killed by a user (`docker stop`, `kill`, `rm -f`): no policy restarts it. */
  manualStop: boolean;
  /** The engine is going away: nothing is restarted now (adoption at the next start decides). */
  shuttingDown: boolean;
  /** How long the container ran before this exit. */
  ranForMs: number;
  /** The delay before the previous restart of this run of quick failures; 0 for none. */
  previousDelayMs: number;
}

export type RestartDecision = { restart: false } | { restart: true; delayMs: number };

/**
 * Whether a container that exited is restarted, and after how long: moby's
 * RestartManager.ShouldRestart as a pure function. `no` never; `always` always;
 * `unless-stopped` unless stopped by hand; `on-failure[:N]` on a non-zero exit while fewer
 * than N restarts were made (N = 0: no limit). A manual stop or the engine's shutdown
 * cancels any policy. The delay starts at 100 ms and doubles with each restart, back to
 * 100 ms after a run of 10 s or more, at most one minute.
 */
export function decideRestart(input: RestartInput): RestartDecision {
  const { policy } = input;
  if (input.manualStop || input.shuttingDown) return { restart: false };
  let restart: boolean;
  switch (policy.name) {
    case "always":
    case "unless-stopped":
      restart = true;
      break;
    case "on-failure":
      restart = input.exitCode !== 0 && (policy.maximumRetryCount === 0 || input.restartCount < policy.maximumRetryCount);
      break;
    default:
      restart = false;
  }
  if (!restart) return { restart: false };
  const previous = input.ranForMs >= RESTART_BACKOFF_RESET_AFTER_MS ? 0 : input.previousDelayMs;
  const delayMs = previous === 0 ? RESTART_BACKOFF_START_MS : Math.min(RESTART_BACKOFF_MAX_MS, previous * 2);
  return { restart: true, delayMs };
}
