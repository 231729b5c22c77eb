import { posix } from "node:path";
import { z } from "zod";

/**
 * Host paths an operator may bind into containers, as a node group's host policy lists them
 * (prefixes, read-only or read-write). The console judges the path as written
 * (server/auth/host-options.ts); the agent judges it again as it resolves on the node
 * (agent/engine/containers/bind-confinement.ts), because a symbolic link inside an allowed
 * read-write prefix, made by an earlier container, can point anywhere on the host. A leaf
 * module both sides use.
 */

/**
 * `path` made absolute-canonical without touching the disk: `.` and `..` resolved
 * (never above /), `//` collapsed, no trailing slash. Null for relative paths and
 * paths with NUL bytes, which are never host paths.
 */
export function normalizeHostPath(path: string): string | null {
  if (typeof path !== "string" || !path.startsWith("/") || path.includes("\0")) return null;
  const n = posix.normalize(path);
  // normalize keeps a leading "//" (POSIX leaves its meaning to the system); Linux treats it as "/".
  const collapsed = n.replace(/^\/+/, "/");
  return collapsed.length > 1 ? collapsed.replace(/\/+$/, "") : collapsed;
}

/** True when `path` is `prefix` or below it (both normalised). */
export function isWithin(path: string, prefix: string): boolean {
  return prefix === "/" || path === prefix || path.startsWith(`${prefix}/`);
}

export const HostPathRuleSchema = z.object({
  path: z
    .string()
    .trim()
    .min(1, "a host path is required")
    .max(4096)
    .refine((p) => normalizeHostPath(p) !== null, "a host path must be absolute (start with /)")
    .transform((p) => normalizeHostPath(p) as string),
  access: z.enum(["ro", "rw"], { error: "access must be ro (read-only) or rw (read-write)" }),
});
export type HostPathRule = z.output<typeof HostPathRuleSchema>;

/** The rule that decides for `path` (normalised): the longest matching prefix, so a read-only subtree inside a read-write one holds. */
export function ruleForHostPath(path: string, rules: readonly HostPathRule[]): HostPathRule | undefined {
  return rules.filter((r) => isWithin(path, r.path)).sort((a, b) => b.path.length - a.path.length)[0];
}

/** The rules as a policy refusal names them: "/srv/data (rw), /opt/shared (ro)". */
export function describeHostPathRules(rules: readonly HostPathRule[]): string {
  return rules.length ? rules.map((r) => `${r.path} (${r.access})`).join(", ") : "none";
}
