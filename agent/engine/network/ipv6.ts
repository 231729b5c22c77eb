/**
 * IPv6 subnets of user networks (`docker network create --ipv6 --subnet 2001:db8:1::/64`):
 * parsing, canonical text, and the address of a member. A member's IPv6 address takes the host
 * number of its IPv4 lease (10.x.y.5 → 2001:db8:1::5), so the IPv4 allocator's uniqueness and
 * persistence serve both families and no second allocator is needed.
 */
import { readFile } from "node:fs/promises";
import { isIPv6 } from "node:net";
import { invalidArgument } from "../errors.ts";
import { ifMissing } from "../fs-util.ts";

function toBigInt(addr: string): bigint {
  const [head = "", tail] = addr.split("::") as [string, string?];
  const h = head ? head.split(":") : [];
  const t = tail !== undefined && tail !== "" ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill("0"), ...t];
  return groups.reduce((acc, g) => (acc << 16n) + BigInt(parseInt(g, 16)), 0n);
}

/** RFC 5952 text: lower case, the longest run of zero groups as "::". */
function toText(n: bigint): string {
  const groups = Array.from({ length: 8 }, (_, i) => Number((n >> BigInt((7 - i) * 16)) & 0xffffn));
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLen).join(":")}`;
}

export interface Subnet6 {
  /** Canonical "2001:db8:1::/64". */
  cidr: string;
  prefixLen: number;
  base: bigint;
}

/** @throws InvalidArgument for what is not an IPv6 CIDR with room for hosts (prefix 1–120). */
export function parseSubnet6(cidr: string): Subnet6 {
  const [addr = "", len = ""] = cidr.split("/");
  const prefixLen = Number(len);
  if (!isIPv6(addr) || addr.includes(".") || !/^\d+$/.test(len) || prefixLen < 1 || prefixLen > 120) throw invalidArgument(`invalid IPv6 subnet ${cidr}`);
  const mask = ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - prefixLen)) - 1n);
  const base = toBigInt(addr) & mask;
  return { cidr: `${toText(base)}/${prefixLen}`, prefixLen, base };
}

/** The subnet's `n`-th address (1 is the gateway, as Docker picks it). */
export function addressInSubnet6(s: Subnet6, n: number): string {
  return toText(s.base + BigInt(n));
}

export function overlaps6(a: Subnet6, b: Subnet6): boolean {
  const len = BigInt(128 - Math.min(a.prefixLen, b.prefixLen));
  return a.base >> len === b.base >> len;
}

/** Whether the host's kernel has IPv6 on (Docker's refusal otherwise is a clear error at create). */
export async function ipv6Available(): Promise<boolean> {
  // No such file: a kernel without IPv6.
  const v = await readFile("/proc/sys/net/ipv6/conf/all/disable_ipv6", "utf8").catch(ifMissing);
  return v?.trim() === "0";
}
