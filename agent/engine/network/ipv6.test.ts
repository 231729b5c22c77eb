import assert from "node:assert/strict";
import { test } from "node:test";
import { addressInSubnet6, overlaps6, parseSubnet6 } from "./ipv6.ts";

test("IPv6 subnets: canonical text, host bits cleared, members by host number, overlap", () => {
  const s = parseSubnet6("2001:DB8:1:0:0:0:0:5/64");
  assert.equal(s.cidr, "2001:db8:1::/64");
  assert.equal(addressInSubnet6(s, 1), "2001:db8:1::1");
  assert.equal(addressInSubnet6(s, 0x10002), "2001:db8:1::1:2");
  assert.equal(parseSubnet6("fd00:0:0:1::/80").cidr, "fd00:0:0:1::/80");
  assert.equal(addressInSubnet6(parseSubnet6("2001:db8::/120"), 255), "2001:db8::ff");
  assert.ok(overlaps6(parseSubnet6("2001:db8:1::/64"), parseSubnet6("2001:db8:1::/80")));
  assert.ok(!overlaps6(parseSubnet6("2001:db8:1::/64"), parseSubnet6("2001:db8:2::/64")));
  for (const bad of ["10.0.0.0/8", "2001:db8::/0", "2001:db8::/121", "2001:db8::", "::ffff:10.0.0.1/96", "zz::/64"])
    assert.throws(() => parseSubnet6(bad), /invalid IPv6 subnet/, bad);
});
