/**
 * Published ports: validation, conflicts between containers, and host-port
 * reservation.
 *
 * A published port is served by DNAT rules (iptables.ts), not by a process,
 * but the agent still binds the host port (as Docker does) for as long as the
 * container publishes it: binding is the only reliable test that nothing else
 * on the host uses the port, it makes the kernel pick a free one for
 * `hostPort: 0`, and holding it keeps other programs from taking it later.
 * Traffic never reaches the held socket (the DNAT rules divert every IPv4
 * packet for a local address first); a connection that does (our rules were
 * flushed) is closed at once.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer, type Server } from "node:net";
import { conflict, invalidArgument } from "../errors.ts";
import { isIPv4 } from "./ipam.ts";

export interface PortBinding {
  containerPort: number;
  protocol: "tcp" | "udp";
  /** "" = all IPv4 addresses of the host ("0.0.0.0" is accepted and means the same). */
  hostIp: string;
  /** 0 = let the kernel pick a free port. */
  hostPort: number;
}

/**
 * Checks a list of bindings; returns copies with "0.0.0.0" written as "".
 * @throws InvalidArgument on a bad protocol, port number or host address.
 */
export function normalizePorts(ports: PortBinding[]): PortBinding[] {
  return ports.map((p) => {
    if (p.protocol !== "tcp" && p.protocol !== "udp") throw invalidArgument(`invalid protocol ${JSON.stringify(p.protocol)} for published port: tcp or udp`);
    if (!Number.isInteger(p.containerPort) || p.containerPort < 1 || p.containerPort > 65535)
      throw invalidArgument(`invalid container port ${p.containerPort}`);
    if (!Number.isInteger(p.hostPort) || p.hostPort < 0 || p.hostPort > 65535) throw invalidArgument(`invalid host port ${p.hostPort}`);
    const hostIp = p.hostIp === "0.0.0.0" ? "" : p.hostIp;
    if (hostIp !== "" && !isIPv4(hostIp))
      throw invalidArgument(`invalid host IP ${JSON.stringify(p.hostIp)} for published port: only IPv4 addresses are supported`);
    return { containerPort: p.containerPort, protocol: p.protocol, hostIp, hostPort: p.hostPort };
  });
}

export function isLoopback(hostIp: string): boolean {
  return hostIp.startsWith("127.");
}

/** Do two bindings claim the same host port? */
export function clash(a: PortBinding, b: PortBinding): boolean {
  return a.protocol === b.protocol && a.hostPort === b.hostPort && a.hostPort !== 0 && (a.hostIp === b.hostIp || a.hostIp === "" || b.hostIp === "");
}

export function allocatedError(p: PortBinding, endpoint: string): Error {
  return conflict(
    `driver failed programming external connectivity on endpoint ${endpoint}: Bind for ${p.hostIp || "0.0.0.0"}:${p.hostPort} failed: port is already allocated`,
  );
}

/** A bound host port; `close()` releases it and is safe to call twice. */
export interface PortHold {
  port: number;
  close(): Promise<void>;
}

/**
 * Binds `hostIp:hostPort` for `protocol` and keeps it bound.
 * @throws Conflict "… Bind for 0.0.0.0:8080 failed: port is already allocated" when something holds the port;
 *         InvalidArgument when the address is not one of this host's.
 */
export async function holdPort(p: PortBinding, endpoint: string): Promise<PortHold> {
  const host = p.hostIp || "0.0.0.0";
  const mapError = (e: NodeJS.ErrnoException): Error => {
    if (e.code === "EADDRINUSE") return allocatedError(p, endpoint);
    if (e.code === "EADDRNOTAVAIL")
      return invalidArgument(
        `driver failed programming external connectivity on endpoint ${endpoint}: listen ${p.protocol}4 ${host}:${p.hostPort}: bind: cannot assign requested address`,
      );
    return invalidArgument(`cannot bind ${p.protocol} ${host}:${p.hostPort}: ${e.message}`);
  };
  if (p.protocol === "tcp") {
    const server: Server = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      server.once("error", (e) => reject(mapError(e as NodeJS.ErrnoException)));
      server.listen({ host, port: p.hostPort, exclusive: true, ipv6Only: false }, () => resolve());
    });
    server.on("error", () => undefined);
    server.unref();
    return portHold((server.address() as { port: number }).port, (done) => server.close(() => done()));
  }
  const sock: UdpSocket = createSocket({ type: "udp4", reuseAddr: false });
  await new Promise<void>((resolve, reject) => {
    sock.once("error", (e) => {
      sock.close();
      reject(mapError(e as NodeJS.ErrnoException));
    });
    sock.bind({ address: host, port: p.hostPort, exclusive: true }, () => resolve());
  });
  sock.on("error", () => undefined);
  sock.on("message", () => undefined);
  sock.unref();
  return portHold(sock.address().port, (done) => sock.close(() => done()));
}

function portHold(port: number, release: (done: () => void) => void): PortHold {
  let closing: Promise<void> | undefined;
  return { port, close: () => (closing ??= new Promise<void>((resolve) => release(resolve))) };
}
