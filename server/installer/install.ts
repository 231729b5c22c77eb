/**
 * Install or upgrade the agent on a node over SSH, as a systemd service:
 *
 *   connect   host key checked against the pin before authenticating
 *   preflight the checklist (preflight.ts); nothing changes on the host before it passes
 *   packages  packages.ts (runc, conmon, iptables, tini, aardvark-dns…, + nodejs) via apt or dnf
 *   upload    the artifact over SFTP to a private temp directory, checksum verified
 *   unpack    into <prefix>/usr/lib/berth-agent/<version>
 *   config    <prefix>/etc/berth/agent.json (0600): console URL, join token, paths
 *   switch    <prefix>/usr/lib/berth-agent/current → <version> (one rename: atomic)
 *   unit      <prefix>/etc/systemd/system/berth-agent.service from the artifact's template
 *   service   systemctl daemon-reload, enable, (re)start — only for prefix "/"
 *   enroll    the caller's waitForNode(): the node enrolled, or is back online after an upgrade
 *   cleanup   older versions (all but the current and the previous one), backups, temp files
 *
 * Re-running on a node that has an agent is an upgrade: a new version directory, the
 * symlink switched, the service restarted; config, credential and data stay, and the
 * unit's KillMode=process keeps the containers running through the restart.
 *
 * Any failure rolls back what this run changed (each step registers its undo) and
 * throws an InstallError that names the step and the kind of failure.
 */
import { randomBytes } from "node:crypto";
import { pino, type Logger } from "pino";
import { bestEffort } from "../../shared/best-effort.ts";
import type { AgentConfigFile } from "../../agent/config.ts";
import { ArtifactError, defaultArtifactPath, readArtifact, type AgentArtifact } from "./artifact.ts";
import { InstallError } from "./errors.ts";
import { AGENT_PACKAGES } from "./packages.ts";
import type { HostKey } from "./host-key.ts";
import {
  DEFAULT_MIN_FREE_DISK_BYTES,
  evaluatePreflight,
  factsScript,
  healthUrl,
  MIN_NODE_MAJOR,
  parseFacts,
  preflightErrorKind,
  type PackageManager,
  type PreflightCheck,
  type PreflightResult,
} from "./preflight.ts";
import { createdDirs, MKD, nodePaths, normalizePrefix, outermost, q, type NodePaths } from "./shell.ts";
import { lastLines, SshSession, type SshTarget } from "./ssh-session.ts";
import { skipped, StepRunner, type EventSink } from "./steps.ts";
import { PREFIX_PLACEHOLDER } from "./unit.ts";

/** Agent config keys the caller may set besides those the installer owns (console link and paths). */
export type AgentConfigExtras = Omit<AgentConfigFile, "console-url" | "join-token" | "credential-file" | "console-fingerprint">;

export interface InstallOptions {
  target: SshTarget;
  /** The console URL the agent dials (http(s) or ws(s)); the preflight checks `${consoleUrl}/api/health` from the node. */
  consoleUrl: string;
  /** A fresh join token. Needed for a new install, and on an upgrade of a node that lost its credential. */
  joinToken?: string;
  /** SHA-256 fingerprint of the console's TLS certificate, for the agent to pin (https/wss only). */
  consoleFingerprint?: string;
  /** The artifact tarball (default: defaultArtifactPath()). */
  artifactPath?: string;
  /** "/" (default) for a real install. Anything else keeps every file under it and leaves systemd alone (tests). */
  prefix?: string;
  /** More agent config keys (bridge, bridge-subnet, registry-mirrors, …). */
  agentConfig?: AgentConfigExtras;
  /**
   * Resolves once the node is enrolled (new install) or online again (upgrade) running
   * `version`, with its id. Called after the service was started; the signal fires when the
   * run gives up waiting. enrollment.ts nodeWaiter() builds one from the hub.
   */
  waitForNode: (ctx: { upgrade: boolean; version: string; signal: AbortSignal }) => Promise<{ nodeId: string }>;
  /** How long to wait for waitForNode (default 180 s). */
  enrollTimeoutMs?: number;
  /** Preflight threshold for free space on the data root's filesystem (default 2 GiB). */
  minFreeDiskBytes?: number;
  /** Packages to install besides the agent's own (the host's package names). */
  extraPackages?: string[];
  /** Where failures no step reports go (a temporary directory left on the node). */
  logger?: Pick<Logger, "debug" | "warn">;
}

export interface InstallResult {
  nodeId: string;
  version: string;
  /** The version that ran before, on an upgrade. */
  previousVersion?: string;
  upgraded: boolean;
  hostKey: HostKey;
  checks: PreflightCheck[];
  /** Steps that did not apply on this host, with the reason (e.g. no systemd under a test prefix). */
  skipped: Array<{ step: string; reason: string }>;
  /** Where the unit was written: a test without systemd starts the agent with its ExecStart (see unit.ts serviceCommand). */
  unitPath: string;
  configPath: string;
}

/** What is on the node already. */
export interface ExistingInstall {
  config?: Record<string, unknown>;
  configText?: string;
  credentialPresent: boolean;
  /** The version `current` points at. */
  currentVersion?: string;
  unitPresent: boolean;
}

const UNIT_NAME = "berth-agent.service";

function rand(): string {
  return randomBytes(4).toString("hex");
}

/** Connect step, shared with removal. */
export async function connectStep(run: StepRunner, target: SshTarget, signal?: AbortSignal): Promise<SshSession> {
  return run.step("connect", "Connect and verify the host key", async (ctx) => {
    const session = await SshSession.open(target, signal);
    ctx.detail(`${session.hostKey.algorithm} ${session.hostKey.fingerprint}; logged in as ${target.username}${session.uid === 0 ? " (root)" : ""}`);
    return session;
  });
}

/** Reads what an earlier install left on the node (as root). */
export async function inspectInstall(session: SshSession, paths: NodePaths): Promise<ExistingInstall> {
  const r = await session.root(
    `if [ -f ${q(paths.config)} ]; then echo config=yes; cat ${q(paths.config)} | base64 | tr -d '\\n'; echo; fi
echo current=$(readlink ${q(paths.current)} 2>/dev/null)
if [ -e ${q(paths.unit)} ]; then echo unit=yes; fi`,
  );
  if (r.code !== 0) throw new InstallError("preflight", "command", `cannot inspect ${session.where}: ${lastLines(r.stderr)}`);
  const lines = r.stdout.split("\n");
  const out: ExistingInstall = { credentialPresent: false, unitPresent: lines.includes("unit=yes") };
  const current = lines
    .find((l) => l.startsWith("current="))
    ?.slice("current=".length)
    .trim();
  if (current) out.currentVersion = current.split("/").filter(Boolean).pop();
  const ci = lines.indexOf("config=yes");
  if (ci >= 0) {
    out.configText = Buffer.from(lines[ci + 1] ?? "", "base64").toString("utf8");
    try {
      const parsed: unknown = JSON.parse(out.configText);
      out.config = parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
    } catch {
      out.config = {};
    }
    const cred = typeof out.config["credential-file"] === "string" ? (out.config["credential-file"] as string) : paths.credential;
    const c = await session.root(`[ -s ${q(cred)} ] && echo yes || echo no`);
    out.credentialPresent = c.stdout.trim() === "yes";
  }
  return out;
}

export interface PreflightOptions {
  /** "/" (default) or a test prefix. */
  prefix?: string;
  /** The console URL the node must reach. */
  consoleUrl: string;
  /** Default 2 GiB. */
  minFreeDiskBytes?: number;
  /** Where the agent will keep its data (default <prefix>/var/lib/berth): its filesystem's free space counts. */
  dataRoot?: string;
  /** The artifact tarball the install would upload (default: defaultArtifactPath()). */
  artifactPath?: string;
}

/** The console's side of the checklist: the agent artifact it would upload must exist and be whole. */
async function artifactCheck(path: string): Promise<PreflightCheck> {
  try {
    const a = await readArtifact(path);
    return { id: "artifact", label: "Agent artifact", ok: true, detail: `berth-agent ${a.version} (${Math.round(a.bytes / 1024 ** 2)} MiB) on the console` };
  } catch (e) {
    return {
      id: "artifact",
      label: "Agent artifact",
      ok: false,
      detail: e instanceof ArtifactError ? e.message : `cannot read the agent artifact: ${(e as Error).message}`,
    };
  }
}

/** The sudo check and the facts script, evaluated. Changes nothing on the host. */
export async function gatherPreflight(session: SshSession, opts: PreflightOptions, signal?: AbortSignal): Promise<PreflightResult> {
  const prefix = normalizePrefix(opts.prefix);
  const privilege = await session.checkPrivilege();
  const r = await session.exec(factsScript(opts.dataRoot ?? nodePaths(prefix).dataRoot, healthUrl(opts.consoleUrl)), signal ? { signal } : {});
  if (r.code !== 0 && !r.stdout) throw new InstallError("preflight", "command", `the preflight script failed on ${session.where}: ${lastLines(r.stderr)}`);
  const pre = evaluatePreflight({
    facts: parseFacts(r.stdout),
    privilege,
    prefix,
    consoleUrl: opts.consoleUrl,
    minFreeDiskBytes: opts.minFreeDiskBytes ?? DEFAULT_MIN_FREE_DISK_BYTES,
  });
  const artifact = await artifactCheck(opts.artifactPath ?? defaultArtifactPath());
  return { ...pre, checks: [...pre.checks, artifact], ok: pre.ok && artifact.ok };
}

export interface HostCheck {
  hostKey: HostKey;
  checks: PreflightCheck[];
  ok: boolean;
  /** The agent version installed under the prefix, when one is (installing again upgrades it). */
  installedVersion?: string;
}

/**
 * The preflight checklist on its own, for the console to show before installing: connects
 * (host key checked against the pin as for an install), checks, changes nothing.
 * @throws InstallError only when the host cannot be reached or logged into; failed checks are in the result.
 */
export async function checkHost(opts: PreflightOptions & { target: SshTarget }, signal?: AbortSignal): Promise<HostCheck> {
  let session: SshSession | undefined;
  try {
    session = await SshSession.open(opts.target, signal);
    const pre = await gatherPreflight(session, opts, signal);
    const out: HostCheck = { hostKey: session.hostKey, checks: pre.checks, ok: pre.ok };
    if (session.privilege) {
      const existing = await inspectInstall(session, nodePaths(normalizePrefix(opts.prefix)));
      if (existing.config && existing.currentVersion) out.installedVersion = existing.currentVersion;
    }
    return out;
  } catch (e) {
    if (e instanceof InstallError) throw e;
    throw new InstallError("preflight", "command", (e as Error).message, { cause: e });
  } finally {
    session?.close();
  }
}

function missingScript(pm: PackageManager, packages: string[]): string {
  const list = packages.map(q).join(" ");
  return pm === "apt"
    ? `for p in ${list}; do s=$(dpkg-query -W -f='\${db:Status-Status}' "$p" 2>/dev/null); [ "$s" = installed ] || echo "missing:$p"; done`
    : `for p in ${list}; do rpm -q --whatprovides "$p" >/dev/null 2>&1 || echo "missing:$p"; done`;
}

async function packagesStep(run: StepRunner, session: SshSession, pre: PreflightResult, extra: string[]): Promise<void> {
  await run.step("packages", "Install runtime packages", async (ctx) => {
    const pm = pre.packageManager;
    if (!pm) throw new InstallError("packages", "unsupported-os", "no supported package manager (apt-get or dnf)");
    for (const p of extra)
      if (!/^[A-Za-z0-9][A-Za-z0-9.+_:-]*$/.test(p)) throw new InstallError("packages", "invalid", `not a package name: ${JSON.stringify(p)}`);
    const wanted = [...AGENT_PACKAGES[pm], ...(pre.needsNodePackage ? ["nodejs"] : []), ...extra];
    const probe = await session.exec(missingScript(pm, wanted));
    const missing = probe.stdout
      .split("\n")
      .filter((l) => l.startsWith("missing:"))
      .map((l) => l.slice("missing:".length));
    if (missing.length === 0) return skipped(`already installed: ${wanted.join(", ")}`);
    const list = missing.map(q).join(" ");
    // Registered first: a half-finished install is undone as well as a finished one.
    ctx.onUndo(`remove the packages this run installed (${missing.join(", ")})`, async () => {
      const installedNow = `for p in ${list}; do ${pm === "apt" ? `[ "$(dpkg-query -W -f='\${db:Status-Status}' "$p" 2>/dev/null)" = installed ]` : `rpm -q "$p" >/dev/null 2>&1`} && echo "$p"; done`;
      const remove = pm === "apt" ? "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q -o DPkg::Lock::Timeout=120" : "dnf remove -y";
      const r = await session.root(`pkgs=$(${installedNow}); [ -z "$pkgs" ] || ${remove} $pkgs`);
      if (r.code !== 0) throw new Error(lastLines(r.stderr));
    });
    const script =
      pm === "apt"
        ? `export DEBIAN_FRONTEND=noninteractive
apt-get update -q -o DPkg::Lock::Timeout=120 || echo "berth: apt-get update failed; trying the package lists the host has" >&2
apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=120 ${list}`
        : `dnf install -y ${list}`;
    const opts = { onOutput: ctx.output, ...(ctx.signal ? { signal: ctx.signal } : {}) };
    await session.rootOk("packages", `installing ${missing.join(", ")} with ${pm === "apt" ? "apt-get" : "dnf"}`, script, opts, "package");
    if (missing.includes("nodejs")) {
      const v = await session.exec("node --version 2>/dev/null || nodejs --version");
      const major = Number(/^v?(\d+)\./.exec(v.stdout.trim())?.[1]);
      if (!(major >= MIN_NODE_MAJOR))
        throw new InstallError(
          "packages",
          "package",
          `the nodejs package installed Node.js ${v.stdout.trim() || "(none)"}; the agent needs ${MIN_NODE_MAJOR} or later`,
        );
    }
    ctx.detail(`installed ${missing.join(", ")}`);
  });
}

function configJson(config: Record<string, unknown>): string {
  return JSON.stringify(config, null, 2) + "\n";
}

/**
 * Installs the agent, or upgrades it where one is installed. See the file comment for the steps.
 * @param onEvent receives every step, output line, the checklist and rollback progress.
 * @throws InstallError naming the failed step and kind; what the run changed is rolled back first.
 */
export async function installAgent(opts: InstallOptions, onEvent: EventSink = () => {}, signal?: AbortSignal): Promise<InstallResult> {
  let prefix: string;
  try {
    prefix = normalizePrefix(opts.prefix);
    const proto = new URL(opts.consoleUrl).protocol;
    if (!["http:", "https:", "ws:", "wss:"].includes(proto)) throw new TypeError(`console URL must be http(s):// or ws(s)://, got ${opts.consoleUrl}`);
  } catch (e) {
    throw new InstallError("connect", "invalid", (e as Error).message, { cause: e });
  }
  let artifact: AgentArtifact;
  try {
    artifact = await readArtifact(opts.artifactPath ?? defaultArtifactPath());
  } catch (e) {
    throw new InstallError("upload", "invalid", e instanceof ArtifactError ? e.message : `cannot read the agent artifact: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const paths = nodePaths(prefix);
  const version = artifact.version;
  const run = new StepRunner(onEvent, signal);
  const sig = signal ? { signal } : {};
  let session: SshSession | undefined;
  let tmp: string | undefined;
  const log = opts.logger ?? pino({ enabled: false });
  /** What the cleanup step deletes once the run stands: the copies that made undo possible. */
  const cleanups: string[] = [];
  try {
    session = await connectStep(run, opts.target, signal);
    const s = session;
    const { pre, existing } = await run.step("preflight", "Preflight checks", async (ctx) => {
      const dataRoot = typeof opts.agentConfig?.["data-root"] === "string" ? opts.agentConfig["data-root"] : paths.dataRoot;
      const pre = await gatherPreflight(
        s,
        {
          prefix,
          consoleUrl: opts.consoleUrl,
          dataRoot,
          ...(opts.artifactPath !== undefined ? { artifactPath: opts.artifactPath } : {}),
          ...(opts.minFreeDiskBytes !== undefined ? { minFreeDiskBytes: opts.minFreeDiskBytes } : {}),
        },
        signal,
      );
      run.emit({ type: "checklist", checks: pre.checks });
      const failed = pre.checks.filter((c) => !c.ok);
      if (failed.length) {
        throw new InstallError(
          "preflight",
          preflightErrorKind(pre.checks),
          `preflight failed on ${s.where}: ${failed.map((c) => `${c.label}: ${c.detail}`).join("; ")}`,
        );
      }
      const existing = await inspectInstall(s, paths);
      ctx.detail(
        `${pre.checks.length} checks passed; ${existing.config ? `berth-agent ${existing.currentVersion ?? "(unknown version)"} is installed: upgrading it` : "no agent installed yet"}`,
      );
      return { pre, existing };
    });
    const upgrade = existing.config !== undefined;
    if (!upgrade && !opts.joinToken)
      throw new InstallError("config", "invalid", `a join token is needed to enroll ${s.where}: no agent is installed there yet`);
    const systemd = prefix === "/";

    await packagesStep(run, s, pre, opts.extraPackages ?? []);

    tmp = await run.step("upload", `Upload berth-agent ${version}`, async (ctx) => {
      const mk = await s.exec("umask 077 && mktemp -d /tmp/berth-install.XXXXXXXX");
      const dir = mk.stdout.trim();
      if (mk.code !== 0 || !dir.startsWith("/tmp/berth-install."))
        throw new InstallError("upload", "command", `cannot make a temporary directory on ${s.where}: ${lastLines(mk.stderr)}`);
      tmp = dir; // removed in finally whatever happens next
      await s.upload(artifact.path, `${dir}/berth-agent.tar.gz`);
      const sum = await s.exec(`sha256sum ${q(dir)}/berth-agent.tar.gz`);
      const got = sum.stdout.trim().split(/\s+/)[0];
      if (got !== artifact.sha256)
        throw new InstallError("upload", "command", `the uploaded artifact is corrupt on ${s.where} (sha256 ${got ?? "unknown"}, expected ${artifact.sha256})`);
      ctx.detail(`${(artifact.bytes / 1024 / 1024).toFixed(1)} MiB, sha256 ${artifact.sha256.slice(0, 12)}…`);
      return dir;
    });
    const tmpDir = tmp;

    const versionDir = `${paths.libDir}/${version}`;
    await run.step("unpack", `Unpack into ${versionDir}`, async (ctx) => {
      const marker = await s.root(`cat ${q(versionDir)}/.artifact-sha256 2>/dev/null`);
      if (marker.stdout.trim() === artifact.sha256) return skipped(`${versionDir} already holds this artifact`);
      const id = rand();
      const stage = `${paths.libDir}/.stage.${id}`;
      const aside = `${paths.libDir}/.replaced.${version}.${id}`;
      const r = await s.root(
        `set -e
${MKD}
mkd ${q(paths.libDir)} 0755
trap 'rm -rf ${q(stage)}' EXIT
mkdir -m 0755 ${q(stage)}
tar -xzf ${q(tmpDir)}/berth-agent.tar.gz -C ${q(stage)} --strip-components=1 --no-same-owner
[ "$(cat ${q(stage)}/VERSION)" = ${q(version)} ] || { echo "the artifact's VERSION is not ${version}" >&2; exit 1; }
echo ${q(artifact.sha256)} > ${q(stage)}/.artifact-sha256
if [ -e ${q(versionDir)} ]; then mv ${q(versionDir)} ${q(aside)}; echo "replaced:${aside}"; fi
mv ${q(stage)} ${q(versionDir)}
echo unpacked`,
        { onOutput: (t, st) => st === "stderr" && ctx.output(t, st) },
      );
      const created = outermost(createdDirs(r.stdout));
      const replaced = r.stdout.includes(`replaced:${aside}`);
      if (r.stdout.includes("unpacked") || replaced) {
        ctx.onUndo(`remove ${versionDir}`, async () => {
          const u = await s.root(`rm -rf ${q(versionDir)}${replaced ? ` && mv ${q(aside)} ${q(versionDir)}` : ""}`);
          if (u.code !== 0) throw new Error(lastLines(u.stderr));
        });
      }
      if (created.length) ctx.onUndo(`remove ${created.join(", ")}`, () => rmrf(s, created));
      if (r.code !== 0) throw new InstallError("unpack", "command", `unpacking the artifact into ${versionDir} failed: ${lastLines(r.stderr)}`);
      if (replaced) cleanups.push(aside);
    });

    await run.step("config", `Write ${paths.config}`, async (ctx) => {
      const link: Record<string, unknown> = { "console-url": opts.consoleUrl };
      if (opts.consoleFingerprint) link["console-fingerprint"] = opts.consoleFingerprint;
      let next: Record<string, unknown>;
      if (!upgrade) {
        next = {
          ...link,
          "join-token": opts.joinToken,
          "credential-file": paths.credential,
          "data-root": paths.dataRoot,
          "exec-root": paths.execRoot,
          "docker-socket": paths.dockerSocket,
          ...opts.agentConfig,
        };
      } else {
        next = { ...existing.config, ...link, ...opts.agentConfig };
        if (!existing.credentialPresent) {
          if (!opts.joinToken)
            throw new InstallError("config", "invalid", `the agent on ${s.where} has no node credential: give a join token to enroll it again`);
          next["join-token"] = opts.joinToken;
        }
        if (configJson(next) === configJson(existing.config ?? {})) return skipped(`kept ${paths.config}: the node keeps its credential and data`);
      }
      await s.writeFile(`${tmpDir}/agent.json`, configJson(next), 0o600);
      const id = rand();
      const backup = `${paths.config}.berth-backup.${id}`;
      const r = await s.root(
        `set -e
${MKD}
mkd ${q(paths.etcDir)} 0700
mkd ${q(String(next["data-root"] ?? paths.dataRoot))} 0711
if [ -e ${q(paths.config)} ]; then cp -p ${q(paths.config)} ${q(backup)}; echo "backup:${backup}"; fi
install -m 0600 ${q(tmpDir)}/agent.json ${q(paths.config)}.new.${id}
mv -f ${q(paths.config)}.new.${id} ${q(paths.config)}
echo written`,
      );
      const created = outermost(createdDirs(r.stdout));
      const hadBackup = r.stdout.includes(`backup:${backup}`);
      if (r.stdout.includes("written")) {
        ctx.onUndo(hadBackup ? `restore ${paths.config}` : `remove ${paths.config}`, async () => {
          const u = await s.root(hadBackup ? `mv -f ${q(backup)} ${q(paths.config)}` : `rm -f ${q(paths.config)}`);
          if (u.code !== 0) throw new Error(lastLines(u.stderr));
        });
      }
      if (created.length) ctx.onUndo(`remove ${created.join(", ")}`, () => rmrf(s, created));
      if (r.code !== 0) throw new InstallError("config", "command", `writing ${paths.config} failed: ${lastLines(r.stderr)}`);
      if (hadBackup) cleanups.push(backup);
      ctx.detail(
        upgrade
          ? `updated (${Object.keys(link)
              .concat(existing.credentialPresent ? [] : ["join-token"])
              .join(", ")})`
          : "console URL, join token, paths",
      );
    });

    await run.step("switch", `Switch ${paths.current} to ${version}`, async (ctx) => {
      const id = rand();
      const r = await s.root(
        `set -e
echo "previous:$(readlink ${q(paths.current)} 2>/dev/null || true)"
ln -sfn ${q(version)} ${q(paths.libDir)}/.current.${id}
mv -Tf ${q(paths.libDir)}/.current.${id} ${q(paths.current)}`,
      );
      if (r.code !== 0) throw new InstallError("switch", "command", `switching ${paths.current} failed: ${lastLines(r.stderr)}`);
      const previous = /previous:(.*)/.exec(r.stdout)?.[1]?.trim() ?? "";
      if (previous === version) return skipped(`${paths.current} already points at ${version}`);
      ctx.onUndo(previous ? `switch ${paths.current} back to ${previous}` : `remove ${paths.current}`, async () => {
        const back = previous
          ? `ln -sfn ${q(previous)} ${q(paths.libDir)}/.current.${id} && mv -Tf ${q(paths.libDir)}/.current.${id} ${q(paths.current)}`
          : `rm -f ${q(paths.current)}`;
        // With the previous version back in place, an upgraded service runs it again.
        const restart = systemd && upgrade && previous ? ` && systemctl restart ${UNIT_NAME}` : "";
        const u = await s.root(back + restart);
        if (u.code !== 0) throw new Error(lastLines(u.stderr));
      });
      ctx.detail(previous ? `${previous} → ${version}` : version);
    });

    await run.step("unit", `Write ${paths.unit}`, async (ctx) => {
      const id = rand();
      const backup = `${paths.unit}.berth-backup.${id}`;
      const rendered = `${paths.unit}.new.${id}`;
      const r = await s.root(
        `set -e
${MKD}
mkd ${q(paths.unitDir)} 0755
if [ -e ${q(paths.unit)} ]; then cp -p ${q(paths.unit)} ${q(backup)}; echo "backup:${backup}"; fi
sed 's|${PREFIX_PLACEHOLDER}|${paths.root}|g' ${q(versionDir)}/berth-agent.service > ${q(rendered)}
chmod 0644 ${q(rendered)}
if [ -e ${q(backup)} ] && cmp -s ${q(rendered)} ${q(paths.unit)}; then rm -f ${q(rendered)} ${q(backup)}; echo unchanged; exit 0; fi
mv -f ${q(rendered)} ${q(paths.unit)}
echo written`,
      );
      const created = outermost(createdDirs(r.stdout));
      const hadBackup = r.stdout.includes(`backup:${backup}`) && !r.stdout.includes("unchanged");
      if (r.stdout.includes("written")) {
        ctx.onUndo(hadBackup ? `restore ${paths.unit}` : `remove ${paths.unit}`, async () => {
          const reload = systemd ? ` && systemctl daemon-reload` : "";
          const u = await s.root((hadBackup ? `mv -f ${q(backup)} ${q(paths.unit)}` : `rm -f ${q(paths.unit)}`) + reload);
          if (u.code !== 0) throw new Error(lastLines(u.stderr));
        });
      }
      if (created.length) ctx.onUndo(`remove ${created.join(", ")}`, () => rmrf(s, created));
      if (r.code !== 0) throw new InstallError("unit", "command", `writing ${paths.unit} failed: ${lastLines(r.stderr)}`);
      if (r.stdout.includes("unchanged")) return skipped(`${paths.unit} is up to date`);
      if (hadBackup) cleanups.push(backup);
    });

    await run.step("service", upgrade ? `Restart ${UNIT_NAME}` : `Enable and start ${UNIT_NAME}`, async (ctx) => {
      if (!systemd) return skipped(`install prefix ${prefix}: systemd is left alone; start the agent with the unit's ExecStart line (${paths.unit})`);
      if (!upgrade) {
        ctx.onUndo(`stop and disable ${UNIT_NAME}`, async () => {
          const u = await s.root(`systemctl disable --now ${UNIT_NAME}`);
          if (u.code !== 0) throw new Error(lastLines(u.stderr));
        });
      }
      // restart, not start: a unit left running by an earlier attempt must pick up the new files.
      await s.rootOk(
        "service",
        `systemctl enable and restart ${UNIT_NAME}`,
        `systemctl daemon-reload && systemctl enable ${UNIT_NAME} && systemctl restart ${UNIT_NAME}`,
        { onOutput: ctx.output, ...sig },
      );
      ctx.detail(upgrade ? "restarted (containers keep running: KillMode=process)" : "enabled and started");
    });

    const enrolled = await run.step("enroll", upgrade ? "Wait for the node to come back online" : "Wait for the node to enroll", async (ctx) => {
      const timeoutMs = opts.enrollTimeoutMs ?? 180_000;
      const ac = new AbortController();
      const onOuter = () => ac.abort();
      signal?.addEventListener("abort", onOuter, { once: true });
      let timer: NodeJS.Timeout | undefined;
      let timedOut = false;
      try {
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            timedOut = true;
            reject(new Error("timeout"));
            ac.abort();
          }, timeoutMs);
        });
        const outerAbort = new Promise<never>((_, reject) =>
          signal?.aborted ? reject(new Error("canceled")) : signal?.addEventListener("abort", () => reject(new Error("canceled")), { once: true }),
        );
        const r = await Promise.race([opts.waitForNode({ upgrade, version, signal: ac.signal }), timeout, outerAbort]);
        // The hub counts a node online before the agent has written its credential; without
        // that file the node could not reconnect after its next restart.
        const cred = typeof existing.config?.["credential-file"] === "string" ? (existing.config["credential-file"] as string) : paths.credential;
        const stored = await s.root(`i=0; while [ ! -s ${q(cred)} ] && [ $i -lt 75 ]; do sleep 0.2; i=$((i+1)); done; [ -s ${q(cred)} ] && echo stored`);
        if (!stored.stdout.includes("stored")) throw new Error(`it connected, but its credential never appeared at ${cred}`);
        ctx.detail(`node ${r.nodeId}`);
        return r;
      } catch (e) {
        if (signal?.aborted) throw new InstallError("enroll", "canceled", "canceled while waiting for the node");
        const journal = systemd
          ? await s.root(`journalctl -u ${UNIT_NAME} -n 15 --no-pager -o cat 2>/dev/null`).catch(bestEffort(log, "read the agent's journal for the error"))
          : undefined;
        const tail = journal?.stdout.trim() ? `; the agent's last log lines:\n${journal.stdout.trim()}` : "";
        const why = timedOut ? `within ${Math.round(timeoutMs / 1000)} s` : `(${(e as Error).message})`;
        throw new InstallError(
          "enroll",
          "enrollment",
          `node never ${upgrade ? "came back online" : "enrolled"}: the agent on ${s.where} did not ${upgrade ? "reconnect to" : "enroll with"} ${opts.consoleUrl} ${why}${tail}`,
          { cause: e },
        );
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onOuter);
      }
    });

    // Past this point the install stands: nothing below is undone.
    run.commit();
    await run
      .step("cleanup", "Remove old versions and temporary files", async (ctx) => {
        const keep = [version, existing.currentVersion].filter((v): v is string => !!v);
        const r = await s.root(
          `cd ${q(paths.libDir)} && for d in */; do n=\${d%/}; [ -L "$n" ] && continue; case " ${keep.join(" ")} " in *" $n "*) ;; *) rm -rf -- "$n" && echo "removed $n";; esac; done
${cleanups.length ? `rm -rf ${cleanups.map(q).join(" ")}` : "true"}`,
          { onOutput: ctx.output },
        );
        if (r.code !== 0) ctx.output(r.stderr, "stderr");
        ctx.detail(`kept ${keep.join(", ")}`);
      })
      .catch((err: unknown) => log.warn({ err }, "the install's clean-up step failed (the install stands)")); // shown as a failed step too
    return {
      nodeId: enrolled.nodeId,
      version,
      ...(upgrade && existing.currentVersion && existing.currentVersion !== version ? { previousVersion: existing.currentVersion } : {}),
      upgraded: upgrade,
      hostKey: s.hostKey,
      checks: pre.checks,
      skipped: run.skippedSteps,
      unitPath: paths.unit,
      configPath: paths.config,
    };
  } catch (e) {
    throw await run.failWith(e);
  } finally {
    if (session && tmp)
      await session
        .exec(`rm -rf ${q(tmp)}`)
        .catch((err: unknown) => log.warn({ err, dir: tmp }, "could not remove the install's temporary directory on the node"));
    session?.close();
  }
}

async function rmrf(session: SshSession, dirs: string[]): Promise<void> {
  const r = await session.root(`rm -rf ${dirs.map(q).join(" ")}`);
  if (r.code !== 0) throw new Error(lastLines(r.stderr));
}
