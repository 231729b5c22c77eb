import assert from "node:assert/strict";
import { test } from "node:test";
import { isEngineError } from "../errors.ts";
import type { ContainerConfig } from "../images/image-config.ts";
import { buildRuntimeSpec, DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS, tmpfsOptions, type RunOptions, type SpecInput } from "./spec.ts";

const root = { uid: 0, gid: 0, additionalGids: [] };

function input(image: ContainerConfig | null, run: Partial<RunOptions> = {}, more: Partial<SpecInput> = {}): SpecInput {
  return {
    image,
    run: { hostname: "0123456789ab", ...run },
    rootfs: "rootfs",
    user: root,
    namespaces: { network: "new" },
    cgroupsPath: "/berth/c1",
    host: { ncpu: 2, swapLimit: true },
    ...more,
  };
}

function rejectsWith(f: () => unknown, kind: "InvalidArgument" | "NotImplemented", message: string | RegExp): void {
  assert.throws(f, (e) => {
    assert.ok(isEngineError(e, kind), `expected ${kind}, got ${String(e)}`);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

test("Entrypoint and Cmd: Docker's combination and overrides", () => {
  type Row = [string, Partial<ContainerConfig>, Partial<RunOptions>, string[] | "error"];
  const rows: Row[] = [
    ["image Cmd only", { Cmd: ["sh"] }, {}, ["sh"]],
    ["run cmd replaces image Cmd", { Cmd: ["sh"] }, { cmd: ["echo", "hi"] }, ["echo", "hi"]],
    ["Entrypoint + Cmd", { Entrypoint: ["/ep", "-x"], Cmd: ["a"] }, {}, ["/ep", "-x", "a"]],
    ["run cmd becomes the entrypoint's arguments", { Entrypoint: ["/ep"], Cmd: ["a"] }, { cmd: ["b", "c"] }, ["/ep", "b", "c"]],
    ["--entrypoint drops the image Cmd", { Entrypoint: ["/ep"], Cmd: ["a"] }, { entrypoint: ["/x"] }, ["/x"]],
    ["--entrypoint with cmd", { Entrypoint: ["/ep"], Cmd: ["a"] }, { entrypoint: ["/x"], cmd: ["b"] }, ["/x", "b"]],
    ["--entrypoint '' clears it and the image Cmd", { Entrypoint: ["/ep"], Cmd: ["a"] }, { entrypoint: "" }, "error"],
    ["--entrypoint '' with cmd", { Entrypoint: ["/ep"], Cmd: ["a"] }, { entrypoint: "", cmd: ["b"] }, ["b"]],
    ["Entrypoint [''] from the API", { Entrypoint: ["/ep"], Cmd: ["a"] }, { entrypoint: [""], cmd: ["b"] }, ["b"]],
    ["empty entrypoint array is no override", { Entrypoint: ["/ep"], Cmd: ["a"] }, { entrypoint: [] }, ["/ep", "a"]],
    ["empty cmd array is no override", { Cmd: ["sh"] }, { cmd: [] }, ["sh"]],
    ["Entrypoint only", { Entrypoint: ["/ep"] }, {}, ["/ep"]],
    ["null Cmd and Entrypoint", { Entrypoint: null, Cmd: null }, {}, "error"],
    ["nothing at all", {}, {}, "error"],
  ];
  for (const [title, image, run, want] of rows) {
    if (want === "error") {
      rejectsWith(() => buildRuntimeSpec(input(image, run)), "InvalidArgument", "No command specified");
    } else {
      assert.deepEqual(buildRuntimeSpec(input(image, run)).process.args, want, title);
    }
  }
  assert.deepEqual(buildRuntimeSpec(input(null, { cmd: ["true"] })).process.args, ["true"], "no image config");
});

test("Env: image env, run env overriding by key, PATH default, HOSTNAME, TERM with a TTY", () => {
  const env = (image: string[] | null, run: string[] | undefined, tty = false) =>
    buildRuntimeSpec(input({ Env: image, Cmd: ["sh"] }, { ...(run ? { env: run } : {}), tty })).process.env;
  assert.deepEqual(env(null, undefined), ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=0123456789ab"]);
  assert.deepEqual(env(["PATH=/custom", "A=1", "B=2"], ["B=3", "C=4", "A"], true), ["PATH=/custom", "HOSTNAME=0123456789ab", "TERM=xterm", "B=3", "C=4"]);
  assert.deepEqual(env(["X=a=b"], ["TERM=vt100", "HOSTNAME=other"], true), [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOSTNAME=other",
    "TERM=vt100",
    "X=a=b",
  ]);
  assert.deepEqual(env(["PATH=/img"], ["PATH"]), ["HOSTNAME=0123456789ab"], "a bare key removes it");
  assert.deepEqual(env([], ["E="]), ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=0123456789ab", "E="], "empty value kept");
  assert.deepEqual(env([], ["D=1", "D=2"]).at(-1), "D=2");
  rejectsWith(() => env([], ["=x"]), "InvalidArgument", "invalid environment variable: =x");
});

test("WorkingDir: run option, then image, then /; must be absolute", () => {
  const cwd = (image: string | undefined, run: string | undefined) =>
    buildRuntimeSpec(input({ Cmd: ["sh"], ...(image !== undefined ? { WorkingDir: image } : {}) }, run !== undefined ? { workingDir: run } : {})).process.cwd;
  assert.equal(cwd(undefined, undefined), "/");
  assert.equal(cwd("", undefined), "/");
  assert.equal(cwd("/srv/app/", undefined), "/srv/app");
  assert.equal(cwd("/srv/app", "/data/../tmp"), "/tmp");
  rejectsWith(() => cwd(undefined, "rel/dir"), "InvalidArgument", "the working directory 'rel/dir' is invalid, it needs to be an absolute path");
});

test("capabilities: Docker's default set in bounding/effective/permitted only; add, drop, ALL", () => {
  const caps = (capAdd?: string[], capDrop?: string[]) => buildRuntimeSpec(input({ Cmd: ["sh"] }, { capAdd, capDrop })).process.capabilities!;
  const d = caps();
  assert.deepEqual(d.bounding, [...DEFAULT_CAPABILITIES]);
  assert.deepEqual(d.effective, [...DEFAULT_CAPABILITIES]);
  assert.deepEqual(d.permitted, [...DEFAULT_CAPABILITIES]);
  assert.equal(d.inheritable, undefined);
  assert.equal(d.ambient, undefined);
  assert.equal(DEFAULT_CAPABILITIES.length, 14);

  assert.deepEqual(caps(["net_admin", "CAP_SYS_PTRACE", "chown"]).bounding, [...DEFAULT_CAPABILITIES, "CAP_NET_ADMIN", "CAP_SYS_PTRACE"]);
  assert.deepEqual(
    caps(undefined, ["CHOWN", "cap_net_raw"]).bounding,
    DEFAULT_CAPABILITIES.filter((c) => c !== "CAP_CHOWN" && c !== "CAP_NET_RAW"),
  );
  assert.deepEqual(caps(["chown"], ["ALL"]).bounding, ["CAP_CHOWN"]);
  const all = caps(["ALL"], ["MKNOD"]).bounding;
  assert.ok(all.includes("CAP_SYS_ADMIN") && !all.includes("CAP_MKNOD") && all.length === 40);
  rejectsWith(() => caps(["FOO"]), "InvalidArgument", 'unknown capability: "CAP_FOO"');
  rejectsWith(() => caps(undefined, ["cap_bar"]), "InvalidArgument", 'unknown capability: "CAP_BAR"');
});

test("security defaults: masked and read-only paths, devices deny-all first, rlimits, no-new-privileges", () => {
  const s = buildRuntimeSpec(input({ Cmd: ["sh"] }));
  assert.equal(s.ociVersion, "1.0.2");
  assert.deepEqual(s.linux.maskedPaths, [...MASKED_PATHS]);
  assert.ok(s.linux.maskedPaths!.includes("/proc/kcore") && s.linux.maskedPaths!.includes("/sys/firmware"));
  assert.deepEqual(s.linux.readonlyPaths, [...READONLY_PATHS]);
  assert.ok(s.linux.readonlyPaths!.includes("/proc/sys") && s.linux.readonlyPaths!.includes("/proc/sysrq-trigger"));
  const dev = s.linux.resources.devices;
  assert.deepEqual(dev[0], { allow: false, access: "rwm" });
  const allowed = (major: number, minor: number) => dev.some((r) => r.allow && r.type === "c" && r.major === major && r.minor === minor && r.access === "rwm");
  for (const [name, major, minor] of [
    ["null", 1, 3],
    ["zero", 1, 5],
    ["full", 1, 7],
    ["random", 1, 8],
    ["urandom", 1, 9],
    ["tty", 5, 0],
    ["console", 5, 1],
    ["ptmx", 5, 2],
  ] as const) {
    assert.ok(allowed(major, minor), name);
  }
  assert.ok(!dev.some((r) => r.allow && r.type === "b" && r.access !== "m"), "no block device access");
  assert.deepEqual(s.process.rlimits, [{ type: "RLIMIT_NOFILE", hard: 1048576, soft: 1048576 }]);
  const capped = buildRuntimeSpec(input({ Cmd: ["sh"] }, {}, { host: { ncpu: 2, swapLimit: true, maxNofile: 20000 } }));
  assert.deepEqual(capped.process.rlimits, [{ type: "RLIMIT_NOFILE", hard: 20000, soft: 20000 }], "an agent without CAP_SYS_RESOURCE gives what it has");
  assert.equal(s.process.noNewPrivileges, false);
  assert.equal(buildRuntimeSpec(input({ Cmd: ["sh"] }, { noNewPrivileges: true })).process.noNewPrivileges, true);
  assert.equal(s.process.terminal, false);
  assert.equal(buildRuntimeSpec(input({ Cmd: ["sh"] }, { tty: true })).process.terminal, true);
  assert.deepEqual(s.root, { path: "rootfs", readonly: false });
  assert.equal(buildRuntimeSpec(input({ Cmd: ["sh"] }, { readonlyRootfs: true })).root.readonly, true);
  assert.equal(s.hostname, "0123456789ab");
  assert.equal(s.linux.cgroupsPath, "/berth/c1");
  rejectsWith(() => buildRuntimeSpec(input({ Cmd: ["sh"] }, { hostname: "a b" })), "InvalidArgument", "invalid hostname format: a b");
});

test("user: uid, gid and supplementary groups from the resolved user, the primary group among them as Docker does", () => {
  const s = buildRuntimeSpec(input({ Cmd: ["sh"] }, {}, { user: { uid: 1000, gid: 100, additionalGids: [10, 20] } }));
  assert.deepEqual(s.process.user, { uid: 1000, gid: 100, additionalGids: [100, 10, 20] });
  assert.deepEqual(buildRuntimeSpec(input({ Cmd: ["sh"] })).process.user, { uid: 0, gid: 0, additionalGids: [0] });
  const member = buildRuntimeSpec(input({ Cmd: ["sh"] }, {}, { user: { uid: 0, gid: 0, additionalGids: [0, 10] } }));
  assert.deepEqual(member.process.user, { uid: 0, gid: 0, additionalGids: [0, 10] });
});

test("namespaces: new, none, host and joined network namespaces", () => {
  const ns = (network: SpecInput["namespaces"]["network"]) => buildRuntimeSpec(input({ Cmd: ["sh"] }, {}, { namespaces: { network } })).linux;
  assert.deepEqual(ns("new").namespaces, [{ type: "mount" }, { type: "network" }, { type: "uts" }, { type: "pid" }, { type: "ipc" }]);
  assert.deepEqual(ns("none").namespaces, ns("new").namespaces);
  assert.deepEqual(ns("new").sysctl, { "net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647" });
  assert.deepEqual(ns("host").namespaces, [{ type: "mount" }, { type: "uts" }, { type: "pid" }, { type: "ipc" }]);
  assert.equal(ns("host").sysctl, undefined, "no net sysctls in the host's namespace");
  assert.deepEqual(ns({ path: "/run/netns/x" }).namespaces[1], { type: "network", path: "/run/netns/x" });
  rejectsWith(() => ns({ path: "run/netns/x" }), "InvalidArgument", /must be absolute/);
  const cg = buildRuntimeSpec(input({ Cmd: ["sh"] }, {}, { namespaces: { network: "new", cgroup: "private" } })).linux.namespaces;
  assert.deepEqual(cg.at(-1), { type: "cgroup" });
});

test("mounts: Docker's defaults, /dev/shm 64m, the container's files, user binds parents first, overrides", () => {
  const s = buildRuntimeSpec(
    input(
      { Cmd: ["sh"] },
      {},
      {
        files: { hosts: "/c/hosts", hostname: "/c/hostname", resolvConf: "/c/resolv.conf" },
        mounts: [
          { source: "/vol/b", destination: "/data/sub/" },
          { source: "/vol/a", destination: "/data", readonly: true },
        ],
      },
    ),
  );
  const byDest = new Map(s.mounts.map((m) => [m.destination, m]));
  assert.deepEqual(
    s.mounts.map((m) => m.destination),
    ["/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup", "/dev/mqueue", "/dev/shm", "/data", "/data/sub", "/etc/resolv.conf", "/etc/hostname", "/etc/hosts"],
  );
  assert.deepEqual(byDest.get("/dev/shm"), {
    destination: "/dev/shm",
    type: "tmpfs",
    source: "shm",
    options: ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
  });
  assert.deepEqual(byDest.get("/sys")!.options, ["nosuid", "noexec", "nodev", "ro"]);
  assert.deepEqual(byDest.get("/sys/fs/cgroup"), {
    destination: "/sys/fs/cgroup",
    type: "cgroup",
    source: "cgroup",
    options: ["ro", "nosuid", "noexec", "nodev"],
  });
  assert.equal(byDest.get("/dev/mqueue")!.type, "mqueue");
  assert.deepEqual(byDest.get("/etc/hosts"), { destination: "/etc/hosts", type: "bind", source: "/c/hosts", options: ["rbind", "rprivate"] });
  assert.deepEqual(byDest.get("/data"), { destination: "/data", type: "bind", source: "/vol/a", options: ["rbind", "ro", "rprivate"] });

  const ro = buildRuntimeSpec(input({ Cmd: ["sh"] }, { readonlyRootfs: true }, { files: { hosts: "/c/hosts" } }));
  assert.deepEqual(ro.mounts.find((m) => m.destination === "/etc/hosts")!.options, ["rbind", "ro", "rprivate"], "files are read-only with a read-only rootfs");

  const shm = buildRuntimeSpec(input({ Cmd: ["sh"] }, {}, { mounts: [{ source: "/host/shm", destination: "/dev/shm" }] })).mounts;
  assert.equal(shm.filter((m) => m.destination === "/dev/shm").length, 1);
  assert.equal(shm.find((m) => m.destination === "/dev/shm")!.type, "bind");
  const dev = buildRuntimeSpec(input({ Cmd: ["sh"] }, {}, { mounts: [{ source: "/host/dev", destination: "/dev" }] })).mounts;
  assert.deepEqual(
    dev.filter((m) => m.destination.startsWith("/dev")).map((m) => m.type),
    ["bind"],
    "a /dev bind replaces every /dev default",
  );
  const hostsVol = buildRuntimeSpec(
    input({ Cmd: ["sh"] }, {}, { files: { hosts: "/c/hosts" }, mounts: [{ source: "/mine", destination: "/etc/hosts" }] }),
  ).mounts;
  assert.deepEqual(
    hostsVol.filter((m) => m.destination === "/etc/hosts").map((m) => m.source),
    ["/mine"],
  );

  const bad = (m: { source: string; destination: string }) => () =>
    buildRuntimeSpec(input({ Cmd: ["sh"] }, {}, { mounts: [m, { source: "/y", destination: "/dup" }, { source: "/z", destination: "/dup/" }] }));
  rejectsWith(
    bad({ source: "/x", destination: "data" }),
    "InvalidArgument",
    `invalid mount config for type "bind": invalid mount path: 'data' mount path must be absolute`,
  );
  rejectsWith(bad({ source: "/x", destination: "/" }), "InvalidArgument", "invalid specification: destination can't be '/'");
  rejectsWith(bad({ source: "/x", destination: "/ok" }), "InvalidArgument", "Duplicate mount point: /dup");
});

test("resources: memory, swap, cpus, shares, cpuset, pids — and Docker's refusals", () => {
  const res = (run: Partial<RunOptions>, host = { ncpu: 2, swapLimit: true }) => buildRuntimeSpec(input({ Cmd: ["sh"] }, run, { host })).linux.resources;
  const none = res({});
  assert.equal(none.memory, undefined);
  assert.equal(none.cpu, undefined);
  assert.equal(none.pids, undefined);

  assert.deepEqual(res({ memory: 64 << 20 }).memory, { limit: 64 << 20, swap: 128 << 20 }, "swap defaults to twice the memory");
  assert.deepEqual(res({ memory: 64 << 20 }, { ncpu: 2, swapLimit: false }).memory, { limit: 64 << 20 }, "no swap limit without swap accounting");
  assert.deepEqual(res({ memory: 64 << 20, memorySwap: -1 }).memory, { limit: 64 << 20, swap: -1 });
  assert.deepEqual(res({ memory: 64 << 20, memorySwap: 100 << 20 }).memory, { limit: 64 << 20, swap: 100 << 20 });
  assert.deepEqual(res({ memory: 6 * 1024 * 1024 }).memory?.limit, 6 * 1024 * 1024);
  rejectsWith(() => res({ memory: 4 << 20 }), "InvalidArgument", "Minimum memory limit allowed is 6MB");
  rejectsWith(() => res({ memory: -5 }), "InvalidArgument", "Minimum memory limit allowed is 6MB");
  rejectsWith(
    () => res({ memory: 64 << 20, memorySwap: 32 << 20 }),
    "InvalidArgument",
    "Minimum memoryswap limit should be larger than memory limit, see usage",
  );
  rejectsWith(() => res({ memorySwap: 32 << 20 }), "InvalidArgument", "You should always set the Memory limit when using Memoryswap limit, see usage");

  assert.deepEqual(res({ cpus: 0.5 }).cpu, { period: 100000, quota: 50000 });
  assert.deepEqual(res({ cpus: 1.5 }).cpu, { period: 100000, quota: 150000 });
  for (const cpus of [0, -1, 0.001, 3, Number.NaN]) {
    rejectsWith(() => res({ cpus }), "InvalidArgument", "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available");
  }
  assert.deepEqual(res({ cpuShares: 512 }).cpu, { shares: 512 });
  assert.deepEqual(res({ cpuShares: 1 }).cpu, { shares: 2 });
  assert.deepEqual(res({ cpuShares: 1_000_000 }).cpu, { shares: 262144 });
  assert.deepEqual(res({ cpusetCpus: "0-1" }).cpu, { cpus: "0-1" });
  rejectsWith(() => res({ cpusetCpus: "0-5" }), "InvalidArgument", "Requested CPUs are not available - requested 0-5, available: 0-1");
  rejectsWith(() => res({ cpusetCpus: "a-b" }), "InvalidArgument", "Invalid value a-b for cpuset cpus");

  assert.deepEqual(res({ pidsLimit: 100 }).pids, { limit: 100 });
  assert.deepEqual(res({ pidsLimit: -1 }).pids, { limit: -1 });
  assert.equal(res({ pidsLimit: 0 }).pids, undefined);
});

test("the spec is plain JSON (round-trips) and deterministic", () => {
  const i = input({ Cmd: ["sh"], Env: ["A=1"] }, { memory: 64 << 20, cpus: 1, tty: true, consoleSize: { height: 24, width: 80 } });
  const a = buildRuntimeSpec(i);
  assert.deepEqual(JSON.parse(JSON.stringify(a)), a);
  assert.deepEqual(buildRuntimeSpec(i), a);
  assert.deepEqual(a.process.consoleSize, { height: 24, width: 80 });
});

const amd64 = { ncpu: 2, swapLimit: true, arch: "amd64", kernel: "6.1.0-18-amd64" };
const allowsPlainly = (sc: { syscalls?: { names: string[]; action: string; args?: unknown[] }[] } | undefined, name: string) =>
  !!sc?.syscalls?.some((c) => c.action === "SCMP_ACT_ALLOW" && !c.args && c.names.includes(name));

test("seccomp: Docker's default profile for the container's capabilities, unconfined, a profile of its own", () => {
  const spec = (run: Partial<RunOptions>, host: SpecInput["host"] = amd64) => buildRuntimeSpec(input({ Cmd: ["sh"] }, run, { host }));
  const def = spec({}).linux.seccomp!;
  assert.equal(def.defaultAction, "SCMP_ACT_ERRNO");
  assert.equal(def.defaultErrnoRet, 1);
  assert.deepEqual(def.architectures, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
  assert.ok(allowsPlainly(def, "read") && allowsPlainly(def, "chroot"), "CAP_SYS_CHROOT is a default capability");
  for (const blocked of ["unshare", "mount", "setns", "keyctl", "add_key", "reboot", "init_module"]) assert.ok(!allowsPlainly(def, blocked), blocked);
  assert.deepEqual(spec({ seccompProfile: "builtin" }).linux.seccomp, def);
  assert.ok(allowsPlainly(spec({ capAdd: ["SYS_ADMIN"] }).linux.seccomp, "unshare"), "CAP_SYS_ADMIN allows unshare, as in Docker");
  assert.ok(!allowsPlainly(spec({ capDrop: ["SYS_CHROOT"] }).linux.seccomp, "chroot"), "the profile follows the bounding set");

  assert.equal(spec({ seccompProfile: "unconfined" }).linux.seccomp, undefined);
  assert.equal(spec({ seccompProfile: "unconfined" }).linux.maskedPaths!.length, MASKED_PATHS.length, "unconfined drops only seccomp");
  const own = spec({
    seccompProfile: JSON.stringify({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO", errnoRet: 13 }] }),
  }).linux.seccomp;
  assert.deepEqual(own, { defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO", errnoRet: 13 }] });
  rejectsWith(() => spec({ seccompProfile: "{nope" }), "InvalidArgument", /^Decoding seccomp profile failed: /);
  rejectsWith(() => spec({ seccompProfile: JSON.stringify({ defaultAction: "SCMP_ACT_NOPE" }) }), "InvalidArgument", /unknown defaultAction "SCMP_ACT_NOPE"/);

  const noSeccomp = { ...amd64, seccomp: false };
  assert.equal(spec({}, noSeccomp).linux.seccomp, undefined, "Docker runs without its profile on a kernel without seccomp");
  rejectsWith(
    () => spec({ seccompProfile: "{}" }, noSeccomp),
    "InvalidArgument",
    "seccomp is not enabled in your kernel, cannot run a custom seccomp profile.",
  );
});

test("privileged: every capability, all devices, writable /sys and cgroups, no masked paths, no seccomp", () => {
  const devices = [{ path: "/dev/sda", type: "b" as const, major: 8, minor: 0, fileMode: 0o660, uid: 0, gid: 6, access: "rwm" }];
  const s = buildRuntimeSpec(input({ Cmd: ["sh"] }, { privileged: true, capDrop: ["ALL"] }, { host: amd64, devices }));
  assert.equal(s.process.capabilities!.bounding.length, 41);
  assert.deepEqual(s.linux.resources.devices, [{ allow: true, access: "rwm" }]);
  assert.deepEqual(s.linux.devices, [{ path: "/dev/sda", type: "b", major: 8, minor: 0, fileMode: 0o660, uid: 0, gid: 6 }]);
  assert.deepEqual([s.linux.maskedPaths, s.linux.readonlyPaths], [[], []]);
  const bounded = buildRuntimeSpec(input({ Cmd: ["sh"] }, { privileged: true }, { host: { ...amd64, boundingCapabilities: ["CAP_CHOWN", "CAP_SYS_ADMIN"] } }));
  assert.deepEqual(bounded.process.capabilities!.bounding, ["CAP_CHOWN", "CAP_SYS_ADMIN"], "no more than the agent's own bounding set");
  const addAll = buildRuntimeSpec(
    input({ Cmd: ["sh"] }, { capAdd: ["ALL"], capDrop: ["CHOWN"] }, { host: { ...amd64, boundingCapabilities: ["CAP_CHOWN", "CAP_KILL"] } }),
  );
  assert.deepEqual(addAll.process.capabilities!.bounding, ["CAP_KILL"]);
  assert.equal(s.linux.seccomp, undefined);
  assert.deepEqual(s.mounts.find((m) => m.destination === "/sys")!.options, ["nosuid", "noexec", "nodev"]);
  assert.deepEqual(s.mounts.find((m) => m.destination === "/sys/fs/cgroup")!.options, ["nosuid", "noexec", "nodev"]);
  const plain = buildRuntimeSpec(input({ Cmd: ["sh"] }, { maskedPaths: [], readonlyPaths: ["/proc/sys"] }, { host: amd64 }));
  assert.deepEqual([plain.linux.maskedPaths, plain.linux.readonlyPaths], [[], ["/proc/sys"]], "HostConfig.MaskedPaths/ReadonlyPaths replace Docker's");
});

test("pid, ipc and uts: private by default, the host's, another container's PID namespace", () => {
  const spec = (namespaces: Partial<SpecInput["namespaces"]>) =>
    buildRuntimeSpec(input({ Cmd: ["sh"] }, {}, { host: amd64, namespaces: { network: "new", ...namespaces } }));
  const types = (namespaces: Partial<SpecInput["namespaces"]>) => spec(namespaces).linux.namespaces.map((n) => n.type);
  assert.deepEqual(types({ pid: "host" }), ["mount", "network", "uts", "ipc"]);
  assert.deepEqual(types({ ipc: "host" }), ["mount", "network", "uts", "pid"]);
  assert.deepEqual(types({ uts: "host" }), ["mount", "network", "pid", "ipc"]);
  assert.deepEqual(
    spec({ pid: { path: "/proc/42/ns/pid" } }).linux.namespaces.find((n) => n.type === "pid"),
    { type: "pid", path: "/proc/42/ns/pid" },
  );
  assert.equal(spec({ uts: "host" }).hostname, undefined, "runc sets no hostname in the host's UTS namespace");
  const shm = (ipc: "host" | "none") => spec({ ipc }).mounts.find((m) => m.destination === "/dev/shm");
  assert.deepEqual(shm("host"), { destination: "/dev/shm", type: "bind", source: "/dev/shm", options: ["rbind", "nosuid", "noexec", "nodev", "rprivate"] });
  assert.equal(shm("none"), undefined);
  rejectsWith(() => spec({ pid: "nope" as "host" }), "InvalidArgument", "invalid PID mode: nope");
});

test("devices and sysctls", () => {
  const node = { path: "/dev/mynull", type: "c" as const, major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0, access: "rw" };
  const s = buildRuntimeSpec(input({ Cmd: ["sh"] }, {}, { host: amd64, devices: [node] }));
  assert.deepEqual(s.linux.devices, [{ path: "/dev/mynull", type: "c", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 }]);
  assert.deepEqual(s.linux.resources.devices.at(-1), { allow: true, type: "c", major: 1, minor: 3, access: "rw" });
  assert.deepEqual(s.linux.resources.devices[0], { allow: false, access: "rwm" }, "still deny-all first");
  rejectsWith(() => buildRuntimeSpec(input({ Cmd: ["sh"] }, {}, { devices: [{ ...node, access: "rwx" }] })), "InvalidArgument", "invalid device mode: rwx");
  const rules = buildRuntimeSpec(
    input({ Cmd: ["sh"] }, { deviceCgroupRules: ["c 10:237 rw", "b *:* m", "a 7:* r"] }, { host: amd64 }),
  ).linux.resources.devices.slice(-3);
  assert.deepEqual(rules, [
    { allow: true, type: "c", major: 10, minor: 237, access: "rw" },
    { allow: true, type: "b", access: "m" },
    { allow: true, type: "a", major: 7, access: "r" },
  ]);
  for (const bad of ["c 10:237", "x 1:2 r", "c 1:2 rwx", "c 1:2 rr", "c a:b r", "c 99999:1 r"]) {
    rejectsWith(() => buildRuntimeSpec(input({ Cmd: ["sh"] }, { deviceCgroupRules: [bad] })), "InvalidArgument", `invalid device cgroup rule format: '${bad}'`);
  }

  const sys = (sysctls: Record<string, string>, namespaces: Partial<SpecInput["namespaces"]> = {}) =>
    buildRuntimeSpec(input({ Cmd: ["sh"] }, { sysctls }, { host: amd64, namespaces: { network: "new", ...namespaces } })).linux.sysctl;
  assert.equal(sys({ "net.ipv4.ip_forward": "1", "kernel.shmmax": "100" })!["net.ipv4.ip_forward"], "1");
  rejectsWith(
    () => sys({ "net.ipv4.ip_forward": "1" }, { network: "host" }),
    "InvalidArgument",
    `sysctl "net.ipv4.ip_forward" not allowed in host network namespace`,
  );
  rejectsWith(() => sys({ "kernel.shmmax": "1" }, { ipc: "host" }), "InvalidArgument", /conflicts with the OCI "ipc" setting/);
  rejectsWith(() => sys({ "vm.swappiness": "1" }), "InvalidArgument", `sysctl "vm.swappiness" is not in a separate kernel namespace`);
});

test("--init: the host's init mounted read-only at /sbin/docker-init runs the command; refused without one", () => {
  const host = { ncpu: 2, swapLimit: true, initPath: "/usr/bin/tini-static" };
  const s = buildRuntimeSpec(input({ Entrypoint: ["sh"], Cmd: ["-c", "x"] }, { init: true }, { host }));
  assert.deepEqual(s.process.args, ["/sbin/docker-init", "--", "sh", "-c", "x"]);
  assert.deepEqual(
    s.mounts.find((m) => m.destination === "/sbin/docker-init"),
    { destination: "/sbin/docker-init", type: "bind", source: "/usr/bin/tini-static", options: ["rbind", "ro", "rprivate"] },
  );
  assert.equal(
    buildRuntimeSpec(input({ Cmd: ["sh"] }, {}, { host })).mounts.some((m) => m.destination === "/sbin/docker-init"),
    false,
  );
  rejectsWith(() => buildRuntimeSpec(input({ Cmd: ["sh"] }, { init: true })), "InvalidArgument", /--init: no docker-init on this node/);
});

test("--tmpfs: Docker's noexec,nosuid,nodev,rprivate with the given options merged over them", () => {
  const table: Array<[string, string[]]> = [
    ["", ["noexec", "nosuid", "nodev", "rprivate"]],
    ["rw,size=1m", ["noexec", "nosuid", "nodev", "rprivate", "rw", "size=1m"]],
    ["exec,mode=1777", ["exec", "nosuid", "nodev", "rprivate", "mode=1777"]],
    ["size=1m,size=2m,ro,rw", ["noexec", "nosuid", "nodev", "rprivate", "size=2m", "rw"]],
  ];
  for (const [data, want] of table) assert.deepEqual(tmpfsOptions(data), want, data);
  const s = buildRuntimeSpec(input({ Cmd: ["sh"] }, { tmpfs: { "/run": "size=1m" } }));
  assert.deepEqual(
    s.mounts.find((m) => m.destination === "/run"),
    { destination: "/run", type: "tmpfs", source: "tmpfs", options: ["noexec", "nosuid", "nodev", "rprivate", "size=1m"] },
  );
  rejectsWith(
    () => buildRuntimeSpec(input({ Cmd: ["sh"] }, { tmpfs: { run: "" } })),
    "InvalidArgument",
    /invalid mount path: 'run' mount path must be absolute/,
  );
  rejectsWith(
    () => buildRuntimeSpec(input({ Cmd: ["sh"] }, { tmpfs: { "/run": "" } }, { mounts: [{ source: "/x", destination: "/run" }] })),
    "InvalidArgument",
    "Duplicate mount point: /run",
  );
});

test("--memory-swappiness and --oom-kill-disable: cgroup v1 knobs, checked as Docker does", () => {
  const v1 = { ncpu: 2, swapLimit: true, memoryV1: true };
  assert.deepEqual(buildRuntimeSpec(input({ Cmd: ["sh"] }, { memorySwappiness: 30, oomKillDisable: true }, { host: v1 })).linux.resources.memory, {
    swappiness: 30,
    disableOOMKiller: true,
  });
  assert.equal(
    buildRuntimeSpec(input({ Cmd: ["sh"] }, { memorySwappiness: 30, oomKillDisable: true })).linux.resources.memory,
    undefined,
    "cgroup v2: dropped, as Docker does",
  );
  rejectsWith(
    () => buildRuntimeSpec(input({ Cmd: ["sh"] }, { memorySwappiness: 101 })),
    "InvalidArgument",
    "Invalid value: 101, valid memory swappiness range is 0-100",
  );
});
