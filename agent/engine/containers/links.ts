/**
 * Legacy links (`--link NAME[:ALIAS]`) on the default bridge, as Docker applies them at start
 * (moby daemon/links/links.go and the sandbox's extra hosts): the linked container must be
 * running; the linking container gets a hosts entry for it (alias, hostname, name) and the
 * environment variables ALIAS_PORT, ALIAS_PORT_80_TCP(_ADDR|_PORT|_PROTO), ALIAS_NAME and
 * ALIAS_ENV_<var> for the linked container's environment (but HOME and PATH).
 */
import { invalidArgument } from "../errors.ts";
import { containerEnv } from "../../../shared/env.ts";
import type { ContainerRecord } from "./container-record.ts";

export interface LinkedContainer {
  /** Without the leading "/". */
  name: string;
  hostname: string;
  /** On the default bridge. */
  ip: string;
  /** "80/tcp", "53/udp": its exposed and published ports. */
  ports: string[];
  /** Its environment (image's merged with its own). */
  env: string[];
}

/** "redis:db" → {name: "redis", alias: "db"}; "redis" → alias "redis". Docker's error for an empty part. */
export function parseLink(spec: string): { name: string; alias: string } {
  const i = spec.indexOf(":");
  const name = (i < 0 ? spec : spec.slice(0, i)).replace(/^\//, "");
  const alias = (i < 0 ? name : spec.slice(i + 1)).replace(/^.*\//, "");
  if (!name || !alias) throw invalidArgument(`invalid link format: ${spec}`);
  return { name, alias };
}

/** The hosts file entries ("NAME:IP", as --add-host's) the link adds. */
export function linkHosts(alias: string, c: LinkedContainer): string[] {
  return [...new Set([alias, c.hostname, c.name])].map((n) => `${n}:${c.ip}`);
}

/** Docker's legacy link variables, in its order. `parent` is the linking container's name. */
export function linkEnv(parent: string, alias: string, c: LinkedContainer): string[] {
  const prefix = alias.toUpperCase().replace(/-/g, "_");
  const ports = c.ports
    .map((p) => {
      const [port = "", proto = "tcp"] = p.split("/");
      return { port: Number(port), proto };
    })
    .filter((p) => Number.isInteger(p.port) && p.port > 0)
    .sort((a, b) => a.port - b.port || a.proto.localeCompare(b.proto));
  const unique = ports.filter((p, i) => ports.findIndex((q) => q.port === p.port && q.proto === p.proto) === i);
  const env: string[] = [];
  // The lowest TCP port (any port if none is TCP) is the default one.
  const def = unique.find((p) => p.proto === "tcp") ?? unique[0];
  if (def) env.push(`${prefix}_PORT=${def.proto}://${c.ip}:${def.port}`);
  for (const p of unique) {
    const key = `${prefix}_PORT_${p.port}_${p.proto.toUpperCase()}`;
    env.push(`${key}=${p.proto}://${c.ip}:${p.port}`, `${key}_ADDR=${c.ip}`, `${key}_PORT=${p.port}`, `${key}_PROTO=${p.proto}`);
  }
  env.push(`${prefix}_NAME=/${parent}/${alias}`);
  for (const kv of c.env) {
    const i = kv.indexOf("=");
    if (i < 0) continue;
    const k = kv.slice(0, i);
    if (k === "HOME" || k === "PATH") continue;
    env.push(`${prefix}_ENV_${k}=${kv.slice(i + 1)}`);
  }
  return env;
}

/** The hosts entries and variables of a container's links; none off the default bridge (Docker's user networks resolve names instead). */
export async function resolveLinks(
  record: ContainerRecord,
  lookup: (name: string) => ContainerRecord,
  imageConfig: (imageId: string) => Promise<{ Env?: string[] | null; ExposedPorts?: Record<string, unknown> | null } | undefined>,
): Promise<{ hosts: string[]; env: string[] }> {
  const out = { hosts: [] as string[], env: [] as string[] };
  const mode = record.options.networkMode;
  if (record.options.links.length === 0 || (mode !== "default" && mode !== "bridge") || (record.networks ?? []).some((n) => n.name !== "bridge")) return out;
  for (const spec of record.options.links) {
    const { name, alias } = parseLink(spec);
    let target: ContainerRecord;
    try {
      target = lookup(name);
    } catch (e) {
      throw invalidArgument(`could not get container for ${name}`, e);
    }
    const ip = target.endpoints.find((e) => e.networkName === "bridge")?.ipAddress;
    if (target.state.status !== "running" || !ip) throw invalidArgument(`Cannot link to a non running container: /${target.name} AS /${record.name}/${alias}`);
    const image = await imageConfig(target.imageId);
    const linked: LinkedContainer = {
      name: target.name,
      hostname: target.options.hostname || target.id.slice(0, 12),
      ip,
      ports: [
        ...Object.keys(image?.ExposedPorts ?? {}),
        ...target.options.exposedPorts,
        ...target.options.ports.map((p) => `${p.containerPort}/${p.protocol}`),
      ].map((p) => (p.includes("/") ? p : `${p}/tcp`)),
      env: containerEnv(image?.Env, target.options.env),
    };
    out.hosts.push(...linkHosts(alias, linked));
    out.env.push(...linkEnv(record.name, alias, linked));
  }
  return out;
}
