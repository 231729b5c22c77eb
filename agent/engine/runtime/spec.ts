/**
 * The OCI runtime spec (runc's config.json) of a container, built from its
 * image config and run options with Docker's semantics (moby's
 * `oci/defaults.go`, `daemon/oci_linux.go`, `daemon/commit.go` merge,
 * `container.CreateDaemonEnvironment`, `oci/caps`).
 *
 * `buildRuntimeSpec` is pure: it reads no file and asks the host nothing. What
 * it needs from the host comes in `SpecInput.host`; what needs the container's
 * filesystem is done by the caller before:
 * - the user is resolved with `resolveUser(rootfs, run.user || image.User || "")` (user.ts);
 * - the working directory is created with `mkdirInRoot(rootfs, spec.process.cwd)`
 *   (mkdir-in-root.ts) before `runc create`, as Docker creates a missing WORKDIR;
 * - /etc/hosts, /etc/hostname, /etc/resolv.conf are written in the container's
 *   directory and passed in `files`.
 *
 * - `--device` nodes (and, with `--privileged`, every host device) are read from the
 *   host with `deviceNodes` (devices.ts) and passed in `devices`.
 *
 * Seccomp is Docker's default profile (seccomp-default.json, translated by
 * seccomp.ts for the container's capabilities), a profile of the run's own, or
 * none (`seccomp=unconfined`, `--privileged`). Not generated: AppArmor and
 * SELinux labels (the hosts run neither), user namespaces.
 */
import { release } from "node:os";
import { posix } from "node:path";
import { invalidArgument } from "../errors.ts";
import type { ContainerConfig } from "../images/image-config.ts";
import { defaultSeccomp, nativeArch, parseSeccompProfile, seccompForContainer, type SpecSeccomp } from "./seccomp.ts";
import type { ResolvedUser } from "./user.ts";
import { containerEnv, processEnv } from "../../../shared/env.ts";

export const OCI_VERSION = "1.0.2";
/** Where Docker mounts its init (`--init`) in a container. */
export const DOCKER_INIT = "/sbin/docker-init";
/** Debian's tini, static first: it runs in any rootfs, as Docker's docker-init does. */
export const INIT_CANDIDATES = ["/usr/bin/tini-static", "/usr/bin/tini"];
/** Docker refuses smaller `--memory` values. */
export const MIN_MEMORY = 6 * 1024 * 1024;
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;
export const CPU_PERIOD = 100_000;
export const NOFILE_LIMIT = 1_048_576;

/** Docker's default capability set (moby `oci/caps/defaults.go`). */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/** Every capability of Linux 6.x, for `--cap-add ALL` and name checks. */
export const ALL_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
];

/** Docker's masked paths (moby `oci/defaults.go`): bind-mounted over with /dev/null or an empty tmpfs. */
export const MASKED_PATHS: readonly string[] = [
  "/proc/asound",
  "/proc/acpi",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
];

/** Docker's read-only paths (moby `oci/defaults.go`). */
export const READONLY_PATHS: readonly string[] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

// ---- the OCI runtime spec (the subset Berth writes) ----

export type NamespaceType = "pid" | "network" | "mount" | "ipc" | "uts" | "user" | "cgroup";

export interface SpecUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
  umask?: number;
}

export interface SpecCapabilities {
  bounding: string[];
  effective: string[];
  permitted: string[];
  inheritable?: string[];
  ambient?: string[];
}

export interface SpecRlimit {
  type: string;
  hard: number;
  soft: number;
}

/** `process` of config.json; also the `--process` file of `runc exec`. */
export interface SpecProcess {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user: SpecUser;
  args: string[];
  env: string[];
  cwd: string;
  capabilities?: SpecCapabilities;
  rlimits?: SpecRlimit[];
  noNewPrivileges?: boolean;
  oomScoreAdj?: number;
  apparmorProfile?: string;
}

export interface SpecMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface SpecDeviceRule {
  allow: boolean;
  type?: "a" | "b" | "c";
  major?: number;
  minor?: number;
  access?: string;
}

export interface SpecResources {
  devices: SpecDeviceRule[];
  memory?: { limit?: number; swap?: number; reservation?: number; swappiness?: number; disableOOMKiller?: boolean };
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
  pids?: { limit: number };
}

export interface SpecLinux {
  namespaces: { type: NamespaceType; path?: string }[];
  resources: SpecResources;
  cgroupsPath?: string;
  devices?: { path: string; type: string; major: number; minor: number; fileMode?: number; uid?: number; gid?: number }[];
  sysctl?: Record<string, string>;
  seccomp?: SpecSeccomp;
  maskedPaths?: string[];
  readonlyPaths?: string[];
  rootfsPropagation?: string;
}

export interface RuntimeSpec {
  ociVersion: string;
  process: SpecProcess;
  root: { path: string; readonly?: boolean };
  hostname?: string;
  domainname?: string;
  mounts: SpecMount[];
  linux: SpecLinux;
  annotations?: Record<string, string>;
}

// ---- input ----

/** The run options of `docker run`/`create` that shape the runtime spec (sizes in bytes). */
export interface RunOptions {
  /** Arguments after the image (`docker run IMAGE CMD…`); empty or absent: the image's Cmd. */
  cmd?: string[];
  /** `--entrypoint`: replaces the image's Entrypoint and drops its Cmd; `""` (or `[""]`) clears it. */
  entrypoint?: string[] | "";
  /** `-e`: `KEY=value` overrides by key; a bare `KEY` removes the image's (and the default) value. */
  env?: string[];
  /** `-w`: must be absolute. Default: the image's WorkingDir, else "/". */
  workingDir?: string;
  /** `-u`: not read here; resolve it with `resolveUser` and pass `SpecInput.user`. */
  user?: string;
  /** Container hostname (Docker: the 12-character short ID unless `--hostname`). */
  hostname: string;
  domainname?: string;
  /** `-t`: allocate a terminal (the monitor provides it through runc's console socket). */
  tty?: boolean;
  /** `-i`: not part of the runtime spec (stdin is the monitor's business); accepted for completeness. */
  openStdin?: boolean;
  /** Initial terminal size with `tty`. */
  consoleSize?: { height: number; width: number };
  readonlyRootfs?: boolean;
  /**
   * `--privileged`, as Docker: every capability, every device (pass the host's in
   * `SpecInput.devices`), no masked or read-only paths, /sys and cgroups writable, no seccomp.
   */
  privileged?: boolean;
  /**
   * `--security-opt seccomp=…`: absent, "" or "builtin" for Docker's default profile,
   * "unconfined" for none, else the JSON text of a Docker-format profile.
   */
  seccompProfile?: string;
  /** `--device-cgroup-rule`: "TYPE MAJOR:MINOR ACCESS" (e.g. "c 10:237 rw", "b *:* m"), added to the allow-list. */
  deviceCgroupRules?: string[];
  /** `--sysctl`: namespaced kernel parameters only, as runc allows. */
  sysctls?: Record<string, string>;
  /** HostConfig.MaskedPaths / ReadonlyPaths (`--security-opt systempaths=unconfined` sends []); absent: Docker's. */
  maskedPaths?: string[];
  readonlyPaths?: string[];
  /** Capability names with or without `CAP_`, any case, or `ALL`. */
  capAdd?: string[];
  capDrop?: string[];
  /** `--security-opt no-new-privileges`. */
  noNewPrivileges?: boolean;
  /** `--memory` in bytes; 0 or absent: unlimited. */
  memory?: number;
  /** `--memory-swap` in bytes (memory + swap); -1 unlimited; absent with `memory`: twice `memory`. */
  memorySwap?: number;
  /** `--cpus`: fractional CPUs, as a CFS quota over a 100 ms period. */
  cpus?: number;
  /** `--cpu-quota` and `--cpu-period` (microseconds): the CFS values themselves; not with `cpus`. */
  cpuQuota?: number;
  cpuPeriod?: number;
  /** `--cpu-shares`: relative weight (cgroup v1 cpu.shares, clamped to 2..262144). */
  cpuShares?: number;
  /** `--cpuset-cpus`, e.g. "0-2,4". */
  cpusetCpus?: string;
  /** `--pids-limit`; 0 or absent: unset; negative: unlimited. */
  pidsLimit?: number;
  /** `--shm-size` in bytes, default 64 MiB. */
  shmSize?: number;
  /** `--init`: `SpecHost.initPath` mounted read-only at /sbin/docker-init runs as PID 1 and starts the command. */
  init?: boolean;
  /** `--tmpfs`: mount point → options ("size=1m,mode=1777"…), over Docker's noexec,nosuid,nodev. */
  tmpfs?: Record<string, string>;
  /** `--memory-swappiness` 0-100 (cgroup v1 only: `SpecHost.memoryV1`). */
  memorySwappiness?: number;
  /** `--oom-kill-disable` (cgroup v1 only: `SpecHost.memoryV1`). */
  oomKillDisable?: boolean;
}

/** A bind mount: `-v`/`--mount`, named and anonymous volumes (their data directory as source). */
export interface BindMount {
  /** Absolute host path. */
  source: string;
  /** Absolute path in the container. */
  destination: string;
  readonly?: boolean;
  /** Default "rprivate", as Docker. */
  propagation?: "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave";
}

/** Host files (in the container's directory) bind-mounted over the container's. */
export interface ContainerFiles {
  hosts?: string;
  hostname?: string;
  resolvConf?: string;
}

export interface NamespaceOptions {
  /**
   * "new" and "none": a new network namespace (for "none" the caller configures
   * nothing in it; for "new" it is configured once the container exists);
   * "host": the host's; `{ path }`: join an existing one (e.g. /run/netns/X).
   */
  network: "new" | "none" | "host" | { path: string };
  /** Cgroup namespace; Docker's default is "host" on cgroup v1, "private" on v2. Default "host". */
  cgroup?: "private" | "host";
  /** `--pid`: a new PID namespace (default), the host's, or another container's (`/proc/PID/ns/pid`). */
  pid?: "private" | "host" | { path: string };
  /** `--ipc`: private (default; "none" also drops /dev/shm) or the host's (with the host's /dev/shm). */
  ipc?: "private" | "none" | "host";
  /** `--uts host`: the host's hostname and domain name (the spec sets none). */
  uts?: "private" | "host";
}

/** A device node made in the container (`--device`), with its cgroup permissions. */
export interface DeviceNode {
  /** Path in the container. */
  path: string;
  type: "c" | "b";
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
  /** Device cgroup access: any of "r", "w", "m". */
  access: string;
}

/** What the spec needs to know of the host; `readSpecHost()` (spec-host.ts) reads it. */
export interface SpecHost {
  /** Online CPUs (`--cpus` and `--cpuset-cpus` are checked against it). */
  ncpu: number;
  /** Whether the memory cgroup supports swap limits (memory.memsw.* on v1, memory.swap.max on v2). */
  swapLimit: boolean;
  /**
   * The highest RLIMIT_NOFILE the runtime may give a container: 1048576 (Docker's
   * containers get it from dockerd's LimitNOFILE), or less when the agent lacks
   * CAP_SYS_RESOURCE and its own hard limit is lower. Default 1048576.
   */
  maxNofile?: number;
  /**
   * The agent's bounding set: what `--privileged` and `--cap-add ALL` can give (runc fails to
   * raise a capability the agent lacks, e.g. under a restricted supervisor). Default: all.
   */
  boundingCapabilities?: readonly string[];
  /** Whether the kernel has seccomp (Docker runs without its profile when not). Default true. */
  seccomp?: boolean;
  /** libseccomp's name of the host's architecture ("amd64", "arm64"…). Default: this process's. */
  arch?: string;
  /** The kernel release, for the profile's `minKernel` rules. Default: `os.release()`. */
  kernel?: string;
  /** A static init for `--init` (Debian's tini-static, as Docker's docker-init); absent: `--init` is refused. */
  initPath?: string;
  /** Whether the memory cgroup is v1 (memory.swappiness and memory.oom_control exist); v2 has neither knob. */
  memoryV1?: boolean;
}

export interface SpecInput {
  /** The image config's `config` part (absent for an image without one). */
  image?: ContainerConfig | null;
  run: RunOptions;
  /** `root.path`: the container's mounted root filesystem, absolute or relative to the bundle. */
  rootfs: string;
  /** The user from `resolveUser(rootfs, run.user || image.User || "")`. */
  user: ResolvedUser;
  namespaces: NamespaceOptions;
  mounts?: BindMount[];
  files?: ContainerFiles;
  /** `--device` nodes and, with `privileged`, the host's devices. */
  devices?: DeviceNode[];
  /** runc's `linux.cgroupsPath`, e.g. "/berth/<id>" (cgroupfs driver). */
  cgroupsPath: string;
  host: SpecHost;
}

/**
 * The runtime spec of a container, valid for runc.
 * @throws InvalidArgument with Docker's message for a bad value ("Minimum memory
 *   limit allowed is 6MB", "No command specified", `unknown capability: "CAP_X"`…);
 *   NotImplemented for `privileged`.
 */
export function buildRuntimeSpec(input: SpecInput): RuntimeSpec {
  const { run, host } = input;
  const image = input.image ?? {};
  const privileged = !!run.privileged;

  if (run.init && !host.initPath) throw invalidArgument(`--init: no docker-init on this node (install Debian's tini: ${INIT_CANDIDATES.join(" or ")})`);
  const args = run.init ? [DOCKER_INIT, "--", ...processArgs(image, run)] : processArgs(image, run);
  const env = runProcessEnv(image, run);
  const cwd = workingDir(image, run);
  checkHostname(run.hostname);
  // Docker: a privileged container has every capability, whatever --cap-add/--cap-drop say.
  const all = host.boundingCapabilities ? ALL_CAPABILITIES.filter((c) => host.boundingCapabilities!.includes(c)) : ALL_CAPABILITIES;
  const caps = privileged ? [...all] : capabilities(run.capAdd ?? [], run.capDrop ?? [], all);
  const resources = cgroupResources(run, host);
  const user = input.user;
  const nofile = Math.min(NOFILE_LIMIT, host.maxNofile ?? NOFILE_LIMIT);
  if (!Number.isSafeInteger(nofile) || nofile < 1) throw invalidArgument(`invalid open files limit ${host.maxNofile}`);
  for (const id of [user.uid, user.gid, ...user.additionalGids]) {
    if (!Number.isInteger(id) || id < 0 || id > 2147483647) throw invalidArgument("uids and gids must be in range 0-2147483647");
  }

  const process: SpecProcess = {
    terminal: !!run.tty,
    ...(run.tty && run.consoleSize ? { consoleSize: run.consoleSize } : {}),
    // Docker (since 20.10.18, CVE-2022-36109) counts the primary group among the supplementary
    // ones, so a group's "deny" permission bits apply whatever setgroups the process calls later.
    user: { uid: user.uid, gid: user.gid, additionalGids: [...new Set([user.gid, ...user.additionalGids])] },
    args,
    env,
    cwd,
    capabilities: { bounding: [...caps], effective: [...caps], permitted: [...caps] },
    rlimits: [{ type: "RLIMIT_NOFILE", hard: nofile, soft: nofile }],
    noNewPrivileges: !!run.noNewPrivileges,
    oomScoreAdj: 0,
  };

  const ns = input.namespaces;
  const net = ns.network;
  const namespaces: SpecLinux["namespaces"] = [{ type: "mount" }];
  if (typeof net === "object") {
    if (!posix.isAbsolute(net.path)) throw invalidArgument(`network namespace path ${JSON.stringify(net.path)} must be absolute`);
    namespaces.push({ type: "network", path: net.path });
  } else if (net === "new" || net === "none") {
    namespaces.push({ type: "network" });
  } else if (net !== "host") {
    throw invalidArgument(`unknown network namespace mode ${JSON.stringify(net)}`);
  }
  const uts = ns.uts ?? "private";
  if (uts === "private") namespaces.push({ type: "uts" });
  else if (uts !== "host") throw invalidArgument(`invalid UTS mode: ${String(uts)}`);
  const pid = ns.pid ?? "private";
  if (typeof pid === "object") {
    if (!posix.isAbsolute(pid.path)) throw invalidArgument(`PID namespace path ${JSON.stringify(pid.path)} must be absolute`);
    namespaces.push({ type: "pid", path: pid.path });
  } else if (pid === "private") {
    namespaces.push({ type: "pid" });
  } else if (pid !== "host") {
    throw invalidArgument(`invalid PID mode: ${String(pid)}`);
  }
  const ipc = ns.ipc ?? "private";
  if (ipc === "private" || ipc === "none") namespaces.push({ type: "ipc" });
  else if (ipc !== "host") throw invalidArgument(`invalid IPC mode: ${String(ipc)}`);
  if (ns.cgroup === "private") namespaces.push({ type: "cgroup" });

  const devices = input.devices ?? [];
  for (const d of devices) checkDevice(d);
  const rules = (run.deviceCgroupRules ?? []).map(deviceCgroupRule);
  if (privileged) resources.devices = [{ allow: true, access: "rwm" }];
  else for (const d of devices) resources.devices.push({ allow: true, type: d.type, major: d.major, minor: d.minor, access: d.access });
  if (!privileged) resources.devices.push(...rules);

  const linux: SpecLinux = {
    namespaces,
    resources,
    cgroupsPath: input.cgroupsPath,
    devices: devices.map((d) => ({ path: d.path, type: d.type, major: d.major, minor: d.minor, fileMode: d.fileMode, uid: d.uid, gid: d.gid })),
    maskedPaths: privileged ? [] : [...(run.maskedPaths ?? MASKED_PATHS)],
    readonlyPaths: privileged ? [] : [...(run.readonlyPaths ?? READONLY_PATHS)],
  };
  const sysctl: Record<string, string> = {};
  if (net !== "host") {
    // Docker 20.10+: ping and low ports without capabilities, inside the container's own network namespace.
    sysctl["net.ipv4.ip_unprivileged_port_start"] = "0";
    sysctl["net.ipv4.ping_group_range"] = "0 2147483647";
  }
  for (const [key, value] of Object.entries(run.sysctls ?? {})) {
    checkSysctl(key, value, { hostNetwork: net === "host", hostIpc: ipc === "host", hostUts: uts === "host" });
    sysctl[key] = value;
  }
  if (Object.keys(sysctl).length) linux.sysctl = sysctl;
  const seccomp = privileged ? undefined : seccompOf(run.seccompProfile, caps, host);
  if (seccomp) linux.seccomp = seccomp;

  return {
    ociVersion: OCI_VERSION,
    process,
    root: { path: input.rootfs, readonly: !!run.readonlyRootfs },
    // runc sets no hostname in the host's UTS namespace (Docker leaves it out too).
    ...(uts === "private" ? { hostname: run.hostname, ...(run.domainname ? { domainname: run.domainname } : {}) } : {}),
    mounts: specMounts(input, { privileged, ipc }),
    linux,
  };
}

/** moby `WithSeccomp`: none when privileged or unconfined, the run's own profile, else Docker's default. */
function seccompOf(profile: string | undefined, caps: readonly string[], host: SpecHost): SpecSeccomp | undefined {
  if (profile === "unconfined") return undefined;
  const builtin = profile === undefined || profile === "" || profile === "builtin";
  if (host.seccomp === false) {
    if (builtin) return undefined;
    throw invalidArgument("seccomp is not enabled in your kernel, cannot run a custom seccomp profile.");
  }
  const target = { capabilities: caps, arch: host.arch ?? nativeArch(globalThis.process.arch), kernel: host.kernel ?? release() };
  return builtin ? defaultSeccomp(target) : seccompForContainer(parseSeccompProfile(profile), target);
}

/** runc's rules (libcontainer/configs/validate): only namespaced parameters, and only in a namespace of the container's own. */
function checkSysctl(key: string, value: string, host: { hostNetwork: boolean; hostIpc: boolean; hostUts: boolean }): void {
  if (!/^[a-z0-9_]+(?:[./][a-zA-Z0-9_*-]+)+$/.test(key)) throw invalidArgument(`invalid sysctl name ${JSON.stringify(key)}`);
  if (value.includes("\0") || value.includes("\n")) throw invalidArgument(`invalid value for sysctl ${key}`);
  const ipc = ["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"];
  if (ipc.includes(key) || key.startsWith("fs.mqueue.")) {
    if (host.hostIpc)
      throw invalidArgument(
        `sysctl ${JSON.stringify(key)} is not allowed as it conflicts with the OCI "ipc" setting (the container uses the host's IPC namespace)`,
      );
    return;
  }
  if (key.startsWith("net.")) {
    if (host.hostNetwork) throw invalidArgument(`sysctl ${JSON.stringify(key)} not allowed in host network namespace`);
    return;
  }
  if (key === "kernel.domainname" || key === "kernel.hostname") {
    if (host.hostUts)
      throw invalidArgument(
        `sysctl ${JSON.stringify(key)} is not allowed as it conflicts with the OCI "uts" setting (the container uses the host's UTS namespace)`,
      );
    return;
  }
  throw invalidArgument(`sysctl ${JSON.stringify(key)} is not in a separate kernel namespace`);
}

/** Docker's `--device-cgroup-rule` syntax (moby `daemon/oci_linux.go` deviceCgroupRuleRegex); "*" is any number. */
function deviceCgroupRule(rule: string): SpecDeviceRule {
  const m = /^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$/.exec(rule);
  if (!m || /(.).*\1/.test(m[4]!)) throw invalidArgument(`invalid device cgroup rule format: '${rule}'`);
  const num = (v: string) => (v === "*" ? undefined : Number(v));
  const major = num(m[2]!);
  const minor = num(m[3]!);
  if ((major ?? 0) > 0xfff || (minor ?? 0) > 0xfffff) throw invalidArgument(`invalid device cgroup rule format: '${rule}'`);
  return { allow: true, type: m[1] as "a" | "b" | "c", ...(major === undefined ? {} : { major }), ...(minor === undefined ? {} : { minor }), access: m[4]! };
}

function checkDevice(d: DeviceNode): void {
  if (!posix.isAbsolute(d.path) || d.path.includes("\0")) throw invalidArgument(`${JSON.stringify(d.path)} is not an absolute path`);
  if (d.type !== "c" && d.type !== "b") throw invalidArgument(`device ${d.path}: type must be "c" or "b"`);
  for (const n of [d.major, d.minor, d.uid, d.gid, d.fileMode]) {
    if (!Number.isSafeInteger(n) || n < 0) throw invalidArgument(`device ${d.path}: invalid number ${n}`);
  }
  if (!/^(?!.*(.).*\1)[rwm]{1,3}$/.test(d.access)) throw invalidArgument(`invalid device mode: ${d.access}`);
}

/** Docker's Entrypoint/Cmd rules: moby `daemon/commit.go` merge, then `mergeAndVerifyConfig`. */
function processArgs(image: ContainerConfig, run: RunOptions): string[] {
  let entrypoint: string[];
  let cmd: string[];
  const userCmd = run.cmd ?? [];
  if (run.entrypoint === undefined || (Array.isArray(run.entrypoint) && run.entrypoint.length === 0)) {
    entrypoint = image.Entrypoint ?? [];
    cmd = userCmd.length ? userCmd : (image.Cmd ?? []);
  } else {
    // An explicit entrypoint (even "" to clear it) drops the image's Cmd.
    entrypoint = run.entrypoint === "" || (run.entrypoint.length === 1 && run.entrypoint[0] === "") ? [] : run.entrypoint;
    cmd = userCmd;
  }
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) throw invalidArgument("No command specified");
  return args;
}

/** The process environment: the image's and the run's env merged as Docker does (shared/env.ts). */
function runProcessEnv(image: ContainerConfig, run: RunOptions): string[] {
  const runEnv = run.env ?? [];
  for (const e of runEnv) {
    if (e === "" || e.startsWith("=")) throw invalidArgument(`invalid environment variable: ${e}`);
  }
  return processEnv(containerEnv(image.Env, runEnv), { hostname: run.hostname, tty: !!run.tty });
}

function workingDir(image: ContainerConfig, run: RunOptions): string {
  const wd = run.workingDir || image.WorkingDir || "/";
  if (!posix.isAbsolute(wd)) throw invalidArgument(`the working directory '${wd}' is invalid, it needs to be an absolute path`);
  if (wd.includes("\0")) throw invalidArgument(`the working directory ${JSON.stringify(wd)} is invalid`);
  return posix.normalize(wd).replace(/(.)\/$/, "$1");
}

function checkHostname(h: string): void {
  // sethostname(2) takes at most 64 bytes; Docker refuses what is not a DNS name.
  if (!h || Buffer.byteLength(h) > 64 || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(h)) throw invalidArgument(`invalid hostname format: ${h}`);
}

/** moby `oci/caps.TweakCapabilities`; `all` is what "ALL" means on this host. */
function capabilities(capAdd: string[], capDrop: string[], all: readonly string[]): string[] {
  const adds = normalizeCaps(capAdd);
  const drops = normalizeCaps(capDrop);
  let caps: string[];
  if (adds.includes("ALL")) caps = all.filter((c) => !drops.includes(c));
  else if (drops.includes("ALL")) caps = adds;
  else caps = [...DEFAULT_CAPABILITIES.filter((c) => !drops.includes(c)), ...adds];
  return [...new Set(caps)];
}

function normalizeCaps(names: string[]): string[] {
  return names.map((raw) => {
    let c = raw.toUpperCase();
    if (c === "ALL") return c;
    if (!c.startsWith("CAP_")) c = `CAP_${c}`;
    if (!ALL_CAPABILITIES.includes(c)) throw invalidArgument(`unknown capability: ${JSON.stringify(c)}`);
    return c;
  });
}

/** Docker's checks (moby `daemon/daemon_unix.go` verifyPlatformContainerResources) and its cgroup values. */
function cgroupResources(run: RunOptions, host: SpecHost): SpecResources {
  const resources: SpecResources = { devices: defaultDeviceRules() };

  const memory = run.memory ?? 0;
  const swap = run.memorySwap ?? 0;
  if (!Number.isSafeInteger(memory)) throw invalidArgument(`invalid memory limit ${memory}`);
  if (!Number.isSafeInteger(swap)) throw invalidArgument(`invalid memory swap limit ${swap}`);
  if (memory !== 0 && memory < MIN_MEMORY) throw invalidArgument("Minimum memory limit allowed is 6MB");
  if (memory > 0 && swap > 0 && swap < memory) throw invalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage");
  if (memory === 0 && swap > 0) throw invalidArgument("You should always set the Memory limit when using Memoryswap limit, see usage");
  if (swap < -1) throw invalidArgument(`invalid memory swap limit ${swap}`);
  if (memory > 0) {
    resources.memory = { limit: memory };
    // Docker: no --memory-swap means swap up to the memory limit again (2× in total).
    if (host.swapLimit) resources.memory.swap = swap === 0 ? memory * 2 : swap;
  } else if (swap === -1 && host.swapLimit) {
    resources.memory = { swap: -1 };
  }

  const cpu: NonNullable<SpecResources["cpu"]> = {};
  if (run.cpus !== undefined) {
    const nano = Math.round(run.cpus * 1e9);
    if (!Number.isFinite(run.cpus) || nano < 1e7 || nano > host.ncpu * 1e9) {
      throw invalidArgument(`Range of CPUs is from 0.01 to ${host.ncpu.toFixed(2)}, as there are only ${host.ncpu} CPUs available`);
    }
    cpu.period = CPU_PERIOD;
    cpu.quota = Math.floor((nano * CPU_PERIOD) / 1e9);
  }
  if ((run.cpuQuota || run.cpuPeriod) && run.cpus !== undefined) {
    throw invalidArgument(
      run.cpuPeriod ? "Conflicting options: Nano CPUs and CPU Period cannot both be set" : "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
    );
  }
  if (run.cpuPeriod) {
    if (!Number.isSafeInteger(run.cpuPeriod) || run.cpuPeriod < 1000 || run.cpuPeriod > 1_000_000)
      throw invalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1 second (i.e. 1000000)");
    cpu.period = run.cpuPeriod;
  }
  if (run.cpuQuota) {
    if (!Number.isSafeInteger(run.cpuQuota) || (run.cpuQuota > 0 && run.cpuQuota < 1000))
      throw invalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)");
    cpu.quota = run.cpuQuota;
  }
  if (run.cpuShares !== undefined && run.cpuShares !== 0) {
    if (!Number.isSafeInteger(run.cpuShares)) throw invalidArgument(`invalid CPU shares ${run.cpuShares}`);
    cpu.shares = Math.min(262144, Math.max(2, run.cpuShares));
  }
  if (run.cpusetCpus !== undefined && run.cpusetCpus !== "") {
    const set = parseCpuSet(run.cpusetCpus);
    if (!set) throw invalidArgument(`Invalid value ${run.cpusetCpus} for cpuset cpus`);
    if (set.some((c) => c >= host.ncpu)) {
      throw invalidArgument(`Requested CPUs are not available - requested ${run.cpusetCpus}, available: ${host.ncpu > 1 ? `0-${host.ncpu - 1}` : "0"}`);
    }
    cpu.cpus = run.cpusetCpus;
  }
  if (Object.keys(cpu).length) resources.cpu = cpu;

  const swappiness = run.memorySwappiness;
  if (swappiness !== undefined && swappiness !== -1) {
    if (!Number.isInteger(swappiness) || swappiness < 0 || swappiness > 100)
      throw invalidArgument(`Invalid value: ${swappiness}, valid memory swappiness range is 0-100`);
    // Docker on cgroup v2 drops it with a warning; so does Berth.
    if (host.memoryV1) resources.memory = { ...resources.memory, swappiness };
  }
  if (run.oomKillDisable && host.memoryV1) resources.memory = { ...resources.memory, disableOOMKiller: true };
  if (run.pidsLimit !== undefined && run.pidsLimit !== 0) {
    if (!Number.isSafeInteger(run.pidsLimit)) throw invalidArgument(`invalid pids limit ${run.pidsLimit}`);
    resources.pids = { limit: run.pidsLimit < 0 ? -1 : run.pidsLimit };
  }
  return resources;
}

/** "0-2,4" → [0,1,2,4]; undefined if malformed. */
function parseCpuSet(s: string): number[] | undefined {
  const out: number[] = [];
  for (const part of s.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return undefined;
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (b < a || b > 4096) return undefined;
    for (let i = a; i <= b; i++) out.push(i);
  }
  return out;
}

/**
 * Deny everything, then allow what Docker's containers get (moby `oci/defaults.go`
 * plus the defaults runc adds): mknod of any device, null, zero, full, random,
 * urandom, tty, console, ptmx and the pseudo-terminals of /dev/pts. (Docker's
 * extra "deny fuse" rule is left out: it is implied by the first rule, and on
 * cgroup v1 a deny after the mknod wildcard is refused by runc.)
 */
function defaultDeviceRules(): SpecDeviceRule[] {
  const c = (major: number, minor: number | undefined, access = "rwm"): SpecDeviceRule => ({
    allow: true,
    type: "c",
    major,
    ...(minor === undefined ? {} : { minor }),
    access,
  });
  return [
    { allow: false, access: "rwm" },
    { allow: true, type: "c", access: "m" },
    { allow: true, type: "b", access: "m" },
    c(1, 3), // null
    c(1, 5), // zero
    c(1, 7), // full
    c(1, 8), // random
    c(1, 9), // urandom
    c(5, 0), // tty
    c(5, 1), // console
    c(5, 2), // ptmx
    c(136, undefined), // /dev/pts/*
  ];
}

/** Docker's default mounts, minus those a user mount replaces, then the user's mounts, parents first. */
function specMounts(input: SpecInput, opts: { privileged: boolean; ipc: "private" | "none" | "host" }): SpecMount[] {
  const { run } = input;
  const shmSize = run.shmSize ?? DEFAULT_SHM_SIZE;
  if (!Number.isSafeInteger(shmSize) || shmSize <= 0) throw invalidArgument(`invalid shm size ${shmSize}`);
  const defaults: SpecMount[] = [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["ro", "nosuid", "noexec", "nodev"] },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", `size=${shmSize}`] },
  ];
  if (opts.privileged) {
    // moby `WithMounts`: a privileged container may write /sys and its cgroups.
    for (const m of defaults) if (m.type === "sysfs" || m.type === "cgroup") m.options = m.options!.filter((o) => o !== "ro");
  }
  if (opts.ipc === "host") {
    // Docker: the host's IPC namespace comes with the host's /dev/shm.
    const shm = defaults.findIndex((m) => m.destination === "/dev/shm");
    defaults[shm] = { destination: "/dev/shm", type: "bind", source: "/dev/shm", options: ["rbind", "nosuid", "noexec", "nodev", "rprivate"] };
  } else if (opts.ipc === "none") {
    defaults.splice(
      defaults.findIndex((m) => m.destination === "/dev/shm"),
      1,
    );
  }

  const user: Array<BindMount & { tmpfs?: string[] }> = [...(input.mounts ?? [])];
  for (const [destination, data] of Object.entries(run.tmpfs ?? {})) {
    if (!posix.isAbsolute(destination))
      throw invalidArgument(`invalid mount config for type "tmpfs": invalid mount path: '${destination}' mount path must be absolute`);
    user.push({ source: "tmpfs", destination, tmpfs: tmpfsOptions(data) });
  }
  if (run.init && input.host.initPath) user.push({ source: input.host.initPath, destination: DOCKER_INIT, readonly: true });
  const files = input.files ?? {};
  const fileRw = !run.readonlyRootfs;
  const fileMounts: [string | undefined, string][] = [
    [files.resolvConf, "/etc/resolv.conf"],
    [files.hostname, "/etc/hostname"],
    [files.hosts, "/etc/hosts"],
  ];
  const seen = new Set<string>();
  const checked: (BindMount & { destination: string; tmpfs?: string[] })[] = [];
  for (const m of user) {
    if (!posix.isAbsolute(m.destination)) {
      throw invalidArgument(`invalid mount config for type "bind": invalid mount path: '${m.destination}' mount path must be absolute`);
    }
    if (!m.tmpfs && !posix.isAbsolute(m.source)) {
      throw invalidArgument(`invalid mount config for type "bind": invalid mount path: '${m.source}' mount path must be absolute`);
    }
    const destination = posix.normalize(m.destination).replace(/(.)\/$/, "$1");
    if (destination === "/") throw invalidArgument("invalid specification: destination can't be '/'");
    if (seen.has(destination)) throw invalidArgument(`Duplicate mount point: ${destination}`);
    seen.add(destination);
    checked.push({ ...m, destination });
  }
  // A volume at /etc/hosts (etc.) wins over the generated file, as in Docker.
  for (const [source, destination] of fileMounts) {
    if (source !== undefined && !seen.has(destination)) checked.push({ source, destination, readonly: !fileRw });
  }
  const depth = (p: string) => p.split("/").length;
  checked.sort((a, b) => depth(a.destination) - depth(b.destination));

  const destinations = new Set(checked.map((m) => m.destination));
  const mountDev = destinations.has("/dev");
  const out = defaults.filter((m) => !destinations.has(m.destination) && !(mountDev && m.destination.startsWith("/dev/")));
  for (const m of checked) {
    if (m.tmpfs) {
      out.push({ destination: m.destination, type: "tmpfs", source: "tmpfs", options: m.tmpfs });
      continue;
    }
    out.push({
      destination: m.destination,
      type: "bind",
      source: m.source,
      options: ["rbind", ...(m.readonly ? ["ro"] : []), m.propagation ?? "rprivate"],
    });
  }
  return out;
}

/**
 * Docker's `--tmpfs` options (moby `WithMounts` and `mount.MergeTmpfsOptions`): noexec,
 * nosuid, nodev and rprivate, then the user's; a later flag replaces its opposite
 * (exec ↔ noexec…) and a later key=value its key.
 */
export function tmpfsOptions(data: string): string[] {
  const opposite = (o: string) => (o.startsWith("no") ? o.slice(2) : `no${o}`);
  const FLAGS = new Set(["exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime", "diratime", "nodiratime", "ro", "rw"]);
  const out: string[] = [];
  for (const o of ["noexec", "nosuid", "nodev", "rprivate", ...data.split(",").filter(Boolean)]) {
    const eq = o.indexOf("=");
    let i: number;
    if (eq > 0) i = out.findIndex((x) => x.startsWith(o.slice(0, eq + 1)));
    else if (o === "ro" || o === "rw") i = out.findIndex((x) => x === "ro" || x === "rw");
    else if (FLAGS.has(o)) i = out.findIndex((x) => x === o || x === opposite(o));
    else if (/^r?(private|shared|slave)$/.test(o)) i = out.findIndex((x) => /^r?(private|shared|slave)$/.test(x));
    else i = out.indexOf(o);
    if (i >= 0) out[i] = o;
    else out.push(o);
  }
  return out;
}
