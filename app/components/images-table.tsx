"use client";
// The image inventory, across the fleet or on one node (`nodeId`), with the image actions
// for those who may operate. Searching, filtering and paging happen on the server.
import { useState } from "react";
import Link from "next/link";
import { trpc } from "../lib/trpc.ts";
import { useCan } from "./action-bar.tsx";
import { ago, bytes, shortId } from "./format.ts";
import { ImageActionDialog, type ImageAction } from "./image-actions.tsx";
import { NodeFilter } from "./node-picker.tsx";
import { LastKnown, NodeName } from "./node-name.tsx";
import { EmptyRow, ErrorBox, PageFooter, useClampPage } from "./ui.tsx";

const PAGE_SIZE = 50;

export function ImagesTable({ nodeId: fixedNodeId }: { nodeId?: string }) {
  const can = useCan();
  const [search, setSearch] = useState("");
  const [nodeFilter, setNodeFilter] = useState("");
  const [digest, setDigest] = useState("");
  const [page, setPage] = useState(1);
  const [action, setAction] = useState<ImageAction | null>(null);
  const nodeId = fixedNodeId ?? nodeFilter;
  const images = trpc.inventory.images.useQuery(
    { page, pageSize: PAGE_SIZE, ...(search.trim() ? { search: search.trim() } : {}), ...(nodeId ? { nodeId } : {}), ...(digest ? { digest } : {}) },
    { placeholderData: (p) => p },
  );
  const data = images.data;
  useClampPage(data?.pages, page, setPage);
  const reset =
    <T,>(set: (v: T) => void) =>
    (v: T) => {
      set(v);
      setPage(1);
    };
  const here = fixedNodeId ? [fixedNodeId] : undefined;

  return (
    <>
      <div className="row panel">
        <input
          placeholder="Search images (repository, tag, ID, digest)"
          value={search}
          onChange={(e) => reset(setSearch)(e.target.value)}
          style={{ flex: 1, minWidth: 200 }}
          aria-label="search images"
        />
        {!fixedNodeId && <NodeFilter value={nodeFilter} onChange={reset(setNodeFilter)} />}
        {can.operate && (
          <>
            <button type="button" className="primary" onClick={() => setAction({ kind: "pull", ...(here ? { nodeIds: here } : {}) })}>
              Pull
            </button>
            <button type="button" onClick={() => setAction({ kind: "distribute", ...(fixedNodeId ? { sourceNodeId: fixedNodeId } : {}) })}>
              Distribute
            </button>
            <button type="button" onClick={() => setAction({ kind: "prune", ...(here ? { nodeIds: here } : {}) })}>
              Prune
            </button>
            <Link href="/images/build" className="button">
              Build
            </Link>
          </>
        )}
      </div>
      {digest && (
        <div className="panel row" data-testid="digest-filter">
          <span>
            Nodes holding digest <code>{digest}</code>: {data ? [...new Set(data.items.flatMap((i) => i.nodes.map((n) => n.name)))].join(", ") || "none" : "…"}
          </span>
          <button type="button" onClick={() => reset(setDigest)("")}>
            Clear digest filter
          </button>
        </div>
      )}
      <ErrorBox error={images.error} />
      <table data-testid="images">
        <thead>
          <tr>
            <th>Repository</th>
            <th>Tag</th>
            <th>Image ID</th>
            <th>Digest</th>
            <th className="num">Size</th>
            <th>Created</th>
            <th>Nodes</th>
            {can.operate && <th>Actions</th>}
          </tr>
        </thead>
        <tbody>
          {data?.items.map((img) => {
            const ref = img.repository === "<none>" ? img.id : `${img.repository}:${img.tag}`;
            const nodeIds = img.nodes.map((n) => n.id);
            return (
              <tr key={`${img.repository}:${img.tag}|${img.id}`} data-image={ref}>
                <td className="mono">{img.repository}</td>
                <td className="mono">{img.tag}</td>
                <td className="mono" title={img.id}>
                  {img.nodes[0] ? (
                    <Link href={`/images/${img.nodes.find((n) => n.online)?.id ?? img.nodes[0].id}/${encodeURIComponent(img.id)}`}>{shortId(img.id)}</Link>
                  ) : (
                    shortId(img.id)
                  )}
                </td>
                <td className="mono">
                  {img.digest ? (
                    <button
                      type="button"
                      className="mono"
                      title={`show the nodes holding ${img.digest}`}
                      onClick={() => reset(setDigest)(img.digest ?? "")}
                      style={{ padding: "0 4px", border: 0, color: "var(--accent)", background: "none" }}
                    >
                      {img.digest.slice(0, 19)}…
                    </button>
                  ) : (
                    <span className="muted">—</span>
                  )}
                </td>
                <td className="num">{bytes(img.size)}</td>
                <td>{ago(img.created * 1000)}</td>
                <td>
                  {img.nodes.map((n, i) => (
                    <span key={n.id}>
                      {i > 0 && ", "}
                      <NodeName node={n} muted={!n.online} />
                      {!n.online && <LastKnown asOf={n.asOf} />}
                    </span>
                  ))}
                </td>
                {can.operate && (
                  <td>
                    <div className="row" style={{ gap: 4 }}>
                      <button type="button" onClick={() => setAction({ kind: "tag", source: ref, nodeIds })}>
                        Tag
                      </button>
                      <button type="button" onClick={() => setAction({ kind: "push", reference: ref, nodeIds })} disabled={img.repository === "<none>"}>
                        Push
                      </button>
                      <button
                        type="button"
                        onClick={() => setAction({ kind: "distribute", reference: ref, ...(nodeIds[0] ? { sourceNodeId: nodeIds[0] } : {}) })}
                        disabled={img.repository === "<none>"}
                      >
                        Distribute
                      </button>
                      <button type="button" className="danger" onClick={() => setAction({ kind: "remove", reference: ref, nodeIds })}>
                        Remove
                      </button>
                    </div>
                  </td>
                )}
              </tr>
            );
          })}
          {data && data.items.length === 0 && <EmptyRow cols={can.operate ? 8 : 7}>No images{search || nodeFilter || digest ? " match" : ""}.</EmptyRow>}
        </tbody>
      </table>
      <PageFooter data={data} onPage={setPage} />
      {action && <ImageActionDialog action={action} onClose={() => setAction(null)} />}
    </>
  );
}
