/**
 * The preflight checklist: what the node must have before anything is installed. One
 * script collects the facts over SSH (as the login user: nothing on the host changes);
 * evaluatePreflight() turns them into items with pass/fail and the reason.
 */
import type { InstallErrorKind } from "./errors.ts";
import { q } from "./shell.ts";

export type PreflightCheckId =
  "os" | "arch" | "kernel" | "privilege" | "init" | "overlayfs" | "cgroups" | "iptables" | "disk" | "nodejs" | "console" | "artifact";

export interface PreflightCheck {
  id: PreflightCheckId;
  label: string;
  ok: boolean;
  detail: string;
}

export type PackageManager = "apt" | "dnf";

/** What the script reports, keyed as it prints them. */
export type HostFacts = Record<string, string>;

export const MIN_KERNEL: readonly [number, number] = [4, 18];
export const MIN_NODE_MAJOR = 18;
export const DEFAULT_MIN_FREE_DISK_BYTES = 2 * 1024 ** 3;

const SUPPORTED_FAMILIES = ["debian", "ubuntu", "fedora", "rhel", "centos", "rocky", "almalinux", "ol", "amzn"];
const SUPPORTED_ARCHS = ["x86_64", "aarch64"];

/** The console URL a node checks: the health endpoint of the console it will dial. */
export function healthUrl(consoleUrl: string): string {
  const u = new URL(consoleUrl);
  if (u.protocol === "ws:") u.protocol = "http:";
  if (u.protocol === "wss:") u.protocol = "https:";
  u.pathname = u.pathname.replace(/\/+$/, "") + "/api/health";
  u.search = "";
  u.hash = "";
  return u.toString();
}

/**
 * The fact-gathering script. Prints `key=value` lines. Runs as the login user: every probe
 * works without root. `dataRoot` is where the agent keeps images (its filesystem's free space
 * counts); `url` is the console's health URL.
 */
export function factsScript(dataRoot: string, url: string): string {
  return `
export LC_ALL=C PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
kv() { printf '%s=%s\\n' "$1" "$(printf '%s' "$2" | tr '\\n' ' ')"; }
if [ -r /etc/os-release ]; then . /etc/os-release; fi
kv os_id "\${ID:-}"; kv os_like "\${ID_LIKE:-}"; kv os_version "\${VERSION_ID:-}"; kv os_name "\${PRETTY_NAME:-unknown}"
kv arch "$(uname -m)"; kv kernel "$(uname -r)"
if command -v apt-get >/dev/null 2>&1; then kv pm apt; elif command -v dnf >/dev/null 2>&1; then kv pm dnf; elif command -v yum >/dev/null 2>&1; then kv pm yum; else kv pm none; fi
if [ -d /run/systemd/system ]; then kv systemd yes; else kv systemd no; fi
kv pid1 "$(cat /proc/1/comm 2>/dev/null)"
if grep -qw overlay /proc/filesystems 2>/dev/null; then kv overlay loaded; elif modinfo overlay >/dev/null 2>&1 || [ -e "/lib/modules/$(uname -r)/kernel/fs/overlayfs" ]; then kv overlay module; else kv overlay no; fi
kv cgroupfs "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)"
if [ -d /sys/fs/cgroup/memory ] || [ -d /sys/fs/cgroup/cpu,cpuacct ] || [ -d /sys/fs/cgroup/cpu ]; then kv cgroup_v1 yes; else kv cgroup_v1 no; fi
if [ -f /sys/fs/cgroup/cgroup.controllers ] || [ -f /sys/fs/cgroup/unified/cgroup.controllers ]; then kv cgroup_v2 yes; else kv cgroup_v2 no; fi
kv iptables "$(iptables --version 2>/dev/null)"
nv=$(node --version 2>/dev/null || nodejs --version 2>/dev/null); kv node "$nv"
# apt-cache is slow: ask it only when Node.js must come from the packages.
case "$nv" in v1[89].*|v[2-9][0-9].*) ;; *) if command -v apt-cache >/dev/null 2>&1; then kv node_candidate "$(apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ {print $2}')"; fi;; esac
d=${q(dataRoot)}; while [ ! -e "$d" ]; do d=$(dirname "$d"); done
kv disk_path "$d"; kv disk_avail_kb "$(df -Pk "$d" 2>/dev/null | awk 'NR==2 {print $4}')"
url=${q(url)}
if command -v curl >/dev/null 2>&1; then
  kv console_tool curl
  kv console_http "$(curl -sS -k -o /dev/null -w '%{http_code}' --connect-timeout 8 --max-time 12 "$url" 2>/tmp/.berth-curl-$$; true)"
  kv console_error "$(cat /tmp/.berth-curl-$$ 2>/dev/null)"; rm -f /tmp/.berth-curl-$$
elif command -v wget >/dev/null 2>&1; then
  kv console_tool wget
  out=$(wget -S -q -O /dev/null --no-check-certificate -T 10 -t 1 "$url" 2>&1)
  kv console_http "$(printf '%s\\n' "$out" | awk '/^ *HTTP\\// {c=$2} END {print c}')"
  kv console_error "$(printf '%s\\n' "$out" | tail -n 1)"
elif command -v node >/dev/null 2>&1; then
  kv console_tool node
  out=$(node -e 'process.env.NODE_TLS_REJECT_UNAUTHORIZED="0"; fetch(process.argv[1], {signal: AbortSignal.timeout(10000)}).then(r => console.log("http=" + r.status), e => console.log("error=" + ((e.cause && e.cause.message) || e.message)))' "$url" 2>&1)
  kv console_http "$(printf '%s' "$out" | sed -n 's/^http=//p')"
  kv console_error "$(printf '%s' "$out" | sed -n 's/^error=//p')"
else
  kv console_tool none
fi
`;
}

export function parseFacts(stdout: string): HostFacts {
  const facts: HostFacts = {};
  for (const line of stdout.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) facts[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return facts;
}

function versionAtLeast(text: string, min: readonly number[]): boolean {
  const parts = (/(\d+)(?:\.(\d+))?/.exec(text) ?? []).slice(1).map((p) => Number(p ?? 0));
  for (let i = 0; i < min.length; i++) {
    const v = parts[i] ?? 0;
    if (v !== min[i]) return v > min[i]!;
  }
  return true;
}

function nodeMajor(text: string | undefined): number | undefined {
  const m = /^v?(\d+)\./.exec(text ?? "") ?? /^(?:\d+:)?(\d+)\./.exec(text ?? "");
  return m ? Number(m[1]) : undefined;
}

function formatBytes(n: number): string {
  const gib = n / 1024 ** 3;
  return gib >= 1 ? `${gib.toFixed(1)} GiB` : `${Math.round(n / 1024 ** 2)} MiB`;
}

export interface PreflightInput {
  facts: HostFacts;
  privilege: { ok: boolean; detail: string };
  /** "/" for a real install: then systemd must run the agent. */
  prefix: string;
  consoleUrl: string;
  minFreeDiskBytes: number;
}

export interface PreflightResult {
  checks: PreflightCheck[];
  ok: boolean;
  packageManager?: PackageManager;
  /** Node.js must come from the package manager. */
  needsNodePackage: boolean;
}

export function evaluatePreflight(input: PreflightInput): PreflightResult {
  const f = input.facts;
  const checks: PreflightCheck[] = [];
  const add = (id: PreflightCheckId, label: string, ok: boolean, detail: string) => checks.push({ id, label, ok, detail });

  const family = [f.os_id ?? "", ...(f.os_like ?? "").split(/\s+/)].find((x) => SUPPORTED_FAMILIES.includes(x));
  const pm: PackageManager | undefined = f.pm === "apt" || f.pm === "dnf" ? f.pm : undefined;
  const osName = f.os_name || f.os_id || "unknown OS";
  if (!family) add("os", "Operating system", false, `${osName} is not supported (Debian, Ubuntu, Fedora and RHEL-like systems are)`);
  else if (!pm)
    add(
      "os",
      "Operating system",
      false,
      `${osName}: no supported package manager (apt-get or dnf) found${f.pm === "yum" ? "; yum-only systems are too old" : ""}`,
    );
  else add("os", "Operating system", true, `${osName} (${pm})`);

  const arch = f.arch ?? "";
  add(
    "arch",
    "Architecture",
    SUPPORTED_ARCHS.includes(arch),
    SUPPORTED_ARCHS.includes(arch)
      ? arch + (arch === "aarch64" ? " (docker attach and run -it need the x86_64-only SOCK_SEQPACKET addon)" : "")
      : `${arch || "unknown"} is not supported (x86_64 or aarch64)`,
  );

  const kernelOk = versionAtLeast(f.kernel ?? "", MIN_KERNEL);
  add("kernel", "Kernel version", kernelOk, kernelOk ? (f.kernel ?? "") : `${f.kernel || "unknown"} is older than ${MIN_KERNEL.join(".")}`);

  add("privilege", "Root or sudo", input.privilege.ok, input.privilege.detail);

  if (input.prefix === "/") {
    const ok = f.systemd === "yes";
    add(
      "init",
      "systemd",
      ok,
      ok ? "systemd is running" : `systemd is not running (PID 1 is ${f.pid1 || "unknown"}): the agent is installed as a systemd service`,
    );
  } else {
    add(
      "init",
      "systemd",
      true,
      f.systemd === "yes"
        ? `systemd is running (install prefix ${input.prefix}: the unit is written but not enabled)`
        : `not needed: install prefix ${input.prefix} (the unit is written but not enabled)`,
    );
  }

  add(
    "overlayfs",
    "overlayfs",
    f.overlay !== "no",
    f.overlay === "loaded"
      ? "overlay filesystem available"
      : f.overlay === "module"
        ? "overlay module present (loaded on first use)"
        : "the kernel has no overlay filesystem",
  );

  const v2 = f.cgroupfs === "cgroup2fs" || f.cgroup_v2 === "yes";
  const v1 = f.cgroup_v1 === "yes";
  add(
    "cgroups",
    "cgroups",
    v1 || v2,
    f.cgroupfs === "cgroup2fs"
      ? "cgroup v2 (unified)"
      : v1
        ? `cgroup v1${v2 ? " with a cgroup2 hierarchy" : ""}`
        : v2
          ? "cgroup v2"
          : "no cgroup hierarchy mounted at /sys/fs/cgroup",
  );

  if (f.iptables) add("iptables", "iptables", true, f.iptables);
  else
    add(
      "iptables",
      "iptables",
      !!pm,
      pm ? `not installed yet: the packages step installs it (${pm})` : "iptables is missing and there is no package manager to install it",
    );

  const availKb = Number(f.disk_avail_kb);
  if (!Number.isFinite(availKb) || f.disk_avail_kb === "")
    add("disk", "Free disk", false, `cannot read the free space of ${f.disk_path || "the data root's filesystem"}`);
  else {
    const bytes = availKb * 1024;
    const ok = bytes >= input.minFreeDiskBytes;
    add(
      "disk",
      "Free disk",
      ok,
      `${formatBytes(bytes)} free on ${f.disk_path}${ok ? "" : `; at least ${formatBytes(input.minFreeDiskBytes)} needed for images and containers`}`,
    );
  }

  let needsNodePackage = false;
  const nodeNow = nodeMajor(f.node);
  if (nodeNow !== undefined && nodeNow >= MIN_NODE_MAJOR) add("nodejs", "Node.js", true, `Node.js ${f.node}`);
  else {
    const have = f.node ? `Node.js ${f.node} is too old` : "Node.js is not installed";
    if (pm === "apt") {
      const cand = nodeMajor(f.node_candidate);
      if (cand !== undefined && cand >= MIN_NODE_MAJOR) {
        needsNodePackage = true;
        add("nodejs", "Node.js", true, `${have}: the packages step installs nodejs ${f.node_candidate}`);
      } else {
        add(
          "nodejs",
          "Node.js",
          false,
          `${have} and the OS packages offer ${f.node_candidate && f.node_candidate !== "(none)" ? `nodejs ${f.node_candidate}` : "no nodejs"}; install Node.js ${MIN_NODE_MAJOR} or later and try again`,
        );
      }
    } else if (pm === "dnf") {
      needsNodePackage = true;
      add("nodejs", "Node.js", true, `${have}: the packages step installs nodejs (dnf)`);
    } else add("nodejs", "Node.js", false, `${have} and there is no package manager to install it`);
  }

  const http = f.console_http ?? "";
  const url = healthUrl(input.consoleUrl);
  if (/^[1-5]\d\d$/.test(http)) add("console", "Console reachable", true, `${url} answered HTTP ${http} (${f.console_tool})`);
  else if (f.console_tool === "none") add("console", "Console reachable", false, `cannot test ${url}: none of curl, wget or node is installed`);
  else add("console", "Console reachable", false, `${url} is not reachable from the node: ${f.console_error || "no answer"}`);

  return { checks, ok: checks.every((c) => c.ok), ...(pm ? { packageManager: pm } : {}), needsNodePackage };
}

/** The error kind of a failed checklist: the first failing item decides. */
export function preflightErrorKind(checks: PreflightCheck[]): InstallErrorKind {
  const failed = checks.filter((c) => !c.ok).map((c) => c.id);
  if (failed.includes("os") || failed.includes("arch") || failed.includes("init")) return "unsupported-os";
  if (failed.includes("privilege")) return "no-sudo";
  return "preflight";
}
