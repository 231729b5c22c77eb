// The host-level option rules (server/auth/host-options.ts), as pure functions: path
// normalisation, prefix matching on path boundaries, read-only rules, every option
// named in the refusal, and every field of the link's create options classified.
import { test } from "node:test";
import assert from "node:assert/strict";
import { METHODS } from "../agent/link/contract.ts";
import {
  HostPolicyRulesSchema,
  hostOptionUses,
  isClassifiedField,
  isWithin,
  NO_HOST_ACCESS,
  normalizeHostPath,
  refusedHostOptions,
  volumeOptionsAsBind,
} from "../server/auth/host-options.ts";

const bind = (source: string, readonly = false) => ({ mounts: [{ type: "bind", source, destination: "/x", readonly }] });

test("host paths are normalised before any comparison", () => {
  assert.equal(normalizeHostPath("/var/../"), "/");
  assert.equal(normalizeHostPath("//"), "/");
  assert.equal(normalizeHostPath("//etc//passwd/"), "/etc/passwd");
  assert.equal(normalizeHostPath("/srv/data/../../etc"), "/etc");
  assert.equal(normalizeHostPath("/srv/./data/"), "/srv/data");
  assert.equal(normalizeHostPath("/../../.."), "/");
  assert.equal(normalizeHostPath("srv/data"), null);
  assert.equal(normalizeHostPath("/srv\0/data"), null);
});

test("prefixes match on path boundaries only", () => {
  assert.ok(isWithin("/srv/data", "/srv/data"));
  assert.ok(isWithin("/srv/data/app", "/srv/data"));
  assert.ok(!isWithin("/srv/database", "/srv/data"));
  assert.ok(!isWithin("/srv", "/srv/data"));
  assert.ok(isWithin("/anything", "/"));
});

test("without a policy every host-level option is refused, each named with what would allow it", () => {
  const params = {
    ...bind("/"),
    networkMode: "host",
    privileged: true,
    capAdd: ["SYS_ADMIN"],
    pidMode: "host",
    ipcMode: "host",
    utsMode: "host",
    devices: ["/dev/sda"],
    securityOpt: ["seccomp=unconfined"],
    sysctls: { "kernel.core_pattern": "|/x" },
    volumesFrom: ["admin-box"],
  };
  const refused = refusedHostOptions(params, NO_HOST_ACCESS, { container: true, groupName: "prod" });
  assert.deepEqual(
    refused.map((r) => r.option),
    ["--volume", "--network", "--pid", "--ipc", "--uts", "--privileged", "--cap-add", "--device", "--sysctl", "--volumes-from", "--security-opt"],
  );
  assert.match(refused[0]!.reason, /host path \/, .*node group "prod".*Admin → Security → Host access/);
  assert.match(refused[1]!.reason, /host's network.*Host access/);
  assert.match(refused[5]!.reason, /only admins/);
});

test("ordinary requests pass: named volumes, bridge networks, no-new-privileges, dropped capabilities", () => {
  const params = {
    image: "busybox",
    mounts: [{ type: "volume", source: "data", destination: "/d" }],
    networkMode: "bridge",
    noNewPrivileges: true,
    capDrop: ["ALL"],
    securityOpt: ["no-new-privileges"],
    capAdd: [],
    privileged: false,
    devices: [],
  };
  assert.deepEqual(refusedHostOptions(params, NO_HOST_ACCESS, { container: true }), []);
});

test("a policy's prefixes: inside allowed, outside and escapes refused, read-only enforced, the longest prefix decides", () => {
  const rules = HostPolicyRulesSchema.parse({
    allowHostNetwork: false,
    bindMounts: [
      { path: "/srv/data/", access: "rw" },
      { path: "/srv/data/keys", access: "ro" },
      { path: "//opt//shared", access: "ro" },
    ],
  });
  assert.deepEqual(
    rules.bindMounts.map((b) => b.path),
    ["/srv/data", "/srv/data/keys", "/opt/shared"],
  );
  const refused = (source: string, readonly = false) => refusedHostOptions(bind(source, readonly), rules, { container: true }).map((r) => r.reason);
  assert.deepEqual(refused("/srv/data/app"), []);
  assert.deepEqual(refused("/srv/data"), []);
  assert.deepEqual(refused("/opt/shared/x", true), []);
  assert.match(refused("/opt/shared/x").join(), /read-only only/);
  assert.match(refused("/srv/data/keys/a").join(), /read-only only/);
  assert.deepEqual(refused("/srv/data/keys/a", true), []);
  assert.match(refused("/srv/data/../../etc").join(), /host path \/etc,/);
  assert.match(refused("/srv/database").join(), /does not list/);
  assert.match(refused("/").join(), /host path \/,/);
  assert.match(refused("/var/lib/berth").join(), /does not list/);
});

test("Docker-style binds strings and host networking under a policy", () => {
  const rules = HostPolicyRulesSchema.parse({ allowHostNetwork: true, bindMounts: [{ path: "/srv", access: "ro" }] });
  assert.deepEqual(refusedHostOptions({ binds: ["/srv/a:/a:ro", "vol:/v"], networkMode: "host" }, rules, { container: true }), []);
  assert.equal(refusedHostOptions({ binds: ["/srv/a:/a"] }, rules, { container: true }).length, 1);
  assert.equal(refusedHostOptions({ networkMode: "container:abc" }, rules, { container: true }).length, 1, "another container's namespace may be the host's");
});

test("fields the policy does not know are refused for container requests, ignored for other job steps", () => {
  assert.match(refusedHostOptions({ image: "x", oomScoreAdj: -1000 }, NO_HOST_ACCESS, { container: true })[0]!.reason, /does not classify/);
  assert.deepEqual(refusedHostOptions({ reference: "busybox" }, NO_HOST_ACCESS, { container: false }), []);
  assert.equal(hostOptionUses({ reference: "busybox", networkMode: "host" }, false).length, 1, "a build step's host network still counts");
});

test("every field of the link's container.create options is classified", () => {
  const shape = (METHODS["container.create"].params as unknown as { shape: Record<string, unknown> }).shape;
  assert.deepEqual(
    Object.keys(shape).filter((k) => !isClassifiedField(k)),
    [],
    "classify new create options in server/auth/host-options.ts",
  );
});

test("a local volume with bind driver options is a bind in disguise", () => {
  assert.deepEqual(volumeOptionsAsBind({ type: "none", o: "bind", device: "/" }), { source: "/", destination: "", readonly: false });
  assert.equal(volumeOptionsAsBind({ type: "tmpfs", device: "tmpfs" }), null);
});

test("a seccomp profile other than the default, and unmasked /proc and /sys paths, are host-level", () => {
  const options = (params: Record<string, unknown>) => refusedHostOptions(params, NO_HOST_ACCESS, { container: true }).map((r) => `${r.option} ${r.value}`);
  assert.deepEqual(options({ seccompProfile: "unconfined" }), ["--security-opt seccomp=unconfined"]);
  assert.deepEqual(options({ maskedPaths: [], readonlyPaths: [] }), [
    "--security-opt systempaths=unconfined (maskedPaths)",
    "--security-opt systempaths=unconfined (readonlyPaths)",
  ]);
  assert.deepEqual(options({ cgroupns: "private", securityOpt: ["no-new-privileges"] }), []);
});
