import { realpath } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { describeHostPathRules, normalizeHostPath, ruleForHostPath, type HostPathRule } from "../../../shared/host-paths.ts";
import { invalidArgument } from "../errors.ts";
import { isErrno } from "../fs-util.ts";

/**
 * A bind source as it resolves on this host: symbolic links followed (as runc follows them
 * when it mounts), `..` applied after each link. A missing tail (Docker makes a missing
 * `-v` source) is kept as written below the deepest ancestor that exists.
 */
export async function resolveHostPath(source: string): Promise<string> {
  const normal = normalizeHostPath(source);
  if (!normal) throw invalidArgument(`invalid mount config for type "bind": invalid mount path: '${source}' mount path must be absolute`);
  let existing = normal;
  const missing: string[] = [];
  for (;;) {
    try {
      return join(await realpath(existing), ...missing.reverse());
    } catch (e) {
      if (!isErrno(e, "ENOENT") || existing === "/") throw e;
      missing.push(basename(existing));
      existing = dirname(existing);
    }
  }
}

/**
 * The bind source to mount, checked against the host paths a node group's policy allows
 * (`rules`, sent by the console with an operator's request): the path as resolved on the
 * node must fall inside a rule, and a read-only rule needs a read-only mount. The resolved
 * path is returned so that what was checked is what gets mounted. A link swapped in between
 * this check and runc's mount still wins the race; every start checks again.
 */
export async function confineBindSource(source: string, readonly: boolean, rules: readonly HostPathRule[]): Promise<string> {
  const resolved = await resolveHostPath(source);
  const rule = ruleForHostPath(resolved, rules);
  const through = resolved === normalizeHostPath(source) ? "" : ` (it resolves to ${resolved} through a symbolic link)`;
  if (!rule) {
    throw invalidArgument(`bind source ${source}${through} is outside the host paths this node's group allows operators: ${describeHostPathRules(rules)}`);
  }
  if (rule.access === "ro" && !readonly) {
    throw invalidArgument(`bind source ${source}${through} may be bound read-only only (${rule.path} is read-only in the node group's host policy): add :ro`);
  }
  return resolved;
}
