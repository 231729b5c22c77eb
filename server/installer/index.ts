/**
 * Installing the agent on nodes over SSH: the console's entry points. See install.ts for
 * the steps, remove.ts for removal, known-hosts.ts for host key pins, manual-script.ts for
 * the script served to hosts the console cannot reach.
 */
export { installAgent, checkHost, type InstallOptions, type InstallResult, type AgentConfigExtras, type HostCheck, type PreflightOptions } from "./install.ts";
export { nodeWaiter, type NodeWaiterOptions, type WaitForNode } from "./enrollment.ts";
export { removeAgent, type RemoveOptions, type RemoveResult } from "./remove.ts";
export { probeHost, type SshTarget, type SshCredentials } from "./ssh-session.ts";
export { KnownHosts, type PinnedHost } from "./known-hosts.ts";
export { manualInstallScript, manualInstallCommand, type ManualInstallOptions } from "./manual-script.ts";
export { readArtifact, defaultArtifactPath, type AgentArtifact } from "./artifact.ts";
export { InstallError, isInstallError, type InstallErrorKind, type StepId } from "./errors.ts";
export { normalizeHostFingerprint, type HostKey } from "./host-key.ts";
export { serviceCommand, type ServiceCommand } from "./unit.ts";
export type { InstallEvent, EventSink, StepStatus } from "./steps.ts";
export type { PreflightCheck, PreflightCheckId } from "./preflight.ts";
