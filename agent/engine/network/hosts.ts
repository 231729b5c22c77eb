/**
 * The `/etc/hosts` and `/etc/resolv.conf` a container gets.
 *
 * On user-defined networks, names resolve through the DNS server (dns.ts) and,
 * as a fallback that needs no server, through hosts files: every member's file
 * lists the peers it shares a user network with, and is rewritten whenever a
 * member comes or goes. The files are
 * bind-mounted into the container, so they are rewritten in place (truncate and
 * write the same inode); a rename would leave the container looking at the old
 * file.
 */
import { readFile, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { invalidArgument } from "../errors.ts";

export interface HostsEntry {
  ip: string;
  names: string[];
}

const LOCALHOST_LINES = [
  "127.0.0.1\tlocalhost",
  "::1\tlocalhost ip6-localhost ip6-loopback",
  "fe00::0\tip6-localnet",
  "ff00::0\tip6-mcastprefix",
  "ff02::1\tip6-allnodes",
  "ff02::2\tip6-allrouters",
];

/**
 * One `--add-host` entry, "NAME:IP", split at the first colon (an IPv6 address keeps its own);
 * the IP may be `host-gateway`, which the network manager resolves. Docker's error otherwise.
 */
export function parseExtraHost(entry: string): { name: string; ip: string } {
  const i = entry.indexOf(":");
  const name = i > 0 ? entry.slice(0, i) : "";
  const ip = i > 0 ? entry.slice(i + 1) : "";
  if (!name || /[\s#]/.test(name)) throw invalidArgument(`bad format for add-host: ${JSON.stringify(entry)}`);
  if (ip !== "host-gateway" && isIP(ip) === 0) throw invalidArgument(`invalid IP address in add-host: ${JSON.stringify(ip)}`);
  return { name, ip };
}

/** "web.example.com" → ["web.example.com", "web"]; "web" → ["web"]. */
export function hostnameNames(hostname: string): string[] {
  if (!hostname) return [];
  const short = hostname.split(".")[0]!;
  return short && short !== hostname ? [hostname, short] : [hostname];
}

/**
 * Docker's layout: the localhost lines, the container's own entries, then one
 * `IP\tname alias…` line per peer. Names are deduplicated within a line; lines
 * without names are dropped.
 */
export function renderHosts(own: HostsEntry[], peers: HostsEntry[]): string {
  const lines = [...LOCALHOST_LINES];
  for (const e of [...own, ...peers]) {
    // Names with blanks or '#' would break the line (or smuggle in another): never written.
    const names = [...new Set(e.names.filter((n) => /^[^\s#]+$/.test(n)))];
    if (names.length > 0) lines.push(`${e.ip}\t${names.join(" ")}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * The host's resolv.conf for a container on a bridge: nameserver lines with a
 * 127.x address are dropped (they point at the host's own loopback, unreachable
 * from the container's namespace), and if no nameserver is left Google's public
 * ones are added, as Docker does. Everything else (search, options) is kept.
 */
export function filterResolvConf(host: string): string {
  const kept: string[] = [];
  let nameservers = 0;
  for (const line of host.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) {
      const addr = m[1]!;
      if (addr.startsWith("127.") || addr === "::1") continue;
      nameservers++;
    }
    kept.push(line);
  }
  while (kept.length > 0 && kept[kept.length - 1]!.trim() === "") kept.pop();
  if (nameservers === 0) kept.push("nameserver 8.8.8.8", "nameserver 8.8.4.4");
  return kept.join("\n") + "\n";
}

/**
 * A container's resolv.conf on a user network, as Docker writes it for its embedded server:
 * the host's search and options lines, the DNS server as the only nameserver (it forwards
 * everything else to the host's resolvers), and `options ndots:0`.
 */
export function dnsResolvConf(host: string, server: string): string {
  const kept = host.split("\n").filter((l) => /^\s*(search|domain|options)\s/.test(l));
  return ["nameserver " + server, ...kept, ...(kept.some((l) => /ndots:/.test(l)) ? [] : ["options ndots:0"])].join("\n") + "\n";
}

/** `--dns`, `--dns-search`, `--dns-option` of a container. */
export interface DnsSettings {
  servers: string[];
  search: string[];
  options: string[];
}

/**
 * A container's resolv.conf with Docker's rules (libnetwork's setupDNS): without any `--dns*`,
 * the host's (filtered) or the embedded server's; otherwise each of nameservers, search domains
 * and options comes from its flag when given and from the host's file when not, and
 * `--dns-search .` means no search domain. On a user network (`server` set) the server stays the
 * only nameserver, as Docker's 127.0.0.11 does; Docker makes `--dns` the embedded server's
 * upstreams, which aardvark-dns 1.4 (Debian bookworm's) cannot take per container: there they
 * are not used (the server forwards to the host's resolvers) and only search and options apply.
 */
export function renderResolvConf(host: string, server: string | undefined, dns: DnsSettings | undefined): string {
  if (!dns || (dns.servers.length === 0 && dns.search.length === 0 && dns.options.length === 0))
    return server ? dnsResolvConf(host, server) : filterResolvConf(host);
  const hostLines = (key: string) =>
    host
      .split("\n")
      .map((l) => new RegExp(`^\\s*${key}\\s+(.*)$`).exec(l)?.[1]?.trim())
      .filter((v): v is string => !!v);
  const nameservers = server ? [server] : dns.servers.length ? dns.servers : nameserversOf(filterResolvConf(host));
  const search = dns.search.length ? (dns.search[0] === "." ? [] : dns.search) : hostLines("search").flatMap((l) => l.split(/\s+/));
  const options = dns.options.length ? [...dns.options] : hostLines("options").flatMap((l) => l.split(/\s+/));
  if (server && !options.some((o) => o.startsWith("ndots:"))) options.push("ndots:0");
  return (
    [
      ...nameservers.map((n) => `nameserver ${n}`),
      ...(search.length ? [`search ${search.join(" ")}`] : []),
      ...(options.length ? [`options ${options.join(" ")}`] : []),
    ].join("\n") + "\n"
  );
}

/** Nameserver addresses of a resolv.conf (so new subnets can avoid them). */
export function nameserversOf(resolvConf: string): string[] {
  const out: string[] = [];
  for (const line of resolvConf.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

export async function readHostFile(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw e;
  }
}

/** Truncates and rewrites `path` keeping its inode (creates it if missing). */
export async function writeInPlace(path: string, content: string): Promise<void> {
  await writeFile(path, content, { flag: "w", mode: 0o644 });
}
