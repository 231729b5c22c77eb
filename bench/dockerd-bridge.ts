/**
 * Docker Engine 20.10 (Debian `docker.io`) with real container networking, for the
 * container benchmarks: like test/helpers/dockerd.ts (its own containerd, socket, data
 * root, exec root, pidfile, empty daemon.json, cgroup parent), but instead of
 * `--bridge=none --iptables=false` its default network is a bridge of its own:
 *
 * - a bridge `bd<4 hex>` with 172.31.N.1/24 (N in 200..254, a /24 no interface holds),
 *   created here and passed as `--bridge`; dockerd puts every `bridge` container on it
 *   with a veth pair and an address from that /24;
 * - `--iptables=true --ip-masq=true` (Docker's defaults): the DOCKER, DOCKER-USER and
 *   DOCKER-ISOLATION-STAGE-1/2 chains, the FORWARD jumps and the MASQUERADE rule of the
 *   subnet; `--ip-forward` stays at its default (true): it sets net.ipv4.ip_forward=1 and,
 *   only if forwarding was off, the FORWARD policy to DROP.
 *
 * The daemons themselves are test/helpers/dockerd.ts's `startDockerd({ bridge })`. This file
 * owns the bridge and the firewall: stop() (idempotent) stops the daemons (which unmount and
 * remove their directory), then deletes the bridge, the Docker chains that did not exist before
 * the start (and every rule naming the bridge or subnet) and restores the FORWARD policy if it
 * changed. If this process is SIGKILLed, the helper's watchdog stops the daemons, unmounts,
 * removes the directory and the bridge (the emptied Docker chains stay).
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { startDockerd, type DockerdHandle } from "../test/helpers/dockerd.ts";
import { deleteLink, iptablesChains, removeFirewallLeftovers } from "./lib.ts";

const execFileP = promisify(execFile);

export interface BridgedDockerd extends DockerdHandle {
  bridge: string;
  subnet: string;
}

export async function startBridgedDockerd(): Promise<BridgedDockerd> {
  const bridge = `bd${randomBytes(2).toString("hex")}`;
  const subnet = await freeSubnet();
  const chainsBefore = await iptablesChains();
  const forwardPolicyBefore = await forwardPolicy();
  const removeNetwork = async () => {
    await deleteLink(bridge);
    await removeFirewallLeftovers(chainsBefore, /^DOCKER/, [bridge, subnet]);
    if (forwardPolicyBefore && (await forwardPolicy()) !== forwardPolicyBefore)
      await execFileP("iptables", ["-P", "FORWARD", forwardPolicyBefore]).catch(() => undefined);
  };
  let daemon: DockerdHandle;
  try {
    await execFileP("ip", ["link", "add", bridge, "type", "bridge"]);
    await execFileP("ip", ["addr", "add", subnet.replace(/\.0\/24$/, ".1/24"), "dev", bridge]);
    await execFileP("ip", ["link", "set", bridge, "up"]);
    daemon = await startDockerd({ bridge, name: "berth-bench-dockerd" });
  } catch (err) {
    await removeNetwork();
    throw err instanceof Error ? err : new Error(String(err));
  }
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await daemon.stop();
      await removeNetwork();
    })());
  return { ...daemon, bridge, subnet, stop };
}

/** 172.31.N.0/24 for N in 200..254 that no interface address or route of this host is in. */
async function freeSubnet(): Promise<string> {
  const { stdout: addrs } = await execFileP("ip", ["-4", "-o", "addr"]);
  const { stdout: routes } = await execFileP("ip", ["-4", "route"]);
  const taken = addrs + routes;
  const start = 200 + Math.floor(Math.random() * 55);
  for (let i = 0; i < 55; i++) {
    const n = 200 + ((start - 200 + i) % 55);
    if (!taken.includes(`172.31.${n}.`)) return `172.31.${n}.0/24`;
  }
  throw new Error("no free 172.31.200-254.0/24 for dockerd's bridge");
}

async function forwardPolicy(): Promise<string | undefined> {
  const { stdout } = await execFileP("iptables", ["-S", "FORWARD"]).catch(() => ({ stdout: "" }));
  return /^-P FORWARD (\w+)/m.exec(stdout)?.[1];
}
