/**
 * Seccomp profiles in Docker's format (moby `profiles/seccomp`: `archMap`,
 * `includes`/`excludes` by capability, architecture and kernel) and their
 * translation to the OCI runtime spec's `linux.seccomp`, as moby's
 * `setupSeccomp` does: the blocks that do not apply to the container's bounding
 * capabilities, the host's architecture or its kernel are left out, and the
 * architecture list is the host's entry of `archMap`.
 *
 * `seccomp-default.json` is moby's `profiles/seccomp/default.json`, unchanged:
 * deny (EPERM) by default, an allow-list, and the calls that need a capability
 * (mount, unshare, setns, clone with namespace flags… need CAP_SYS_ADMIN).
 * `--security-opt seccomp=FILE` profiles (the docker CLI sends the file's JSON)
 * go through the same translation.
 */
import { invalidArgument } from "../errors.ts";
import defaultProfileJson from "./seccomp-default.json" with { type: "json" };

// ---- Docker's profile format ----

export interface DockerSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface DockerSeccompFilter {
  caps?: string[] | null;
  arches?: string[] | null;
  minKernel?: string;
}

export interface DockerSeccompSyscall {
  name?: string;
  names?: string[] | null;
  action: string;
  errnoRet?: number;
  args?: DockerSeccompArg[] | null;
  comment?: string;
  includes?: DockerSeccompFilter;
  excludes?: DockerSeccompFilter;
}

export interface DockerSeccompProfile {
  defaultAction?: string;
  defaultErrnoRet?: number;
  architectures?: string[] | null;
  archMap?: { architecture: string; subArchitectures: string[] | null }[] | null;
  flags?: string[] | null;
  syscalls?: DockerSeccompSyscall[] | null;
}

// ---- the OCI form (runc's config.json) ----

export interface SpecSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface SpecSeccompSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: SpecSeccompArg[];
}

export interface SpecSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  syscalls?: SpecSeccompSyscall[];
}

/** Where the profile is applied: moby's libseccomp arch names ("amd64", "arm64"…) and the kernel release. */
export interface SeccompTarget {
  /** The container's bounding capabilities (`CAP_…`). */
  capabilities: readonly string[];
  /** libseccomp's native arch name, from `nativeArch(process.arch)`. */
  arch: string;
  /** `uname -r`, e.g. "6.1.0-18-amd64". */
  kernel: string;
}

export const DEFAULT_SECCOMP_PROFILE = defaultProfileJson as DockerSeccompProfile;

/** moby's GOARCH → libseccomp names, keyed by Node's `process.arch`. */
const NODE_TO_NATIVE: Record<string, string> = {
  x64: "amd64",
  ia32: "x86",
  arm: "arm",
  arm64: "arm64",
  mips: "mips",
  mipsel: "mipsel",
  mips64el: "mipsel64",
  ppc: "ppc",
  ppc64: "ppc64le",
  s390: "s390",
  s390x: "s390x",
  riscv64: "riscv64",
};

/** libseccomp native names → the `SCMP_ARCH_` of `archMap`. */
const NATIVE_TO_SCMP: Record<string, string> = {
  x86: "SCMP_ARCH_X86",
  amd64: "SCMP_ARCH_X86_64",
  x32: "SCMP_ARCH_X32",
  arm: "SCMP_ARCH_ARM",
  arm64: "SCMP_ARCH_AARCH64",
  mips: "SCMP_ARCH_MIPS",
  mips64: "SCMP_ARCH_MIPS64",
  mips64n32: "SCMP_ARCH_MIPS64N32",
  mipsel: "SCMP_ARCH_MIPSEL",
  mipsel64: "SCMP_ARCH_MIPSEL64",
  mipsel64n32: "SCMP_ARCH_MIPSEL64N32",
  ppc: "SCMP_ARCH_PPC",
  ppc64: "SCMP_ARCH_PPC64",
  ppc64le: "SCMP_ARCH_PPC64LE",
  s390: "SCMP_ARCH_S390",
  s390x: "SCMP_ARCH_S390X",
  riscv64: "SCMP_ARCH_RISCV64",
};

const ACTIONS = new Set([
  "SCMP_ACT_KILL",
  "SCMP_ACT_KILL_PROCESS",
  "SCMP_ACT_KILL_THREAD",
  "SCMP_ACT_TRAP",
  "SCMP_ACT_ERRNO",
  "SCMP_ACT_TRACE",
  "SCMP_ACT_ALLOW",
  "SCMP_ACT_LOG",
]);
const OPERATORS = new Set(["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"]);
const FLAGS = new Set(["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]);

export function nativeArch(nodeArch: string): string {
  const arch = NODE_TO_NATIVE[nodeArch];
  if (!arch) throw invalidArgument(`seccomp: architecture ${nodeArch} is not supported`);
  return arch;
}

/**
 * A `--security-opt seccomp=…` profile: the JSON text of a Docker-format profile.
 * @throws InvalidArgument naming what is wrong ("Decoding seccomp profile failed: …", as Docker).
 */
export function parseSeccompProfile(text: string): DockerSeccompProfile {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw invalidArgument(`Decoding seccomp profile failed: ${(e as Error).message}`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    throw invalidArgument("Decoding seccomp profile failed: the profile must be a JSON object");
  checkProfile(raw as DockerSeccompProfile);
  return raw as DockerSeccompProfile;
}

function checkProfile(p: DockerSeccompProfile): void {
  const bad = (what: string) => invalidArgument(`Decoding seccomp profile failed: ${what}`);
  const isStrings = (v: unknown) => v === undefined || v === null || (Array.isArray(v) && v.every((x) => typeof x === "string"));
  const isErrno = (v: unknown) => v === undefined || (Number.isInteger(v) && (v as number) >= 0 && (v as number) < 4096);
  if (p.defaultAction !== undefined && (typeof p.defaultAction !== "string" || !ACTIONS.has(p.defaultAction)))
    throw bad(`unknown defaultAction ${JSON.stringify(p.defaultAction)}`);
  if (!isErrno(p.defaultErrnoRet)) throw bad(`invalid defaultErrnoRet ${JSON.stringify(p.defaultErrnoRet)}`);
  if (!isStrings(p.architectures)) throw bad("architectures must be a list of names");
  if (p.architectures?.length && p.archMap?.length)
    throw bad("'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'");
  for (const a of p.architectures ?? []) if (!Object.values(NATIVE_TO_SCMP).includes(a)) throw bad(`unknown architecture ${JSON.stringify(a)}`);
  if (p.archMap !== undefined && p.archMap !== null && !Array.isArray(p.archMap)) throw bad("archMap must be a list");
  for (const m of p.archMap ?? []) {
    if (typeof m?.architecture !== "string" || !isStrings(m.subArchitectures)) throw bad("archMap entries need an architecture and a list of subArchitectures");
  }
  if (!isStrings(p.flags)) throw bad("flags must be a list of names");
  for (const f of p.flags ?? []) if (!FLAGS.has(f)) throw bad(`unknown flag ${JSON.stringify(f)}`);
  if (p.syscalls !== undefined && p.syscalls !== null && !Array.isArray(p.syscalls)) throw bad("syscalls must be a list");
  for (const [i, s] of (p.syscalls ?? []).entries()) {
    const at = `syscalls[${i}]`;
    if (typeof s !== "object" || s === null) throw bad(`${at} must be an object`);
    if (s.name !== undefined && s.name !== "" && s.names?.length)
      throw bad("'name' and 'names' were specified in the seccomp profile, use either 'name' or 'names'");
    if (s.name !== undefined && typeof s.name !== "string") throw bad(`${at}.name must be a string`);
    if (!isStrings(s.names)) throw bad(`${at}.names must be a list of names`);
    if (!s.name && !s.names?.length) throw bad(`${at} names no system call`);
    if (s.action === "SCMP_ACT_NOTIFY") throw bad(`${at}: SCMP_ACT_NOTIFY (a seccomp agent) is not supported by Berth`);
    if (typeof s.action !== "string" || !ACTIONS.has(s.action)) throw bad(`${at}: unknown action ${JSON.stringify(s.action)}`);
    if (!isErrno(s.errnoRet)) throw bad(`${at}: invalid errnoRet ${JSON.stringify(s.errnoRet)}`);
    if (s.args !== undefined && s.args !== null && !Array.isArray(s.args)) throw bad(`${at}.args must be a list`);
    for (const a of s.args ?? []) {
      if (!Number.isInteger(a?.index) || a.index < 0 || a.index > 5) throw bad(`${at}: argument index must be 0 to 5`);
      for (const v of [a.value, a.valueTwo ?? 0]) {
        // JSON numbers above 2^53 lose their low bits in JavaScript: refuse rather than filter on another value.
        if (!Number.isSafeInteger(v) || v < 0) throw bad(`${at}: argument value ${JSON.stringify(v)} must be an integer from 0 to 2^53-1`);
      }
      if (typeof a.op !== "string" || !OPERATORS.has(a.op)) throw bad(`${at}: unknown operator ${JSON.stringify(a.op)}`);
    }
    for (const f of [s.includes, s.excludes]) {
      if (f === undefined || f === null) continue;
      if (!isStrings(f.caps) || !isStrings(f.arches)) throw bad(`${at}: includes and excludes take lists of caps and arches`);
      if (f.minKernel !== undefined && f.minKernel !== "" && !parseKernel(f.minKernel)) throw bad(`${at}: invalid minKernel ${JSON.stringify(f.minKernel)}`);
    }
  }
}

/**
 * The OCI `linux.seccomp` of a Docker-format profile for one container (moby `setupSeccomp`).
 * Undefined when the profile has neither a default action nor system calls (Docker: seccomp off).
 */
export function seccompForContainer(profile: DockerSeccompProfile, target: SeccompTarget): SpecSeccomp | undefined {
  if (!profile.defaultAction && !profile.syscalls?.length) return undefined;
  const scmpArch = NATIVE_TO_SCMP[target.arch];
  const architectures: string[] = [...(profile.architectures ?? [])];
  for (const m of profile.archMap ?? []) {
    if (scmpArch !== undefined && m.architecture === scmpArch) {
      architectures.push(m.architecture, ...(m.subArchitectures ?? []));
      break;
    }
  }
  const caps = new Set(target.capabilities);
  const kernelAtLeast = (v: string) => compareKernel(target.kernel, v) >= 0;

  const syscalls: SpecSeccompSyscall[] = [];
  for (const call of profile.syscalls ?? []) {
    const ex = call.excludes ?? {};
    const inc = call.includes ?? {};
    if (ex.arches?.includes(target.arch)) continue;
    if (ex.caps?.some((c) => caps.has(c))) continue;
    if (ex.minKernel && kernelAtLeast(ex.minKernel)) continue;
    if (inc.arches?.length && !inc.arches.includes(target.arch)) continue;
    if (inc.caps?.length && !inc.caps.every((c) => caps.has(c))) continue;
    if (inc.minKernel && !kernelAtLeast(inc.minKernel)) continue;
    syscalls.push({
      names: call.name ? [call.name] : [...(call.names ?? [])],
      action: call.action,
      ...(call.errnoRet !== undefined ? { errnoRet: call.errnoRet } : {}),
      ...(call.args?.length
        ? { args: call.args.map((a) => ({ index: a.index, value: a.value, ...(a.valueTwo ? { valueTwo: a.valueTwo } : {}), op: a.op })) }
        : {}),
    });
  }
  return {
    defaultAction: profile.defaultAction || "SCMP_ACT_ALLOW",
    ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}),
    ...(architectures.length ? { architectures } : {}),
    ...(profile.flags?.length ? { flags: [...profile.flags] } : {}),
    syscalls,
  };
}

const defaultCache = new Map<string, SpecSeccomp>();

/**
 * Docker's default profile for a container's capabilities. The translation is kept per
 * capability set (containers mostly share one), so a start costs no profile walk.
 * Callers must not modify the result.
 */
export function defaultSeccomp(target: SeccompTarget): SpecSeccomp {
  const key = `${target.arch}\n${target.kernel}\n${[...target.capabilities].sort().join(",")}`;
  let s = defaultCache.get(key);
  if (!s) {
    s = seccompForContainer(DEFAULT_SECCOMP_PROFILE, target)!;
    if (defaultCache.size > 64) defaultCache.clear();
    defaultCache.set(key, s);
  }
  return s;
}

/** "6.1.0-18-amd64" → [6, 1, 0]; moby compares kernel, major and minor numbers only. */
function parseKernel(v: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(v);
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
}

function compareKernel(a: string, b: string): number {
  const x = parseKernel(a) ?? [0, 0, 0];
  const y = parseKernel(b) ?? [0, 0, 0];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}
