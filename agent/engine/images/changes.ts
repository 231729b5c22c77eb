import { invalidArgument } from "../errors.ts";
import type { ContainerConfig } from "./image-config.ts";
import { mergeEnv } from "../../../shared/env.ts";

/**
 * Applies Dockerfile-style `--change` instructions (docker import -c, docker commit -c)
 * to a container config: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR,
 * STOPSIGNAL, ONBUILD. Returns a new config.
 * @throws InvalidArgument naming the instruction that is not allowed or malformed
 */
export function applyChanges(base: ContainerConfig, changes: readonly string[]): ContainerConfig {
  const config: ContainerConfig = structuredClone(base);
  for (const raw of changes) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^(\S+)\s*(.*)$/s.exec(line);
    const instruction = m![1]!.toUpperCase();
    const rest = m![2]!.trim();
    switch (instruction) {
      case "CMD":
        config.Cmd = execOrShell(rest, instruction);
        break;
      case "ENTRYPOINT":
        config.Entrypoint = execOrShell(rest, instruction);
        break;
      case "ENV":
        config.Env = mergeEnv(
          config.Env ?? [],
          keyValues(rest, instruction).map(([k, v]) => `${k}=${v}`),
        );
        break;
      case "LABEL":
        config.Labels = { ...(config.Labels ?? {}), ...Object.fromEntries(keyValues(rest, instruction)) };
        break;
      case "EXPOSE": {
        const ports = { ...(config.ExposedPorts ?? {}) };
        for (const p of rest.split(/\s+/).filter(Boolean)) {
          if (!/^\d+(-\d+)?(\/(tcp|udp|sctp))?$/.test(p)) throw invalidArgument(`invalid containerPort: ${p}`);
          ports[p.includes("/") ? p : `${p}/tcp`] = {};
        }
        config.ExposedPorts = ports;
        break;
      }
      case "USER":
        config.User = rest;
        break;
      case "WORKDIR":
        config.WorkingDir = rest;
        break;
      case "STOPSIGNAL":
        config.StopSignal = rest;
        break;
      case "VOLUME": {
        const vols = { ...(config.Volumes ?? {}) };
        const list = rest.startsWith("[") ? (parseJsonArray(rest, instruction) ?? []) : rest.split(/\s+/).filter(Boolean);
        for (const v of list) vols[v] = {};
        config.Volumes = vols;
        break;
      }
      case "ONBUILD":
        config.OnBuild = [...(config.OnBuild ?? []), rest];
        break;
      default:
        throw invalidArgument(`${instruction} is not a valid change command`);
    }
  }
  return config;
}

function parseJsonArray(text: string, instruction: string): string[] | undefined {
  if (!text.startsWith("[")) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v;
  } catch {
    // not JSON: Docker then treats the text as shell form
  }
  if (instruction === "VOLUME") throw invalidArgument(`VOLUME: invalid JSON array: ${text}`);
  return undefined;
}

function execOrShell(rest: string, instruction: string): string[] {
  return parseJsonArray(rest, instruction) ?? ["/bin/sh", "-c", rest];
}

function keyValues(rest: string, instruction: string): Array<[string, string]> {
  if (!rest) throw invalidArgument(`${instruction} requires at least one argument`);
  if (!rest.includes("=")) {
    const m = /^(\S+)\s+(.*)$/s.exec(rest);
    if (!m) throw invalidArgument(`${instruction} requires at least two arguments`);
    return [[m[1]!, m[2]!]];
  }
  const out: Array<[string, string]> = [];
  const re = /([^\s=]+)=("((?:[^"\\]|\\.)*)"|'([^']*)'|(\S*))/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(rest))) out.push([m[1]!, m[3] !== undefined ? m[3].replace(/\\(.)/g, "$1") : (m[4] ?? m[5] ?? "")]);
  if (out.length === 0) throw invalidArgument(`${instruction}: cannot parse "${rest}"`);
  return out;
}
