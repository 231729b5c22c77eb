/**
 * Container networking: bridges, veth pairs, address leases, NAT and published
 * ports, `/etc/hosts` and `/etc/resolv.conf` (Docker's `bridge`, `host` and
 * `null` drivers, built with `ip`, `unshare`/`nsenter` and `iptables-restore`).
 *
 * Concepts:
 * - Network: a Linux bridge with a subnet and a gateway address on the bridge,
 *   or one of the predefined `host` and `none` networks. The default network is
 *   "bridge" (bridge `berth0`, 10.209.0.0/16 unless configured: chosen so as
 *   not to collide with a Docker Engine on the same host, which owns `docker0`
 *   and 172.17.0.0/16). User-defined networks get a bridge `berth-<9 hex of id>`
 *   and, unless given one, a /24 from the pool (10.210.0.0/15 by default) that
 *   overlaps no host route, interface address, nameserver or other network.
 * - Endpoint: a container's membership of a network: a veth pair (host end on
 *   the bridge, `ethN` in the container's namespace), an address leased from the
 *   network's subnet, the MAC Docker would give it (02:42 + the address).
 * - Published port: DNAT rules from a host port to the container's first
 *   endpoint (reachable from outside, from the host itself, also through
 *   127.0.0.1, and from other containers), plus a bound socket holding the host
 *   port. A port bound to a 127.x address is reachable from the host only.
 * - Name resolution: on user-defined networks (not on "bridge", as in Docker) a
 *   DNS server answers for the members (dns.ts), and every member's hosts file
 *   lists the peers it shares a network with (name, aliases, hostname, short
 *   ID), both kept up to date as members come and go.
 *
 * Call order and ownership:
 * 1. `init(liveContainerIds)` once at start-up, before anything else, with the
 *    IDs of the containers whose processes are still alive. Everything recorded
 *    for other containers (veths, namespaces, leases, rules, hosts entries) is
 *    removed; the live ones keep their addresses and get their rules back.
 * 2. `attach()` before the container's process starts: it returns the
 *    namespace path the runtime joins. The caller owns the hosts and
 *    resolv.conf files' location; the manager writes them (and keeps hosts up
 *    to date in place, so the bind mount sees the changes).
 * 3. `detach()` once the container's process is gone (stop, exit, removal); it
 *    is idempotent. `connect()`/`disconnect()` change a running container's
 *    networks.
 * 4. `reconcileRules()` on a timer: puts back our chains and jump rules if
 *    someone flushed the firewall.
 *
 * Crash safety: a container's record (leases, interface names, namespace path,
 * ports) is persisted before anything it names is created, and removed only
 * after everything it names is gone; see state.ts. Firewall rules are rewritten
 * from the state as a whole in one transaction (iptables.ts), never patched.
 * Operations are serialised by the manager.
 *
 * Only what the manager creates is touched: our bridges, veths enslaved to
 * them, namespace files under `netnsDir`, and chains named `<chainPrefix>-…`
 * with one jump rule each from the built-in chains. The one host-wide setting
 * changed is `net.ipv4.ip_forward=1` (plus `route_localnet=1` on our bridges).
 *
 * Errors are EngineErrors: InvalidArgument (bad options, names, ports),
 * NotFound (unknown network or container), AlreadyExists (network name taken,
 * container already on a network), Conflict (port already allocated, network in
 * use or predefined, subnet overlap, container not connected), Unavailable (a
 * host tool failed: the message names the command and its error).
 */
import { addressInSubnet6, ipv6Available, overlaps6, parseSubnet6 } from "./ipv6.ts";
import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import pino, { type Logger } from "pino";
import { alreadyExists, conflict, invalidArgument, notFound, unavailable } from "../errors.ts";
import { run } from "./exec.ts";
import { EmbeddedDns, type DnsNetwork } from "./dns.ts";
import {
  renderResolvConf,
  type DnsSettings,
  hostnameNames,
  parseExtraHost,
  type HostsEntry,
  nameserversOf,
  readHostFile,
  renderHosts,
  writeInPlace,
} from "./hosts.ts";
import { IptablesChains, renderRules, type RuleNetwork, type RulePort, type Ruleset } from "./iptables.ts";
import {
  AddressAllocator,
  coveredSubnet,
  defaultGateway,
  formatSubnet,
  ipToInt,
  isIPv4,
  macFromIp,
  overlaps,
  parseSubnet,
  pickSubnet,
  contains,
  type Subnet,
  subnetSize,
} from "./ipam.ts";
import {
  addInterface,
  createNetns,
  deleteLinks,
  type InterfaceSpec,
  ipInNetns,
  listAddresses,
  listLinks,
  listRoutes,
  removeNetns,
  removeNetnsAll,
} from "./netns.ts";
import { allocatedError, clash, holdPort, normalizePorts, type PortBinding, type PortHold } from "./ports.ts";
import { type ContainerRecord, type EndpointRecord, type NetworkRecord, StateStore } from "./state.ts";
import { bestEffort } from "../../../shared/best-effort.ts";
import type { PublishEvent } from "../system/events.ts";
import { KeyedQueue } from "../keyed-queue.ts";

export type { PortBinding } from "./ports.ts";

/** A container's membership of one network. */
export interface NetworkEndpoint {
  networkId: string;
  networkName: string;
  /** "" on the host and none networks. */
  ipAddress: string;
  prefixLen: number;
  gateway: string;
  macAddress: string;
  aliases: string[];
  /** On IPv6 networks. */
  ipv6Address?: string;
  ipv6PrefixLen?: number;
  ipv6Gateway?: string;
}

/** One network a container joins, with its endpoint settings (Docker's EndpointSettings). */
export interface EndpointRequest {
  /** Name, ID or unique ID prefix. */
  network: string;
  /** Network-scoped aliases; only on user-defined networks. */
  aliases?: string[];
  /** `--ip`: only on networks created with `--subnet`, as in Docker. */
  ipv4Address?: string;
}

export interface AttachRequest {
  /** 64 lowercase hex. */
  containerId: string;
  /** Container name, resolvable by peers on user networks. */
  name: string;
  hostname: string;
  /** "bridge" (or "default"), "none", "host", or a user network's name or ID. */
  networkMode: "bridge" | "none" | "host" | string;
  /** Ignored (none published) in host and none modes and on internal networks, as in Docker. */
  ports: PortBinding[];
  /** Network-scoped aliases; only on user-defined networks. */
  aliases?: string[];
  /**
   * Bridge-like modes: the networks to join, the first one as eth0 (carrying the published ports).
   * Default: `networkMode` with `aliases`. Empty: a namespace with loopback only (all disconnected).
   */
  networks?: EndpointRequest[];
  /**
   * The file the container gets bind-mounted at /etc/hosts. The manager writes it and keeps
   * it up to date in place (same inode). Host mode: a copy of the host's /etc/hosts.
   */
  hostsPath: string;
  /**
   * The manager writes it: the host's resolv.conf without 127.x nameservers (8.8.8.8 and
   * 8.8.4.4 if none is left); host mode: an unchanged copy of the host's.
   */
  resolvConfPath: string;
  /** `--mac-address` of the first interface; default: derived from its IP, as Docker does. */
  macAddress?: string;
  /** `--add-host` entries ("NAME:IP", IP may be `host-gateway`), written to the hosts file before its own entry, as Docker does. */
  extraHosts?: string[];
  /** `--dns`, `--dns-search`, `--dns-option` (hosts.ts renderResolvConf); ignored in host mode, as Docker does. */
  dns?: DnsSettings;
}

export interface AttachResult {
  /** The namespace the runtime joins; undefined for host mode. */
  netnsPath?: string;
  /** One per network; host and none modes give one endpoint of that network without address. */
  endpoints: NetworkEndpoint[];
  /** The published ports, host ports resolved (hostIp as requested: "" = all IPv4 addresses). */
  ports: PortBinding[];
}

/** A network as inspect and list show it: its record (but whether it is predefined) and its members. */
export type NetworkInfo = Omit<NetworkRecord, "predefined"> & { containers: Record<string, NetworkEndpoint & { name: string }> };

export interface CreateNetworkOptions {
  name: string;
  driver?: "bridge";
  /** IPv4 CIDR; picked from the pool when omitted. */
  subnet?: string;
  /** Defaults to the subnet's first address; needs `subnet`. */
  gateway?: string;
  /** `--ip-range`: dynamic addresses come from this part of the subnet; needs `subnet`. */
  ipRange?: string;
  /** `--ipv6` with an IPv6 `--subnet`: members get an address of it too. */
  subnet6?: string;
  /** Driver options (`-o`): kept and shown as given. */
  options?: Record<string, string>;
  /** No outbound access, no traffic in from outside the bridge. */
  internal?: boolean;
  labels?: Record<string, string>;
}

export interface NetworkManagerOptions {
  /** Where networks and leases are persisted. */
  stateDir: string;
  /** Bridge of the default "bridge" network. Default "berth0". */
  bridgeName?: string;
  /** Subnet of the default network. Default "10.209.0.0/16"; Docker's 172.17.0.0/16 is refused. */
  defaultSubnet?: string;
  /** Prefix of our iptables chains. Default "BERTH". */
  chainPrefix?: string;
  /** Where namespace files are bound. Default /run/berth/netns. */
  netnsDir?: string;
  /** Pool user networks' subnets are carved from, as /24s. Default "10.210.0.0/15". */
  subnetPool?: string;
  /** The host files containers' copies are made from. Defaults /etc/hosts and /etc/resolv.conf. */
  hostHostsPath?: string;
  hostResolvConfPath?: string;
  /**
   * Directory of the DNS server of user networks (dns.ts). Absent: no DNS server, names resolve
   * through hosts files only.
   */
  dnsDir?: string;
  /** fsync state files (default true; tests may turn it off). */
  durable?: boolean;
  logger?: Logger;
  /** The engine's event stream: create, destroy, connect, disconnect (moby's network events). */
  events?: PublishEvent;
}

const ID_RE = /^[0-9a-f]{64}$/;

/** net.ipv4.ip_forward=1. @throws Unavailable when it is off and cannot be turned on (read-only /proc/sys). */
async function enableForwarding(): Promise<void> {
  const path = "/proc/sys/net/ipv4/ip_forward";
  try {
    await writeFile(path, "1");
  } catch (e) {
    if ((await readFile(path, "utf8").catch(() => "0")).trim() !== "1")
      throw unavailable(`cannot enable IPv4 forwarding (${path}): ${(e as Error).message}`, e);
  }
}
const IFNAME_RE = /^[a-zA-Z0-9_.-]{1,15}$/;
const DOCKER_SUBNET = parseSubnet("172.17.0.0/16");
const USER_PREFIX_LEN = 24;

export class NetworkManager {
  private readonly log: Logger;
  private readonly store: StateStore;
  private readonly chains: IptablesChains;
  private readonly bridgeName: string;
  private readonly defaultSubnet: Subnet;
  private readonly netnsDir: string;
  private readonly pool: Subnet;
  private readonly hostHostsPath: string;
  private readonly hostResolvConfPath: string;
  private readonly dns: EmbeddedDns | undefined;
  private readonly events: PublishEvent | undefined;

  private readonly networks = new Map<string, NetworkRecord>();
  private readonly containers = new Map<string, ContainerRecord>();
  private readonly allocators = new Map<string, AddressAllocator>();
  private readonly holds = new Map<string, PortHold[]>();
  /** Changes to networks and attachments, one at a time. */
  private readonly queue = new KeyedQueue();
  private readonly sweepSet = new Set<string>();
  private sweepTimer: NodeJS.Timeout | undefined;
  /** The ruleset our chains hold, as far as we know (undefined: unknown, rewrite in full next time). */
  private applied: Ruleset | undefined;
  private initialized = false;

  /** @throws InvalidArgument on a bad option (Docker's subnet or bridge, malformed names). */
  constructor(opts: NetworkManagerOptions) {
    this.log = opts.logger ?? pino({ enabled: false });
    this.bridgeName = opts.bridgeName ?? "berth0";
    if (!IFNAME_RE.test(this.bridgeName)) throw invalidArgument(`invalid bridge name ${JSON.stringify(this.bridgeName)}`);
    if (this.bridgeName === "docker0") throw invalidArgument("the bridge name docker0 belongs to Docker Engine; choose another");
    this.defaultSubnet = parseSubnet(opts.defaultSubnet ?? "10.209.0.0/16");
    if (overlaps(this.defaultSubnet, DOCKER_SUBNET))
      throw invalidArgument(`default subnet ${formatSubnet(this.defaultSubnet)} overlaps Docker Engine's 172.17.0.0/16; choose another`);
    const prefix = opts.chainPrefix ?? "BERTH";
    if (!/^[A-Za-z0-9_-]{1,14}$/.test(prefix)) throw invalidArgument(`invalid chain prefix ${JSON.stringify(prefix)}: 1 to 14 of A-Z a-z 0-9 _ -`);
    this.chains = new IptablesChains(prefix);
    this.netnsDir = opts.netnsDir ?? "/run/berth/netns";
    this.pool = parseSubnet(opts.subnetPool ?? "10.210.0.0/15");
    if (this.pool.prefixLen > USER_PREFIX_LEN) throw invalidArgument(`subnet pool ${opts.subnetPool} is smaller than a /${USER_PREFIX_LEN}`);
    this.hostHostsPath = opts.hostHostsPath ?? "/etc/hosts";
    this.hostResolvConfPath = opts.hostResolvConfPath ?? "/etc/resolv.conf";
    this.store = new StateStore(opts.stateDir, this.log, opts.durable ?? true);
    this.dns = opts.dnsDir ? new EmbeddedDns(opts.dnsDir, this.log) : undefined;
    this.events = opts.events;
  }

  /** moby's network event: the network's ID as actor, its name and driver (`type`), and the container of a (dis)connect. */
  private event(action: string, net: { id: string; name: string; driver: string } | undefined, containerId?: string): void {
    if (!net) return;
    this.events?.("network", action, net.id, { ...(containerId ? { container: containerId } : {}), name: net.name, type: net.driver });
  }

  // ─── start-up and reconciliation ──────────────────────────────────────────

  /**
   * Loads the state, creates the predefined networks ("bridge", "host", "none") and their
   * bridges, enables forwarding, and reconciles: every container not in `liveContainerIds` loses
   * its veths, namespace, leases, rules and hosts entries at its peers; namespace files and veths
   * on our bridges that no live container owns are removed; live containers keep their leases, get
   * missing veths re-created (if their namespace still exists), their host ports held and their
   * rules restored.
   */
  init(liveContainerIds: string[]): Promise<void> {
    return this.exclusive(async () => {
      await mkdir(this.netnsDir, { recursive: true, mode: 0o755 });
      await this.store.open();
      const [networks, containers] = await Promise.all([this.store.loadNetworks(), this.store.loadContainers()]);
      this.networks.clear();
      this.containers.clear();
      this.allocators.clear();
      for (const n of networks) this.networks.set(n.id, n);
      await this.ensurePredefined(containers);

      // Containers that are gone: tear down what their records name.
      const live = new Set(liveContainerIds);
      const dead = containers.filter((c) => !live.has(c.containerId));
      if (dead.length > 0) {
        // Unmounting their namespaces makes the kernel delete their veths; any that a process keeps
        // alive is caught by the stray-veth pass below (it is on our bridge and no live record owns it).
        this.log.info({ count: dead.length }, "removing network resources of containers that are gone");
        await removeNetnsAll(dead.flatMap((c) => (c.netnsPath ? [c.netnsPath] : [])));
        for (const c of dead) await this.store.deleteContainer(c.containerId);
      }

      // Live containers: leases back into the allocators.
      for (const c of containers) {
        if (!live.has(c.containerId)) continue;
        c.endpoints = c.endpoints.filter((e) => {
          const alloc = this.allocators.get(e.networkId);
          if (!alloc) {
            this.log.warn({ containerId: c.containerId, networkId: e.networkId }, "endpoint on a network that no longer exists dropped");
            return false;
          }
          try {
            alloc.reserve(e.ipAddress);
            return true;
          } catch (err) {
            this.log.error({ err, containerId: c.containerId, ip: e.ipAddress }, "duplicate or invalid lease dropped");
            return false;
          }
        });
        this.containers.set(c.containerId, c);
      }

      for (const id of [...this.holds.keys()]) if (!this.containers.has(id)) await this.releaseHolds(id); // init() called again
      await enableForwarding();
      const links = await this.ensureBridges();

      // Veths on our bridges and namespace files that no live container owns.
      const bridges = new Set([...this.networks.values()].flatMap((n) => (n.bridge ? [n.bridge] : [])));
      const ownedVeths = new Set([...this.containers.values()].flatMap((c) => c.endpoints.map((e) => e.hostVeth)));
      const strayVeths = links.filter((l) => l.master && bridges.has(l.master) && !ownedVeths.has(l.ifname)).map((l) => l.ifname);
      if (strayVeths.length > 0) {
        this.log.info({ veths: strayVeths }, "removing stray veths");
        await deleteLinks(strayVeths);
      }
      const ownedNetns = new Set([...this.containers.values()].flatMap((c) => (c.netnsPath ? [c.netnsPath] : [])));
      const strayNetns = (await readdir(this.netnsDir)).map((f) => join(this.netnsDir, f)).filter((p) => !ownedNetns.has(p));
      if (strayNetns.length > 0) {
        this.log.info({ count: strayNetns.length }, "removing stray network namespaces");
        await removeNetnsAll(strayNetns);
      }

      // Live containers: missing veths re-created, host ports held, hosts files refreshed.
      const present = new Set(links.map((l) => l.ifname));
      for (const c of this.containers.values()) {
        for (const [i, e] of c.endpoints.entries()) {
          if (present.has(e.hostVeth) || !c.netnsPath) continue;
          try {
            await addInterface(c.netnsPath, this.interfaceSpec(c, e, this.routeEndpoint(c) === i));
            this.log.info({ containerId: c.containerId, veth: e.hostVeth }, "re-created a missing veth");
          } catch (err) {
            this.log.warn({ err, containerId: c.containerId, veth: e.hostVeth }, "cannot re-create a missing veth");
          }
        }
        if (c.ports.length > 0 && !this.holds.has(c.containerId)) {
          const held: PortHold[] = [];
          for (const p of c.ports) {
            try {
              held.push(await holdPort(p, this.endpointLabel(c)));
            } catch (err) {
              this.log.warn({ err, containerId: c.containerId, port: p }, "cannot hold a published host port again");
            }
          }
          this.holds.set(c.containerId, held);
        }
        await this.writeHosts(c);
      }

      const rules = this.rules();
      await this.chains.reconcile(rules);
      this.applied = rules;
      await this.syncDns();
      this.initialized = true;
    });
  }

  /**
   * Puts our chains, their rules and the jump rules back if they differ from the state (someone
   * flushed the firewall or deleted a chain). Cheap when nothing changed: one iptables-save.
   */
  reconcileRules(): Promise<void> {
    return this.exclusive(async () => {
      this.requireInit();
      await enableForwarding();
      const rules = this.rules();
      this.applied = undefined;
      if (await this.chains.reconcile(rules)) this.log.warn("firewall rules were missing or changed: restored");
      this.applied = rules;
    });
  }

  // ─── containers ───────────────────────────────────────────────────────────

  /**
   * Wires a container before its process starts. All or nothing: on any error every lease,
   * interface, namespace, rule and held port made so far is released.
   * @throws Conflict "… Bind for 0.0.0.0:8080 failed: port is already allocated" (a host port used by
   *         anything, or by another container); Conflict when already attached; NotFound unknown network;
   *         InvalidArgument bad id, ports or aliases; Unavailable a host tool failed.
   */
  attach(req: AttachRequest): Promise<AttachResult> {
    return this.exclusive(async () => {
      this.requireInit();
      if (typeof req.containerId !== "string" || !ID_RE.test(req.containerId)) throw invalidArgument(`invalid container id ${JSON.stringify(req.containerId)}`);
      if (!isAbsolute(req.hostsPath) || !isAbsolute(req.resolvConfPath)) throw invalidArgument("hostsPath and resolvConfPath must be absolute");
      this.extraHostEntries(req.extraHosts); // refused before anything is made
      if (this.containers.has(req.containerId)) throw conflict(`container ${req.containerId} is already attached to its networks`);
      const mode = req.networkMode === "default" || req.networkMode === "" ? "bridge" : req.networkMode;
      const net = this.resolve(mode);
      const result =
        net.driver === "host"
          ? await this.attachHost(req, net)
          : net.driver === "null"
            ? await this.attachNone(req, net)
            : await this.attachBridge(req, req.networks ?? [{ network: mode, aliases: req.aliases }]);
      for (const e of result.endpoints) this.event("connect", this.networks.get(e.networkId), req.containerId);
      return result;
    });
  }

  /**
   * Unwires a container: its rules, veths, namespace, leases, held ports and its entries in its
   * peers' hosts files. Idempotent; unknown containers are fine.
   */
  detach(containerId: string): Promise<void> {
    return this.exclusive(async () => {
      this.requireInit();
      const c = this.containers.get(containerId);
      if (!c) {
        if (ID_RE.test(containerId)) {
          await removeNetns(join(this.netnsDir, containerId));
          await this.store.deleteContainer(containerId);
        }
        return;
      }
      await this.releaseHolds(containerId);
      // Unmounting the namespace makes the kernel delete its veths in the background; the sweep
      // deletes any host end that outlives it (a process still in the namespace).
      if (c.netnsPath) await removeNetns(c.netnsPath);
      this.sweepLater(c.endpoints.map((e) => e.hostVeth));
      this.containers.delete(containerId);
      for (const e of c.endpoints) this.allocators.get(e.networkId)?.release(e.ipAddress);
      if (c.ports.length > 0) await this.applyRulesLogged();
      await this.store.deleteContainer(containerId);
      await this.refreshPeers(c.endpoints.map((e) => e.networkId));
      const left =
        c.mode === "host" || c.mode === "none"
          ? [[...this.networks.values()].find((n) => n.name === c.mode)]
          : c.endpoints.map((e) => this.networks.get(e.networkId));
      for (const n of left) this.event("disconnect", n, containerId);
    });
  }

  /**
   * Joins an attached (bridge-mode) container to another network: a new interface eth1, eth2…
   * If the container has no default route yet (only internal networks so far), it gets one here.
   * @throws NotFound unknown container or network; AlreadyExists already on it; Conflict host/none,
   *         address in use; InvalidArgument aliases or `--ip` where Docker refuses them.
   */
  connect(containerId: string, request: EndpointRequest): Promise<NetworkEndpoint> {
    return this.exclusive(async () => {
      this.requireInit();
      const c = this.containers.get(containerId);
      if (!c) throw notFound(`container ${containerId} is not running or has no network`);
      const net = this.resolve(request.network);
      if (net.driver === "host" || c.mode === "host") throw conflict("container cannot be disconnected from host network or connected to host network");
      if (net.driver === "null" || c.mode === "none")
        throw conflict("container cannot be connected to multiple networks with one of the networks in private (none) mode");
      if (c.endpoints.some((e) => e.networkId === net.id)) throw alreadyExists(`endpoint with name ${c.name} already exists in network ${net.name}`);
      const names = this.checkAliases(net, request.aliases);
      this.checkStaticIp(net, request.ipv4Address);
      const used = new Set(c.endpoints.map((e) => e.ifName));
      let n = 0;
      while (used.has(`eth${n}`)) n++;
      const alloc = this.allocators.get(net.id)!;
      const ip = this.lease(net, request.ipv4Address);
      const e: EndpointRecord = this.endpointRecord(net, ip, `eth${n}`, names);
      const routeBefore = this.routeEndpoint(c);
      const portsRetarget = c.ports.length > 0 && c.endpoints.length === 0;
      c.endpoints.push(e);
      try {
        await this.store.saveContainer(c);
        await addInterface(c.netnsPath!, this.interfaceSpec(c, e, routeBefore === -1 && !net.internal));
        if (portsRetarget) await this.applyRules();
      } catch (err) {
        c.endpoints = c.endpoints.filter((x) => x !== e);
        alloc.release(ip);
        await deleteLinks([e.hostVeth]).catch(bestEffort(this.log, `delete veth ${e.hostVeth}`));
        await this.store.saveContainer(c).catch(bestEffort(this.log, `save the network state of ${c.containerId}`));
        throw err;
      }
      await this.writeHosts(c);
      await this.syncDns();
      await this.updateResolvConf(c);
      await this.refreshPeers([net.id], c.containerId);
      this.event("connect", net, containerId);
      return this.endpointInfo(e);
    });
  }

  /**
   * Takes a container off a network. If that endpoint carried the default route, the next
   * non-internal endpoint gets it; published ports follow the first remaining endpoint.
   * `force`: a container the manager does not know is not an error (stale endpoint cleanup).
   * @throws NotFound unknown container (unless forced) or network; Conflict not connected, host/none.
   */
  disconnect(containerId: string, network: string, force?: boolean): Promise<void> {
    return this.exclusive(async () => {
      this.requireInit();
      const c = this.containers.get(containerId);
      if (!c) {
        if (force) return;
        throw notFound(`container ${containerId} is not running or has no network`);
      }
      const net = this.resolve(network);
      if (c.mode === "host" || net.driver === "host") throw conflict("container cannot be disconnected from host network or connected to host network");
      const index = c.endpoints.findIndex((e) => e.networkId === net.id);
      if (index === -1) throw conflict(`container ${containerId} is not connected to network ${net.name}`);
      const e = c.endpoints[index]!;
      const hadRoute = this.routeEndpoint(c) === index;
      // The record first: a crash before the veth is gone leaves a veth no record owns, which init() deletes.
      c.endpoints.splice(index, 1);
      await this.store.saveContainer(c);
      await deleteLinks([e.hostVeth]);
      this.allocators.get(net.id)?.release(e.ipAddress);
      if (hadRoute && c.netnsPath) {
        const next = this.routeEndpoint(c);
        if (next !== -1) {
          const r = c.endpoints[next]!;
          await ipInNetns(c.netnsPath, [`route replace default via ${r.gateway} dev ${r.ifName}`]).catch((err: unknown) =>
            this.log.warn({ err, containerId }, "cannot move the default route"),
          );
        }
      }
      if (c.ports.length > 0 && index === 0) await this.applyRulesLogged();
      await this.writeHosts(c);
      await this.updateResolvConf(c);
      await this.refreshPeers([net.id], c.containerId);
      this.event("disconnect", net, containerId);
    });
  }

  // ─── networks ─────────────────────────────────────────────────────────────

  /**
   * Creates a user-defined bridge network and its bridge.
   * @throws InvalidArgument bad name, subnet or gateway; AlreadyExists name taken; NotFound unknown
   *         driver; Conflict subnet overlapping another network's, or the pool exhausted.
   */
  createNetwork(opts: CreateNetworkOptions): Promise<NetworkInfo> {
    return this.exclusive(async () => {
      this.requireInit();
      // Docker takes any name (spaces too): the name is never used as a file or interface name here.
      if (typeof opts.name !== "string" || opts.name.trim() === "") throw invalidArgument("network name is required");
      if (["bridge", "host", "none", "default"].includes(opts.name)) throw conflict(`${opts.name} is a pre-defined network and cannot be created`);
      const driver: string = opts.driver ?? "bridge";
      if (driver === "host" || driver === "null") throw conflict(`only one instance of "${driver}" network is allowed`);
      if (driver !== "bridge") throw notFound(`plugin "${driver}" not found`);
      if ([...this.networks.values()].some((n) => n.name === opts.name)) throw alreadyExists(`network with name ${opts.name} already exists`);
      const others = [...this.networks.values()].flatMap((n) => (n.subnet ? [parseSubnet(n.subnet)] : []));
      let subnet: Subnet;
      if (opts.subnet) {
        subnet = parseSubnet(opts.subnet);
        if (others.some((o) => overlaps(o, subnet))) throw conflict(`Pool overlaps with other one on this address space: ${formatSubnet(subnet)}`);
      } else {
        if (opts.gateway) throw invalidArgument("a gateway needs an explicit subnet");
        if (opts.ipRange) throw invalidArgument("an ip-range needs an explicit subnet");
        subnet = pickSubnet(this.pool, USER_PREFIX_LEN, [...others, ...(await this.hostSubnets())]);
      }
      const ipRange = opts.ipRange ? parseSubnet(opts.ipRange) : undefined;
      const gateway = opts.gateway ?? defaultGateway(subnet);
      if (
        !isIPv4(gateway) ||
        !contains(subnet, ipToInt(gateway)) ||
        ipToInt(gateway) === subnet.base ||
        ipToInt(gateway) === subnet.base + subnetSize(subnet) - 1
      ) {
        throw invalidArgument(`gateway ${gateway} is not a host address of subnet ${formatSubnet(subnet)}`);
      }
      const subnet6 = opts.subnet6 ? parseSubnet6(opts.subnet6) : undefined;
      if (subnet6 && !(await ipv6Available())) throw invalidArgument("IPv6 is disabled in this host's kernel (net.ipv6.conf.all.disable_ipv6)");
      if (subnet6 && [...this.networks.values()].some((n) => n.subnet6 && overlaps6(parseSubnet6(n.subnet6), subnet6)))
        throw conflict(`Pool overlaps with other one on this address space: ${subnet6.cidr}`);
      const id = randomBytes(32).toString("hex");
      const allocator = new AddressAllocator(subnet, gateway, ipRange);
      const rec: NetworkRecord = {
        id,
        name: opts.name,
        driver: "bridge",
        subnet: formatSubnet(subnet),
        gateway,
        bridge: `berth-${id.slice(0, 9)}`,
        userSubnet: !!opts.subnet,
        userGateway: !!opts.gateway,
        ...(ipRange ? { ipRange: formatSubnet(ipRange) } : {}),
        ...(subnet6 ? { subnet6: subnet6.cidr, gateway6: addressInSubnet6(subnet6, 1) } : {}),
        options: { ...(opts.options ?? {}) },
        internal: opts.internal ?? false,
        labels: { ...(opts.labels ?? {}) },
        created: new Date().toISOString(),
        predefined: false,
      };
      this.networks.set(id, rec);
      this.allocators.set(id, allocator);
      try {
        await this.store.saveNetwork(rec);
        await this.ensureBridges([rec]);
        await this.applyRules();
      } catch (err) {
        this.networks.delete(id);
        this.allocators.delete(id);
        await deleteLinks([rec.bridge!]).catch(bestEffort(this.log, `delete bridge ${rec.bridge}`));
        await this.store.deleteNetwork(id).catch(bestEffort(this.log, `forget network ${id}`));
        throw err;
      }
      this.log.info({ network: rec.name, id, subnet: rec.subnet }, "network created");
      this.event("create", rec);
      return this.info(rec);
    });
  }

  /**
   * Removes a user-defined network and its bridge.
   * @throws NotFound; Conflict for predefined networks and networks with containers, with Docker's messages.
   */
  removeNetwork(nameOrId: string): Promise<void> {
    return this.exclusive(async () => {
      this.requireInit();
      await this.removeNetworkLocked(this.resolve(nameOrId));
    });
  }

  /** Removes every user-defined network without containers; returns their names. */
  prune(): Promise<string[]> {
    return this.exclusive(async () => {
      this.requireInit();
      const removed: string[] = [];
      for (const n of [...this.networks.values()]) {
        if (n.predefined || this.membersOf(n.id).length > 0) continue;
        await this.removeNetworkLocked(n);
        removed.push(n.name);
      }
      return removed;
    });
  }

  /** Reads answer from memory at once, without waiting for operations under way. */
  async list(): Promise<NetworkInfo[]> {
    return this.listNow();
  }

  /** list() for synchronous callers (inspect output naming the networks of a stopped container). */
  listNow(): NetworkInfo[] {
    this.requireInit();
    return [...this.networks.values()].sort((a, b) => a.created.localeCompare(b.created) || a.name.localeCompare(b.name)).map((n) => this.info(n));
  }

  /**
   * Resolves a full ID, a name, or a unique ID prefix (in that order, as Docker does).
   * @throws NotFound "network X not found"; InvalidArgument for an ambiguous prefix.
   */
  async inspect(nameOrId: string): Promise<NetworkInfo> {
    this.requireInit();
    return this.info(this.resolve(nameOrId));
  }

  // ─── internals ────────────────────────────────────────────────────────────

  /**
   * In a second, deletes whichever of these host veths still exist (their namespace was held by
   * a process when it was unmounted). Batched: one listing and one deletion for many detaches.
   */
  private sweepLater(veths: string[]): void {
    for (const v of veths) this.sweepSet.add(v);
    if (this.sweepTimer || this.sweepSet.size === 0) return;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = undefined;
      void this.exclusive(async () => {
        const names = new Set(this.sweepSet);
        this.sweepSet.clear();
        const owned = new Set([...this.containers.values()].flatMap((c) => c.endpoints.map((e) => e.hostVeth)));
        const left = (await listLinks()).filter((l) => names.has(l.ifname) && !owned.has(l.ifname)).map((l) => l.ifname);
        if (left.length === 0) return;
        this.log.warn({ veths: left }, "veths outlived their namespace (a process still used it): deleting them");
        await deleteLinks(left);
      }).catch((err: unknown) => this.log.warn({ err }, "veth sweep failed"));
    }, 1000);
    this.sweepTimer.unref();
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.queue.run("networks", fn);
  }

  private requireInit(): void {
    if (!this.initialized) throw conflict("network manager used before init()");
  }

  private resolve(nameOrId: string): NetworkRecord {
    if (typeof nameOrId !== "string" || nameOrId === "") throw invalidArgument("network name or id is empty");
    const all = [...this.networks.values()];
    const byId = all.find((n) => n.id === nameOrId);
    if (byId) return byId;
    const byName = all.find((n) => n.name === nameOrId);
    if (byName) return byName;
    const byPrefix = /^[0-9a-f]+$/.test(nameOrId) ? all.filter((n) => n.id.startsWith(nameOrId)) : [];
    if (byPrefix.length === 1) return byPrefix[0]!;
    if (byPrefix.length > 1) throw invalidArgument(`network ${nameOrId} is ambiguous (${byPrefix.length} matches found based on ID prefix)`);
    throw notFound(`network ${nameOrId} not found`);
  }

  private async ensurePredefined(containers: ContainerRecord[]): Promise<void> {
    const find = (name: string) => [...this.networks.values()].find((n) => n.predefined && n.name === name);
    const created = new Date().toISOString();
    const make = (name: string, driver: NetworkRecord["driver"]): NetworkRecord => ({
      id: randomBytes(32).toString("hex"),
      name,
      driver,
      internal: false,
      labels: {},
      created,
      predefined: true,
    });
    const want = { subnet: formatSubnet(this.defaultSubnet), gateway: defaultGateway(this.defaultSubnet), bridge: this.bridgeName };
    let bridge = find("bridge");
    if (!bridge) {
      bridge = { ...make("bridge", "bridge"), ...want };
      await this.store.saveNetwork(bridge);
    } else if (bridge.subnet !== want.subnet || bridge.bridge !== want.bridge) {
      // Configuration changed. Only safe when no container still uses the old addresses.
      if (containers.some((c) => c.endpoints.some((e) => e.networkId === bridge!.id))) {
        this.log.warn(
          { configured: want, kept: { subnet: bridge.subnet, bridge: bridge.bridge } },
          "default network settings changed but containers still use it: keeping the old ones",
        );
      } else {
        if (bridge.bridge) await deleteLinks([bridge.bridge]); // ours, unused; re-created with the new settings below
        Object.assign(bridge, want);
        await this.store.saveNetwork(bridge);
      }
    }
    this.networks.set(bridge.id, bridge);
    for (const [name, driver] of [
      ["host", "host"],
      ["none", "null"],
    ] as const) {
      if (find(name)) continue;
      const rec = make(name, driver);
      this.networks.set(rec.id, rec);
      await this.store.saveNetwork(rec);
    }
    for (const n of this.networks.values()) {
      if (n.driver === "bridge" && n.subnet && n.gateway)
        this.allocators.set(n.id, new AddressAllocator(parseSubnet(n.subnet), n.gateway, n.ipRange ? parseSubnet(n.ipRange) : undefined));
    }
  }

  /**
   * Makes sure the bridges of `networks` (default: all) exist, carry their gateway address, are up,
   * and have route_localnet on. Returns the host's links as they were before.
   */
  private async ensureBridges(networks = [...this.networks.values()]) {
    const [links, addrs] = await Promise.all([listLinks(), listAddresses()]);
    const lines: string[] = [];
    for (const n of networks) {
      if (n.driver !== "bridge" || !n.bridge || !n.subnet || !n.gateway) continue;
      const prefixLen = parseSubnet(n.subnet).prefixLen;
      const link = links.find((l) => l.ifname === n.bridge);
      if (!link) {
        lines.push(
          `link add ${n.bridge} address ${macFromIp(n.gateway)} type bridge`,
          `addr add ${n.gateway}/${prefixLen} dev ${n.bridge}`,
          `link set ${n.bridge} up`,
        );
        continue;
      }
      const has = addrs.find((a) => a.ifname === n.bridge)?.addr_info?.some((a) => a.local === n.gateway && a.prefixlen === prefixLen);
      if (!has) lines.push(`addr add ${n.gateway}/${prefixLen} dev ${n.bridge}`);
      if (!link.flags?.includes("UP")) lines.push(`link set ${n.bridge} up`);
    }
    for (const n of networks) {
      if (n.driver !== "bridge" || !n.bridge || !n.subnet6 || !n.gateway6) continue;
      const len = parseSubnet6(n.subnet6).prefixLen;
      const has = addrs.find((a) => a.ifname === n.bridge)?.addr_info?.some((a) => a.local === n.gateway6 && a.prefixlen === len);
      if (!has) lines.push(`addr add ${n.gateway6}/${len} dev ${n.bridge} nodad`);
    }
    if (lines.length > 0) {
      await run("ip", ["-batch", "-"], lines.join("\n") + "\n");
    }
    for (const n of networks) {
      if (n.driver === "bridge" && n.bridge) await writeFile(`/proc/sys/net/ipv4/conf/${n.bridge}/route_localnet`, "1");
    }
    return links;
  }

  /** Subnets a new network must not overlap: host routes (but the default), addresses, nameservers. */
  private async hostSubnets(): Promise<Subnet[]> {
    const out: Subnet[] = [];
    const add = (cidr: string) => {
      const s = coveredSubnet(cidr);
      if (s && s.prefixLen > 0) out.push(s);
    };
    const [routes, addrs, resolv] = await Promise.all([listRoutes(), listAddresses(), readHostFile(this.hostResolvConfPath)]);
    for (const r of routes) if (r.dst && r.dst !== "default") add(r.dst);
    for (const a of addrs) for (const i of a.addr_info ?? []) add(`${i.local}/${i.prefixlen}`);
    for (const ns of nameserversOf(resolv)) add(ns);
    return out;
  }

  private async removeNetworkLocked(n: NetworkRecord): Promise<void> {
    if (n.predefined) throw conflict(`${n.name} is a pre-defined network and cannot be removed`);
    if (this.membersOf(n.id).length > 0) throw conflict(`error while removing network: network ${n.name} id ${n.id} has active endpoints`);
    if (n.bridge) await deleteLinks([n.bridge]);
    this.networks.delete(n.id);
    this.allocators.delete(n.id);
    await this.applyRulesLogged();
    await this.store.deleteNetwork(n.id);
    this.log.info({ network: n.name, id: n.id }, "network removed");
    this.event("destroy", n);
  }

  private async attachHost(req: AttachRequest, net: NetworkRecord): Promise<AttachResult> {
    const extraHosts = this.extraHostEntries(req.extraHosts);
    const c: ContainerRecord = {
      containerId: req.containerId,
      name: req.name,
      hostname: req.hostname,
      mode: "host",
      hostsPath: req.hostsPath,
      resolvConfPath: req.resolvConfPath,
      ports: [],
      endpoints: [],
      extraHosts,
    };
    await writeInPlace(req.resolvConfPath, await readHostFile(this.hostResolvConfPath));
    // The host's own file, then the added entries (Docker appends them in host mode).
    const hostHosts = await readHostFile(this.hostHostsPath);
    await writeInPlace(
      req.hostsPath,
      hostHosts + (hostHosts && !hostHosts.endsWith("\n") ? "\n" : "") + extraHosts.map((e) => `${e.ip}\t${e.names.join(" ")}\n`).join(""),
    );
    await this.store.saveContainer(c);
    this.containers.set(c.containerId, c);
    return { endpoints: [this.emptyEndpoint(net)], ports: [] };
  }

  private async attachNone(req: AttachRequest, net: NetworkRecord): Promise<AttachResult> {
    const netnsPath = join(this.netnsDir, req.containerId);
    const c: ContainerRecord = {
      containerId: req.containerId,
      name: req.name,
      hostname: req.hostname,
      mode: "none",
      netnsPath,
      hostsPath: req.hostsPath,
      resolvConfPath: req.resolvConfPath,
      ports: [],
      endpoints: [],
      extraHosts: this.extraHostEntries(req.extraHosts),
      ...(req.dns ? { dns: req.dns } : {}),
    };
    await this.store.saveContainer(c);
    this.containers.set(c.containerId, c);
    try {
      await createNetns(netnsPath, []);
      await writeInPlace(req.resolvConfPath, renderResolvConf(await readHostFile(this.hostResolvConfPath), undefined, req.dns));
      await this.writeHosts(c, true);
    } catch (err) {
      this.containers.delete(c.containerId);
      await removeNetns(netnsPath).catch(bestEffort(this.log, `remove netns ${netnsPath}`));
      await this.store.deleteContainer(c.containerId).catch(bestEffort(this.log, `forget the network state of ${c.containerId}`));
      throw err;
    }
    return { netnsPath, endpoints: [this.emptyEndpoint(net)], ports: [] };
  }

  private async attachBridge(req: AttachRequest, requests: EndpointRequest[]): Promise<AttachResult> {
    // Validated in full before anything is made.
    const joins: Array<{ net: NetworkRecord; aliases: string[]; ip?: string }> = [];
    for (const r of requests) {
      const net = this.resolve(r.network);
      if (net.driver === "host") throw conflict("container cannot be disconnected from host network or connected to host network");
      if (net.driver === "null") throw conflict("container cannot be connected to multiple networks with one of the networks in private (none) mode");
      if (joins.some((j) => j.net.id === net.id)) continue;
      this.checkStaticIp(net, r.ipv4Address);
      joins.push({ net, aliases: this.checkAliases(net, r.aliases), ...(r.ipv4Address ? { ip: r.ipv4Address } : {}) });
    }
    const label = `${req.name} (${req.containerId.slice(0, 12)})`;
    const first = joins[0]?.net;
    const wanted = !first || first.internal ? [] : normalizePorts(req.ports ?? []);
    // Conflicts with other containers and within the request (explicit host ports).
    const taken = [...this.containers.values()].flatMap((c) => c.ports);
    for (const [i, p] of wanted.entries()) {
      if (taken.some((t) => clash(t, p)) || wanted.slice(0, i).some((q) => clash(q, p))) throw allocatedError(p, label);
    }
    const held: PortHold[] = [];
    const ports: PortBinding[] = [];
    const netnsPath = join(this.netnsDir, req.containerId);
    const leases: Array<{ net: NetworkRecord; ip: string }> = [];
    let c: ContainerRecord | undefined;
    try {
      for (const p of wanted) {
        const h = await holdPort(p, label);
        held.push(h);
        const resolved = { ...p, hostPort: h.port };
        if (p.hostPort === 0 && (taken.some((t) => clash(t, resolved)) || ports.some((q) => clash(q, resolved)))) throw allocatedError(resolved, label);
        ports.push(resolved);
      }
      const endpoints: EndpointRecord[] = [];
      for (const [i, j] of joins.entries()) {
        const ip = this.lease(j.net, j.ip);
        leases.push({ net: j.net, ip });
        // --mac-address is the first interface's, as Docker applies it.
        endpoints.push(this.endpointRecord(j.net, ip, `eth${i}`, j.aliases, i === 0 ? req.macAddress : undefined));
      }
      c = {
        containerId: req.containerId,
        name: req.name,
        hostname: req.hostname,
        mode: "bridge",
        netnsPath,
        hostsPath: req.hostsPath,
        resolvConfPath: req.resolvConfPath,
        ports,
        endpoints,
        extraHosts: this.extraHostEntries(req.extraHosts),
        ...(req.dns ? { dns: req.dns } : {}),
      };
      // The record first: after a crash from here on, init() finds and removes what follows.
      await this.store.saveContainer(c);
      this.containers.set(c.containerId, c);
      const route = this.routeEndpoint(c);
      await createNetns(
        netnsPath,
        endpoints.map((e, i) => this.interfaceSpec(c!, e, i === route)),
      );
      // The server learns the new member (and listens on a new network's gateway) before resolv.conf names it.
      await this.syncDns();
      await this.updateResolvConf(c, true);
      await this.writeHosts(c, true);
      if (ports.length > 0) await this.applyRules();
      this.holds.set(c.containerId, held);
    } catch (err) {
      for (const h of held) await h.close();
      if (c) {
        this.containers.delete(c.containerId);
        await deleteLinks(c.endpoints.map((e) => e.hostVeth)).catch(bestEffort(this.log, `delete the veths of ${c.containerId}`));
        await removeNetns(netnsPath).catch(bestEffort(this.log, `remove netns ${netnsPath}`));
        await this.store.deleteContainer(c.containerId).catch(bestEffort(this.log, `forget the network state of ${c.containerId}`));
      }
      for (const l of leases) this.allocators.get(l.net.id)?.release(l.ip);
      await this.syncDns();
      throw err;
    }
    await this.refreshPeers(
      joins.map((j) => j.net.id),
      c.containerId,
    );
    return { netnsPath, endpoints: c.endpoints.map((e) => this.endpointInfo(e)), ports: ports.map((p) => ({ ...p })) };
  }

  /** `--ip` as Docker allows it: on user networks created with a subnet. */
  private checkStaticIp(net: NetworkRecord, ip: string | undefined): void {
    if (!ip) return;
    if (net.predefined) throw invalidArgument("user specified IP address is supported on user defined networks only");
    if (!net.userSubnet) throw invalidArgument("user specified IP address is supported only when connecting to networks with user configured subnets");
    if (!isIPv4(ip)) throw invalidArgument(`invalid IPv4 address: ${ip}`);
  }

  /** An address of the network for a new endpoint: the requested one, or the next free one. */
  private lease(net: NetworkRecord, ip: string | undefined): string {
    const alloc = this.allocators.get(net.id)!;
    if (!ip) return alloc.allocate(net.name);
    alloc.reserve(ip);
    return ip;
  }

  private checkAliases(net: NetworkRecord, aliases: string[] | undefined): string[] {
    const list = [...new Set((aliases ?? []).filter((a) => a !== ""))];
    if (list.length === 0) return [];
    if (net.predefined) throw invalidArgument("network-scoped alias is supported only for containers in user defined networks");
    for (const a of list) if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(a)) throw invalidArgument(`invalid alias ${JSON.stringify(a)}`);
    return list;
  }

  private endpointRecord(net: NetworkRecord, ip: string, ifName: string, aliases: string[], macAddress?: string): EndpointRecord {
    return {
      networkId: net.id,
      ifName,
      // Random, not derived from the IDs: the host end of a detached container may outlive the
      // detach for a moment, and the same container may be attached again at once (restart).
      hostVeth: `berth${randomBytes(5).toString("hex")}`,
      ipAddress: ip,
      prefixLen: parseSubnet(net.subnet!).prefixLen,
      gateway: net.gateway!,
      macAddress: macAddress || macFromIp(ip),
      aliases,
      ...(net.subnet6 && net.gateway6
        ? (() => {
            const s6 = parseSubnet6(net.subnet6);
            return { ipv6Address: addressInSubnet6(s6, ipToInt(ip) - parseSubnet(net.subnet!).base), ipv6PrefixLen: s6.prefixLen, ipv6Gateway: net.gateway6 };
          })()
        : {}),
    };
  }

  private interfaceSpec(c: ContainerRecord, e: EndpointRecord, defaultRoute: boolean): InterfaceSpec {
    const net = this.networks.get(e.networkId)!;
    return {
      ifName: e.ifName,
      hostVeth: e.hostVeth,
      macAddress: e.macAddress,
      ipAddress: e.ipAddress,
      prefixLen: e.prefixLen,
      bridge: net.bridge!,
      ...(defaultRoute ? { defaultGateway: e.gateway } : {}),
      ...(e.ipv6Address && e.ipv6Gateway ? { ipv6: { address: e.ipv6Address, prefixLen: e.ipv6PrefixLen ?? 64, gateway: e.ipv6Gateway } } : {}),
    };
  }

  /** Index of the endpoint carrying the container's default route: the first non-internal one, or -1. */
  private routeEndpoint(c: ContainerRecord): number {
    return c.endpoints.findIndex((e) => !this.networks.get(e.networkId)?.internal);
  }

  private endpointLabel(c: ContainerRecord): string {
    return `${c.name} (${c.containerId.slice(0, 12)})`;
  }

  private endpointInfo(e: EndpointRecord): NetworkEndpoint {
    return {
      networkId: e.networkId,
      networkName: this.networks.get(e.networkId)?.name ?? "",
      ipAddress: e.ipAddress,
      prefixLen: e.prefixLen,
      gateway: e.gateway,
      macAddress: e.macAddress,
      aliases: [...e.aliases],
      ...(e.ipv6Address ? { ipv6Address: e.ipv6Address, ipv6PrefixLen: e.ipv6PrefixLen, ipv6Gateway: e.ipv6Gateway } : {}),
    };
  }

  private emptyEndpoint(net: NetworkRecord): NetworkEndpoint {
    return { networkId: net.id, networkName: net.name, ipAddress: "", prefixLen: 0, gateway: "", macAddress: "", aliases: [] };
  }

  private membersOf(networkId: string): ContainerRecord[] {
    const net = this.networks.get(networkId);
    return [...this.containers.values()].filter(
      (c) =>
        c.endpoints.some((e) => e.networkId === networkId) || (net?.driver === "host" && c.mode === "host") || (net?.driver === "null" && c.mode === "none"),
    );
  }

  private info(n: NetworkRecord): NetworkInfo {
    const containers: NetworkInfo["containers"] = {};
    for (const c of this.membersOf(n.id)) {
      const e = c.endpoints.find((x) => x.networkId === n.id);
      containers[c.containerId] = { ...(e ? this.endpointInfo(e) : this.emptyEndpoint(n)), name: c.name };
    }
    return {
      id: n.id,
      name: n.name,
      driver: n.driver,
      ...(n.subnet ? { subnet: n.subnet } : {}),
      ...(n.gateway ? { gateway: n.gateway } : {}),
      ...(n.bridge ? { bridge: n.bridge } : {}),
      ...(n.userSubnet ? { userSubnet: true } : {}),
      ...(n.userGateway ? { userGateway: true } : {}),
      ...(n.ipRange ? { ipRange: n.ipRange } : {}),
      ...(n.subnet6 ? { subnet6: n.subnet6, gateway6: n.gateway6 } : {}),
      options: { ...(n.options ?? {}) },
      internal: n.internal,
      labels: { ...n.labels },
      created: n.created,
      containers,
    };
  }

  private rules() {
    const networks: RuleNetwork[] = [];
    for (const n of this.networks.values()) {
      if (n.driver === "bridge" && n.bridge && n.subnet)
        networks.push({
          bridge: n.bridge,
          subnet: n.subnet,
          internal: n.internal,
          ...(this.dns && !n.predefined && n.gateway ? { dnsServer: n.gateway } : {}),
        });
    }
    const ports: RulePort[] = [];
    for (const c of this.containers.values()) {
      const e = c.endpoints[0];
      if (!e || c.ports.length === 0) continue;
      const net = this.networks.get(e.networkId);
      if (!net?.bridge || net.internal) continue;
      for (const binding of c.ports) ports.push({ containerIp: e.ipAddress, bridge: net.bridge, binding });
    }
    return renderRules(this.chains.prefix, networks, ports);
  }

  /**
   * Brings the firewall to the current state: an incremental update from the ruleset applied last,
   * or a full rewrite when there is none or the update is refused (our chains were tampered with).
   */
  private async applyRules(): Promise<void> {
    const next = this.rules();
    const previous = this.applied;
    this.applied = undefined; // unknown until this succeeds
    if (previous) {
      try {
        await this.chains.update(previous, next);
        this.applied = next;
        return;
      } catch (err) {
        this.log.warn({ err }, "incremental firewall update refused: rewriting our chains");
      }
    }
    await this.chains.apply(next, await this.chains.save());
    this.applied = next;
  }

  /** For removals: the state has already changed; a failure here is repaired by reconcileRules(). */
  private async applyRulesLogged(): Promise<void> {
    await this.applyRules().catch((err: unknown) => this.log.error({ err }, "cannot rewrite firewall rules; reconcileRules() will retry"));
  }

  private async releaseHolds(containerId: string): Promise<void> {
    for (const h of this.holds.get(containerId) ?? []) await h.close();
    this.holds.delete(containerId);
  }

  /** The DNS server a container uses: the gateway of its first user network, when the server runs. */
  private async dnsServerOf(c: ContainerRecord): Promise<string | undefined> {
    if (!this.dns || !(await this.dns.isAvailable())) return undefined;
    const gateway = c.endpoints.find((e) => !this.networks.get(e.networkId)?.predefined)?.gateway;
    return gateway && (await this.dns.serving(gateway)) ? gateway : undefined;
  }

  /**
   * Writes the container's resolv.conf when the nameserver it should name changed (or at attach):
   * the DNS server on a user network, the host's resolvers otherwise (Docker's default bridge).
   */
  private async updateResolvConf(c: ContainerRecord, initial = false): Promise<void> {
    const server = await this.dnsServerOf(c);
    if (!initial && server === c.dnsServer) return;
    const host = await readHostFile(this.hostResolvConfPath);
    try {
      await writeInPlace(c.resolvConfPath, renderResolvConf(host, server, c.dns));
    } catch (err) {
      if (initial) throw err;
      this.log.warn({ err, containerId: c.containerId, path: c.resolvConfPath }, "cannot update resolv.conf");
      return;
    }
    if (server) c.dnsServer = server;
    else delete c.dnsServer;
    if (!initial) await this.store.saveContainer(c).catch(bestEffort(this.log, `save the network state of ${c.containerId}`));
  }

  /** Gives the DNS server the members of every user network (the server itself logs its failures). */
  private async syncDns(): Promise<void> {
    if (!this.dns) return;
    const nets: DnsNetwork[] = [];
    for (const n of this.networks.values()) {
      if (n.predefined || n.driver !== "bridge" || !n.gateway) continue;
      const members = [];
      for (const c of this.containers.values()) {
        const e = c.endpoints.find((x) => x.networkId === n.id);
        if (e) members.push({ containerId: c.containerId, ipAddress: e.ipAddress, names: [c.name, ...e.aliases, c.containerId.slice(0, 12)] });
      }
      if (members.length > 0) nets.push({ id: n.id, gateway: n.gateway, members });
    }
    await this.dns.sync(nets);
  }

  /** Own entries and peers (members of the same user networks) of a container. */
  /** `--add-host` entries as hosts lines, `host-gateway` as the default bridge's gateway (Docker's default host-gateway-ip). */
  private extraHostEntries(extraHosts: readonly string[] | undefined): HostsEntry[] {
    return (extraHosts ?? []).map((entry) => {
      const { name, ip } = parseExtraHost(entry);
      const resolved = ip === "host-gateway" ? [...this.networks.values()].find((n) => n.predefined && n.name === "bridge")?.gateway : ip;
      if (!resolved) throw invalidArgument("add-host: host-gateway has no address (the default bridge has no gateway)");
      return { ip: resolved, names: [name] };
    });
  }

  private hostsEntries(c: ContainerRecord): { own: HostsEntry[]; peers: HostsEntry[] } {
    const own: HostsEntry[] = [...(c.extraHosts ?? [])];
    const peers: HostsEntry[] = [];
    const first = c.endpoints[0];
    if (first) {
      const net = this.networks.get(first.networkId);
      const names = hostnameNames(c.hostname);
      if (net && !net.predefined) names.push(c.name, ...first.aliases);
      own.push({ ip: first.ipAddress, names });
    }
    for (const e of c.endpoints) {
      const net = this.networks.get(e.networkId);
      if (!net || net.predefined) continue; // the default bridge has no name resolution
      for (const other of this.containers.values()) {
        if (other.containerId === c.containerId) continue;
        const oe = other.endpoints.find((x) => x.networkId === e.networkId);
        if (oe) peers.push({ ip: oe.ipAddress, names: [other.name, ...oe.aliases, ...hostnameNames(other.hostname), other.containerId.slice(0, 12)] });
      }
    }
    return { own, peers };
  }

  /** Rewrites a container's hosts file in place. Failures are logged unless `strict` (attach). */
  private async writeHosts(c: ContainerRecord, strict = false): Promise<void> {
    if (c.mode === "host") return;
    const { own, peers } = this.hostsEntries(c);
    try {
      await writeInPlace(c.hostsPath, renderHosts(own, peers));
    } catch (err) {
      if (strict) throw err;
      this.log.warn({ err, containerId: c.containerId, path: c.hostsPath }, "cannot update hosts file");
    }
  }

  /** Rewrites the hosts files of every member of the given user networks (but `except`). */
  private async refreshPeers(networkIds: string[], except?: string): Promise<void> {
    const ids = new Set(networkIds.filter((id) => !this.networks.get(id)?.predefined));
    if (ids.size === 0) return;
    await this.syncDns();
    for (const c of this.containers.values()) {
      if (c.containerId === except) continue;
      if (c.endpoints.some((e) => ids.has(e.networkId))) await this.writeHosts(c);
    }
  }
}
