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
