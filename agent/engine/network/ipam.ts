/**
 * IPv4 address management: subnet arithmetic, the per-network address
 * allocator and the choice of a subnet for a new network.
 *
 * The allocator is pure memory. Durability is the caller's business (the
 * network manager persists every lease in the container's state file before the
 * address is configured anywhere, and rebuilds the allocators from those files
 * at start-up), so an address can never be handed out twice, and a lease whose
 * container is gone is released by reconciliation, not leaked.
 */
import { conflict, invalidArgument } from "../errors.ts";

export interface Subnet {
  /** Network address as an unsigned 32-bit integer. */
  base: number;
  prefixLen: number;
}

const IPV4_RE = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;

export function isIPv4(s: string): boolean {
  return IPV4_RE.test(s);
}

/** "10.0.0.1" → 167772161. @throws InvalidArgument on anything but dotted-quad IPv4. */
export function ipToInt(ip: string): number {
  if (!isIPv4(ip)) throw invalidArgument(`invalid IPv4 address ${JSON.stringify(ip)}`);
  return ip.split(".").reduce((acc, part) => acc * 256 + Number(part), 0);
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function maskOf(prefixLen: number): number {
  return prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
}

/**
 * "10.209.0.0/16" → { base, prefixLen }. The address must be the network address
 * (Docker refuses "10.209.0.1/16" as a subnet too).
 * @throws InvalidArgument "invalid subnet …"
 */
export function parseSubnet(cidr: string): Subnet {
  const m = /^([0-9.]+)\/([0-9]{1,2})$/.exec(cidr);
  if (!m || !isIPv4(m[1]!) || Number(m[2]) > 32) throw invalidArgument(`invalid subnet ${JSON.stringify(cidr)}: expected an IPv4 CIDR such as 10.210.0.0/24`);
  const prefixLen = Number(m[2]);
  const addr = ipToInt(m[1]!);
  const base = (addr & maskOf(prefixLen)) >>> 0;
  if (base !== addr) throw invalidArgument(`invalid subnet ${cidr}: the address is not the network address (did you mean ${intToIp(base)}/${prefixLen}?)`);
  if (prefixLen > 30) throw invalidArgument(`invalid subnet ${cidr}: a bridge network needs at least a /30`);
  return { base, prefixLen };
}

/**
 * Any "a.b.c.d" or "a.b.c.d/n" (a route destination, an interface address, a nameserver) as the
 * subnet it covers, host bits cleared; undefined for anything else (IPv6, "default").
 */
export function coveredSubnet(s: string): Subnet | undefined {
  const [ip, len] = s.split("/");
  if (!ip || !isIPv4(ip)) return undefined;
  const prefixLen = len === undefined ? 32 : Number(len);
  if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > 32) return undefined;
  return { base: (ipToInt(ip) & maskOf(prefixLen)) >>> 0, prefixLen };
}

export function formatSubnet(s: Subnet): string {
  return `${intToIp(s.base)}/${s.prefixLen}`;
}

export function subnetSize(s: Subnet): number {
  return 2 ** (32 - s.prefixLen);
}

export function contains(s: Subnet, ip: number): boolean {
  return (ip & maskOf(s.prefixLen)) >>> 0 === s.base;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  const len = Math.min(a.prefixLen, b.prefixLen);
  return (a.base & maskOf(len)) >>> 0 === (b.base & maskOf(len)) >>> 0;
}

/** The first host address: what Docker uses as the gateway. */
export function defaultGateway(s: Subnet): string {
  return intToIp(s.base + 1);
}

/** Docker's rule: 02:42 followed by the four bytes of the address. */
export function macFromIp(ip: string): string {
  const n = ipToInt(ip);
  return ["02", "42", ...[n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, "0"))].join(":");
}

/**
 * The addresses of one subnet. The network address, the broadcast address and
 * the gateway are never handed out. `allocate()` goes round the subnet from the
 * last address it gave (next fit), so a released address is not reused at
 * once: stale ARP entries and conntrack state of the previous owner age out.
 */
export class AddressAllocator {
  readonly subnet: Subnet;
  private readonly used = new Set<number>();
  private readonly reserved: Set<number>;
  private cursor: number;
  /** Where allocate() picks from (`--ip-range`); reserve() takes any address of the subnet, as Docker's `--ip`. */
  private readonly pool: Subnet;

  constructor(subnet: Subnet, gateway: string, range?: Subnet) {
    this.subnet = subnet;
    const gw = ipToInt(gateway);
    if (!contains(subnet, gw)) throw invalidArgument(`gateway ${gateway} is not in subnet ${formatSubnet(subnet)}`);
    if (range && (range.prefixLen < subnet.prefixLen || !contains(subnet, range.base)))
      throw invalidArgument(`ip-range ${formatSubnet(range)} is not inside subnet ${formatSubnet(subnet)}`);
    const last = subnet.base + subnetSize(subnet) - 1;
    this.reserved = new Set([subnet.base, last, gw]);
    this.pool = range ?? subnet;
    this.cursor = this.pool.base;
  }

  /** Number of addresses handed out. */
  get size(): number {
    return this.used.size;
  }

  has(ip: string): boolean {
    return this.used.has(ipToInt(ip));
  }

  /**
   * Hands out a free address.
   * @throws Conflict "no available IPv4 addresses on network …" when the subnet is full.
   */
  allocate(networkName: string): string {
    const size = subnetSize(this.pool);
    for (let i = 1; i <= size; i++) {
      const candidate = this.pool.base + ((this.cursor - this.pool.base + i) % size);
      if (this.reserved.has(candidate) || this.used.has(candidate)) continue;
      this.used.add(candidate);
      this.cursor = candidate;
      return intToIp(candidate);
    }
    throw conflict(`no available IPv4 addresses on network ${networkName} (${formatSubnet(this.pool)})`);
  }

  /**
   * Marks a specific address as taken (leases read back at start-up).
   * @throws InvalidArgument when the address is outside the subnet or reserved; Conflict when already taken.
   */
  reserve(ip: string): void {
    const n = ipToInt(ip);
    // Docker's (libnetwork's) texts: clients and users meet them on `--ip`.
    if (!contains(this.subnet, n)) throw invalidArgument(`Invalid address ${ip}: It does not belong to any of this network's subnets`);
    if (this.reserved.has(n)) throw invalidArgument(`address ${ip} is not assignable in ${formatSubnet(this.subnet)} (network, broadcast or gateway address)`);
    if (this.used.has(n)) throw conflict("Address already in use");
    this.used.add(n);
  }

  /** Returns an address to the pool. Releasing a free address is a no-op. */
  release(ip: string): void {
    this.used.delete(ipToInt(ip));
  }
}

/**
 * Picks the first `prefixLen` block of `pool` that overlaps none of `taken`
 * (subnets of existing networks, host routes and interface addresses, nameservers).
 * @throws Conflict "could not find an available, non-overlapping IPv4 address pool …"
 */
export function pickSubnet(pool: Subnet, prefixLen: number, taken: Subnet[]): Subnet {
  if (prefixLen < pool.prefixLen) throw invalidArgument(`pool ${formatSubnet(pool)} is smaller than a /${prefixLen}`);
  const step = 2 ** (32 - prefixLen);
  const count = 2 ** (prefixLen - pool.prefixLen);
  for (let i = 0; i < count; i++) {
    const candidate = { base: pool.base + i * step, prefixLen };
    if (!taken.some((t) => overlaps(t, candidate))) return candidate;
  }
  throw conflict(
    `could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network (pool ${formatSubnet(pool)} exhausted)`,
  );
}
