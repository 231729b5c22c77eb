/**
 * The closed set of engine errors (after containerd's errdefs). Every failure the
 * engine reports is one of these kinds, so each door (Docker API, console link)
 * maps kinds to its own status codes in exactly one place. A leaf module: the engine
 * (through agent/engine/errors.ts), the link contract and the console share it.
 */
export const ENGINE_ERROR_KINDS = [
  "InvalidArgument", // the caller sent something malformed: a bad reference, a bad tar, a bad option
  "NotFound", // the named thing does not exist (image, tag, blob, container)
  "AlreadyExists", // a name or resource is taken
  "Conflict", // the request is valid but the current state forbids it (image in use, several repositories)
  "Unauthorized", // credentials missing or refused by a registry
  "Unavailable", // a dependency (registry, kernel facility) failed or went away; retrying may help
  "DataLoss", // content failed verification: wrong digest, truncated stream
  "NotImplemented",
  "Canceled",
  "Internal",
] as const;
export type EngineErrorKind = (typeof ENGINE_ERROR_KINDS)[number];

export class EngineError extends Error {
  readonly kind: EngineErrorKind;
  constructor(kind: EngineErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = `EngineError(${kind})`;
  }
}

export const invalidArgument = (message: string, cause?: unknown) => new EngineError("InvalidArgument", message, { cause });
export const notFound = (message: string, cause?: unknown) => new EngineError("NotFound", message, { cause });
export const alreadyExists = (message: string, cause?: unknown) => new EngineError("AlreadyExists", message, { cause });
export const conflict = (message: string, cause?: unknown) => new EngineError("Conflict", message, { cause });
export const unauthorized = (message: string, cause?: unknown) => new EngineError("Unauthorized", message, { cause });
export const unavailable = (message: string, cause?: unknown) => new EngineError("Unavailable", message, { cause });
export const dataLoss = (message: string, cause?: unknown) => new EngineError("DataLoss", message, { cause });
export const notImplemented = (message: string, cause?: unknown) => new EngineError("NotImplemented", message, { cause });
export const canceled = (message: string, cause?: unknown) => new EngineError("Canceled", message, { cause });

export function isEngineError(e: unknown, kind?: EngineErrorKind): e is EngineError {
  return e instanceof EngineError && (kind === undefined || e.kind === kind);
}

/** Wraps anything thrown into an EngineError, keeping an existing kind. */
export function toEngineError(e: unknown): EngineError {
  if (e instanceof EngineError) return e;
  if (e instanceof Error && e.name === "AbortError") return canceled("operation canceled", e);
  const message = e instanceof Error ? e.message : String(e);
  return new EngineError("Internal", message, { cause: e });
}
