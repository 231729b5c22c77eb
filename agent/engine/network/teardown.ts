/**
 * Removes everything one network manager instance ever created on the host:
 * veths and namespaces of its containers, its bridges, its iptables chains and
 * jump rules, and its namespace files. For uninstalling the agent and for tests
 * (each test's manager has its own bridge, chain prefix, netns and state
 * directories, so tearing one down never touches another's).
 *
 * It reads the same state directory the manager persists to, so it works with
 * no manager running (after a crash too). The state files themselves are left
 * to the caller.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import pino from "pino";
import { IptablesChains } from "./iptables.ts";
import { deleteLinks, removeNetns } from "./netns.ts";
import { StateStore } from "./state.ts";

export interface TeardownOptions {
  stateDir: string;
  /** Default "berth0". */
  bridgeName?: string;
  /** Default "BERTH". */
  chainPrefix?: string;
  /** Default /run/berth/netns. */
  netnsDir?: string;
}

export async function removeNetworking(opts: TeardownOptions): Promise<void> {
  const store = new StateStore(opts.stateDir, pino({ enabled: false }), false);
  await store.open();
  const [networks, containers] = await Promise.all([store.loadNetworks(), store.loadContainers()]);
  await deleteLinks(containers.flatMap((c) => c.endpoints.map((e) => e.hostVeth)));
  const netnsDir = opts.netnsDir ?? "/run/berth/netns";
  const files = await readdir(netnsDir).catch(() => [] as string[]);
  for (const f of files) await removeNetns(join(netnsDir, f));
  for (const c of containers) if (c.netnsPath) await removeNetns(c.netnsPath);
  const bridges = new Set([opts.bridgeName ?? "berth0", ...networks.flatMap((n) => (n.bridge ? [n.bridge] : []))]);
  await deleteLinks([...bridges]);
  await new IptablesChains(opts.chainPrefix ?? "BERTH").remove();
}
