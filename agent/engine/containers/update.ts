/**
 * `docker update`: which changes Docker accepts and what the container's options become
 * (moby container.UpdateContainer). A pure decision; applying it (runc update, the
 * record) is the container service's.
 */
import { conflict } from "../errors.ts";
import type { ContainerOptions, RestartPolicy } from "./container-record.ts";

/** What `docker update` may change; absent or 0 leaves a value as it is (Docker's rule). */
export interface ContainerUpdate {
  memory?: number;
  memorySwap?: number;
  nanoCpus?: number;
  cpuShares?: number;
  cpuQuota?: number;
  cpuPeriod?: number;
  cpusetCpus?: string;
  /** Set (any value, 0 and -1 meaning unlimited) replaces the limit. */
  pidsLimit?: number;
  restartPolicy?: RestartPolicy;
}

/**
 * The options after `u`, with Docker's refusals.
 * @param swapLimit whether the host limits swap (then a memory limit without
 *   --memory-swap recorded twice the memory as its swap limit, as Docker records it).
 * @throws Conflict with Docker's text ("Cannot update container ID: Conflicting options: …").
 */
export function applyUpdate(id: string, o: ContainerOptions, u: ContainerUpdate, swapLimit: boolean): ContainerOptions {
  const refuse = (msg: string) => conflict(`Cannot update container ${id}: ${msg}`);
  if (u.nanoCpus && o.cpuPeriod > 0) throw refuse("Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set");
  if (u.nanoCpus && o.cpuQuota > 0) throw refuse("Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set");
  if (u.cpuPeriod && o.nanoCpus > 0) throw refuse("Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set");
  if (u.cpuQuota && o.nanoCpus > 0) throw refuse("Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set");
  const next: ContainerOptions = { ...o };
  if (u.cpuShares) next.cpuShares = u.cpuShares;
  if (u.nanoCpus) next.nanoCpus = u.nanoCpus;
  if (u.cpuPeriod) next.cpuPeriod = u.cpuPeriod;
  if (u.cpuQuota) next.cpuQuota = u.cpuQuota;
  if (u.cpusetCpus) next.cpusetCpus = u.cpusetCpus;
  // The swap limit Docker has on record: what was given, or twice the memory limit.
  const recordedSwap = o.memorySwap || (o.memory > 0 && swapLimit ? o.memory * 2 : 0);
  if (u.memory) {
    if (u.memory > recordedSwap && !u.memorySwap)
      throw refuse("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time");
    next.memory = u.memory;
    next.memorySwap = recordedSwap; // kept, not recomputed from the new memory limit
  }
  if (u.memorySwap) next.memorySwap = u.memorySwap;
  if (u.pidsLimit !== undefined) next.pidsLimit = u.pidsLimit;
  if (u.restartPolicy) {
    const same = u.restartPolicy.name === o.restartPolicy.name && u.restartPolicy.maximumRetryCount === o.restartPolicy.maximumRetryCount;
    if (!same && o.autoRemove) throw refuse("Restart policy cannot be updated because AutoRemove is enabled for the container");
    next.restartPolicy = u.restartPolicy;
  }
  return next;
}
