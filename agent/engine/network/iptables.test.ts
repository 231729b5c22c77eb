import assert from "node:assert/strict";
import { test } from "node:test";
import { IptablesChains, parseSave, renderRules } from "./iptables.ts";

const nets = [
  { bridge: "berth0", subnet: "10.209.0.0/16", internal: false },
  { bridge: "berth-abc", subnet: "10.210.0.0/24", internal: true },
];
const ports = [
  { containerIp: "10.209.0.2", bridge: "berth0", binding: { containerPort: 80, protocol: "tcp" as const, hostIp: "", hostPort: 8080 } },
  { containerIp: "10.209.0.2", bridge: "berth0", binding: { containerPort: 53, protocol: "udp" as const, hostIp: "127.0.0.1", hostPort: 5353 } },
];

test("rules: DNAT in PREROUTING and OUTPUT, loopback-bound ports in OUTPUT only", () => {
  const r = renderRules("BX", nets, ports);
  assert.deepEqual(r.nat.get("BX-PREROUTING"), ["-A BX-PREROUTING -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.209.0.2:80"]);
  assert.deepEqual(r.nat.get("BX-OUTPUT"), [
    "-A BX-OUTPUT -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.209.0.2:80",
    "-A BX-OUTPUT -d 127.0.0.1/32 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.209.0.2:53",
  ]);
  const post = r.nat.get("BX-POSTROUTING")!;
  assert.ok(post.includes("-A BX-POSTROUTING -s 10.209.0.0/16 ! -o berth0 -j MASQUERADE"));
  assert.ok(!post.some((l) => l.includes("10.210.0.0/24 ! -o")), "an internal network has no outbound NAT");
  const fwd = r.filter.get("BX-FORWARD")!;
  assert.ok(fwd.indexOf("-A BX-FORWARD -o berth0 -j DROP") > fwd.indexOf("-A BX-FORWARD -o berth0 -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT"));
  assert.ok(fwd.includes("-A BX-FORWARD -o berth-abc -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"), "no DNAT into an internal network");
  assert.ok(fwd.includes("-A BX-FORWARD -i berth-abc -j DROP"));
  assert.ok(fwd.includes("-A BX-FORWARD -i berth0 -j ACCEPT"));
});

test("matches() compares with iptables-save output", () => {
  const r = renderRules("BX", nets, ports);
  const chains = new IptablesChains("BX");
  const save = (extra: string[]) =>
    parseSave(
      [
        "*nat",
        ":PREROUTING ACCEPT [0:0]",
        ":BX-PREROUTING - [0:0]",
        ":BX-OUTPUT - [0:0]",
        ":BX-POSTROUTING - [0:0]",
        "-A PREROUTING -m addrtype --dst-type LOCAL -j BX-PREROUTING",
        "-A OUTPUT -m addrtype --dst-type LOCAL -j BX-OUTPUT",
        "-A POSTROUTING -j BX-POSTROUTING",
        ...r.nat.get("BX-PREROUTING")!,
        ...r.nat.get("BX-OUTPUT")!,
        ...r.nat.get("BX-POSTROUTING")!,
        "COMMIT",
        "*filter",
        ":BX-FORWARD - [0:0]",
        ":BX-INPUT - [0:0]",
        "-A FORWARD -j BX-FORWARD",
        ...extra,
        ...r.filter.get("BX-FORWARD")!,
        ...r.filter.get("BX-INPUT")!,
        "COMMIT",
      ].join("\n"),
    );
  assert.equal(chains.matches(r, save(["-A INPUT -j BX-INPUT"])), true);
  assert.equal(chains.matches(r, save([])), false, "a missing jump");
  const flushed = save(["-A INPUT -j BX-INPUT"]);
  flushed.chains.nat.set("BX-PREROUTING", []);
  assert.equal(chains.matches(r, flushed), false, "a flushed chain");
  const reordered = save(["-A INPUT -j BX-INPUT"]);
  reordered.chains.nat.set("BX-OUTPUT", [...r.nat.get("BX-OUTPUT")!].reverse());
  assert.equal(chains.matches(r, reordered), true, "DNAT chains compare in any order");
  const fwd = reordered.chains.filter.get("BX-FORWARD")!;
  reordered.chains.filter.set("BX-FORWARD", [fwd[1]!, fwd[0]!, ...fwd.slice(2)]);
  assert.equal(chains.matches(r, reordered), false, "FORWARD order matters");
});
