/**
 * The one error the installer throws. `kind` says what went wrong in words the console
 * can map to a message and a remedy; `step` says where. The message never carries a
 * credential (passwords, keys, join tokens).
 */

/** Which step of an install or removal failed. */
export type StepId =
  | "connect"
  | "preflight"
  | "packages"
  | "upload"
  | "unpack"
  | "config"
  | "switch"
  | "unit"
  | "service"
  | "enroll"
  | "cleanup"
  | "inspect"
  | "stop"
  | "files"
  | "data";

export type InstallErrorKind =
  /** The host refused the user name, password, key or passphrase. */
  | "auth"
  /** The private key could not be read (malformed, or encrypted and no/wrong passphrase). */
  | "bad-key"
  /** No answer, connection refused, name does not resolve, SSH handshake timed out. */
  | "unreachable"
  /** First contact: the host's key is not pinned yet; `fingerprint` is what it presented. Confirm, pin, retry. */
  | "host-key-unknown"
  /** The host presented another key than the pinned one: refused before any credential was sent. */
  | "host-key-mismatch"
  /** OS family, architecture, package manager or init system the agent does not support. */
  | "unsupported-os"
  /** Neither root nor a working sudo (not installed, not allowed, wrong sudo password). */
  | "no-sudo"
  /** Another preflight check failed (kernel, overlayfs, cgroups, disk, Node.js, console URL). */
  | "preflight"
  /** The package manager failed to install the runtime packages. */
  | "package"
  /** A command on the host failed (upload, unpack, config, unit, service). */
  | "command"
  /** The agent did not enroll or come back online in time. */
  | "enrollment"
  /** The caller aborted the run. */
  | "canceled"
  /** Not an install or removal on this host (bad options, no install found to remove). */
  | "invalid";

export class InstallError extends Error {
  override name = "InstallError";
  /** For host-key errors: what the host presented. */
  readonly fingerprint?: string;
  /** For host-key-mismatch: the pinned fingerprint. */
  readonly expectedFingerprint?: string;
  /** Undo actions that themselves failed while rolling back this run (empty when the rollback was clean). */
  rollbackFailures: string[] = [];

  constructor(
    readonly step: StepId,
    readonly kind: InstallErrorKind,
    message: string,
    options: { cause?: unknown; fingerprint?: string; expectedFingerprint?: string } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (options.fingerprint !== undefined) this.fingerprint = options.fingerprint;
    if (options.expectedFingerprint !== undefined) this.expectedFingerprint = options.expectedFingerprint;
  }
}

export function isInstallError(e: unknown): e is InstallError {
  return e instanceof InstallError;
}
