import assert from "node:assert/strict";
import { test } from "node:test";
import { defaultRouteInterface } from "./primary-address.ts";

const TABLE = `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
bt1\t00DCC80A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
`;

test("the default route's interface is read from /proc/net/route", () => {
  assert.equal(defaultRouteInterface(TABLE), "eth0");
});

test("no default route: no interface", () => {
  assert.equal(
    defaultRouteInterface(
      TABLE.split("\n")
        .filter((l) => !l.startsWith("eth0\t00000000"))
        .join("\n"),
    ),
    undefined,
  );
  assert.equal(defaultRouteInterface(""), undefined);
});
