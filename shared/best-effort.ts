/**
 * For work whose failure changes nothing the caller must act on (a clean-up of something that
 * may already be gone, an optional refresh): `promise.catch(bestEffort(log, "remove the veth"))`.
 * The failure is logged at debug with its stack instead of vanishing, so that "why is this left
 * over" has an answer in a debug log; the promise then resolves to undefined.
 */
export interface DebugLog {
  debug(details: object, message: string): void;
}

export function bestEffort(log: DebugLog, what: string): (err: unknown) => undefined {
  return (err: unknown) => {
    log.debug({ err }, `${what} failed (ignored)`);
    return undefined;
  };
}

/**
 * Waits for `p` to settle, whatever its outcome: for a promise whose failure is already
 * reported to whoever awaits it (the tail of a queue, a commit an abort waits out), so that
 * this second waiter neither hears it again nor leaves it unhandled.
 */
export function settled(p: Promise<unknown>): Promise<void> {
  return p.then(
    () => undefined,
    () => undefined,
  );
}

/**
 * Returns `p`, marked as handled: for a promise its owner awaits later, after other awaits,
 * so that a failure meanwhile is not reported (and fatal) as an unhandled rejection. The
 * failure still reaches whoever awaits `p`.
 */
export function awaitedLater<T>(p: Promise<T>): Promise<T> {
  void settled(p);
  return p;
}
