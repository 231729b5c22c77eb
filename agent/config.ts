import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { z } from "zod";

/**
 * The agent's configuration. Every key of the JSON config file (daemon.json style,
 * kebab-case) can also be given as a flag of the same name; flags win over the file,
 * and repeatable flags replace the file's list rather than appending to it.
 */
export const AgentConfigSchema = z.object({
  "data-root": z.string().min(1).default("/var/lib/berth"),
  "docker-socket": z.string().min(1).default("/run/berth/docker.sock"),
  "registry-mirrors": z.array(z.url()).default([]),
  "insecure-registries": z.array(z.string().min(1)).default([]),
  "log-level": z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info"),
  "exec-root": z.string().min(1).default("/run/berth"),
  bridge: z.string().regex(/^[a-zA-Z0-9_.-]{1,15}$/, "a network interface name of at most 15 characters").default("berth0"),
  "bridge-subnet": z.string().regex(/^\d+\.\d+\.\d+\.\d+\/\d+$/, "an IPv4 CIDR such as 10.209.0.0/16").default("10.209.0.0/16"),
});

export type AgentConfigFile = z.input<typeof AgentConfigSchema>;

export interface AgentConfig {
  dataRoot: string;
  dockerSocket: string;
  registryMirrors: string[];
  insecureRegistries: string[];
  logLevel: string;
  execRoot: string;
  bridge: string;
  bridgeSubnet: string;
}

export const AGENT_USAGE = `Usage: berth-agent [--config FILE] [options]

Options (each is also a key of the JSON config file):
  --data-root DIR              where images, layers and containers live (default /var/lib/berth)
  --docker-socket PATH         unix socket serving the Docker Engine API (default /run/berth/docker.sock)
  --registry-mirror URL        mirror tried first for Docker Hub images (repeatable)
  --insecure-registry HOST[:PORT]  registry reached over plain http (repeatable)
  --log-level LEVEL            trace|debug|info|warn|error (default info)
  --exec-root DIR              run-time state: runc state, network namespaces (default /run/berth)
  --bridge NAME                the default bridge (default berth0)
  --bridge-subnet CIDR         its subnet (default 10.209.0.0/16; Docker's 172.17.0.0/16 is left alone)
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
        "registry-mirror": { type: "string", multiple: true },
        "insecure-registry": { type: "string", multiple: true },
        "log-level": { type: "string" },
        "exec-root": { type: "string" },
        bridge: { type: "string" },
        "bridge-subnet": { type: "string" },
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
  if (v["registry-mirror"] !== undefined) merged["registry-mirrors"] = v["registry-mirror"];
  if (v["insecure-registry"] !== undefined) merged["insecure-registries"] = v["insecure-registry"];
  for (const key of ["log-level", "exec-root", "bridge", "bridge-subnet"] as const) if (v[key] !== undefined) merged[key] = v[key];

  const result = AgentConfigSchema.strict().safeParse(merged);
  if (!result.success) {
    const where = v.config ? ` (config file ${v.config} and flags)` : "";
    const issues = result.error.issues.map((i) => `${i.path.join(".") || "config"}: ${i.message}`).join("; ");
    throw new ConfigError(`invalid configuration${where}: ${issues}`);
  }
  const c = result.data;
  return {
    dataRoot: c["data-root"],
    dockerSocket: c["docker-socket"],
    registryMirrors: c["registry-mirrors"],
    insecureRegistries: c["insecure-registries"],
    logLevel: c["log-level"],
    execRoot: c["exec-root"],
    bridge: c.bridge,
    bridgeSubnet: c["bridge-subnet"],
  };
}
