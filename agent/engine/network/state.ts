/**
 * The network manager's persisted state: one JSON file per network
 * (`<stateDir>/networks/<id>.json`) and one per attached container
 * (`<stateDir>/containers/<containerId>.json`, holding its address leases,
 * host-side interface names, netns path and published ports).
 *
 * Every file is replaced atomically (written to a temporary file in the same
 * directory, fsynced, renamed over the old one), so after a crash each record
 * is either the old or the new version, never half of one. A container record
 * is written *before* anything it names is created on the host: whatever a
 * crash leaves behind is named by some record, and reconciliation at start-up
 * can remove it.
 */
import { mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../fs-util.ts";
import type { Logger } from "pino";

export interface NetworkRecord {
  /** 64 lowercase hex. */
  id: string;
  name: string;
  driver: "bridge" | "host" | "null";
  /** Bridge networks only. */
  subnet?: string;
  gateway?: string;
  /** Name of the Linux bridge (bridge networks only). */
  bridge?: string;
  /** `--subnet` was given (Docker allows `--ip` only then); absent in records of older agents. */
  userSubnet?: boolean;
  /** `--gateway` was given (Docker shows a gateway in the IPAM config only then, or with no `--subnet`). */
  userGateway?: boolean;
  /** `--ip-range`: where dynamic addresses come from. */
  ipRange?: string;
  /** `--ipv6 --subnet <v6 CIDR>`: the IPv6 subnet and its gateway (the bridge's address), next to the IPv4 ones. */
  subnet6?: string;
  gateway6?: string;
  /** Driver options as the user gave them (`-o`), shown unchanged. */
  options?: Record<string, string>;
  internal: boolean;
  labels: Record<string, string>;
  /** RFC 3339. */
  created: string;
  /** "bridge", "host" and "none": created by the manager, never removable. */
  predefined: boolean;
}

export interface StoredPort {
  containerPort: number;
  protocol: "tcp" | "udp";
  hostIp: string;
  hostPort: number;
}

export interface EndpointRecord {
  networkId: string;
  /** Interface name inside the container: eth0, eth1… */
  ifName: string;
  /** Host side of the veth pair (on the network's bridge). */
  hostVeth: string;
  ipAddress: string;
  prefixLen: number;
  gateway: string;
  macAddress: string;
  aliases: string[];
  /** On an IPv6 network (ipv6.ts: the IPv4 lease's host number in the IPv6 subnet). */
  ipv6Address?: string;
  ipv6PrefixLen?: number;
  ipv6Gateway?: string;
}

export interface ContainerRecord {
  containerId: string;
  name: string;
  hostname: string;
  /** How the container was attached: its network namespace is the host's, an empty one, or wired to bridges. */
  mode: "host" | "none" | "bridge";
  /** Absent for host mode. */
  netnsPath?: string;
  hostsPath: string;
  resolvConfPath: string;
  /** Published ports with host ports resolved; they target the first endpoint. */
  ports: StoredPort[];
  /** In the order they were attached; the first one is eth0. */
  endpoints: EndpointRecord[];
  /** `--add-host` lines of its hosts file, before its own entry (absent in state of older agents). */
  extraHosts?: Array<{ ip: string; names: string[] }>;
  /** The nameserver its resolv.conf names: a user network's gateway (the DNS server), or absent (the host's). */
  dnsServer?: string;
  /** `--dns*` of the container, kept for the rewrites of its resolv.conf. */
  dns?: { servers: string[]; search: string[]; options: string[] };
}

export class StateStore {
  private readonly networksDir: string;
  private readonly containersDir: string;

  constructor(
    dir: string,
    private readonly log: Logger,
    private readonly durable = true,
  ) {
    this.networksDir = join(dir, "networks");
    this.containersDir = join(dir, "containers");
  }

  async open(): Promise<void> {
    await mkdir(this.networksDir, { recursive: true, mode: 0o700 });
    await mkdir(this.containersDir, { recursive: true, mode: 0o700 });
  }

  loadNetworks(): Promise<NetworkRecord[]> {
    return this.loadAll<NetworkRecord>(this.networksDir, (r) => typeof r.id === "string" && typeof r.name === "string");
  }

  loadContainers(): Promise<ContainerRecord[]> {
    return this.loadAll<ContainerRecord>(this.containersDir, (r) => typeof r.containerId === "string" && Array.isArray(r.endpoints));
  }

  saveNetwork(r: NetworkRecord): Promise<void> {
    return this.write(this.networksDir, r.id, r);
  }

  saveContainer(r: ContainerRecord): Promise<void> {
    return this.write(this.containersDir, r.containerId, r);
  }

  async deleteNetwork(id: string): Promise<void> {
    await rm(join(this.networksDir, `${id}.json`), { force: true });
  }

  async deleteContainer(id: string): Promise<void> {
    await rm(join(this.containersDir, `${id}.json`), { force: true });
  }

  private async write(dir: string, id: string, value: unknown): Promise<void> {
    await writeFileAtomic(join(dir, `${id}.json`), JSON.stringify(value), { durable: this.durable });
  }

  /** Reads every record of a directory; deletes temporary files a crash left; sets aside unreadable records. */
  private async loadAll<T>(dir: string, valid: (r: T) => boolean): Promise<T[]> {
    const out: T[] = [];
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      // writeFileAtomic's temporary files (`.ID.json.tmp-…`); `.ID.RANDOM.tmp` of earlier versions.
      if (name.startsWith(".") && (name.endsWith(".tmp") || name.includes(".json.tmp-"))) {
        await rm(path, { force: true });
        continue;
      }
      if (!name.endsWith(".json")) continue;
      try {
        const r = JSON.parse(await readFile(path, "utf8")) as T;
        if (!valid(r)) throw new Error("missing fields");
        out.push(r);
      } catch (e) {
        this.log.error({ err: e, path }, "unreadable network state record set aside");
        await rename(path, `${path}.corrupt`).catch((err: unknown) =>
          this.log.warn({ err, path }, "could not set the unreadable record aside: it is skipped again at the next start"),
        );
      }
    }
    return out;
  }
}
