"use client";
// The node page's "Restart agent" and "Upgrade agent" (admins). Restart asks the agent to
// restart itself through its link, which only a supervised agent can do (systemd, or
// --supervised); upgrade runs the SSH installer again as a job, for nodes installed over
// SSH from this console with their login kept. Each says why when it cannot run, and each
// confirmation names what happens to the node and its containers.
import { useEffect, useState } from "react";
import { trpc } from "../lib/trpc.ts";
import { ApiError } from "./action-bar.tsx";
import { InlineJob } from "./inline-job.tsx";

type Open = "restart" | "upgrade" | null;

export function AgentActions({ node }: { node: { id: string; name: string; online: boolean; revoked: boolean; agentVersion: string | null } }) {
  const [open, setOpen] = useState<Open>(null);
  const [restart, setRestart] = useState<"asked" | "offline" | "back" | null>(null);
  const [jobId, setJobId] = useState<string | null>(null);
  const engine = trpc.nodes.engine.useQuery({ nodeId: node.id }, { enabled: node.online, staleTime: 30_000, retry: false });
  const upgradeInfo = trpc.installer.upgradeAvailability.useQuery({ nodeId: node.id }, { staleTime: 30_000 });
  const restartAgent = trpc.nodes.restartAgent.useMutation({ onSuccess: () => setRestart("asked") });
  const upgrade = trpc.installer.upgrade.useMutation({
    onSuccess: (r) => {
      setJobId(r.jobId);
      setOpen(null);
    },
  });

  // The restart as the page sees it: asked, then the node offline, then online again.
  useEffect(() => {
    if (restart === "asked" && !node.online) setRestart("offline");
    else if (restart === "offline" && node.online) setRestart("back");
  }, [restart, node.online]);

  if (node.revoked) return null;
  const supervisor = engine.data?.supervisor;
  const restartBlocked = !node.online
    ? "The node is offline: its agent cannot be asked to restart."
    : engine.data && supervisor === undefined
      ? "This agent is too old to restart itself; restart it on the host."
      : engine.data && supervisor === null
        ? "This agent is not supervised (no systemd unit, no --supervised): nothing would start it again. Restart it on the host."
        : null;
  const u = upgradeInfo.data;

  return (
    <>
      <div className="row" aria-label="agent actions">
        <button type="button" onClick={() => setOpen(open === "restart" ? null : "restart")} disabled={restart === "asked" || restart === "offline"}>
          {restart === "asked" || restart === "offline" ? "Restarting agent…" : "Restart agent"}
        </button>
        <button type="button" onClick={() => setOpen(open === "upgrade" ? null : "upgrade")}>
          Upgrade agent
        </button>
      </div>
      {restart && (
        <p role="status" data-testid="restart-status" data-phase={restart}>
          {restart === "asked" && "The agent answered and is restarting…"}
          {restart === "offline" && "The agent stopped; waiting for its supervisor to start it again…"}
          {restart === "back" && "The agent is back online."}
        </p>
      )}
      {open === "restart" &&
        (restartBlocked ? (
          <div className="panel" role="note" data-testid="restart-unavailable">
            <p style={{ margin: 0 }}>{restartBlocked}</p>
            <button type="button" onClick={() => setOpen(null)}>
              Close
            </button>
          </div>
        ) : (
          <div className="panel" role="alertdialog" aria-label="confirm restart agent">
            <p style={{ marginTop: 0 }}>
              Restart the agent on <b>{node.name}</b>? It stops and {supervisor === "systemd" ? "systemd" : "its supervisor"} starts it again: the node is
              offline for a few seconds. <b>Running containers keep running</b> — the agent adopts them when it is back. Pulls, builds, logs and terminals
              running on the node now are cut off.
            </p>
            <div className="row">
              <button
                type="button"
                className="danger"
                disabled={restartAgent.isPending || !engine.data}
                onClick={() => restartAgent.mutate({ nodeId: node.id }, { onSuccess: () => setOpen(null) })}
              >
                Confirm restart
              </button>
              <button type="button" onClick={() => setOpen(null)}>
                Cancel
              </button>
            </div>
            <ApiError error={restartAgent.error} />
          </div>
        ))}
      {open === "upgrade" &&
        (!u ? (
          <p className="muted">Checking how this node was installed…</p>
        ) : !u.available ? (
          <div className="panel" role="note" data-testid="upgrade-unavailable">
            <p style={{ margin: 0 }}>Upgrade is not available here: {u.reason}.</p>
            <button type="button" onClick={() => setOpen(null)}>
              Close
            </button>
          </div>
        ) : (
          <div className="panel" role="alertdialog" aria-label="confirm upgrade agent">
            <p style={{ marginTop: 0 }}>
              Upgrade the agent on <b>{node.name}</b> from {u.installedVersion ?? node.agentVersion ?? "its version"} to <b>{u.version}</b>, over SSH to{" "}
              <span className="mono">
                {u.host}:{u.port}
              </span>
              ? The installer uploads the console&apos;s agent, switches to it and restarts the berth-agent service: the node is offline for a few seconds.{" "}
              <b>Running containers keep running</b> — the agent adopts them at restart; its settings, credential and data stay. If the new agent does not come
              back, the previous version is put back.
            </p>
            <div className="row">
              <button type="button" className="danger" disabled={upgrade.isPending} onClick={() => upgrade.mutate({ nodeId: node.id })}>
                Confirm upgrade
              </button>
              <button type="button" onClick={() => setOpen(null)}>
                Cancel
              </button>
            </div>
            <ApiError error={upgrade.error} />
          </div>
        ))}
      {jobId && <InlineJob jobId={jobId} title="Agent upgrade" onClose={() => setJobId(null)} />}
    </>
  );
}
