/**
 * Remove the agent from a node over SSH: stop and disable the service, remove the unit,
 * the artifact and the config (with the node credential), and, if asked, the data: the
 * agent's containers, their networking and mounts, the data and exec roots (done by the
 * artifact's own berth-agent-teardown). The console revokes the node's credential.
 *
 * Without removeData the containers keep running under their conmon monitors until the
 * host reboots, and a later install adopts them again.
 *
 * Files are first moved aside and deleted only at the end, so a failure puts them back
 * and restarts the service; removed data cannot come back, which is why it goes last.
 */
import { randomBytes } from "node:crypto";
import { InstallError } from "./errors.ts";
import type { HostKey } from "./host-key.ts";
import { connectStep, inspectInstall } from "./install.ts";
import { nodePaths, normalizePrefix, q } from "./shell.ts";
import { lastLines, type SshSession, type SshTarget } from "./ssh-session.ts";
import { skipped, StepRunner, type EventSink } from "./steps.ts";

export interface RemoveOptions {
  target: SshTarget;
  /** The prefix it was installed with (default "/"). */
  prefix?: string;
  /** Also remove containers, images, volumes and their networking. Cannot be undone. */
  removeData?: boolean;
  /** How long the agent gets to stop on SIGTERM where systemd does not manage it (default 20 s). */
  stopTimeoutMs?: number;
}

export interface RemoveResult {
  /** False when there was no agent installed under the prefix (nothing was changed). */
  found: boolean;
  /** The version that was installed. */
  version?: string;
  /** Paths removed from the node. */
  removed: string[];
  dataRemoved: boolean;
  hostKey: HostKey;
}

const UNIT_NAME = "berth-agent.service";

/**
 * Removes the agent. Idempotent: a node with nothing installed under the prefix reports found: false.
 * @throws InstallError naming the failed step; what was moved aside is put back first.
 */
export async function removeAgent(opts: RemoveOptions, onEvent: EventSink = () => {}, signal?: AbortSignal): Promise<RemoveResult> {
  let prefix: string;
  try {
    prefix = normalizePrefix(opts.prefix);
  } catch (e) {
    throw new InstallError("connect", "invalid", (e as Error).message, { cause: e });
  }
  const paths = nodePaths(prefix);
  const run = new StepRunner(onEvent, signal);
  let session: SshSession | undefined;
  try {
    session = await connectStep(run, opts.target, signal);
    const s = session;
    const state = await run.step("inspect", "Find the installed agent", async (ctx) => {
      const privilege = await s.checkPrivilege();
      if (!privilege.ok) throw new InstallError("inspect", "no-sudo", privilege.detail);
      const existing = await inspectInstall(s, paths);
      const found = await s.root(
        `for p in ${[paths.unit, paths.libDir, paths.etcDir].map(q).join(" ")}; do [ -e "$p" ] && echo "$p"; done; [ -d /run/systemd/system ] && echo systemd=yes; true`,
      );
      const present = found.stdout.split("\n").filter((l) => l.startsWith("/"));
      const systemd = prefix === "/" && found.stdout.includes("systemd=yes");
      ctx.detail(
        present.length ? `berth-agent ${existing.currentVersion ?? "(unknown version)"} at ${present.join(", ")}` : `nothing installed under ${prefix}`,
      );
      return { existing, present, systemd };
    });
    if (state.present.length === 0) {
      for (const step of ["stop", "files", "data"] as const) await run.step(step, step, async () => skipped(`no agent installed under ${prefix}`));
      return { found: false, removed: [], dataRemoved: false, hostKey: s.hostKey };
    }
    const config = state.existing.config ?? {};
    const dataRoot = typeof config["data-root"] === "string" ? config["data-root"] : paths.dataRoot;
    const execRoot = typeof config["exec-root"] === "string" ? config["exec-root"] : paths.execRoot;

    await run.step("stop", `Stop and disable ${UNIT_NAME}`, async (ctx) => {
      if (state.systemd) {
        ctx.onUndo(`enable and start ${UNIT_NAME} again`, async () => {
          const u = await s.root(`systemctl daemon-reload; systemctl enable --now ${UNIT_NAME}`);
          if (u.code !== 0) throw new Error(lastLines(u.stderr));
        });
        await s.rootOk("stop", `systemctl disable --now ${UNIT_NAME}`, `systemctl disable --now ${UNIT_NAME} || ! systemctl is-active -q ${UNIT_NAME}`, {
          onOutput: ctx.output,
        });
        ctx.detail("stopped and disabled (containers keep running until their data is removed)");
        return;
      }
      // Not under systemd (an install prefix, or a host booted without it): stop the agent
      // process started from this install's config.
      const waitS = Math.ceil((opts.stopTimeoutMs ?? 20_000) / 1000);
      const r = await s.root(
        // The pattern is assembled at run time so that this script's own command line never matches it.
        `cfg=${q(paths.config.replace(/\./g, "\\."))}
if command -v pgrep >/dev/null 2>&1; then pids() { pgrep -f -- "berth-agent\\.mjs --config $cfg( |\$)"; }
else pids() { for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' 2>/dev/null < "$p/cmdline") || continue; case "$c" in *"berth-agent.mjs --config $cfg "*) echo "\${p#/proc/}";; esac; done; }; fi
found=$(pids); [ -n "$found" ] || { echo none; exit 0; }
kill -TERM $found 2>/dev/null || true
i=0; while [ -n "$(pids)" ] && [ $i -lt ${waitS * 5} ]; do sleep 0.2; i=$((i+1)); done
left=$(pids); [ -z "$left" ] || kill -KILL $left 2>/dev/null || true
echo "stopped $found"`,
      );
      if (r.code !== 0) throw new InstallError("stop", "command", `stopping the agent failed: ${lastLines(r.stderr)}`);
      if (r.stdout.trim() === "none") return skipped(`not managed by systemd here (prefix ${prefix}) and no agent process runs with ${paths.config}`);
      ctx.detail(`${r.stdout.trim()} (not managed by systemd here)`);
    });

    const id = randomBytes(4).toString("hex");
    const moved = await run.step("files", "Remove the unit, the agent and its config", async (ctx) => {
      const pairs = state.present.map((p) => [p, `${p}.berth-removed.${id}`] as const);
      for (const [from, to] of pairs) {
        const r = await s.root(`mv -T ${q(from)} ${q(to)}`);
        if (r.code !== 0) throw new InstallError("files", "command", `moving ${from} aside failed: ${lastLines(r.stderr)}`);
        ctx.onUndo(`put back ${from}`, async () => {
          const u = await s.root(`mv -T ${q(to)} ${q(from)}`);
          if (u.code !== 0) throw new Error(lastLines(u.stderr));
        });
      }
      if (state.systemd) await s.root("systemctl daemon-reload");
      ctx.detail(state.present.join(", "));
      return pairs;
    });

    const dataRemoved = await run.step("data", `Remove containers and data (${dataRoot})`, async (ctx) => {
      if (!opts.removeData) return skipped(`kept ${dataRoot} (images, containers, volumes)`, false);
      const libAside = moved.find(([from]) => from === paths.libDir)?.[1];
      const confAside = moved.find(([from]) => from === paths.etcDir)?.[1];
      const version = state.existing.currentVersion;
      const teardown = libAside && version ? `${libAside}/${version}/berth-agent-teardown.mjs` : undefined;
      if (!teardown)
        throw new InstallError("data", "command", `cannot remove the data: the agent's files (and its teardown) are missing under ${paths.libDir}`);
      const args = state.existing.config && confAside ? `--config ${q(`${confAside}/agent.json`)}` : `--data-root ${q(dataRoot)} --exec-root ${q(execRoot)}`;
      await s.rootOk("data", "removing the agent's containers and data", `node=$(command -v node || command -v nodejs) && "$node" ${q(teardown)} ${args}`, {
        onOutput: ctx.output,
      });
      ctx.detail(`removed ${dataRoot} and ${execRoot}`);
      return true;
    });

    run.commit();
    await run.step("cleanup", "Delete what was moved aside", async () => {
      const r = await s.root(`rm -rf ${moved.map(([, to]) => q(to)).join(" ")}`);
      if (r.code !== 0) throw new InstallError("cleanup", "command", `deleting ${moved.map(([, to]) => to).join(", ")} failed: ${lastLines(r.stderr)}`);
    });
    return {
      found: true,
      ...(state.existing.currentVersion ? { version: state.existing.currentVersion } : {}),
      removed: [...state.present, ...(dataRemoved ? [dataRoot, execRoot] : [])],
      dataRemoved,
      hostKey: s.hostKey,
    };
  } catch (e) {
    throw await run.failWith(e);
  } finally {
    session?.close();
  }
}
