import assert from "node:assert/strict";
import { test } from "node:test";
import { isEngineError } from "../errors.ts";
import { AddressAllocator, defaultGateway, formatSubnet, ipToInt, macFromIp, overlaps, parseSubnet, pickSubnet } from "./ipam.ts";

test("parseSubnet accepts network addresses and refuses the rest", () => {
  assert.deepEqual(formatSubnet(parseSubnet("10.209.0.0/16")), "10.209.0.0/16");
  for (const bad of ["10.209.0.1/16", "10.209.0.0", "10.209.0.0/33", "300.1.1.0/24", "10.0.0.0/31", "abc"]) {
    assert.throws(
      () => parseSubnet(bad),
      (e: unknown) => isEngineError(e, "InvalidArgument"),
      bad,
    );
  }
  assert.equal(defaultGateway(parseSubnet("10.209.0.0/16")), "10.209.0.1");
  assert.equal(macFromIp("10.209.0.2"), "02:42:0a:d1:00:02");
});

test("overlaps", () => {
  assert.equal(overlaps(parseSubnet("10.0.0.0/8"), parseSubnet("10.1.2.0/24")), true);
  assert.equal(overlaps(parseSubnet("10.1.2.0/24"), parseSubnet("10.1.3.0/24")), false);
  assert.equal(overlaps(parseSubnet("172.17.0.0/16"), parseSubnet("172.16.0.0/12")), true);
});

test("allocator never hands out the network, broadcast or gateway address, nor one twice", () => {
  const a = new AddressAllocator(parseSubnet("10.1.1.0/29"), "10.1.1.1");
  const got = new Set<string>();
  for (let i = 0; i < 5; i++) got.add(a.allocate("n"));
  assert.deepEqual([...got].sort(), ["10.1.1.2", "10.1.1.3", "10.1.1.4", "10.1.1.5", "10.1.1.6"]);
  assert.throws(
    () => a.allocate("n"),
    (e: unknown) => isEngineError(e, "Conflict") && /no available IPv4 addresses on network n/.test(e.message),
  );
  a.release("10.1.1.4");
  assert.equal(a.allocate("n"), "10.1.1.4");
});

test("allocator goes round (next fit) and honours reservations", () => {
  const a = new AddressAllocator(parseSubnet("10.1.1.0/24"), "10.1.1.1");
  a.reserve("10.1.1.2");
  assert.throws(
    () => a.reserve("10.1.1.2"),
    (e: unknown) => isEngineError(e, "Conflict"),
  );
  assert.throws(
    () => a.reserve("10.1.1.1"),
    (e: unknown) => isEngineError(e, "InvalidArgument"),
  );
  assert.throws(
    () => a.reserve("10.1.2.9"),
    (e: unknown) => isEngineError(e, "InvalidArgument"),
  );
  const x = a.allocate("n");
  assert.equal(x, "10.1.1.3");
  a.release(x);
  assert.equal(a.allocate("n"), "10.1.1.4", "a released address is not reused at once");
  assert.equal(a.size, 2);
});

test("pickSubnet skips taken blocks", () => {
  const pool = parseSubnet("10.210.0.0/15");
  const nameserver = { base: ipToInt("10.210.1.7"), prefixLen: 32 };
  const s = pickSubnet(pool, 24, [parseSubnet("10.210.0.0/24"), nameserver]);
  assert.equal(formatSubnet(s), "10.210.2.0/24");
  assert.throws(
    () => pickSubnet(parseSubnet("10.1.0.0/24"), 24, [parseSubnet("10.0.0.0/8")]),
    (e: unknown) => isEngineError(e, "Conflict"),
  );
});

test("allocator with an ip-range: dynamic addresses from the range, --ip anywhere in the subnet, Docker's texts", () => {
  const a = new AddressAllocator(parseSubnet("10.1.1.0/24"), "10.1.1.254", parseSubnet("10.1.1.128/30"));
  const got = [a.allocate("n"), a.allocate("n"), a.allocate("n"), a.allocate("n")].sort();
  assert.deepEqual(got, ["10.1.1.128", "10.1.1.129", "10.1.1.130", "10.1.1.131"]);
  assert.throws(
    () => a.allocate("n"),
    (e: unknown) => isEngineError(e, "Conflict") && /no available IPv4 addresses on network n \(10\.1\.1\.128\/30\)/.test(e.message),
  );
  a.reserve("10.1.1.7");
  assert.throws(
    () => a.reserve("10.1.1.7"),
    (e: unknown) => isEngineError(e, "Conflict") && /^Address already in use$/.test(e.message),
  );
  assert.throws(
    () => a.reserve("10.1.2.7"),
    (e: unknown) => isEngineError(e, "InvalidArgument") && /does not belong to any of this network's subnets/.test(e.message),
  );
  assert.throws(
    () => new AddressAllocator(parseSubnet("10.1.1.0/24"), "10.1.1.1", parseSubnet("10.1.2.0/25")),
    (e: unknown) => isEngineError(e, "InvalidArgument"),
  );
});
