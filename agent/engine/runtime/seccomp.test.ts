import assert from "node:assert/strict";
import { test } from "node:test";
import { isEngineError } from "../errors.ts";
import { DEFAULT_SECCOMP_PROFILE, defaultSeccomp, nativeArch, parseSeccompProfile, seccompForContainer, type SpecSeccomp } from "./seccomp.ts";
import { DEFAULT_CAPABILITIES } from "./spec.ts";

const amd64 = { capabilities: DEFAULT_CAPABILITIES, arch: "amd64", kernel: "6.1.0-18-amd64" };
const rulesFor = (s: SpecSeccomp, name: string) => s.syscalls!.filter((c) => c.names.includes(name));
const plainlyAllowed = (s: SpecSeccomp, name: string) => rulesFor(s, name).some((c) => c.action === "SCMP_ACT_ALLOW" && !c.args);

test("the default profile for Docker's default capabilities on x86_64", () => {
  const s = seccompForContainer(DEFAULT_SECCOMP_PROFILE, amd64)!;
  assert.equal(s.defaultAction, "SCMP_ACT_ERRNO");
  assert.equal(s.defaultErrnoRet, 1, "EPERM");
  assert.deepEqual(s.architectures, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
  for (const name of ["read", "write", "execve", "openat", "arch_prctl", "modify_ldt", "chroot", "ptrace", "process_vm_readv"])
    assert.ok(plainlyAllowed(s, name), name);
  for (const name of [
    "unshare",
    "mount",
    "umount2",
    "setns",
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "reboot",
    "init_module",
    "open_by_handle_at",
    "cacheflush",
    "clock_settime",
    "syslog",
    "perf_event_open",
  ]) {
    assert.ok(!plainlyAllowed(s, name), name);
  }
  // clone only without namespace flags; clone3 answers ENOSYS so libcs fall back to clone.
  assert.deepEqual(rulesFor(s, "clone"), [{ names: ["clone"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 2114060288, op: "SCMP_CMP_MASKED_EQ" }] }]);
  assert.deepEqual(rulesFor(s, "clone3"), [{ names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38 }]);
  assert.deepEqual(
    rulesFor(s, "personality").map((c) => c.args![0]!.value),
    [0, 8, 131072, 131080, 4294967295],
  );
  assert.deepEqual(rulesFor(s, "socket"), [{ names: ["socket"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 40, op: "SCMP_CMP_NE" }] }], "no AF_VSOCK");
  assert.deepEqual(JSON.parse(JSON.stringify(s)), s, "plain JSON");
});

test("capabilities, architecture and kernel select the blocks, as moby's setupSeccomp", () => {
  const admin = seccompForContainer(DEFAULT_SECCOMP_PROFILE, { ...amd64, capabilities: [...DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"] })!;
  for (const name of ["unshare", "mount", "setns", "clone", "clone3"]) assert.ok(plainlyAllowed(admin, name), name);
  assert.ok(!rulesFor(admin, "clone3").some((c) => c.action === "SCMP_ACT_ERRNO"), "no ENOSYS clone3 with CAP_SYS_ADMIN");
  const time = seccompForContainer(DEFAULT_SECCOMP_PROFILE, { ...amd64, capabilities: ["CAP_SYS_TIME"] })!;
  assert.ok(plainlyAllowed(time, "clock_settime") && !plainlyAllowed(time, "chroot"));

  const arm = seccompForContainer(DEFAULT_SECCOMP_PROFILE, { ...amd64, arch: "arm64" })!;
  assert.deepEqual(arm.architectures, ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]);
  assert.ok(plainlyAllowed(arm, "cacheflush") && !plainlyAllowed(arm, "arch_prctl") && !plainlyAllowed(arm, "modify_ldt"));

  const old = seccompForContainer(DEFAULT_SECCOMP_PROFILE, { ...amd64, kernel: "4.4.0-210-generic" })!;
  assert.ok(!plainlyAllowed(old, "ptrace"), "ptrace needs 4.8 (or CAP_SYS_PTRACE)");
  const s390 = seccompForContainer(DEFAULT_SECCOMP_PROFILE, { ...amd64, arch: "s390x" })!;
  assert.deepEqual(rulesFor(s390, "clone")[0]!.args, [{ index: 1, value: 2114060288, op: "SCMP_CMP_MASKED_EQ" }], "s390's clone argument order");
  assert.equal(nativeArch("x64"), "amd64");
  assert.equal(nativeArch("arm64"), "arm64");
});

test("the default translation is kept per capability set", () => {
  const a = defaultSeccomp(amd64);
  assert.equal(defaultSeccomp({ ...amd64, capabilities: [...DEFAULT_CAPABILITIES].reverse() }), a);
  assert.notEqual(defaultSeccomp({ ...amd64, capabilities: ["CAP_SYS_ADMIN"] }), a);
});

test("profiles of one's own: Docker's format, 'architectures' or 'archMap', 'name' or 'names'; bad ones refused by name", () => {
  const p = parseSeccompProfile(
    JSON.stringify({
      defaultAction: "SCMP_ACT_ALLOW",
      architectures: ["SCMP_ARCH_X86_64"],
      syscalls: [
        { name: "mkdirat", action: "SCMP_ACT_ERRNO" },
        { names: ["chmod"], action: "SCMP_ACT_ERRNO", errnoRet: 13, args: [{ index: 1, value: 0, valueTwo: 0, op: "SCMP_CMP_EQ" }] },
        { names: ["ptrace"], action: "SCMP_ACT_KILL", excludes: { caps: ["CAP_SYS_PTRACE"] } },
      ],
    }),
  );
  assert.deepEqual(seccompForContainer(p, amd64), {
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: ["SCMP_ARCH_X86_64"],
    syscalls: [
      { names: ["mkdirat"], action: "SCMP_ACT_ERRNO" },
      { names: ["chmod"], action: "SCMP_ACT_ERRNO", errnoRet: 13, args: [{ index: 1, value: 0, op: "SCMP_CMP_EQ" }] },
      { names: ["ptrace"], action: "SCMP_ACT_KILL" },
    ],
  });
  assert.equal(seccompForContainer(parseSeccompProfile("{}"), amd64), undefined, "an empty profile means no filter, as in moby");

  const refused = (profile: unknown, message: RegExp) =>
    assert.throws(
      () => parseSeccompProfile(typeof profile === "string" ? profile : JSON.stringify(profile)),
      (e) => isEngineError(e, "InvalidArgument") && message.test(e.message),
    );
  refused("not json", /^Decoding seccomp profile failed: /);
  refused([], /must be a JSON object/);
  refused(
    { defaultAction: "SCMP_ACT_ALLOW", architectures: ["SCMP_ARCH_X86_64"], archMap: [{ architecture: "SCMP_ARCH_X86_64", subArchitectures: null }] },
    /use either 'architectures' or 'archMap'/,
  );
  refused({ syscalls: [{ name: "a", names: ["b"], action: "SCMP_ACT_ALLOW" }] }, /use either 'name' or 'names'/);
  refused({ syscalls: [{ names: ["a"], action: "SCMP_ACT_NOTIFY" }] }, /SCMP_ACT_NOTIFY .* not supported/);
  refused({ syscalls: [{ names: ["a"], action: "ALLOW" }] }, /syscalls\[0\]: unknown action "ALLOW"/);
  refused({ syscalls: [{ names: ["a"], action: "SCMP_ACT_ALLOW", args: [{ index: 6, value: 0, op: "SCMP_CMP_EQ" }] }] }, /index must be 0 to 5/);
  refused({ syscalls: [{ names: ["a"], action: "SCMP_ACT_ALLOW", args: [{ index: 0, value: 0, op: "EQ" }] }] }, /unknown operator "EQ"/);
  refused(
    '{"syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":18446744073709551615,"op":"SCMP_CMP_EQ"}]}]}',
    /must be an integer from 0 to 2\^53-1/,
  );
  refused({ syscalls: [{ names: [], action: "SCMP_ACT_ALLOW" }] }, /names no system call/);
});
