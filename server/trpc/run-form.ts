/**
 * The console's "run a container" form, turned into the engine's create options with
 * the same meanings as `docker run` flags (-e, -p, -v, --memory, --cpus, --restart…).
 * Each field's error names the field and the value, e.g. `ports[1] "80:x": …`.
 */
import { z } from "zod";
import type { ParamsOf } from "../../agent/link/contract.ts";

export const RunFormSchema = z.object({
  nodeId: z.uuid({ error: "choose a node" }),
  image: z.string().trim().min(1, "image is required").max(512),
  name: z
    .string()
    .trim()
    .max(128)
    .regex(/^$|^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/, "name may hold letters, digits, _ . - and must start with a letter or digit")
    .optional(),
  /** The command, split like a shell would (quotes kept together); empty: the image's CMD. */
  command: z.string().max(8192).optional(),
  /** Split like the command; empty: the image's ENTRYPOINT. */
  entrypoint: z.string().max(8192).optional(),
  /** `--workdir`: an absolute path in the container. */
  workdir: z
    .string()
    .trim()
    .max(4096)
    .regex(/^$|^\//, "workdir must be an absolute path, e.g. /app")
    .optional(),
  /** `--user`: name or uid[:gid] inside the container. */
  user: z
    .string()
    .trim()
    .max(256)
    .regex(/^$|^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$/, "user: write a name or uid, optionally :group")
    .optional(),
  /** "key=value", one per entry. */
  labels: z.array(z.string().max(8192)).max(256).default([]),
  /** `-t`: a terminal for the main process. */
  tty: z.boolean().default(false),
  env: z.array(z.string().max(8192)).max(256).default([]),
  /** "8080:80", "127.0.0.1:8080:80/udp", "80" (any host port). */
  ports: z.array(z.string().max(64)).max(64).default([]),
  /** "data:/var/lib/x", "/srv/www:/usr/share/www:ro". */
  volumes: z.array(z.string().max(4096)).max(64).default([]),
  /** "256m", "1g", bytes. */
  memory: z.string().max(32).optional(),
  cpus: z.number().positive().max(1024).optional(),
  pidsLimit: z.number().int().positive().max(4_194_304).optional(),
  restart: z.enum(["no", "always", "on-failure", "unless-stopped"]).default("no"),
  /** `--restart on-failure:N`: at most N restarts (0: no limit). */
  restartRetries: z.number().int().min(0).max(10_000).optional(),
  network: z.string().max(128).default("bridge"),
  // Host-level options (server/auth/host-options.ts): admins only unless a node group's
  // host policy grants them; listed here so that a request for one is refused by name
  // instead of being dropped unseen.
  privileged: z.boolean().default(false),
  /** Added capabilities, e.g. NET_ADMIN. */
  capAdd: z.array(z.string().trim().max(64)).max(64).default([]),
  /** "host" shares the node's namespace. */
  pid: z.string().max(140).optional(),
  ipc: z.string().max(140).optional(),
  uts: z.string().max(140).optional(),
  /** "/dev/fuse", "/dev/sda:/dev/xvda:rwm". */
  devices: z.array(z.string().max(4096)).max(64).default([]),
  securityOpt: z.array(z.string().max(4096)).max(64).default([]),
  /** "net.ipv4.ip_forward=1". */
  sysctls: z.array(z.string().max(4096)).max(64).default([]),
});
export type RunForm = z.input<typeof RunFormSchema>;

export class RunFormError extends Error {
  override name = "RunFormError";
}

/** Splits a command line the way a shell does for words and quotes (no expansion). */
export function splitCommand(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quote: '"' | "'" | null = null;
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (quote) {
      if (ch === quote) quote = null;
      else if (ch === "\\" && quote === '"' && i + 1 < line.length) cur += line[++i];
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === "\\" && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) out.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (quote) throw new RunFormError(`command: unterminated ${quote} quote`);
  if (inWord) out.push(cur);
  return out;
}

export function parseMemory(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$/i.exec(text.trim());
  if (!m) throw new RunFormError(`memory "${text}": write a number with an optional unit b, k, m or g (e.g. 256m)`);
  const unit = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? "").toLowerCase() as "" | "b" | "k" | "m" | "g"];
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes < 6 * 1024 * 1024) throw new RunFormError(`memory "${text}": the minimum is 6m`);
  return bytes;
}

function parsePort(spec: string, i: number): { containerPort: number; protocol: "tcp" | "udp"; hostIp: string; hostPort: number } {
  const bad = (why: string) => new RunFormError(`ports[${i}] "${spec}": ${why}`);
  const [main, proto = "tcp"] = spec.trim().split("/");
  if (proto !== "tcp" && proto !== "udp") throw bad("the protocol must be tcp or udp");
  const parts = (main ?? "").split(":");
  let hostIp = "";
  let host = "";
  let container: string;
  if (parts.length === 1) container = parts[0] ?? "";
  else if (parts.length === 2) [host, container] = parts as [string, string];
  else if (parts.length === 3) [hostIp, host, container] = parts as [string, string, string];
  else throw bad("write [host-ip:][host-port:]container-port[/tcp|udp]");
  const num = (s: string, what: string) => {
    if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 65535) throw bad(`${what} must be a number from 1 to 65535`);
    return Number(s);
  };
  if (hostIp && !/^[\d.]+$|^[0-9a-f:]+$/i.test(hostIp)) throw bad("the host address must be an IP address");
  return { containerPort: num(container, "the container port"), protocol: proto, hostIp, hostPort: host ? num(host, "the host port") : 0 };
}

function parseVolume(spec: string, i: number): { type: "volume" | "bind"; source: string; destination: string; readonly: boolean; anonymous: boolean } {
  const bad = (why: string) => new RunFormError(`volumes[${i}] "${spec}": ${why}`);
  const parts = spec.trim().split(":");
  if (parts.length < 1 || parts.length > 3) throw bad("write source:/container/path[:ro]");
  const mode = parts.length === 3 ? parts[2] : undefined;
  if (mode !== undefined && mode !== "ro" && mode !== "rw") throw bad("the mode must be ro or rw");
  if (parts.length === 1) {
    const destination = parts[0] ?? "";
    if (!destination.startsWith("/")) throw bad("the container path must be absolute");
    return { type: "volume", source: "", destination, readonly: false, anonymous: true };
  }
  const [source = "", destination = ""] = parts;
  if (!destination.startsWith("/")) throw bad("the container path must be absolute");
  if (source.startsWith("/")) return { type: "bind", source, destination, readonly: mode === "ro", anonymous: false };
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(source)) throw bad("a volume name may hold letters, digits, _ . -");
  return { type: "volume", source, destination, readonly: mode === "ro", anonymous: false };
}

/**
 * What the form asks of the host, under the create options' field names, for the
 * host-level check (server/auth/host-access.ts) to judge before anything else: an
 * operator is told which option is refused and why even when it is one the engine
 * would refuse later.
 * @throws RunFormError for a malformed volume.
 */
export function hostRequestOfForm(form: z.output<typeof RunFormSchema>): Record<string, unknown> {
  return {
    mounts: form.volumes.filter((v) => v.trim()).map(parseVolume),
    networkMode: form.network,
    privileged: form.privileged,
    capAdd: form.capAdd.filter((c) => c),
    pidMode: form.pid,
    ipcMode: form.ipc,
    utsMode: form.uts,
    devices: form.devices.filter((d) => d.trim()),
    securityOpt: form.securityOpt.filter((o) => o.trim()),
    sysctls: form.sysctls.filter((o) => o.trim()),
  };
}

/** Host-level options the node's engine cannot apply yet: refused by name rather than dropped. */
function unsupportedByEngine(form: z.output<typeof RunFormSchema>): string | undefined {
  if (form.privileged) return "--privileged: the node's engine does not run privileged containers";
  for (const [flag, v] of [
    ["--pid", form.pid],
    ["--ipc", form.ipc],
    ["--uts", form.uts],
  ] as const)
    if (v && v !== "private" && v !== "") return `${flag} ${v}: the node's engine does not support sharing this namespace yet`;
  if (form.devices.some((d) => d.trim())) return "--device: the node's engine does not pass devices into containers yet";
  if (form.sysctls.some((d) => d.trim())) return "--sysctl: the node's engine does not set sysctls yet";
  const widening = form.securityOpt.filter((o) => o.trim() && !/^no-new-privileges(?:[=:]true)?$/.test(o.trim()));
  if (widening.length) return `--security-opt ${widening.join(",")}: the node's engine supports only no-new-privileges`;
  return undefined;
}

/** @throws RunFormError naming the field that is wrong. */
export function createOptionsFromForm(form: z.output<typeof RunFormSchema>): ParamsOf<"container.create"> {
  const unsupported = unsupportedByEngine(form);
  if (unsupported) throw new RunFormError(unsupported);
  for (const [i, c] of form.capAdd.entries())
    if (c && !/^(CAP_)?[A-Z_]+$|^ALL$/i.test(c)) throw new RunFormError(`capAdd[${i}] "${c}": write a capability name such as NET_ADMIN`);
  for (const [i, e] of form.env.entries()) if (!/^[^=\s]+(=|$)/.test(e)) throw new RunFormError(`env[${i}] "${e}": write NAME=value`);
  const labels: Record<string, string> = {};
  for (const [i, l] of form.labels.entries()) {
    if (!l.trim()) continue;
    const eq = l.indexOf("=");
    const key = (eq < 0 ? l : l.slice(0, eq)).trim();
    if (!key || /\s/.test(key)) throw new RunFormError(`labels[${i}] "${l}": write key=value`);
    labels[key] = eq < 0 ? "" : l.slice(eq + 1);
  }
  if (form.restartRetries && form.restart !== "on-failure")
    throw new RunFormError(`restartRetries ${form.restartRetries}: a retry count goes with the on-failure restart policy only`);
  const cmd = form.command?.trim() ? splitCommand(form.command) : undefined;
  const entrypoint = form.entrypoint?.trim() ? splitCommand(form.entrypoint) : undefined;
  const ports = form.ports.filter((p) => p.trim()).map(parsePort);
  return {
    image: form.image,
    ...(form.name ? { name: form.name } : {}),
    ...(cmd ? { cmd } : {}),
    ...(entrypoint ? { entrypoint } : {}),
    ...(form.workdir ? { workingDir: form.workdir } : {}),
    ...(form.user ? { user: form.user } : {}),
    labels,
    tty: form.tty,
    env: form.env.filter((e) => e.trim()),
    ports,
    exposedPorts: ports.map((p) => `${p.containerPort}/${p.protocol}`),
    mounts: form.volumes.filter((v) => v.trim()).map(parseVolume),
    ...(form.memory ? { memory: parseMemory(form.memory) } : {}),
    ...(form.cpus ? { nanoCpus: Math.round(form.cpus * 1e9) } : {}),
    ...(form.pidsLimit ? { pidsLimit: form.pidsLimit } : {}),
    restartPolicy: { name: form.restart, maximumRetryCount: form.restart === "on-failure" ? (form.restartRetries ?? 0) : 0 },
    networkMode: form.network,
    ...(form.capAdd.some((c) => c) ? { capAdd: form.capAdd.filter((c) => c) } : {}),
    ...(form.securityOpt.some((o) => o.trim()) ? { noNewPrivileges: true } : {}),
  };
}
