/**
 * The address other hosts most likely reach this one at: the IPv4 address of the interface that
 * holds the default route (what `ip route get` would pick for the outside world), else the first
 * non-loopback IPv4 address, else loopback. Used for the console's default public URL when it
 * listens on all interfaces: join and install commands must name an address a node can dial.
 */
import { readFileSync } from "node:fs";
import { networkInterfaces } from "node:os";

/** The interface of the IPv4 default route, from /proc/net/route (destination 00000000, mask 00000000). */
export function defaultRouteInterface(routeTable: string): string | undefined {
  for (const line of routeTable.split("\n").slice(1)) {
    const [iface, destination, , , , , , mask] = line.trim().split(/\s+/);
    if (iface && destination === "00000000" && mask === "00000000") return iface;
  }
  return undefined;
}

export function primaryAddress(): string {
  const interfaces = networkInterfaces();
  let routeTable = "";
  try {
    routeTable = readFileSync("/proc/net/route", "utf8");
  } catch {
    // Not Linux, or no procfs: fall back to the first external address.
  }
  const ipv4Of = (name: string) => interfaces[name]?.find((a) => a.family === "IPv4" && !a.internal)?.address;
  const viaDefault = defaultRouteInterface(routeTable);
  const fromRoute = viaDefault ? ipv4Of(viaDefault) : undefined;
  if (fromRoute) return fromRoute;
  for (const name of Object.keys(interfaces)) {
    const a = ipv4Of(name);
    if (a) return a;
  }
  return "127.0.0.1";
}
