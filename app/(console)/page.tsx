"use client";
import { useState } from "react";
import { trpc } from "../lib/trpc.ts";
import { ago, bytes } from "../components/format.ts";
import { Badge, ErrorBox } from "../components/ui.tsx";
import { LastKnown, NodeName } from "../components/node-name.tsx";

export default function FleetPage() {
  const [search, setSearch] = useState("");
  const [status, setStatus] = useState<"" | "online" | "offline" | "revoked">("");
  const nodes = trpc.nodes.list.useQuery({ ...(search ? { search } : {}), ...(status ? { status } : {}) }, { placeholderData: (p) => p });
  const t = nodes.data?.totals;
  return (
    <>
      <h1>Fleet</h1>
      {t && (
        <div className="cards">
          <div className="card">
            <div className="v">
              {t.online} / {t.nodes}
            </div>
            <div className="k">nodes online</div>
          </div>
          <div className="card">
            <div className="v">
              {t.running} / {t.containers}
            </div>
            <div className="k">containers running</div>
          </div>
          <div className="card">
            <div className="v">{t.images}</div>
            <div className="k">images</div>
          </div>
        </div>
      )}
      <div className="row panel">
        <input
          placeholder="Search nodes (name, ID, address, label env=prod, OS, kernel, group, version)"
          value={search}
          onChange={(e) => setSearch(e.target.value)}
          style={{ flex: 1 }}
          aria-label="search nodes"
        />
        <select value={status} onChange={(e) => setStatus(e.target.value as typeof status)} aria-label="status">
          <option value="">any status</option>
          <option value="online">online</option>
          <option value="offline">offline</option>
          <option value="revoked">revoked</option>
        </select>
      </div>
      <ErrorBox error={nodes.error} />
      <table data-testid="nodes">
        <thead>
          <tr>
            <th>Node</th>
            <th>Status</th>
            <th>Last seen</th>
            <th>Agent</th>
            <th>OS / kernel</th>
            <th className="num">CPUs</th>
            <th className="num">Memory</th>
            <th className="num">Disk free</th>
            <th className="num">Containers (run / pause / stop)</th>
            <th className="num">Images</th>
            <th>Group</th>
          </tr>
        </thead>
        <tbody>
          {nodes.data?.nodes.map((n) => (
            <tr key={n.id} data-node={n.name}>
              <td>
                <NodeName node={n} />
                {n.hostname !== n.name && <div className="muted mono">{n.hostname}</div>}
                {Object.keys(n.labels).length > 0 && (
                  <div className="row" style={{ gap: 4, marginTop: 3 }}>
                    {Object.entries(n.labels).map(([k, v]) => (
                      <button
                        key={k}
                        type="button"
                        className="badge"
                        data-label={`${k}=${v}`}
                        style={{ border: 0 }}
                        title="show the nodes with this label"
                        onClick={() => setSearch(`${k}=${v}`)}
                      >
                        {k}={v}
                      </button>
                    ))}
                  </div>
                )}
              </td>
              <td>
                <Badge kind={n.revoked ? "revoked" : n.online ? "online" : "offline"}>{n.revoked ? "revoked" : n.online ? "online" : "offline"}</Badge>
              </td>
              <td>{n.online ? "now" : ago(n.lastSeen)}</td>
              <td className="mono">{n.agentVersion ?? "—"}</td>
              <td>
                {n.os ?? "—"}
                <div className="muted mono">
                  {n.kernel ?? ""} {n.architecture ?? ""}
                </div>
              </td>
              <td className="num">{n.cpus ?? "—"}</td>
              <td className="num">{bytes(n.memory)}</td>
              <td className="num">{n.disk ? `${bytes(n.disk.free)} of ${bytes(n.disk.total)}` : "—"}</td>
              <td className="num">
                {n.containers.running} / {n.containers.paused} / {n.containers.stopped}
                {!n.online && n.containers.total + n.images > 0 && (
                  <div>
                    <LastKnown asOf={n.lastKnownAt} />
                  </div>
                )}
              </td>
              <td className="num">{n.images}</td>
              <td>{n.group?.name ?? <span className="muted">none</span>}</td>
            </tr>
          ))}
          {nodes.data && nodes.data.nodes.length === 0 && (
            <tr>
              <td colSpan={11} className="muted">
                No nodes{search || status ? " match" : " yet: an admin adds them under Join tokens or Add node"}.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </>
  );
}
