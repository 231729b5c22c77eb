/**
 * Host-level container options: what lets a container reach past its own sandbox into
 * the node (a bind mount of a host path, the host's network, PID, IPC or UTS namespace,
 * --privileged, added capabilities, devices, security options, sysctls, another
 * container's namespaces or volumes). Any of them turns "may run containers" into "is
 * root on the node": `-v /:/host` writes the host's files as uid 0. So they are the
 * admin's by default, and operators get only what their node group's host policy
 * grants (host path prefixes, read-only or read-write, and the host network).
 *
 * This module is pure: it reads a request (the link's `container.create` options, or
 * any job step's params) and says which options a policy refuses, each naming the
 * option, its value and the setting that would allow it. The server calls it for every
 * job step before the job exists (server/trpc/routers/jobs.ts startJob), so no way of
 * making a container can skip it; the UI only mirrors it.
 *
 * Options the console does not know yet (a field added to the create options later)
 * are refused for operators until they are classified here: failing closed is the
 * point (test/console-authz.test.ts checks that every field of the contract is known).
 */
import { z } from "zod";
import { HostPathRuleSchema, isWithin, normalizeHostPath, ruleForHostPath } from "../../shared/host-paths.ts";

export { isWithin, normalizeHostPath };

export const BindRuleSchema = HostPathRuleSchema;
export type BindRule = z.output<typeof BindRuleSchema>;

export const HostPolicyRulesSchema = z.object({
  allowHostNetwork: z.boolean().default(false),
  bindMounts: z.array(BindRuleSchema).max(64, "at most 64 host paths").default([]),
});
export type HostPolicyRules = z.output<typeof HostPolicyRulesSchema>;

/** No host access: nodes without a group, groups without a policy. */
export const NO_HOST_ACCESS: HostPolicyRules = Object.freeze({ allowHostNetwork: false, bindMounts: [] });

/** Where an admin grants what operators may use (named in refusals). */
export const POLICY_SETTING = "Admin → Security → Host access";

export interface HostOptionUse {
  /** The docker-run spelling: `--volume`, `--network`, `--privileged`… */
  option: string;
  /** The value as given, for the message and the audit log. */
  value: string;
}

export interface HostOptionRefusal extends HostOptionUse {
  /** Why, and which setting would allow it. */
  reason: string;
}

/**
 * Fields of a container request that never reach past the container: resources,
 * command, environment, ports, names, restart policy. Everything else is either
 * checked below or refused for operators.
 */
const ORDINARY_FIELDS = new Set([
  "name",
  "image",
  "cmd",
  "entrypoint",
  "env",
  "workingDir",
  "user",
  "hostname",
  "domainname",
  "labels",
  "tty",
  "openStdin",
  "stdinOnce",
  "exposedPorts",
  "stopSignal",
  "stopTimeout",
  "ports",
  "publishAll",
  "aliases",
  "restartPolicy",
  "autoRemove",
  "memory",
  "memorySwap",
  "nanoCpus",
  "cpuShares",
  "cpusetCpus",
  "pidsLimit",
  "readonlyRootfs",
  "capDrop",
  "noNewPrivileges",
  "shmSize",
  "consoleSize",
  "init",
  "tmpfs",
  "groupAdd",
  "healthcheck",
  "logConfig",
  "macAddress",
  "stopTimeoutSeconds",
  // "host" (Docker's default on cgroup v1 hosts) or "private": neither reaches past the container.
  "cgroupns",
  "cpuQuota",
  "cpuPeriod",
  "attachStdin",
  "attachStdout",
  "attachStderr",
  // The engine accepts only Linux's one isolation and the local volume driver.
  "isolation",
  "volumeDriver",
  "memorySwappiness",
  // Lines of the container's own hosts file.
  "extraHosts",
  // The container's own resolv.conf.
  "dns",
  "dnsSearch",
  "dnsOptions",
]);

/** Fields the console sets itself when it sends a step (server/jobs/job-service.ts), whatever the request held. */
const CONSOLE_SET_FIELDS = new Set(["hostPathRules"]);

/** Fields this module reads and judges (see hostOptionUses). */
const JUDGED_FIELDS = new Set([
  "networkMode",
  "network",
  "networks",
  "mounts",
  "binds",
  "privileged",
  "capAdd",
  "devices",
  "deviceCgroupRules",
  "securityOpt",
  "seccompProfile",
  "maskedPaths",
  "readonlyPaths",
  "sysctls",
  "pidMode",
  "ipcMode",
  "utsMode",
  "cgroupnsMode",
  "usernsMode",
  "volumesFrom",
  // A legacy link hands the linked container's environment (its secrets too) to this one.
  "links",
  "cgroupParent",
  "runtime",
  // Without a memory limit a container the OOM killer may not touch can take the node's memory.
  "oomKillDisable",
]);

/** The fields of a container request this module knows (ordinary or judged). */
export function isClassifiedField(field: string): boolean {
  return ORDINARY_FIELDS.has(field) || JUDGED_FIELDS.has(field) || CONSOLE_SET_FIELDS.has(field);
}

/** Set to something other than its harmless default. */
function isSet(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === "" || v === 0) return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v as object).length > 0;
  return true;
}

function show(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

interface BindUse {
  source: string;
  destination: string;
  readonly: boolean;
}

/** Bind mounts of a request: the link's `mounts` (type bind) and Docker-style `binds` strings. */
function bindsOf(params: Record<string, unknown>): BindUse[] {
  const out: BindUse[] = [];
  if (Array.isArray(params.mounts)) {
    for (const m of params.mounts as Array<Record<string, unknown>>) {
      if (!m || typeof m !== "object") continue;
      if (m.type === "volume" || m.type === "tmpfs") continue;
      // Anything else with a source (bind, or a type this module does not know) is judged as a bind.
      out.push({ source: String(m.source ?? ""), destination: String(m.destination ?? m.target ?? ""), readonly: m.readonly === true || m.readOnly === true });
    }
  }
  if (Array.isArray(params.binds)) {
    for (const b of params.binds) {
      const [source = "", destination = "", mode = ""] = String(b).split(":");
      if (!source.startsWith("/")) continue; // a named volume
      out.push({ source, destination, readonly: mode.split(",").includes("ro") });
    }
  }
  return out;
}

/** Namespace modes that share the host's or another container's: `host`, `container:<id>`. */
function sharesNamespace(mode: unknown): boolean {
  return typeof mode === "string" && (mode === "host" || mode.startsWith("container:"));
}

/**
 * What a request asks of the host, each as the docker-run option a user would
 * recognise. `container` says the params create a container (then unknown fields
 * count too); other job steps are read only for the known host-level fields.
 */
export function hostOptionUses(params: Record<string, unknown>, container: boolean): Array<HostOptionUse & { bind?: BindUse; hostNetwork?: true }> {
  const uses: Array<HostOptionUse & { bind?: BindUse; hostNetwork?: true }> = [];
  for (const b of bindsOf(params)) uses.push({ option: "--volume", value: `${b.source}:${b.destination}${b.readonly ? ":ro" : ""}`, bind: b });
  // A volume-create step: a local volume whose driver options bind a host path is that bind.
  if (params.driverOpts && typeof params.driverOpts === "object") {
    const b = volumeOptionsAsBind(params.driverOpts as Record<string, string>);
    if (b) uses.push({ option: "--opt", value: `device=${b.source}${b.readonly ? " (ro)" : ""}`, bind: b });
  }
  // The networks a container joins (NetworkingConfig): named like --network, so judged like it.
  const joined = Array.isArray(params.networks) ? params.networks.map((n) => (n && typeof n === "object" ? (n as { name?: unknown }).name : undefined)) : [];
  for (const mode of new Set([params.networkMode, params.network, ...joined])) {
    if (mode === "host") uses.push({ option: "--network", value: "host", hostNetwork: true });
    else if (typeof mode === "string" && mode.startsWith("container:")) uses.push({ option: "--network", value: mode });
  }
  for (const [field, option] of [
    ["pidMode", "--pid"],
    ["ipcMode", "--ipc"],
    ["utsMode", "--uts"],
    ["cgroupnsMode", "--cgroupns"],
    ["usernsMode", "--userns"],
  ] as const) {
    if (sharesNamespace(params[field])) uses.push({ option, value: String(params[field]) });
  }
  if (params.privileged === true) uses.push({ option: "--privileged", value: "true" });
  for (const [field, option] of [
    ["capAdd", "--cap-add"],
    ["devices", "--device"],
    ["deviceCgroupRules", "--device-cgroup-rule"],
    ["sysctls", "--sysctl"],
    ["volumesFrom", "--volumes-from"],
    ["links", "--link"],
    ["cgroupParent", "--cgroup-parent"],
    ["runtime", "--runtime"],
    ["oomKillDisable", "--oom-kill-disable"],
  ] as const) {
    // runc is the engine's default runtime: naming it changes nothing.
    if (field === "runtime" && params[field] === "runc") continue;
    if (isSet(params[field])) uses.push({ option, value: show(params[field]) });
  }
  if (isSet(params.securityOpt)) {
    // no-new-privileges only takes power away; anything else (seccomp, apparmor, label) can give it back.
    const opts = (Array.isArray(params.securityOpt) ? params.securityOpt : [params.securityOpt]).map(String);
    const widening = opts.filter((o) => !/^no-new-privileges(?:[=:]true)?$/.test(o));
    if (widening.length) uses.push({ option: "--security-opt", value: widening.join(",") });
  }
  // Any profile but the default one (unconfined, or one of the user's) can only widen what Docker allows.
  if (params.seccompProfile !== undefined && params.seccompProfile !== null)
    uses.push({ option: "--security-opt", value: `seccomp=${String(params.seccompProfile).slice(0, 60)}` });
  // Present at all (even empty) replaces Docker's masked and read-only /proc and /sys paths.
  for (const field of ["maskedPaths", "readonlyPaths"] as const) {
    if (params[field] !== undefined && params[field] !== null) uses.push({ option: "--security-opt", value: `systempaths=unconfined (${field})` });
  }
  if (container) {
    for (const [field, value] of Object.entries(params)) {
      if (!isClassifiedField(field) && isSet(value)) uses.push({ option: field, value: show(value) });
    }
  }
  return uses;
}

/**
 * The options in `params` that `rules` does not allow for an operator (empty: all
 * allowed). Admins are not asked: they may use every option.
 */
export function refusedHostOptions(
  params: Record<string, unknown>,
  rules: HostPolicyRules,
  opts: { container: boolean; groupName?: string | null },
): HostOptionRefusal[] {
  const where = opts.groupName ? `node group "${opts.groupName}"` : "the node's group (this node is in no group)";
  const out: HostOptionRefusal[] = [];
  for (const use of hostOptionUses(params, opts.container)) {
    if (use.bind) {
      const path = normalizeHostPath(use.bind.source);
      if (!path) {
        out.push({ option: use.option, value: use.value, reason: "the host path must be absolute" });
        continue;
      }
      const rule = ruleForHostPath(path, rules.bindMounts);
      if (!rule) {
        out.push({ ...use, reason: `binds host path ${path}, which the host policy of ${where} does not list; an admin may allow it in ${POLICY_SETTING}` });
      } else if (rule.access === "ro" && !use.bind.readonly) {
        out.push({
          ...use,
          reason: `host path ${path} may be bound read-only only (${rule.path} is read-only in the host policy of ${where}): add :ro, or ask an admin to change ${POLICY_SETTING}`,
        });
      }
      continue;
    }
    if (use.hostNetwork) {
      if (!rules.allowHostNetwork) out.push({ ...use, reason: `uses the host's network; the host policy of ${where} does not allow it (${POLICY_SETTING})` });
      continue;
    }
    out.push({
      ...use,
      reason: use.option.startsWith("--")
        ? "is a host-level option: only admins may use it (no host policy grants it to operators)"
        : "is a container option the console does not classify yet: only admins may use it",
    });
  }
  return out;
}

/** One message for a refusal: every refused option with its reason. */
export function hostOptionsMessage(refusals: readonly HostOptionRefusal[]): string {
  return `refused for the operator role: ${refusals.map((r) => `${r.option} ${JSON.stringify(r.value)} ${r.reason}`).join("; ")}`;
}

/**
 * Volume driver options that make a named volume a bind mount in disguise
 * (`--opt type=none --opt o=bind --opt device=/`): for a volume-create procedure to
 * judge like a bind of `device`.
 */
export function volumeOptionsAsBind(driverOpts: Record<string, string> | undefined): BindUse | null {
  if (!driverOpts) return null;
  const o = (driverOpts.o ?? "").split(",");
  if (!driverOpts.device || !(o.includes("bind") || o.includes("rbind") || driverOpts.type === "none")) return null;
  return { source: driverOpts.device, destination: "", readonly: o.includes("ro") };
}
