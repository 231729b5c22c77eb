/**
 * The audit log: every mutation and every exec session, with who, when, what, on
 * which nodes and how it ended. Entries are written only through recordAudit(),
 * which passes `details` through redactSecrets() so that no password, token,
 * credential or key reaches the table, whatever a caller puts in.
 */
import type { PrismaClient } from "./generated/client.ts";
import type { AuditOutcome } from "./generated/enums.ts";
import type { InputJsonObject, InputJsonValue } from "./generated/internal/prismaNamespace.ts";

export interface AuditEntry {
  /** The acting user; null/absent for the system or an agent. */
  actorUserId?: string | null;
  /** Who, as shown: the user's email at the time, "system", "node:<id>". */
  actorLabel: string;
  /** What, as a dotted verb: "image.pull", "container.exec", "user.create". */
  action: string;
  targetNodeIds?: readonly string[];
  outcome: AuditOutcome;
  /** Parameters and results worth keeping; secrets are removed before writing. */
  details?: Record<string, unknown>;
  ip?: string | null;
}

export const REDACTED = "[redacted]";

/** Keys whose values are secrets, whatever they hold. */
const SECRET_KEY =
  /passw|passphrase|^pass$|pwd|secret|token|credential|authori[sz]ation|^auth$|cookie|api[-_]?key|private[-_]?key|^key$|signature|^recoveryCodes?$|^code$|^otp$/i;
/** Values that are secrets wherever they appear: our bearer secrets, HTTP auth headers, PEM keys, URLs with a password. */
const SECRET_VALUE = [
  /\b(bjt|bnc|bst)_[A-Za-z0-9_-]{20,}/g,
  /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g,
];
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@:]*):([^\s/@]*)@/gi;

const MAX_DEPTH = 8;
const MAX_STRING = 4096;
const MAX_ITEMS = 500;

function redactString(s: string): string {
  let out = s;
  for (const re of SECRET_VALUE) out = out.replace(re, REDACTED);
  out = out.replace(URL_USERINFO, (_m, scheme: string, user: string) => `${scheme}${user}:${REDACTED}@`);
  return out.length > MAX_STRING ? `${out.slice(0, MAX_STRING)}…(${out.length - MAX_STRING} more characters)` : out;
}

/**
 * A JSON-safe copy of `value` with secrets replaced by "[redacted]": values under
 * secret-looking keys, bearer tokens, auth headers, private keys and URL passwords
 * inside strings. Also bounds depth, string length and array length, and drops
 * undefined, functions and symbols.
 */
export function redactSecrets(value: unknown, depth = 0): InputJsonValue | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return redactString(value);
  if (typeof value === "number") return Number.isFinite(value) ? value : String(value);
  if (typeof value === "boolean") return value;
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Date) return value.toISOString();
  if (typeof value !== "object") return null;
  if (depth >= MAX_DEPTH) return "[too deep]";
  if (Array.isArray(value)) return value.slice(0, MAX_ITEMS).map((v) => redactSecrets(v, depth + 1));
  const out: Record<string, InputJsonValue | null> = {};
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined || typeof v === "function" || typeof v === "symbol") continue;
    out[k] = SECRET_KEY.test(k) && v !== null && v !== "" ? REDACTED : redactSecrets(v, depth + 1);
  }
  return out as InputJsonObject;
}

/** Writes one audit entry. */
export async function recordAudit(prisma: PrismaClient, entry: AuditEntry): Promise<void> {
  await prisma.auditLog.create({
    data: {
      actorUserId: entry.actorUserId ?? null,
      actorLabel: entry.actorLabel,
      action: entry.action,
      targetNodeIds: [...(entry.targetNodeIds ?? [])],
      outcome: entry.outcome,
      details: (redactSecrets(entry.details ?? {}) ?? {}) as InputJsonObject,
      ip: entry.ip ?? null,
    },
  });
}
