import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { z } from "zod";
import { RUNTIME_NAMES, type RuntimeName } from "./engine/runtime/runtimes.ts";
import { normalizeFingerprint } from "./link/pinned-tls.ts";

function isFingerprint(value: string): boolean {
  try {
    normalizeFingerprint(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * The agent's configuration. Every key of the JSON config file (daemon.json style,
 * kebab-case) can also be given as a flag of the same name; flags win over the file,
 * and repeatable flags replace the file's list rather than appending to it.
 */
export const AgentConfigSchema = z.object({
  "data-root": z.string().min(1).default("/var/lib/berth"),
  "docker-socket": z.string().min(1).default("/run/berth/docker.sock"),
  "docker-socket-group": z
    .string()
    .regex(/^[a-z_][a-z0-9_-]*\$?$|^\d+$/, "a group name or a numeric gid")
    .optional(),
  "registry-mirrors": z.array(z.url()).default([]),
  "insecure-registries": z.array(z.string().min(1)).default([]),
  "registry-stall-timeout": z.coerce.number().positive("a number of seconds greater than 0").max(3600).default(30),
  "log-level": z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info"),
  "exec-root": z.string().min(1).default("/run/berth"),
  runtime: z.enum(RUNTIME_NAMES, { error: `one of ${RUNTIME_NAMES.join(", ")}` }).default("runc"),
  bridge: z
    .string()
    .regex(/^[a-zA-Z0-9_.-]{1,15}$/, "a network interface name of at most 15 characters")
    .default("berth0"),
  "bridge-subnet": z
    .string()
    .regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/, "an IPv4 CIDR such as 10.209.0.0/16")
    .default("10.209.0.0/16"),
  "console-url": z.url({ protocol: /^(https?|wss?)$/, error: "an http(s):// or ws(s):// URL of the console" }).optional(),
  "join-token": z.string().min(8, "a join token from the console").optional(),
  "credential-file": z.string().min(1).default("/etc/berth/node-credential"),
  "console-fingerprint": z.string().refine(isFingerprint, "a SHA-256 certificate fingerprint: 64 hex digits, colons allowed").optional(),
  /** A supervisor other than systemd starts the agent again when it exits (systemd is seen by itself). */
  supervised: z.boolean().default(false),
});

export type AgentConfigFile = z.input<typeof AgentConfigSchema>;

export interface AgentConfig {
  dataRoot: string;
  dockerSocket: string;
  /** A group whose members may use the Docker API socket (root only when unset). */
  dockerSocketGroup?: string;
  registryMirrors: string[];
  insecureRegistries: string[];
  /** Milliseconds a registry may go without progress on a request or body before it fails. */
  registryStallTimeoutMs: number;
  logLevel: string;
  execRoot: string;
  /** The OCI runtime every container runs with. */
  runtime: RuntimeName;
  bridge: string;
  bridgeSubnet: string;
  /**
   * What starts the agent again when it exits: "systemd" (a unit: INVOCATION_ID is set),
   * "supervisor" (--supervised), or null. The console's "Restart agent" needs one.
   */
  supervisor: "systemd" | "supervisor" | null;
  /** Present only when a console URL is configured. */
  link?: LinkConfig;
}

/** How the agent reaches its console (the agent link). */
export interface LinkConfig {
  consoleUrl: string;
  joinToken?: string;
  credentialFile: string;
  consoleFingerprint?: string;
}

export const AGENT_USAGE = `Usage: berth-agent [--config FILE] [options]

Options (each is also a key of the JSON config file):
  --data-root DIR              where images, layers and containers live (default /var/lib/berth)
  --docker-socket PATH         unix socket serving the Docker Engine API (default /run/berth/docker.sock)
  --docker-socket-group GROUP  members of GROUP may use that socket (default: root only). Whoever can use
                               it can run a privileged container, so GROUP is as good as root on this host
  --registry-mirror URL        mirror tried first for Docker Hub images (repeatable)
  --insecure-registry HOST[:PORT]  registry reached over plain http (repeatable)
  --registry-stall-timeout SECONDS  a registry request or download without progress for this long fails (default 30)
  --log-level LEVEL            trace|debug|info|warn|error (default info)
  --exec-root DIR              run-time state: runc state, network namespaces (default /run/berth)
  --runtime runc|crun          the OCI runtime containers run with (default runc; crun needs a host
                               without hybrid cgroups: the agent says at start why it cannot use one)
  --bridge NAME                the default bridge (default berth0)
  --bridge-subnet CIDR         its subnet (default 10.209.0.0/16; Docker's 172.17.0.0/16 is left alone)
  --console-url URL            the Berth console to dial (https://console:8443); none: no console link
  --join-token TOKEN           one-time token to enroll this node (used only while there is no credential file)
  --credential-file PATH       where the node credential is kept, mode 0600 (default /etc/berth/node-credential)
  --console-fingerprint SHA256 accept only the console certificate with this SHA-256 fingerprint
  --supervised                 a supervisor (other than systemd, which is detected) starts the agent again
                               when it exits: the console may then ask it to restart itself
  --help                       show this text
`;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Reads the config from argv (and the file named by --config). Throws ConfigError with a readable message. */
export function loadAgentConfig(argv: string[]): AgentConfig | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: "string" },
        "data-root": { type: "string" },
        "docker-socket": { type: "string" },
        "docker-socket-group": { type: "string" },
        "registry-mirror": { type: "string", multiple: true },
        "insecure-registry": { type: "string", multiple: true },
        "registry-stall-timeout": { type: "string" },
        "log-level": { type: "string" },
        "exec-root": { type: "string" },
        runtime: { type: "string" },
        bridge: { type: "string" },
        "bridge-subnet": { type: "string" },
        "console-url": { type: "string" },
        "join-token": { type: "string" },
        "credential-file": { type: "string" },
        "console-fingerprint": { type: "string" },
        supervised: { type: "boolean" },
        help: { type: "boolean" },
      },
    });
  } catch (e) {
    throw new ConfigError(`${(e as Error).message}\n\n${AGENT_USAGE}`);
  }
  const v = parsed.values;
  if (v.help) return "help";

  let fromFile: Record<string, unknown> = {};
  if (v.config !== undefined) {
    let text: string;
    try {
      text = readFileSync(v.config, "utf8");
    } catch (e) {
      throw new ConfigError(`cannot read config file ${v.config}: ${(e as Error).message}`);
    }
    try {
      fromFile = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError(`config file ${v.config} is not valid JSON: ${(e as Error).message}`);
    }
  }
  const merged: Record<string, unknown> = { ...fromFile };
  if (v["data-root"] !== undefined) merged["data-root"] = v["data-root"];
  if (v["docker-socket"] !== undefined) merged["docker-socket"] = v["docker-socket"];
  if (v["docker-socket-group"] !== undefined) merged["docker-socket-group"] = v["docker-socket-group"];
  if (v["registry-mirror"] !== undefined) merged["registry-mirrors"] = v["registry-mirror"];
  if (v["insecure-registry"] !== undefined) merged["insecure-registries"] = v["insecure-registry"];
  if (v.supervised !== undefined) merged.supervised = v.supervised;
  for (const key of [
    "registry-stall-timeout",
    "log-level",
    "exec-root",
    "runtime",
    "bridge",
    "bridge-subnet",
    "console-url",
    "join-token",
    "credential-file",
    "console-fingerprint",
  ] as const)
    if (v[key] !== undefined) merged[key] = v[key];

  const result = AgentConfigSchema.strict().safeParse(merged);
  if (!result.success) {
    const where = v.config ? ` (config file ${v.config} and flags)` : "";
    const issues = result.error.issues.map((i) => `${i.path.join(".") || "config"}: ${i.message}`).join("; ");
    throw new ConfigError(`invalid configuration${where}: ${issues}`);
  }
  const c = result.data;
  const consoleUrl = c["console-url"];
  if (consoleUrl === undefined) {
    for (const key of ["join-token", "console-fingerprint"] as const) {
      if (c[key] !== undefined) throw new ConfigError(`invalid configuration: ${key} needs console-url`);
    }
  } else if (c["console-fingerprint"] !== undefined && !/^(https|wss):/.test(consoleUrl)) {
    throw new ConfigError("invalid configuration: console-fingerprint pins a TLS certificate, so console-url must be https:// or wss://");
  }
  const config: AgentConfig = {
    dataRoot: c["data-root"],
    dockerSocket: c["docker-socket"],
    ...(c["docker-socket-group"] !== undefined ? { dockerSocketGroup: c["docker-socket-group"] } : {}),
    registryMirrors: c["registry-mirrors"],
    insecureRegistries: c["insecure-registries"],
    registryStallTimeoutMs: Math.round(c["registry-stall-timeout"] * 1000),
    logLevel: c["log-level"],
    execRoot: c["exec-root"],
    runtime: c.runtime,
    bridge: c.bridge,
    bridgeSubnet: c["bridge-subnet"],
    // systemd sets INVOCATION_ID for the processes of a unit it runs (and restarts: Restart=always).
    supervisor: process.env.INVOCATION_ID ? "systemd" : c.supervised ? "supervisor" : null,
  };
  if (consoleUrl !== undefined) {
    config.link = { consoleUrl, credentialFile: c["credential-file"] };
    if (c["join-token"] !== undefined) config.link.joinToken = c["join-token"];
    if (c["console-fingerprint"] !== undefined) config.link.consoleFingerprint = c["console-fingerprint"];
  }
  return config;
}

/**
 * The iptables chain prefix of the agent's bridge: "BERTH" for the default bridge, the
 * bridge name in capitals otherwise, so a second agent on one host (tests) never touches
 * the default agent's chains. The agent and its node-side teardown both derive it here.
 */
export function chainPrefixOf(bridge: string): string {
  return bridge === "berth0" ? "BERTH" : bridge.toUpperCase().replace(/[^A-Z0-9]/g, "");
}
