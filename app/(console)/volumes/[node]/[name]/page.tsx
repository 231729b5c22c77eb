"use client";
// One volume, read from its node now: driver, options, labels and the containers using it.
import Link from "next/link";
import { useParams } from "next/navigation";
import { trpc } from "../../../../lib/trpc.ts";
import { useCan } from "../../../../components/action-bar.tsx";
import { NodeName } from "../../../../components/node-name.tsx";
import { RemoveButton } from "../../../../components/storage-forms.tsx";
import { Badge, EmptyRow, ErrorBox } from "../../../../components/ui.tsx";

export default function VolumePage() {
  const params = useParams<{ node: string; name: string }>();
  const nodeId = params.node;
  const name = decodeURIComponent(params.name);
  const can = useCan();
  const node = trpc.nodes.get.useQuery({ nodeId });
  const vol = trpc.inventory.volume.useQuery({ nodeId, name }, { retry: false });
  const v = vol.data;
  const n = node.data;
  return (
    <>
      <p>
        <Link href="/volumes">‹ Volumes</Link>
      </p>
      <div className="row" style={{ justifyContent: "space-between" }}>
        <h1 style={{ margin: "0 0 8px", overflowWrap: "anywhere" }}>
          Volume <span className="mono">{name}</span>
        </h1>
        {can.operate && n && <RemoveButton kind="volume" nodeId={nodeId} nodeName={n.name} id={name} name={name} />}
      </div>
      {n && (
        <p>
          on <NodeName node={n} /> {!n.online && <Badge kind="offline">offline</Badge>}
        </p>
      )}
      {n && !n.online && <p className="muted">The node is offline: the volume can be read only when it is back.</p>}
      <ErrorBox error={node.error ?? vol.error} />
      {v && (
        <>
          <div className="panel">
            <dl
              data-testid="volume-facts"
              style={{ display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(230px, 1fr))", gap: "8px 20px", margin: 0 }}
            >
              {(
                [
                  ["Driver", v.driver],
                  ["Mount point", v.mountpoint],
                  ["Created", v.createdAt ? new Date(v.createdAt).toLocaleString() : "—"],
                  [
                    "Options",
                    Object.entries(v.options)
                      .map(([k, x]) => `${k}=${x}`)
                      .join(", ") || "none",
                  ],
                  [
                    "Labels",
                    Object.entries(v.labels)
                      .map(([k, x]) => `${k}=${x}`)
                      .join(", ") || "none",
                  ],
                ] as Array<[string, string]>
              ).map(([k, x]) => (
                <div key={k}>
                  <dt className="muted" style={{ fontSize: 12 }}>
                    {k}
                  </dt>
                  <dd style={{ margin: 0, overflowWrap: "anywhere" }} className="mono">
                    {x}
                  </dd>
                </div>
              ))}
            </dl>
          </div>
          <h2 style={{ fontSize: 17 }}>Containers using it</h2>
          <table data-testid="volume-containers">
            <thead>
              <tr>
                <th>Name</th>
                <th>ID</th>
                <th>State</th>
              </tr>
            </thead>
            <tbody>
              {v.containers.map((c) => (
                <tr key={c.id} data-container={c.name}>
                  <td>{c.name}</td>
                  <td className="mono">{c.id.slice(0, 12)}</td>
                  <td>
                    <Badge kind={c.state}>{c.state}</Badge>
                  </td>
                </tr>
              ))}
              {v.containers.length === 0 && <EmptyRow cols={3}>No container uses this volume.</EmptyRow>}
            </tbody>
          </table>
        </>
      )}
      {!v && !vol.error && <p className="muted">Loading…</p>}
    </>
  );
}
