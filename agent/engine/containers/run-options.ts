// What the container lifecycle derives from a container's options, without side effects:
// its command line, namespaces, runtime options, networks and ports; and small helpers
// the container concern's parts share.
import { invalidArgument, notImplemented } from "../errors.ts";
import type { ContainerConfig } from "../images/image-config.ts";
import type { MonitorPaths } from "../monitor/monitor.ts";
import type { NamespaceOptions } from "../runtime/spec.ts";
import type { ContainerOptions, ContainerRecord, CreateOptionsSchema, NetworkAttachment, PortSpec } from "./container-record.ts";

/** Docker's zero time (StartedAt/FinishedAt of what never started or ended). */
export const NEVER = "0001-01-01T00:00:00Z";

/**
 * Joins the waiters of `key` until one of them is called, or `signal` fires: then the
 * waiter leaves the list (a client that gave up leaves nothing behind) and `onAbort` is the answer.
 */
export function waitInList<T>(lists: Map<string, Array<(v: T) => void>>, key: string, onAbort: T, signal?: AbortSignal): Promise<T> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(onAbort);
    const abort = () => {
      const left = (lists.get(key) ?? []).filter((w) => w !== waiter);
      if (left.length) lists.set(key, left);
      else lists.delete(key);
      resolve(onAbort);
    };
    const waiter = (v: T) => {
      signal?.removeEventListener("abort", abort);
      resolve(v);
    };
    signal?.addEventListener("abort", abort, { once: true });
    lists.set(key, [...(lists.get(key) ?? []), waiter]);
  });
}

/** Files the engine bind-mounts into every container: not part of its filesystem. */
export const BIND_TARGETS = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

export function monitorPaths(p: MonitorPaths): MonitorPaths {
  return { stateDir: p.stateDir, bundle: p.bundle, logPath: p.logPath };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

/** Docker's command line of a container: entrypoint and cmd, with run-time overrides. */
export function commandLine(image: ContainerConfig, options: { cmd?: string[]; entrypoint?: string[] | "" }): { path: string; args: string[] } {
  let entrypoint = image.Entrypoint ?? [];
  let cmd = image.Cmd ?? [];
  if (options.entrypoint !== undefined) {
    entrypoint = options.entrypoint === "" ? [] : options.entrypoint.filter((x, i) => !(i === 0 && x === "" && options.entrypoint!.length === 1));
    cmd = [];
  }
  if (options.cmd && options.cmd.length > 0) cmd = options.cmd;
  const full = [...entrypoint, ...cmd];
  if (full.length === 0) throw invalidArgument("No command specified");
  return { path: full[0]!, args: full.slice(1) };
}

/** Docker's accepted `--pid`, `--ipc` and `--uts` values; what Berth cannot do is refused by name. */
export function checkNamespaceModes(o: ReturnType<typeof CreateOptionsSchema.parse>): void {
  if (!(o.pidMode === "" || o.pidMode === "host" || /^container:.+$/.test(o.pidMode))) throw invalidArgument(`invalid PID mode: ${o.pidMode}`);
  if (!(o.utsMode === "" || o.utsMode === "host")) throw invalidArgument(`invalid UTS mode: ${o.utsMode}`);
  if (o.ipcMode.startsWith("container:"))
    throw notImplemented(
      `--ipc ${o.ipcMode} is not supported by Berth: a container can have an IPC namespace of its own (private, shareable, none) or the host's`,
    );
  if (!["", "private", "shareable", "none", "host"].includes(o.ipcMode)) throw invalidArgument(`invalid IPC mode: ${o.ipcMode}`);
}

/** Whether a network mode joins networks (bridge or a user network), rather than host, none or another container's. */
export function joinsNetworks(mode: string): boolean {
  return !["host", "none"].includes(mode) && !mode.startsWith("container:");
}

/** The networks a container created with these options joins: NetworkingConfig's, or else NetworkMode's. */
export function defaultNetworks(o: ContainerOptions): NetworkAttachment[] {
  if (o.networks && o.networks.length > 0)
    return o.networks.map((n) => ({
      ...n,
      name: n.name === "default" ? "bridge" : n.name,
      aliases: [...n.aliases],
      links: [...n.links],
      driverOpts: { ...n.driverOpts },
    }));
  return [{ name: o.networkMode === "default" ? "bridge" : o.networkMode, aliases: [...o.aliases], links: [], driverOpts: {} }];
}

export function namespaceModes(o: ReturnType<typeof CreateOptionsSchema.parse>, pidOf: (target: string) => number): Omit<NamespaceOptions, "network"> {
  const pid =
    o.pidMode === "host" ? "host" : o.pidMode.startsWith("container:") ? { path: `/proc/${pidOf(o.pidMode.slice("container:".length))}/ns/pid` } : "private";
  const ipc = o.ipcMode === "host" ? "host" : o.ipcMode === "none" ? "none" : "private";
  return { pid, ipc, uts: o.utsMode === "host" ? "host" : "private", cgroup: o.cgroupns };
}

export function runOptions(o: ReturnType<typeof CreateOptionsSchema.parse>, hostname: string) {
  return {
    cmd: o.cmd,
    entrypoint: o.entrypoint,
    env: o.env,
    workingDir: o.workingDir || undefined,
    hostname,
    domainname: o.domainname,
    tty: o.tty,
    openStdin: o.openStdin,
    consoleSize: o.consoleSize,
    readonlyRootfs: o.readonlyRootfs,
    capAdd: o.capAdd,
    capDrop: o.capDrop,
    noNewPrivileges: o.noNewPrivileges,
    privileged: o.privileged,
    seccompProfile: o.seccompProfile,
    sysctls: o.sysctls,
    deviceCgroupRules: o.deviceCgroupRules,
    maskedPaths: o.maskedPaths,
    readonlyPaths: o.readonlyPaths,
    memory: o.memory || undefined,
    memorySwap: o.memorySwap || undefined,
    cpus: o.nanoCpus ? o.nanoCpus / 1e9 : undefined,
    cpuShares: o.cpuShares || undefined,
    cpuQuota: o.cpuQuota || undefined,
    cpuPeriod: o.cpuPeriod || undefined,
    cpusetCpus: o.cpusetCpus || undefined,
    pidsLimit: o.pidsLimit,
    shmSize: o.shmSize || undefined,
    init: o.init,
    tmpfs: o.tmpfs,
    memorySwappiness: o.memorySwappiness,
    oomKillDisable: o.oomKillDisable,
  };
}

/** Port bindings, with `-P` adding every exposed port (image EXPOSE and --expose) on a free host port. */
export function publishedPortSpecs(o: ReturnType<typeof CreateOptionsSchema.parse>, config: ContainerConfig): PortSpec[] {
  const ports = [...o.ports];
  if (o.publishAll) {
    const exposed = new Set([...Object.keys(config.ExposedPorts ?? {}), ...o.exposedPorts]);
    for (const e of exposed) {
      const [port, proto] = e.split("/");
      const containerPort = Number(port);
      const protocol = (proto === "udp" ? "udp" : "tcp") as "tcp" | "udp";
      if (!ports.some((p) => p.containerPort === containerPort && p.protocol === protocol)) ports.push({ containerPort, protocol, hostIp: "", hostPort: 0 });
    }
  }
  return ports;
}

/** Docker adds a container's short ID to its aliases on every user-defined network it joins. */
export function withShortIdAliases(record: ContainerRecord, networks: NetworkAttachment[]): NetworkAttachment[] {
  const short = record.id.slice(0, 12);
  const out: NetworkAttachment[] = [];
  for (const n of networks) {
    const predefined = ["bridge", "host", "none"].includes(n.name);
    out.push(predefined || n.aliases.includes(short) ? n : { ...n, aliases: [...n.aliases, short] });
  }
  return out;
}
