/**
 * Network namespaces and veth pairs, with `unshare`, `nsenter` and `ip -batch`.
 *
 * A container's network namespace is a file under the manager's netns
 * directory with the namespace bind-mounted on it (what `ip netns add` does,
 * in a directory of our own); the runtime joins it by path. The namespace
 * lives as long as that mount or a process in it does. Unmounting the file of
 * a namespace no process uses makes the kernel destroy it, with its veths and
 * their host ends, in the background: that is much cheaper for the caller than
 * deleting each veth (`ip link del` waits for an RCU grace period), so
 * teardown unmounts, and the network manager later sweeps any host end that
 * outlived its namespace (a process still held it).
 *
 * A veth pair is created from inside the container's namespace with its peer
 * placed directly in the host's namespace, so wiring an interface is one
 * process in the container's namespace plus one on the host.
 */
import { lstat, rm, writeFile } from "node:fs/promises";
import { unavailable } from "../errors.ts";
import { settled } from "../../../shared/best-effort.ts";
import { run, runRaw } from "./exec.ts";

/** The agent's own network namespace, as a path `ip … netns` accepts. */
export const HOST_NETNS = `/proc/${process.pid}/ns/net`;

export interface InterfaceSpec {
  /** Name inside the container: eth0, eth1… */
  ifName: string;
  /** Name of the host end. */
  hostVeth: string;
  macAddress: string;
  ipAddress: string;
  prefixLen: number;
  /** Add a default route through this gateway. */
  defaultGateway?: string;
  /** Bridge the host end joins. */
  bridge: string;
  /** An IPv6 address too (IPv6 networks), and the IPv6 default route's gateway with `defaultGateway`. */
  ipv6?: { address: string; prefixLen: number; gateway: string };
}

/** `ip -batch` lines run inside the container's namespace to create and configure one interface. */
function insideLines(i: InterfaceSpec): string[] {
  const lines = [
    `link add ${i.ifName} address ${i.macAddress} type veth peer name ${i.hostVeth} netns ${HOST_NETNS}`,
    `addr add ${i.ipAddress}/${i.prefixLen} dev ${i.ifName}`,
    `link set ${i.ifName} up`,
  ];
  if (i.defaultGateway) lines.push(`route add default via ${i.defaultGateway} dev ${i.ifName}`);
  // nodad: the address is the network's to give (unique by construction); waiting for duplicate detection only delays it.
  if (i.ipv6) lines.push(`addr add ${i.ipv6.address}/${i.ipv6.prefixLen} dev ${i.ifName} nodad`);
  if (i.ipv6 && i.defaultGateway) lines.push(`route add ::/0 via ${i.ipv6.gateway} dev ${i.ifName}`);
  return lines;
}

/**
 * `ip` commands for the host end: on the bridge, up, in hairpin mode (a container reaching its
 * own published port through a host address gets the DNATed packet back on the same bridge
 * port, which the bridge would otherwise refuse to send it out of).
 */
function hostSide(i: InterfaceSpec): string[] {
  return [`link set ${i.hostVeth} master ${i.bridge} up`, `link set ${i.hostVeth} type bridge_slave hairpin on`];
}

/**
 * Creates a network namespace bound at `path` with lo up and the given interfaces
 * configured and attached to their bridges. One process (a shell running
 * `unshare … ip -batch` then `ip link set … master`). On failure nothing is left.
 * @throws Unavailable naming the failed command.
 */
export async function createNetns(path: string, interfaces: InterfaceSpec[]): Promise<void> {
  await writeFile(path, "", { flag: "wx", mode: 0o444 }).catch(async (e: NodeJS.ErrnoException) => {
    if (e.code !== "EEXIST") throw e;
    await removeNetns(path); // a leftover of an interrupted attempt for the same container
    await writeFile(path, "", { flag: "wx", mode: 0o444 });
  });
  const enslave = interfaces
    .map(
      (i) =>
        ` && ${hostSide(i)
          .map((l) => `ip ${l}`)
          .join(" && ")}`,
    )
    .join("");
  try {
    await run("sh", ["-c", `unshare --net="$1" ip -batch -${enslave}`, "sh", path], ["link set lo up", ...interfaces.flatMap(insideLines)].join("\n") + "\n");
  } catch (e) {
    // The set-up's own failure is what the caller hears; a veth that cannot be deleted now is
    // swept with the namespace's other leftovers (network-manager's veth sweep).
    await settled(deleteLinks(interfaces.map((i) => i.hostVeth)));
    await removeNetns(path);
    throw e;
  }
}

/**
 * Adds an interface to an existing namespace (network connect, or repair after a restart).
 * On failure the half-made pair is deleted.
 */
export async function addInterface(path: string, i: InterfaceSpec): Promise<void> {
  try {
    await run("nsenter", [`--net=${path}`, "ip", "-batch", "-"], insideLines(i).join("\n") + "\n");
    await run("ip", ["-batch", "-"], hostSide(i).join("\n") + "\n");
  } catch (e) {
    await deleteLinks([i.hostVeth]);
    throw e;
  }
}

/** Runs `ip route …` lines inside a namespace (default route changes on connect/disconnect). */
export async function ipInNetns(path: string, lines: string[]): Promise<void> {
  await run("nsenter", [`--net=${path}`, "ip", "-batch", "-"], lines.join("\n") + "\n");
}

const IGNORABLE = /Cannot find device|does not exist|Command failed|^\s*$/;

/** Deletes host interfaces by name; missing ones are fine. */
export async function deleteLinks(names: string[]): Promise<void> {
  if (names.length === 0) return;
  const r = await runRaw("ip", ["-force", "-batch", "-"], names.map((n) => `link del ${n}`).join("\n") + "\n");
  const real = r.stderr.split("\n").filter((l) => !IGNORABLE.test(l));
  if (r.exitCode !== 0 && real.length > 0) throw unavailable(`ip link del failed: ${real.join("; ")}`);
}

/** Unmounts (every stacked mount of) and deletes a namespace file. Missing is fine. */
export async function removeNetns(path: string): Promise<void> {
  // No file, no mount: the usual case on a second detach (exit, then removal), without a process.
  const present = await lstat(path).then(
    () => true,
    () => false,
  );
  if (!present) return;
  await runRaw("umount", [path]); // fails harmlessly when not mounted
  await removeNetnsFile(path);
}

/** `removeNetns` for many files, with one `umount` process per 200 of them (start-up clean-up). */
export async function removeNetnsAll(paths: string[]): Promise<void> {
  for (let i = 0; i < paths.length; i += 200) await runRaw("umount", paths.slice(i, i + 200));
  for (const p of paths) await removeNetnsFile(p);
}

async function removeNetnsFile(path: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await rm(path, { force: true });
      return;
    } catch (e) {
      // EBUSY: still a mount point (mounted twice); unmount again.
      if ((e as NodeJS.ErrnoException).code !== "EBUSY" || i >= 8) throw e;
      await runRaw("umount", [path]);
    }
  }
}

export interface LinkInfo {
  ifname: string;
  master?: string;
  address?: string;
  operstate?: string;
  flags?: string[];
}

/** Every interface of the host namespace. */
export async function listLinks(): Promise<LinkInfo[]> {
  return JSON.parse((await run("ip", ["-j", "link", "show"])) || "[]") as LinkInfo[];
}

export interface AddrInfo {
  ifname: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

export async function listAddresses(): Promise<AddrInfo[]> {
  return JSON.parse((await run("ip", ["-j", "-4", "addr", "show"])) || "[]") as AddrInfo[];
}

export interface RouteInfo {
  dst: string;
  dev?: string;
}

export async function listRoutes(): Promise<RouteInfo[]> {
  return JSON.parse((await run("ip", ["-j", "-4", "route", "show"])) || "[]") as RouteInfo[];
}
