/**
 * Berth's firewall rules, all in chains of its own.
 *
 * The rules are a pure function of the manager's state (`renderRules`): the
 * bridge networks and the published ports. `IptablesChains.apply()` replaces
 * the content of all our chains in one `iptables-restore --noflush`
 * transaction (declaring a chain flushes it), so the firewall moves atomically
 * from one consistent state to the next, and whatever a crash or an
 * administrator did to our chains is undone. `update()` goes from the ruleset
 * last applied to the next one in one transaction too, but only touches what
 * changed: the DNAT chains, whose rules do not depend on their order, get
 * `-A`/`-D` of single rules (a container's ports), any other chain that
 * changed is rewritten. With the nf_tables backend this is several times
 * cheaper than rewriting everything on each container start. Rules are written
 * exactly as `iptables-save` prints them, so `reconcile()` can compare them
 * with what the kernel has and rewrite only when they differ.
 *
 * Chains (P = the chain prefix, "BERTH" by default), and the single jump rule
 * that leads to each from a built-in chain:
 *
 *   nat    P-PREROUTING   ← PREROUTING  -m addrtype --dst-type LOCAL   DNAT of published ports (not those bound to 127.x)
 *   nat    P-OUTPUT       ← OUTPUT      -m addrtype --dst-type LOCAL   DNAT of published ports for connections from the host itself
 *   nat    P-POSTROUTING  ← POSTROUTING                                outbound MASQUERADE, hairpin and 127.0.0.1-source MASQUERADE
 *   filter P-FORWARD      ← FORWARD                                    accept replies and DNATed connections (published ports),
 *                                                                       traffic within a bridge and out of it; drop anything
 *                                                                       else into a bridge (isolation between networks)
 *   filter P-INPUT        ← INPUT                                      drop new connections from a bridge to 127.0.0.0/8 (route_localnet is on);
 *                                                                       accept DNS queries to the gateway of user networks (their DNS
 *                                                                       server, dns.ts), also where the host's INPUT policy is DROP
 *
 * Only these chains and jump rules are ever touched; nothing else in the
 * firewall is read for anything but comparison.
 */
import { run } from "./exec.ts";
import type { PortBinding } from "./ports.ts";
import { isLoopback } from "./ports.ts";

export interface RuleNetwork {
  bridge: string;
  subnet: string;
  internal: boolean;
  /** The gateway, when a DNS server listens on it (user networks). */
  dnsServer?: string;
}

export interface RulePort {
  containerIp: string;
  bridge: string;
  binding: PortBinding;
}

type Table = "nat" | "filter";

/** Chain name → rules (each "-A CHAIN …" as iptables-save prints it), per table. */
export type Ruleset = Record<Table, Map<string, string[]>>;

interface Jump {
  table: Table;
  chain: string;
  /** The rule without "-A CHAIN". */
  spec: string;
}

export function chainNames(prefix: string): Record<Table, string[]> {
  return {
    nat: [`${prefix}-PREROUTING`, `${prefix}-OUTPUT`, `${prefix}-POSTROUTING`],
    filter: [`${prefix}-FORWARD`, `${prefix}-INPUT`],
  };
}

export function jumps(prefix: string): Jump[] {
  return [
    { table: "nat", chain: "PREROUTING", spec: `-m addrtype --dst-type LOCAL -j ${prefix}-PREROUTING` },
    { table: "nat", chain: "OUTPUT", spec: `-m addrtype --dst-type LOCAL -j ${prefix}-OUTPUT` },
    { table: "nat", chain: "POSTROUTING", spec: `-j ${prefix}-POSTROUTING` },
    { table: "filter", chain: "FORWARD", spec: `-j ${prefix}-FORWARD` },
    { table: "filter", chain: "INPUT", spec: `-j ${prefix}-INPUT` },
  ];
}

/** Builds the content of every chain from the networks and the published ports. */
export function renderRules(prefix: string, networks: RuleNetwork[], ports: RulePort[]): Ruleset {
  const [PRE, OUT, POST] = chainNames(prefix).nat as [string, string, string];
  const [FWD, IN] = chainNames(prefix).filter as [string, string];
  const pre: string[] = [];
  const out: string[] = [];
  const post: string[] = [];
  const fwd: string[] = [];
  const input: string[] = [];

  for (const { containerIp, binding: b } of ports) {
    const dst = b.hostIp ? `-d ${b.hostIp}/32 ` : "";
    const dnat = `${dst}-p ${b.protocol} -m ${b.protocol} --dport ${b.hostPort} -j DNAT --to-destination ${containerIp}:${b.containerPort}`;
    // A port bound to a loopback address is reachable from the host only: no PREROUTING rule, so a
    // packet from another namespace addressed to 127.x (route_localnet is on) is not forwarded.
    if (!isLoopback(b.hostIp)) pre.push(`-A ${PRE} ${dnat}`);
    out.push(`-A ${OUT} ${dnat}`);
  }
  for (const n of networks) {
    if (!n.internal) post.push(`-A ${POST} -s ${n.subnet} ! -o ${n.bridge} -j MASQUERADE`);
    // Hairpin: a container reaching a published port through a host address; without this the
    // answer would go straight back on the bridge, from an address the client never talked to.
    post.push(`-A ${POST} -s ${n.subnet} -o ${n.bridge} -m conntrack --ctstate DNAT -j MASQUERADE`);
    // The host reaching a published port on 127.0.0.1: the container must answer to the gateway.
    post.push(`-A ${POST} -s 127.0.0.0/8 -o ${n.bridge} -j MASQUERADE`);
    input.push(`-A ${IN} -d 127.0.0.0/8 -i ${n.bridge} -m conntrack ! --ctstate RELATED,ESTABLISHED -j DROP`);
    if (n.dnsServer)
      for (const proto of ["udp", "tcp"]) input.push(`-A ${IN} -d ${n.dnsServer}/32 -i ${n.bridge} -p ${proto} -m ${proto} --dport 53 -j ACCEPT`);
  }
  // Replies, and connections our DNAT rules sent to a published port (from anywhere, other bridges too).
  for (const n of networks) fwd.push(`-A ${FWD} -o ${n.bridge} -m conntrack --ctstate RELATED,ESTABLISHED${n.internal ? "" : ",DNAT"} -j ACCEPT`);
  for (const n of networks) fwd.push(`-A ${FWD} -i ${n.bridge} -o ${n.bridge} -j ACCEPT`);
  // Isolation: nothing new enters a bridge from elsewhere (other bridges, other interfaces) unless
  // it is a published port (accepted above).
  for (const n of networks) fwd.push(`-A ${FWD} -o ${n.bridge} -j DROP`);
  for (const n of networks) fwd.push(`-A ${FWD} -i ${n.bridge} -j ${n.internal ? "DROP" : "ACCEPT"}`);

  return {
    nat: new Map([
      [PRE, pre],
      [OUT, out],
      [POST, post],
    ]),
    filter: new Map([
      [FWD, fwd],
      [IN, input],
    ]),
  };
}

function sameList(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** What `iptables-save` shows: per table, chain → rules, and every rule line. */
interface Saved {
  chains: Record<Table, Map<string, string[]>>;
}

export function parseSave(text: string): Saved {
  const chains: Record<Table, Map<string, string[]>> = { nat: new Map(), filter: new Map() };
  let table: Table | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("*")) {
      const t = line.slice(1).trim();
      table = t === "nat" || t === "filter" ? t : undefined;
    } else if (!table) {
      continue;
    } else if (line.startsWith(":")) {
      const name = line.slice(1).split(" ")[0]!;
      if (!chains[table].has(name)) chains[table].set(name, []);
    } else if (line.startsWith("-A ")) {
      const name = line.slice(3).split(" ")[0]!;
      const list = chains[table].get(name) ?? [];
      list.push(line);
      chains[table].set(name, list);
    }
  }
  return { chains };
}

/** The chains and jumps of one prefix, applied with iptables-restore. */
export class IptablesChains {
  constructor(readonly prefix: string) {}

  /** Reads the current nat and filter tables. */
  async save(): Promise<Saved> {
    const [nat, filter] = await Promise.all([run("iptables-save", ["-t", "nat"]), run("iptables-save", ["-t", "filter"])]);
    return parseSave(`${nat}\n${filter}`);
  }

  /**
   * Replaces the content of all our chains with `rules` in one transaction, creating missing chains.
   * Jump rules are added when `saved` (a fresh `save()`) shows them missing; without `saved` they are
   * assumed present (the caller verified them recently; `reconcile` repairs them otherwise).
   * @throws Unavailable when iptables-restore fails (nothing is changed then).
   */
  async apply(rules: Ruleset, saved?: Saved): Promise<void> {
    const lines: string[] = [];
    for (const table of ["nat", "filter"] as const) {
      lines.push(`*${table}`);
      for (const chain of rules[table].keys()) lines.push(`:${chain} - [0:0]`);
      for (const list of rules[table].values()) lines.push(...list);
      if (saved) {
        for (const j of jumps(this.prefix)) {
          if (j.table !== table) continue;
          if (!(saved.chains[table].get(j.chain) ?? []).includes(`-A ${j.chain} ${j.spec}`)) lines.push(`-I ${j.chain} 1 ${j.spec}`);
        }
      }
      lines.push("COMMIT");
    }
    await run("iptables-restore", ["-w", "--noflush"], lines.join("\n") + "\n");
  }

  /**
   * Moves our chains from `previous` (what the last successful apply/update left) to `next` in one
   * transaction: single-rule deletions and additions in the DNAT chains, a rewrite of any other
   * chain that changed. Jumps are not checked. @throws Unavailable if iptables-restore refuses
   * (e.g. a rule to delete is gone because someone flushed the chain); nothing changed then, and
   * the caller falls back to `apply()`.
   */
  async update(previous: Ruleset, next: Ruleset): Promise<void> {
    const unordered = new Set(chainNames(this.prefix).nat.slice(0, 2));
    const lines: string[] = [];
    for (const table of ["nat", "filter"] as const) {
      const body: string[] = [];
      for (const [chain, want] of next[table]) {
        const had = previous[table].get(chain) ?? [];
        if (sameList(had, want)) continue;
        if (unordered.has(chain)) {
          const wantSet = new Set(want);
          const hadSet = new Set(had);
          for (const r of had) if (!wantSet.has(r)) body.push(`-D${r.slice(2)}`);
          for (const r of want) if (!hadSet.has(r)) body.push(r);
        } else {
          body.push(`:${chain} - [0:0]`, ...want);
        }
      }
      if (body.length > 0) lines.push(`*${table}`, ...body, "COMMIT");
    }
    if (lines.length === 0) return;
    await run("iptables-restore", ["-w", "--noflush"], lines.join("\n") + "\n");
  }

  /** True when every chain holds `rules` (in any order for the DNAT chains) and every jump is present. */
  matches(rules: Ruleset, saved: Saved): boolean {
    const unordered = new Set(chainNames(this.prefix).nat.slice(0, 2));
    for (const table of ["nat", "filter"] as const) {
      for (const [chain, want] of rules[table]) {
        const have = saved.chains[table].get(chain);
        if (!have) return false;
        if (unordered.has(chain) ? !sameList([...have].sort(), [...want].sort()) : !sameList(have, want)) return false;
      }
    }
    return jumps(this.prefix).every((j) => (saved.chains[j.table].get(j.chain) ?? []).includes(`-A ${j.chain} ${j.spec}`));
  }

  /**
   * Rewrites our chains and jumps if they differ from `rules` (someone flushed the firewall,
   * deleted a chain, or a crash interrupted us). Returns whether anything was rewritten.
   */
  async reconcile(rules: Ruleset): Promise<boolean> {
    const saved = await this.save();
    if (this.matches(rules, saved)) return false;
    await this.apply(rules, saved);
    return true;
  }

  /** Removes our jump rules (every copy) and our chains. Idempotent. */
  async remove(): Promise<void> {
    const saved = await this.save();
    const names = chainNames(this.prefix);
    const lines: string[] = [];
    for (const table of ["nat", "filter"] as const) {
      lines.push(`*${table}`);
      for (const j of jumps(this.prefix)) {
        if (j.table !== table) continue;
        for (const r of saved.chains[table].get(j.chain) ?? []) if (r === `-A ${j.chain} ${j.spec}`) lines.push(`-D ${j.chain} ${j.spec}`);
      }
      for (const chain of names[table]) {
        if (!saved.chains[table].has(chain)) continue;
        lines.push(`-F ${chain}`, `-X ${chain}`);
      }
      lines.push("COMMIT");
    }
    await run("iptables-restore", ["-w", "--noflush"], lines.join("\n") + "\n");
  }
}
