/**
 * Reads the host facts `buildRuntimeSpec` needs (`SpecHost`), once at agent
 * start: the spec builder itself stays pure.
 */
import { readFile, access } from "node:fs/promises";
import { availableParallelism, release } from "node:os";
import { join } from "node:path";
import { nativeArch } from "./seccomp.ts";
import { ALL_CAPABILITIES, INIT_CANDIDATES, NOFILE_LIMIT, type SpecHost } from "./spec.ts";

const CAP_SYS_RESOURCE = 24n;

export async function readSpecHost(): Promise<SpecHost> {
  const status = await readFile("/proc/self/status", "utf8").catch(() => "");
  return {
    ncpu: availableParallelism(),
    swapLimit: await swapLimit(),
    maxNofile: await maxNofile(),
    // Docker's test: a kernel with seccomp shows the Seccomp line.
    boundingCapabilities: boundingCapabilities(status),
    seccomp: /^Seccomp:/m.test(status),
    arch: nativeArch(process.arch),
    kernel: release(),
    initPath: await firstExisting(INIT_CANDIDATES),
    memoryV1: await access("/sys/fs/cgroup/memory/memory.oom_control").then(
      () => true,
      () => false,
    ),
  };
}

async function firstExisting(paths: readonly string[]): Promise<string | undefined> {
  for (const p of paths)
    if (
      await access(p).then(
        () => true,
        () => false,
      )
    )
      return p;
  return undefined;
}

/** Whether the memory controller can limit swap (Docker's `sysInfo.SwapLimit`). */
async function swapLimit(): Promise<boolean> {
  const exists = (p: string) =>
    access(p).then(
      () => true,
      () => false,
    );
  if (await exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")) return true;
  if (!(await exists("/sys/fs/cgroup/cgroup.controllers"))) return false;
  // cgroup v2 only: the file exists in every non-root cgroup when swap accounting is on.
  const own = /^0::(.*)$/m.exec(await readFile("/proc/self/cgroup", "utf8").catch(() => ""))?.[1];
  return own !== undefined && own !== "/" && (await exists(join("/sys/fs/cgroup", own, "memory.swap.max")));
}

/** 1048576, or this process's own hard limit when it cannot raise it (no CAP_SYS_RESOURCE). */
async function maxNofile(): Promise<number> {
  const status = await readFile("/proc/self/status", "utf8").catch(() => "");
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (capEff !== undefined && (BigInt(`0x${capEff}`) >> CAP_SYS_RESOURCE) & 1n) return NOFILE_LIMIT;
  const limits = await readFile("/proc/self/limits", "utf8").catch(() => "");
  const hard = /^Max open files\s+\S+\s+(\S+)/m.exec(limits)?.[1];
  if (hard === undefined || hard === "unlimited") return NOFILE_LIMIT;
  return Math.min(NOFILE_LIMIT, Number(hard));
}

/** The capabilities of this process's bounding set (ALL_CAPABILITIES is in kernel number order). */
function boundingCapabilities(status: string): string[] | undefined {
  const hex = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (hex === undefined) return undefined;
  const mask = BigInt(`0x${hex}`);
  return ALL_CAPABILITIES.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
}
