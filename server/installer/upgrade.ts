/**
 * "Upgrade agent" on a node page: the SSH installer run again on the host the node was
 * installed on (its pinned host), with the SSH login kept at install time, uploading the
 * console's current agent artifact. Installing over an installed agent is an upgrade (see
 * install.ts): new version directory, `current` switched, the unit restarted; config,
 * credential and data stay, and KillMode=process keeps the containers running.
 *
 * It runs as the step of a durable job (JobService console step "agent.upgrade"); it also
 * takes the host's install-run slot, so the Add node page shows it and no second run on
 * the host can start meanwhile.
 */
import { stat } from "node:fs/promises";
import type { Logger } from "pino";
import type { AgentHub } from "../hub/agent-hub.ts";
import type { PrismaClient } from "../db/generated/client.ts";
import type { SecretBox } from "../auth/secret-box.ts";
import type { ConsoleStepRunner } from "../jobs/job-service.ts";
import { defaultArtifactPath, readArtifact } from "./artifact.ts";
import { nodeWaiter } from "./enrollment.ts";
import { InstallError } from "./errors.ts";
import { installAgent } from "./install.ts";
import { KnownHosts, type PinnedHost } from "./known-hosts.ts";
import { RunConflictError, type InstallRuns } from "./runs.ts";
import type { SshCredentials } from "./ssh-session.ts";

export interface UpgradeDeps {
  prisma: PrismaClient;
  hub: AgentHub;
  secretBox: SecretBox;
  installs: InstallRuns;
  publicUrl: string;
  logger: Logger;
  /** The artifact to upload (default: defaultArtifactPath()). */
  artifactPath?: string;
}

export type UpgradeAvailability =
  { available: true; host: string; port: number; version: string; installedVersion: string | null } | { available: false; reason: string };

/** The pinned host and kept login an upgrade of `nodeId` needs, or why there are none. */
async function upgradeTarget(
  deps: Pick<UpgradeDeps, "prisma" | "secretBox" | "logger">,
  nodeId: string,
): Promise<{ pin: PinnedHost; credentials: SshCredentials } | { reason: string }> {
  const kh = new KnownHosts(deps.prisma, deps.secretBox);
  const [pin] = await kh.byNode(nodeId);
  if (!pin) return { reason: "this node was not installed over SSH from this console: upgrade the agent on the host itself (install.sh, or the packages)" };
  const credentials = await kh.credentials(pin.host, pin.port).catch((err: unknown) => {
    deps.logger.warn({ err, host: pin.host, port: pin.port }, "could not read the SSH credentials kept for a host");
    return null;
  });
  if (!credentials?.password && !credentials?.privateKey)
    return {
      reason: `no SSH login is kept for ${pin.host}:${pin.port} (it was installed without "keep credentials"): install again from Add node with the login — installing over an agent upgrades it`,
    };
  if (!pin.username) return { reason: `no SSH user is known for ${pin.host}:${pin.port}: install again from Add node` };
  return { pin, credentials };
}

/** The artifact's version, read again only when the file changed (reading it hashes the whole tarball). */
let artifactSeen: { key: string; version: string } | undefined;
async function artifactVersion(path: string): Promise<string> {
  // A file that cannot be read: readArtifact says why, in the installer's words.
  const st = await stat(path).catch((err: unknown) => err as Error);
  if (st instanceof Error) return (await readArtifact(path)).version;
  const key = `${path}:${st.size}:${st.mtimeMs}`;
  if (artifactSeen?.key === key) return artifactSeen.version;
  const { version } = await readArtifact(path);
  artifactSeen = { key, version };
  return version;
}

export async function upgradeAvailability(deps: UpgradeDeps, nodeId: string): Promise<UpgradeAvailability> {
  const t = await upgradeTarget(deps, nodeId);
  if ("reason" in t) return { available: false, reason: t.reason };
  let version: string;
  try {
    version = await artifactVersion(deps.artifactPath ?? defaultArtifactPath());
  } catch (e) {
    return { available: false, reason: `the console has no agent artifact to upload: ${(e as Error).message}` };
  }
  return { available: true, host: t.pin.host, port: t.pin.port, version, installedVersion: deps.hub.node(nodeId)?.agentVersion ?? null };
}

/** The job step: runs the installer, reporting each installer step as the job step's status and its output as the log. */
export function agentUpgradeStep(deps: UpgradeDeps): ConsoleStepRunner {
  return async ({ nodeId, signal, report }) => {
    const t = await upgradeTarget(deps, nodeId);
    if ("reason" in t) throw new Error(t.reason);
    const { pin, credentials } = t;
    let run;
    try {
      run = deps.installs.begin(
        "install",
        pin.host,
        pin.port,
        [credentials.password, credentials.passphrase, credentials.sudoPassword].filter((s): s is string => !!s),
      );
    } catch (e) {
      if (e instanceof RunConflictError) throw new Error(`${e.message}: wait for it to end, then upgrade again`, { cause: e });
      throw e;
    }
    const waiter = nodeWaiter({ hub: deps.hub, prisma: deps.prisma, nodeId });
    // The job's cancel and the console's shutdown both stop the run, which then rolls back.
    const stop = () => run.abort("the upgrade was canceled");
    signal.addEventListener("abort", stop, { once: true });
    try {
      const result = await installAgent(
        {
          target: { host: pin.host, port: pin.port, username: pin.username!, credentials, hostKeyFingerprint: pin.hostKey.fingerprint },
          consoleUrl: deps.publicUrl,
          prefix: pin.installPrefix,
          ...(deps.artifactPath ? { artifactPath: deps.artifactPath } : {}),
          waitForNode: (w) => waiter(w),
          logger: deps.logger,
        },
        (e) => {
          run.record(e);
          if (e.type === "step") report({ status: `${e.label}: ${e.status}${e.detail ? ` (${run.scrub(e.detail)})` : ""}` });
          else if (e.type === "output") report({ text: run.scrub(e.text) });
          else if (e.type === "rollback") report({ text: `rollback: ${e.label}: ${e.status}${e.detail ? ` (${run.scrub(e.detail)})` : ""}\n` });
        },
        run.signal,
      );
      if (!result.upgraded)
        throw new InstallError("preflight", "invalid", `no agent was installed on ${pin.host}:${pin.port}: this was a new install, not an upgrade`);
      run.succeed({ nodeId: result.nodeId, version: result.version, upgraded: true });
      return {
        host: `${pin.host}:${pin.port}`,
        version: result.version,
        ...(result.previousVersion ? { previousVersion: result.previousVersion } : {}),
        runId: run.view.id,
      };
    } catch (e) {
      const err = e instanceof InstallError ? e : new InstallError("connect", "command", (e as Error)?.message ?? String(e));
      run.fail({ step: err.step, kind: err.kind, message: err.message });
      throw new Error(`${err.step}: ${err.message}`, { cause: e });
    } finally {
      signal.removeEventListener("abort", stop);
    }
  };
}
