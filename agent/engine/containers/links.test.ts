import assert from "node:assert/strict";
import { test } from "node:test";
import { linkEnv, linkHosts, parseLink } from "./links.ts";

test("legacy link variables as Docker's links.go: default port, one group per port, name, environment but HOME and PATH", () => {
  const c = { name: "redis", hostname: "0123456789ab", ip: "10.209.0.3", ports: ["6379/tcp", "53/udp", "80"], env: ["PATH=/bin", "HOME=/root", "PASS=a=b"] };
  assert.deepEqual(linkEnv("web", "my-db", c), [
    "MY_DB_PORT=tcp://10.209.0.3:80",
    "MY_DB_PORT_53_UDP=udp://10.209.0.3:53",
    "MY_DB_PORT_53_UDP_ADDR=10.209.0.3",
    "MY_DB_PORT_53_UDP_PORT=53",
    "MY_DB_PORT_53_UDP_PROTO=udp",
    "MY_DB_PORT_80_TCP=tcp://10.209.0.3:80",
    "MY_DB_PORT_80_TCP_ADDR=10.209.0.3",
    "MY_DB_PORT_80_TCP_PORT=80",
    "MY_DB_PORT_80_TCP_PROTO=tcp",
    "MY_DB_PORT_6379_TCP=tcp://10.209.0.3:6379",
    "MY_DB_PORT_6379_TCP_ADDR=10.209.0.3",
    "MY_DB_PORT_6379_TCP_PORT=6379",
    "MY_DB_PORT_6379_TCP_PROTO=tcp",
    "MY_DB_NAME=/web/my-db",
    "MY_DB_ENV_PASS=a=b",
  ]);
  assert.deepEqual(linkHosts("db", c), ["db:10.209.0.3", "0123456789ab:10.209.0.3", "redis:10.209.0.3"]);
  assert.deepEqual(parseLink("redis:db"), { name: "redis", alias: "db" });
  assert.deepEqual(parseLink("/redis"), { name: "redis", alias: "redis" });
  assert.deepEqual(parseLink("/redis:/web/db"), { name: "redis", alias: "db" });
  assert.throws(() => parseLink(":db"), /invalid link format/);
});
