import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { dnsResolvConf, filterResolvConf, hostnameNames, renderHosts, renderResolvConf, writeInPlace } from "./hosts.ts";

test("resolv.conf: 127.x nameservers dropped, options kept, Google's as the fallback", () => {
  assert.equal(filterResolvConf("search lan\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n"), "search lan\nnameserver 10.0.0.2\noptions edns0\n");
  assert.equal(filterResolvConf("nameserver 127.0.0.53\nsearch lan\n"), "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
  assert.equal(filterResolvConf(""), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
});

test("resolv.conf on a user network: the DNS server only (it forwards), the host's search and options, ndots:0 as Docker", () => {
  assert.equal(
    dnsResolvConf("search lan\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n", "10.210.0.1"),
    "nameserver 10.210.0.1\nsearch lan\noptions edns0\noptions ndots:0\n",
  );
  assert.equal(dnsResolvConf("nameserver 10.0.0.2\noptions ndots:2\n", "10.210.0.1"), "nameserver 10.210.0.1\noptions ndots:2\n");
  assert.equal(dnsResolvConf("", "10.210.0.1"), "nameserver 10.210.0.1\noptions ndots:0\n");
});

test("hosts: localhost lines, own entries, then peers, Docker's layout", () => {
  const text = renderHosts(
    [{ ip: "10.1.0.2", names: ["web", "web", "w"] }],
    [
      { ip: "10.1.0.3", names: ["db", "database", ""] },
      { ip: "10.1.0.9", names: [] },
    ],
  );
  const lines = text.split("\n");
  assert.equal(lines[0], "127.0.0.1\tlocalhost");
  assert.equal(lines[1], "::1\tlocalhost ip6-localhost ip6-loopback");
  assert.ok(text.endsWith("10.1.0.2\tweb w\n10.1.0.3\tdb database\n"));
  assert.deepEqual(hostnameNames("a.example.com"), ["a.example.com", "a"]);
  assert.deepEqual(hostnameNames(""), []);
});

test("writeInPlace keeps the inode (bind mounts see the change)", async (t) => {
  let dir = "";
  t.after(() => (dir ? rm(dir, { recursive: true, force: true }) : undefined));
  dir = await mkdtemp(join(tmpdir(), "berth-hosts-"));
  const p = join(dir, "hosts");
  await writeFile(p, "a much longer original content\n");
  const before = (await stat(p)).ino;
  await writeInPlace(p, "short\n");
  assert.equal((await stat(p)).ino, before);
  assert.equal(await readFile(p, "utf8"), "short\n");
});

test("--dns* (libnetwork's rules): each flag replaces the host's lines; '.' means no search; a user network keeps its server", () => {
  const host = "search lan\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n";
  const none = { servers: [], search: [], options: [] };
  assert.equal(renderResolvConf(host, undefined, none), filterResolvConf(host));
  assert.equal(renderResolvConf(host, "10.210.0.1", undefined), dnsResolvConf(host, "10.210.0.1"));
  assert.equal(renderResolvConf(host, undefined, { servers: ["192.0.2.1"], search: [], options: [] }), "nameserver 192.0.2.1\nsearch lan\noptions edns0\n");
  assert.equal(
    renderResolvConf(host, undefined, { servers: [], search: ["a.example", "b.example"], options: [] }),
    "nameserver 10.0.0.2\nsearch a.example b.example\noptions edns0\n",
  );
  assert.equal(renderResolvConf(host, undefined, { servers: ["192.0.2.1"], search: ["."], options: ["ndots:2"] }), "nameserver 192.0.2.1\noptions ndots:2\n");
  assert.equal(
    renderResolvConf(host, "10.210.0.1", { servers: ["192.0.2.1"], search: ["x.example"], options: ["timeout:1"] }),
    "nameserver 10.210.0.1\nsearch x.example\noptions timeout:1 ndots:0\n",
  );
});
