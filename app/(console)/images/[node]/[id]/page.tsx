"use client";
// One image on one node: its tags with the digests the CLI shows, history with layer
// sizes, the containers using it, the nodes holding it; pull, tag and remove stay on the page.
import Link from "next/link";
import { useParams } from "next/navigation";
import { useState } from "react";
import { trpc } from "../../../../lib/trpc.ts";
import { ApiError, useCan } from "../../../../components/action-bar.tsx";
import { ago, bytes, shortId } from "../../../../components/format.ts";
import { InlineJob } from "../../../../components/inline-job.tsx";
import { LastKnown, NodeName } from "../../../../components/node-name.tsx";
import { Badge, EmptyRow, ErrorBox } from "../../../../components/ui.tsx";

export default function ImagePage() {
  const params = useParams<{ node: string; id: string }>();
  const nodeId = params.node;
  const id = decodeURIComponent(params.id);
  const can = useCan();
  const image = trpc.inventory.image.useQuery({ nodeId, id }, { retry: false });
  const img = image.data;
  const online = img?.node.online ?? false;
  const history = trpc.inventory.imageHistory.useQuery({ nodeId, reference: img?.id ?? id }, { enabled: online, retry: false, staleTime: 60_000 });
  const [jobs, setJobs] = useState<Array<{ id: string; title: string }>>([]);
  const started = (title: string) => ({ onSuccess: (r: { jobId: string }) => setJobs((j) => [{ id: r.jobId, title }, ...j]) });
  const pull = trpc.jobs.pull.useMutation();
  const remove = trpc.jobs.removeImage.useMutation();
  const [force, setForce] = useState(false);
  const [confirmRemove, setConfirmRemove] = useState(false);

  return (
    <>
      <p>
        <Link href="/images">‹ Images</Link>
      </p>
      {/* Outside the image's own block: a removal's outcome stays when the image is gone. */}
      {jobs.map((j) => (
        <InlineJob key={j.id} jobId={j.id} title={j.title} onClose={() => setJobs((all) => all.filter((x) => x.id !== j.id))} />
      ))}
      <ErrorBox error={image.error} />
      {img && (
        <>
          <h1 style={{ margin: "0 0 8px" }}>
            {img.tags[0] ? `${img.tags[0].repository}:${img.tags[0].tag}` : "<none>"}{" "}
            <span className="muted mono" style={{ fontSize: 14 }} title={img.id}>
              {shortId(img.id)}
            </span>
          </h1>
          <p>
            on <NodeName node={img.node} /> {!online && <LastKnown asOf={img.node.asOf} />}
          </p>
          <div className="panel">
            <dl data-testid="image-facts" style={{ display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(230px, 1fr))", gap: "8px 20px", margin: 0 }}>
              {(
                [
                  ["Image ID", img.id],
                  ["Size", bytes(img.size)],
                  ["Created", `${new Date(img.created * 1000).toLocaleString()} (${ago(img.created * 1000)})`],
                  [
                    "Labels",
                    Object.entries(img.labels)
                      .map(([k, v]) => `${k}=${v}`)
                      .join(", ") || "none",
                  ],
                ] as Array<[string, string]>
              ).map(([k, v]) => (
                <div key={k}>
                  <dt className="muted" style={{ fontSize: 12 }}>
                    {k}
                  </dt>
                  <dd className="mono" style={{ margin: 0, overflowWrap: "anywhere" }}>
                    {v}
                  </dd>
                </div>
              ))}
            </dl>
          </div>
          {can.operate && (
            <div className="row panel">
              {img.tags.length > 0 && (
                <button
                  type="button"
                  onClick={() =>
                    pull.mutate(
                      { nodeIds: [nodeId], reference: `${img.tags[0]!.repository}:${img.tags[0]!.tag}` },
                      started(`Pull of ${img.tags[0]!.repository}:${img.tags[0]!.tag}`),
                    )
                  }
                  disabled={pull.isPending || !online}
                >
                  Pull {img.tags[0]!.repository}:{img.tags[0]!.tag} again
                </button>
              )}
              {!confirmRemove ? (
                <button type="button" className="danger" onClick={() => setConfirmRemove(true)}>
                  Remove from this node
                </button>
              ) : (
                <span className="row" role="alertdialog" aria-label="confirm remove">
                  Removes {img.tags.length ? `the tags ${img.tags.map((t) => `${t.repository}:${t.tag}`).join(", ")} and ` : ""}the image from {img.node.name};
                  layers no other image uses are deleted.
                  <label htmlFor="image-force" style={{ fontWeight: 400, margin: 0 }}>
                    <input id="image-force" type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} /> force (also when containers use it)
                  </label>
                  <button
                    type="button"
                    className="danger"
                    disabled={remove.isPending}
                    onClick={() => {
                      setConfirmRemove(false);
                      remove.mutate({ nodeIds: [nodeId], reference: img.id, force }, started(`Removal of ${shortId(img.id)}`));
                    }}
                  >
                    Confirm remove
                  </button>
                  <button type="button" onClick={() => setConfirmRemove(false)}>
                    Cancel
                  </button>
                </span>
              )}
              <ApiError error={pull.error ?? remove.error} />
            </div>
          )}

          <h2 style={{ fontSize: 17 }}>Tags and digests</h2>
          <table data-testid="image-tags">
            <thead>
              <tr>
                <th>Repository</th>
                <th>Tag</th>
                <th>Digest</th>
              </tr>
            </thead>
            <tbody>
              {img.tags.map((t) => (
                <tr key={`${t.repository}:${t.tag}`}>
                  <td className="mono">{t.repository}</td>
                  <td className="mono">{t.tag}</td>
                  <td className="mono">{t.digest ?? "<none>"}</td>
                </tr>
              ))}
              {img.tags.length === 0 && <EmptyRow cols={3}>Untagged (dangling).</EmptyRow>}
            </tbody>
          </table>

          <h2 style={{ fontSize: 17 }}>History</h2>
          {!online && <p className="muted">The node is offline: the history is read from it when it is back.</p>}
          <ErrorBox error={history.error} />
          {history.data && (
            <table data-testid="image-history">
              <thead>
                <tr>
                  <th>Layer</th>
                  <th>Created</th>
                  <th>Created by</th>
                  <th className="num">Size</th>
                </tr>
              </thead>
              <tbody>
                {history.data.items.map((h, i) => (
                  <tr key={i}>
                    <td className="mono">{h.id && h.id !== "<missing>" ? shortId(h.id) : <span className="muted">&lt;missing&gt;</span>}</td>
                    <td>{h.created ? ago(h.created * 1000) : "—"}</td>
                    <td className="mono" style={{ maxWidth: 620, overflowWrap: "anywhere" }}>
                      {h.createdBy}
                    </td>
                    <td className="num">{bytes(h.size)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}

          <h2 style={{ fontSize: 17 }}>Containers using it on {img.node.name}</h2>
          <table data-testid="image-containers">
            <thead>
              <tr>
                <th>Name</th>
                <th>ID</th>
                <th>State</th>
              </tr>
            </thead>
            <tbody>
              {img.containers.map((c) => (
                <tr key={c.id} data-container={c.name}>
                  <td>{c.name}</td>
                  <td className="mono">{c.id.slice(0, 12)}</td>
                  <td>
                    <Badge kind={c.state}>{c.state}</Badge> <span className="muted">{c.status}</span>
                  </td>
                </tr>
              ))}
              {img.containers.length === 0 && <EmptyRow cols={3}>No container uses it here.</EmptyRow>}
            </tbody>
          </table>

          <h2 style={{ fontSize: 17 }}>Nodes holding it</h2>
          <ul data-testid="image-nodes">
            {img.nodes.map((n) => (
              <li key={n.id}>
                {n.id === nodeId ? (
                  <NodeName node={n} />
                ) : (
                  <Link href={`/images/${n.id}/${encodeURIComponent(img.id)}`}>{`${n.name} · ${n.shortId}${n.address ? ` · ${n.address}` : ""}`}</Link>
                )}{" "}
                {!n.online && <LastKnown asOf={n.asOf} />}
              </li>
            ))}
          </ul>
        </>
      )}
      {!img && !image.error && <p className="muted">Loading…</p>}
    </>
  );
}
