/**
 * The install script for hosts the console cannot reach over SSH: the console serves it
 * at /install.sh?token=… with a fresh join token in it, and the admin runs on the node
 *
 *   curl -fsSL 'https://console.example/install.sh?token=…' | sudo bash
 *
 * It does what installAgent() does over SSH — checks, packages, artifact (downloaded from
 * the console and checked against its SHA-256), config, `current` symlink, unit, systemd —
 * and rolls back what it changed if a step fails. Re-running it upgrades in place.
 * BERTH_PREFIX=/some/dir installs under a prefix and leaves systemd alone (tests, staging).
 */
import type { AgentConfigExtras } from "./install.ts";
import { AGENT_PACKAGES } from "./packages.ts";
import { q } from "./shell.ts";
import { MIN_KERNEL, MIN_NODE_MAJOR } from "./preflight.ts";
import { PREFIX_PLACEHOLDER } from "./unit.ts";

export interface ManualInstallOptions {
  /** The URL the agent dials. */
  consoleUrl: string;
  joinToken: string;
  /** Where the node downloads the artifact, e.g. `${consoleUrl}/downloads/berth-agent.tar.gz`. */
  artifactUrl: string;
  /** SHA-256 (hex) of that artifact (readArtifact().sha256): the script refuses anything else. */
  artifactSha256?: string;
  /** SHA-256 fingerprint of the console's TLS certificate, for the agent to pin. */
  consoleFingerprint?: string;
  /** More agent config keys (bridge, bridge-subnet, registry-mirrors, …), as for installAgent. */
  agentConfig?: AgentConfigExtras;
  /** Let curl/wget accept the console's self-signed certificate for the download (the SHA-256 check still applies). */
  insecureDownload?: boolean;
}

/** The one line to show in "Add node → manual install". */
export function manualInstallCommand(scriptUrl: string): string {
  return `curl -fsSL ${q(scriptUrl)} | sudo bash`;
}

/** The bash script with the join token embedded. Treat it as a secret: it enrolls a node. */
export function manualInstallScript(opts: ManualInstallOptions): string {
  for (const [k, v] of Object.entries({ consoleUrl: opts.consoleUrl, artifactUrl: opts.artifactUrl })) {
    const proto = new URL(v).protocol;
    if (!["http:", "https:", "ws:", "wss:"].includes(proto)) throw new TypeError(`${k} must be an http(s) URL, got ${v}`);
  }
  if (opts.artifactSha256 !== undefined && !/^[0-9a-f]{64}$/.test(opts.artifactSha256)) throw new TypeError("artifactSha256 must be 64 lower-case hex digits");
  const json = (v: string) => q(JSON.stringify(v));
  return `#!/bin/bash
# Installs (or upgrades) the Berth agent on this host as the systemd service berth-agent.
# Served by the Berth console with a one-time join token: do not share this script.
#   curl -fsSL '<console>/install.sh?token=…' | sudo bash
# BERTH_PREFIX=/dir installs every file under /dir and leaves systemd alone.
# One brace group: bash reads the whole script before running any of it, so nothing run
# below can swallow the rest of a script piped in from curl.
{
set -euo pipefail

CONSOLE_URL=${q(opts.consoleUrl)}
CONSOLE_URL_JSON=${json(opts.consoleUrl)}
JOIN_TOKEN_JSON=${json(opts.joinToken)}
CONSOLE_FINGERPRINT_JSON=${opts.consoleFingerprint ? json(opts.consoleFingerprint) : "''"}
AGENT_CONFIG_JSON=${q(JSON.stringify(opts.agentConfig ?? {}))}
ARTIFACT_URL=${q(opts.artifactUrl)}
ARTIFACT_SHA256=${q(opts.artifactSha256 ?? "")}
INSECURE_DOWNLOAD=${opts.insecureDownload ? "1" : "0"}
MIN_NODE_MAJOR=${MIN_NODE_MAJOR}

say() { printf 'berth-install: %s\\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

PREFIX="\${BERTH_PREFIX:-/}"
if [ "$PREFIX" = / ]; then ROOT=""; else
  [[ "$PREFIX" =~ ^(/[A-Za-z0-9._-]+)+/?$ ]] || die "BERTH_PREFIX must be an absolute path of letters, digits, . _ -"
  ROOT="\${PREFIX%/}"
fi
LIB="$ROOT/usr/lib/berth-agent"
ETC="$ROOT/etc/berth"
CONFIG="$ETC/agent.json"
UNIT_DIR="$ROOT/etc/systemd/system"
UNIT="$UNIT_DIR/berth-agent.service"
DATA_ROOT="$ROOT/var/lib/berth"
EXEC_ROOT="$ROOT/run/berth"
export LC_ALL=C PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

# --- rollback: every change registers its undo; a failure runs them newest first
UNDO=()
CLEANUP=()
DONE=0
undo() { UNDO+=("$1"); }
finish() {
  local code=$?
  if [ "$DONE" != 1 ]; then
    [ "$code" != 0 ] || code=1
    if [ \${#UNDO[@]} -gt 0 ]; then
      say "failed: rolling back"
      for ((i=\${#UNDO[@]}-1; i>=0; i--)); do eval "\${UNDO[$i]}" || say "rollback step failed: \${UNDO[$i]}"; done
    fi
  fi
  rm -rf "\${TMP:-/nonexistent.berth}"
  exit "$code"
}
trap finish EXIT
# Directories made by this run, outermost first, so the undo removes exactly those.
mkd() { local p=$1 m=$2 d; local -a new=(); while [ ! -e "$p" ]; do new=("$p" "\${new[@]}"); p=$(dirname "$p"); done
  for d in "\${new[@]}"; do if [ "$d" = "$1" ]; then mkdir -m "$m" "$d"; else mkdir -m 0755 "$d"; fi; done
  if [ \${#new[@]} -gt 0 ]; then undo "rm -rf $(printf '%q' "\${new[0]}")"; fi; }

# --- preflight
[ "$(id -u)" = 0 ] || die "run this as root (… | sudo bash)"
. /etc/os-release 2>/dev/null || true
family=""
for id in \${ID:-} \${ID_LIKE:-}; do case "$id" in debian|ubuntu|fedora|rhel|centos|rocky|almalinux|ol|amzn) family=$id; break;; esac; done
[ -n "$family" ] || die "\${PRETTY_NAME:-this OS} is not supported (Debian, Ubuntu, Fedora and RHEL-like systems are)"
case "$(uname -m)" in x86_64|aarch64) ;; *) die "architecture $(uname -m) is not supported (x86_64 or aarch64)";; esac
kernel=$(uname -r); kmaj=\${kernel%%.*}; krest=\${kernel#*.}; kmin=\${krest%%.*}
{ [ "$kmaj" -gt ${MIN_KERNEL[0]} ] || { [ "$kmaj" -eq ${MIN_KERNEL[0]} ] && [ "\${kmin%%[!0-9]*}" -ge ${MIN_KERNEL[1]} ]; }; } || die "kernel $kernel is older than ${MIN_KERNEL.join(".")}"
grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || die "the kernel has no overlay filesystem"
[ -d /sys/fs/cgroup ] && [ -n "$(ls /sys/fs/cgroup 2>/dev/null)" ] || die "no cgroup hierarchy at /sys/fs/cgroup"
SYSTEMD=0
if [ "$PREFIX" = / ]; then
  [ -d /run/systemd/system ] || die "systemd is not running (PID 1 is $(cat /proc/1/comm)): the agent is installed as a systemd service"
  SYSTEMD=1
fi
if command -v apt-get >/dev/null; then PM=apt; PKGS="${AGENT_PACKAGES.apt.join(" ")}"
elif command -v dnf >/dev/null; then PM=dnf; PKGS="${AGENT_PACKAGES.dnf.join(" ")}"
else die "no supported package manager (apt-get or dnf)"; fi
node_major() { local v; v=$(node --version 2>/dev/null || nodejs --version 2>/dev/null || true); v=\${v#v}; echo "\${v%%.*}"; }
nm=$(node_major)
if [ -z "$nm" ] || [ "$nm" -lt "$MIN_NODE_MAJOR" ]; then PKGS="$PKGS nodejs"; fi
say "preflight passed: \${PRETTY_NAME:-$ID} $(uname -m), kernel $kernel"

# --- packages
missing=""
for p in $PKGS; do
  if [ $PM = apt ]; then [ "$(dpkg-query -W -f='\${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing="$missing $p"
  else rpm -q --whatprovides "$p" >/dev/null 2>&1 || missing="$missing $p"; fi
done
if [ -n "$missing" ]; then
  say "installing$missing"
  if [ $PM = apt ]; then
    undo "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q -o DPkg::Lock::Timeout=120 </dev/null || say "apt-get update failed; trying the package lists this host has"
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 $missing </dev/null || die "package install failed:$missing"
  else
    undo "dnf remove -y$missing"
    dnf install -y $missing </dev/null || die "package install failed:$missing"
  fi
  nm=$(node_major)
  [ -n "$nm" ] && [ "$nm" -ge "$MIN_NODE_MAJOR" ] || die "Node.js $MIN_NODE_MAJOR or later is needed; this host's packages give \${nm:-none}"
else
  say "packages already installed: $PKGS"
fi

# --- download
TMP=$(mktemp -d /tmp/berth-install.XXXXXXXX)
say "downloading $ARTIFACT_URL"
if command -v curl >/dev/null; then
  curl -fsSL $([ $INSECURE_DOWNLOAD = 1 ] && echo -k) -o "$TMP/berth-agent.tar.gz" "$ARTIFACT_URL" || die "cannot download $ARTIFACT_URL"
elif command -v wget >/dev/null; then
  wget -q $([ $INSECURE_DOWNLOAD = 1 ] && echo --no-check-certificate) -O "$TMP/berth-agent.tar.gz" "$ARTIFACT_URL" || die "cannot download $ARTIFACT_URL"
else die "neither curl nor wget is installed"; fi
sha=$(sha256sum "$TMP/berth-agent.tar.gz" | cut -d' ' -f1)
if [ -n "$ARTIFACT_SHA256" ] && [ "$sha" != "$ARTIFACT_SHA256" ]; then die "the download's SHA-256 is $sha, expected $ARTIFACT_SHA256"; fi
mkdir "$TMP/x"
tar -xzf "$TMP/berth-agent.tar.gz" -C "$TMP/x" --no-same-owner
VERSION=$(cat "$TMP/x/berth-agent/VERSION")
[[ "$VERSION" =~ ^[0-9A-Za-z][0-9A-Za-z.+_-]*$ ]] || die "the artifact has an invalid VERSION"

# --- unpack
mkd "$LIB" 0755
if [ "$(cat "$LIB/$VERSION/.artifact-sha256" 2>/dev/null)" = "$sha" ]; then
  say "$LIB/$VERSION already holds this build"
else
  stage="$LIB/.stage.$$"
  mv "$TMP/x/berth-agent" "$stage"
  echo "$sha" > "$stage/.artifact-sha256"
  if [ -e "$LIB/$VERSION" ]; then
    mv "$LIB/$VERSION" "$LIB/.replaced.$VERSION.$$"
    undo "rm -rf '$LIB/$VERSION'; mv '$LIB/.replaced.$VERSION.$$' '$LIB/$VERSION'"
    CLEANUP+=("$LIB/.replaced.$VERSION.$$")
  else
    undo "rm -rf '$LIB/$VERSION'"
  fi
  mv "$stage" "$LIB/$VERSION"
  say "unpacked berth-agent $VERSION into $LIB/$VERSION"
fi

# --- config
UPGRADE=0
[ -f "$CONFIG" ] && UPGRADE=1
mkd "$ETC" 0700
mkd "$DATA_ROOT" 0711
node=$(command -v node || command -v nodejs)
# The config is JSON: written with Node (there by now), never pieced together in shell.
# Upgrade: keep the node's settings and credential, point it at this console, re-enroll
# only without a credential.
write_config() {
  "$node" -e '
    const fs = require("fs");
    const [file, url, token, fp, etc, dataRoot, execRoot, extra, upgrade] = process.argv.slice(1);
    const cred = etc + "/node-credential";
    let c = upgrade === "1" ? JSON.parse(fs.readFileSync(file, "utf8")) : {
      "join-token": JSON.parse(token), "credential-file": cred, "data-root": dataRoot, "exec-root": execRoot, "docker-socket": execRoot + "/docker.sock",
    };
    c["console-url"] = JSON.parse(url);
    if (fp) c["console-fingerprint"] = JSON.parse(fp);
    Object.assign(c, JSON.parse(extra));
    let has = false;
    try { has = fs.statSync(c["credential-file"] || cred).size > 0; } catch {}
    if (!has) c["join-token"] = JSON.parse(token);
    fs.writeFileSync(file + ".new", JSON.stringify(c, null, 2) + "\\n", { mode: 0o600 });
  ' "$CONFIG" "$CONSOLE_URL_JSON" "$JOIN_TOKEN_JSON" "$CONSOLE_FINGERPRINT_JSON" "$ETC" "$DATA_ROOT" "$EXEC_ROOT" "$AGENT_CONFIG_JSON" "$UPGRADE"
  chmod 0600 "$CONFIG.new"
  mv -f "$CONFIG.new" "$CONFIG"
}
if [ $UPGRADE = 1 ]; then
  cp -p "$CONFIG" "$CONFIG.berth-backup.$$"
  undo "mv -f '$CONFIG.berth-backup.$$' '$CONFIG'"
  CLEANUP+=("$CONFIG.berth-backup.$$")
  write_config
  say "kept $CONFIG (upgrade: credential and data stay)"
else
  undo "rm -f '$CONFIG'"
  write_config
  say "wrote $CONFIG"
fi

# --- switch
previous=$(readlink "$LIB/current" 2>/dev/null || true)
if [ "$previous" != "$VERSION" ]; then
  ln -sfn "$VERSION" "$LIB/.current.$$"
  mv -Tf "$LIB/.current.$$" "$LIB/current"
  if [ -n "$previous" ]; then undo "ln -sfn '$previous' '$LIB/.current.$$' && mv -Tf '$LIB/.current.$$' '$LIB/current'$([ $SYSTEMD = 1 ] && echo ' && systemctl restart berth-agent.service')"
  else undo "rm -f '$LIB/current'"; fi
fi

# --- unit
mkd "$UNIT_DIR" 0755
if [ -e "$UNIT" ]; then cp -p "$UNIT" "$UNIT.berth-backup.$$"; undo "mv -f '$UNIT.berth-backup.$$' '$UNIT'"; CLEANUP+=("$UNIT.berth-backup.$$"); else undo "rm -f '$UNIT'"; fi
sed "s|${PREFIX_PLACEHOLDER}|$ROOT|g" "$LIB/$VERSION/berth-agent.service" > "$UNIT.new.$$"
chmod 0644 "$UNIT.new.$$"
mv -f "$UNIT.new.$$" "$UNIT"
say "wrote $UNIT"

# --- service
if [ $SYSTEMD = 1 ]; then
  [ $UPGRADE = 1 ] || undo "systemctl disable --now berth-agent.service"
  systemctl daemon-reload
  systemctl enable berth-agent.service
  systemctl restart berth-agent.service
  say "berth-agent.service $([ $UPGRADE = 1 ] && echo restarted || echo enabled and started)"
else
  say "install prefix $PREFIX: systemd left alone; start the agent with the ExecStart line of $UNIT"
fi

# --- done: drop the copies kept for rollback, and versions older than the previous one
DONE=1
for d in "$LIB"/*/; do n=$(basename "$d"); [ -L "$LIB/$n" ] && continue; [ "$n" = "$VERSION" ] || [ "$n" = "$previous" ] || rm -rf "$LIB/$n"; done
[ \${#CLEANUP[@]} -eq 0 ] || rm -rf "\${CLEANUP[@]}"
say "berth-agent $VERSION installed; the node shows up in the console at $CONSOLE_URL once it $([ $UPGRADE = 1 ] && echo reconnects || echo enrolls)"
[ $SYSTEMD = 0 ] || say "follow its log with: journalctl -u berth-agent -f"
exit 0
}
`;
}
