"use client";
import Link from "next/link";
import { useParams, useRouter } from "next/navigation";
import { useState } from "react";
import { trpc } from "../../../lib/trpc.ts";
import { ApiError, useCan } from "../../../components/action-bar.tsx";
import { ContainersTable } from "../../../components/containers-table.tsx";
import { ago, bytes } from "../../../components/format.ts";
import { ImagesTable } from "../../../components/images-table.tsx";
import { NetworksTable, VolumesTable } from "../../../components/inventory-tables.tsx";
import { JobsTable } from "../../../components/jobs-table.tsx";
import { Badge, ErrorBox } from "../../../components/ui.tsx";
import { LastKnown } from "../../../components/node-name.tsx";
import { DiskUsagePanel, EnginePanel, NodeSettings } from "../../../components/node-panels.tsx";
import { AgentActions } from "../../../components/agent-actions.tsx";

// Containers and images are always shown; the rest behind tabs to keep the page short.
const TABS = ["Jobs", "Volumes", "Networks"] as const;
type Tab = (typeof TABS)[number];

export default function NodePage() {
  const { id } = useParams<{ id: string }>();
  const can = useCan();
  const router = useRouter();
  const node = trpc.nodes.get.useQuery({ nodeId: id });
  const [tab, setTab] = useState<Tab>("Jobs");
  const [confirming, setConfirming] = useState<"revoke" | "delete" | null>(null);
  const revoke = trpc.nodes.revoke.useMutation({ onSuccess: () => setConfirming(null) });
  const del = trpc.nodes.delete.useMutation({ onSuccess: () => router.push("/") });
  const n = node.data;
  const f = n?.facts;
  const status = n ? (n.revoked ? "revoked" : n.online ? "online" : "offline") : "";

  const facts: Array<[string, string]> = n
    ? [
        ["Node ID", n.id],
        ["Addresses", n.addresses.length ? n.addresses.join(", ") : "—"],
        ["Hostname", f?.hostname ?? n.hostname],
        ["Status", status],
        ["Last seen", n.online ? "now" : ago(n.lastSeen)],
        ["Group", n.group?.name ?? "none"],
        ["Operating system", f ? `${f.operatingSystem}${f.osVersion ? ` (${f.osVersion})` : ""}` : (n.os ?? "—")],
        ["Kernel", n.kernel ?? "—"],
        ["Architecture", n.architecture ?? "—"],
        ["CPUs", n.cpus?.toString() ?? "—"],
        ["Memory", bytes(n.memory)],
        ["Disk", n.disk ? `${bytes(n.disk.free)} free of ${bytes(n.disk.total)}` : "—"],
        ["cgroup", f ? `v${f.cgroupVersion}` : "—"],
        ["Agent version", n.agentVersion ?? "—"],
        ["Containers", `${n.containers.total} (${n.containers.running} running, ${n.containers.paused} paused, ${n.containers.stopped} stopped)`],
        ["Images", String(n.images)],
        ["Inventory as of", n.inventoryAt ? ago(n.inventoryAt) : "never"],
        ["Enrolled", new Date(n.createdAt).toLocaleString()],
      ]
    : [];

  return (
    <>
      <p>
        <Link href="/">‹ Fleet</Link>
      </p>
      <ErrorBox error={node.error} />
      {n && (
        <>
          <div className="row" style={{ justifyContent: "space-between" }}>
            <h1 style={{ margin: "0 0 8px" }}>
              {n.name}{" "}
              <span className="muted mono" style={{ fontSize: 14 }} title={n.id}>
                {n.shortId}
                {n.addresses[0] ? ` · ${n.addresses[0]}` : ""}
              </span>{" "}
              <Badge kind={status}>{status}</Badge>
            </h1>
            {can.admin && (
              <div className="row">
                {!n.revoked && confirming !== "revoke" && (
                  <button type="button" className="danger" onClick={() => setConfirming("revoke")}>
                    Revoke
                  </button>
                )}
                {n.revoked && confirming !== "delete" && (
                  <button type="button" className="danger" onClick={() => setConfirming("delete")}>
                    Delete
                  </button>
                )}
              </div>
            )}
          </div>
          {can.admin && <AgentActions key={n.id} node={n} />}
          {confirming === "revoke" && (
            <div className="panel" role="alertdialog" aria-label="confirm revoke">
              <p style={{ marginTop: 0 }}>
                Revoke <b>{n.name}</b>? Its credential stops working and it is disconnected now; containers on it keep running. To bring it back it must enroll
                again with a new join token.
              </p>
              <div className="row">
                <button type="button" className="danger" onClick={() => revoke.mutate({ nodeId: n.id })} disabled={revoke.isPending}>
                  Confirm revoke
                </button>
                <button type="button" onClick={() => setConfirming(null)}>
                  Cancel
                </button>
              </div>
              <ApiError error={revoke.error} />
            </div>
          )}
          {confirming === "delete" && (
            <div className="panel" role="alertdialog" aria-label="confirm delete">
              <p style={{ marginTop: 0 }}>
                Delete <b>{n.name}</b>&apos;s record, with its last inventory and its job history?
              </p>
              <div className="row">
                <button type="button" className="danger" onClick={() => del.mutate({ nodeId: n.id })} disabled={del.isPending}>
                  Confirm delete
                </button>
                <button type="button" onClick={() => setConfirming(null)}>
                  Cancel
                </button>
              </div>
              <ApiError error={del.error} />
            </div>
          )}
          {Object.keys(n.labels).length > 0 && (
            <p className="row" data-testid="node-labels" style={{ gap: 4, marginTop: 0 }}>
              {Object.entries(n.labels).map(([k, v]) => (
                <Badge key={k}>
                  {k}={v}
                </Badge>
              ))}
            </p>
          )}
          {!n.online && (
            <p role="status">
              <LastKnown asOf={n.lastKnownAt} /> <span className="muted">The node is offline: what this page lists is its inventory as last received.</span>
            </p>
          )}
          <div className="panel">
            <dl data-testid="node-facts" style={{ display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(230px, 1fr))", gap: "8px 20px", margin: 0 }}>
              {facts.map(([k, v]) => (
                <div key={k}>
                  <dt className="muted" style={{ fontSize: 12 }}>
                    {k}
                  </dt>
                  <dd
                    style={{ margin: 0, overflowWrap: "anywhere" }}
                    className={k === "Kernel" || k === "Agent version" || k === "Node ID" || k === "Addresses" ? "mono" : ""}
                  >
                    {v}
                  </dd>
                </div>
              ))}
            </dl>
          </div>
          {can.admin && <NodeSettings key={n.id} node={n} />}
          <EnginePanel nodeId={n.id} online={n.online} />
          <DiskUsagePanel nodeId={n.id} nodeName={n.name} online={n.online} canOperate={can.operate && !n.revoked} />
          <h2 style={{ fontSize: 17 }}>Containers</h2>
          <ContainersTable nodeId={n.id} />
          <h2 style={{ fontSize: 17, marginTop: 24 }}>Images</h2>
          <ImagesTable nodeId={n.id} />
          <div className="row" role="tablist" aria-label="more on this node" style={{ margin: "24px 0 10px" }}>
            {TABS.map((t) => (
              <button key={t} type="button" role="tab" aria-selected={tab === t} className={tab === t ? "primary" : ""} onClick={() => setTab(t)}>
                {t}
              </button>
            ))}
          </div>
          <div role="tabpanel" aria-label={tab}>
            {tab === "Volumes" && <VolumesTable nodeId={n.id} />}
            {tab === "Networks" && <NetworksTable nodeId={n.id} />}
            {tab === "Jobs" && <JobsTable nodeId={n.id} />}
          </div>
        </>
      )}
      {!n && !node.error && <p className="muted">Loading…</p>}
    </>
  );
}
