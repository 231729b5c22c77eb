import { readFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * Resource usage of a container from its cgroup (v1 controllers, or the unified v2
 * hierarchy) and /proc, in the units Docker reports: nanoseconds of CPU, bytes.
 */
export interface ContainerStats {
  read: string;
  cpu: {
    totalUsage: number;
    perCpu: number[];
    kernel: number;
    user: number;
    systemUsage: number;
    onlineCpus: number;
    throttledPeriods: number;
    throttledTime: number;
    periods: number;
  };
  memory: { usage: number; maxUsage: number; limit: number; stats: Record<string, number> };
  pids: { current: number; limit: number };
  blkio: Array<{ major: number; minor: number; op: string; value: number }>;
  networks: Record<
    string,
    { rxBytes: number; rxPackets: number; rxErrors: number; rxDropped: number; txBytes: number; txPackets: number; txErrors: number; txDropped: number }
  >;
}

const V1 = "/sys/fs/cgroup";
const HOST_MEMORY_LIMIT = 2 ** 63 - 4096;

async function num(path: string): Promise<number> {
  const text = await readFile(path, "utf8").catch(() => "");
  const v = text.trim();
  if (v === "max" || v === "") return 0;
  return Number(v) || 0;
}

async function keyed(path: string): Promise<Record<string, number>> {
  const text = await readFile(path, "utf8").catch(() => "");
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined) out[k] = Number(v);
  }
  return out;
}

/** Host CPU time in nanoseconds (sum of /proc/stat's first line, USER_HZ = 100). */
async function systemCpuUsage(): Promise<number> {
  const text = await readFile("/proc/stat", "utf8");
  const fields = text.split("\n")[0]!.trim().split(/\s+/).slice(1, 8).map(Number);
  return fields.reduce((a, b) => a + b, 0) * 1e7;
}

async function networkStats(pid: number): Promise<ContainerStats["networks"]> {
  if (!pid) return {};
  const text = await readFile(`/proc/${pid}/net/dev`, "utf8").catch(() => "");
  const out: ContainerStats["networks"] = {};
  for (const line of text.split("\n").slice(2)) {
    const m = /^\s*([^:]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === "lo") continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    out[m[1]!] = { rxBytes: f[0]!, rxPackets: f[1]!, rxErrors: f[2]!, rxDropped: f[3]!, txBytes: f[8]!, txPackets: f[9]!, txErrors: f[10]!, txDropped: f[11]! };
  }
  return out;
}

/**
 * Reads a container's usage. `root` is the cgroup mount (tests point it elsewhere);
 * the version is detected from it: a unified (v2) hierarchy has cgroup.controllers at its top.
 */
export async function readContainerStats(cgroupsPath: string, pid: number, onlineCpus: number, root = V1): Promise<ContainerStats> {
  const unified = await readFile(join(root, "cgroup.controllers"), "utf8").then(
    () => true,
    () => false,
  );
  if (unified) return readV2Stats(join(root, cgroupsPath), pid, onlineCpus);
  const V1root = root;
  const cpuDir = join(V1root, "cpuacct", cgroupsPath);
  const memDir = join(V1root, "memory", cgroupsPath);
  const perCpu = (await readFile(join(cpuDir, "cpuacct.usage_percpu"), "utf8").catch(() => "")).trim().split(/\s+/).filter(Boolean).map(Number);
  const cpuStat = await keyed(join(cpuDir, "cpuacct.stat"));
  const throttling = await keyed(join(V1root, "cpu", cgroupsPath, "cpu.stat"));
  const memStats = await keyed(join(memDir, "memory.stat"));
  let limit = await num(join(memDir, "memory.limit_in_bytes"));
  if (!limit || limit >= HOST_MEMORY_LIMIT) limit = (await import("node:os")).totalmem();
  const blk = (await readFile(join(V1root, "blkio", cgroupsPath, "blkio.throttle.io_service_bytes"), "utf8").catch(() => ""))
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 3 && f[0]!.includes(":"))
    .map(([dev, op, value]) => ({ major: Number(dev!.split(":")[0]), minor: Number(dev!.split(":")[1]), op: op!.toLowerCase(), value: Number(value) }));
  return {
    read: new Date().toISOString(),
    cpu: {
      totalUsage: await num(join(cpuDir, "cpuacct.usage")),
      perCpu,
      kernel: (cpuStat.system ?? 0) * 1e7,
      user: (cpuStat.user ?? 0) * 1e7,
      systemUsage: await systemCpuUsage(),
      onlineCpus,
      periods: throttling.nr_periods ?? 0,
      throttledPeriods: throttling.nr_throttled ?? 0,
      throttledTime: throttling.throttled_time ?? 0,
    },
    memory: { usage: await num(join(memDir, "memory.usage_in_bytes")), maxUsage: await num(join(memDir, "memory.max_usage_in_bytes")), limit, stats: memStats },
    pids: { current: await num(join(V1root, "pids", cgroupsPath, "pids.current")), limit: await num(join(V1root, "pids", cgroupsPath, "pids.max")) },
    blkio: blk,
    networks: await networkStats(pid),
  };
}

/** cgroup v2: one directory with cpu.stat (µs), memory.current/max/stat, pids.*, io.stat. */
async function readV2Stats(dir: string, pid: number, onlineCpus: number): Promise<ContainerStats> {
  const cpu = await keyed(join(dir, "cpu.stat"));
  const memStats = await keyed(join(dir, "memory.stat"));
  let limit = await num(join(dir, "memory.max"));
  if (!limit) limit = (await import("node:os")).totalmem();
  const blkio: ContainerStats["blkio"] = [];
  for (const line of (await readFile(join(dir, "io.stat"), "utf8").catch(() => "")).split("\n")) {
    const [dev, ...pairs] = line.trim().split(/\s+/);
    if (!dev || !dev.includes(":")) continue;
    const [major, minor] = dev.split(":").map(Number) as [number, number];
    for (const pair of pairs) {
      const [k, v] = pair.split("=");
      if (k === "rbytes") blkio.push({ major, minor, op: "read", value: Number(v) });
      if (k === "wbytes") blkio.push({ major, minor, op: "write", value: Number(v) });
    }
  }
  return {
    read: new Date().toISOString(),
    cpu: {
      totalUsage: (cpu.usage_usec ?? 0) * 1000,
      perCpu: [],
      kernel: (cpu.system_usec ?? 0) * 1000,
      user: (cpu.user_usec ?? 0) * 1000,
      systemUsage: await systemCpuUsage(),
      onlineCpus,
      periods: cpu.nr_periods ?? 0,
      throttledPeriods: cpu.nr_throttled ?? 0,
      throttledTime: (cpu.throttled_usec ?? 0) * 1000,
    },
    memory: { usage: await num(join(dir, "memory.current")), maxUsage: await num(join(dir, "memory.peak")), limit, stats: memStats },
    pids: { current: await num(join(dir, "pids.current")), limit: await num(join(dir, "pids.max")) },
    blkio,
    networks: await networkStats(pid),
  };
}
