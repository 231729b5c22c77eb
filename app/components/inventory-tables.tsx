"use client";
// Volumes and networks: inventory tables across the fleet or on one node, with create,
// remove and prune for those who may operate.
import { useState, type ReactNode } from "react";
import { trpc } from "../lib/trpc.ts";
import { shortId } from "./format.ts";
import { NodeFilter } from "./node-picker.tsx";
import Link from "next/link";
import { NodeRefCell } from "./node-name.tsx";
import { useCan } from "./action-bar.tsx";
import { PruneButton } from "./prune-actions.tsx";
import { CreateNetworkButton, CreateVolumeButton, RemoveButton } from "./storage-forms.tsx";

/** Docker's networks every node has: they cannot be removed. */
const PREDEFINED_NETWORKS = new Set(["bridge", "host", "none"]);
import { Badge, EmptyRow, ErrorBox, PageFooter, useClampPage } from "./ui.tsx";

const PAGE_SIZE = 50;

function usePaging(fixedNodeId: string | undefined) {
  const [search, setSearch] = useState("");
  const [nodeFilter, setNodeFilter] = useState("");
  const [page, setPage] = useState(1);
  const nodeId = fixedNodeId ?? nodeFilter;
  return {
    search,
    nodeFilter,
    page,
    setPage,
    setSearch: (v: string) => {
      setSearch(v);
      setPage(1);
    },
    setNodeFilter: (v: string) => {
      setNodeFilter(v);
      setPage(1);
    },
    input: { page, pageSize: PAGE_SIZE, ...(search.trim() ? { search: search.trim() } : {}), ...(nodeId ? { nodeId } : {}) },
  };
}

function Frame(props: {
  what: string;
  placeholder: string;
  fixedNodeId: string | undefined;
  paging: ReturnType<typeof usePaging>;
  data: { total: number; page: number; pages: number; items: unknown[] } | undefined;
  error: { message: string } | null;
  head: ReactNode;
  cols: number;
  children: ReactNode;
  actions?: ReactNode;
}) {
  const { paging: p, data } = props;
  useClampPage(data?.pages, p.page, p.setPage);
  return (
    <>
      <div className="row panel">
        <input
          placeholder={props.placeholder}
          value={p.search}
          onChange={(e) => p.setSearch(e.target.value)}
          style={{ flex: 1, minWidth: 200 }}
          aria-label={`search ${props.what}`}
        />
        {!props.fixedNodeId && <NodeFilter value={p.nodeFilter} onChange={p.setNodeFilter} />}
        {props.actions}
      </div>
      <ErrorBox error={props.error} />
      <table data-testid={props.what}>
        <thead>{props.head}</thead>
        <tbody>
          {props.children}
          {data && data.items.length === 0 && (
            <EmptyRow cols={props.cols}>
              No {props.what}
              {p.search || p.nodeFilter ? " match" : ""}.
            </EmptyRow>
          )}
        </tbody>
      </table>
      <PageFooter data={data} onPage={p.setPage} />
    </>
  );
}

const NodeCell = NodeRefCell;

export function VolumesTable({ nodeId }: { nodeId?: string }) {
  const can = useCan();
  const paging = usePaging(nodeId);
  const q = trpc.inventory.volumes.useQuery(paging.input, { placeholderData: (p) => p });
  return (
    <Frame
      what="volumes"
      placeholder="Search volumes (name, driver, node)"
      fixedNodeId={nodeId}
      paging={paging}
      data={q.data}
      error={q.error}
      cols={(nodeId ? 4 : 5) + (can.operate ? 1 : 0)}
      actions={
        can.operate && (
          <>
            <CreateVolumeButton nodeId={nodeId} />
            <PruneButton kind="volumes" {...(nodeId ? { nodeIds: [nodeId], nodesText: "on this node" } : {})} />
          </>
        )
      }
      head={
        <tr>
          <th>Name</th>
          <th>Driver</th>
          <th>Mount point</th>
          {!nodeId && <th>Node</th>}
          <th>Created</th>
          {can.operate && <th />}
        </tr>
      }
    >
      {q.data?.items.map((v) => (
        <tr key={`${v.node.id}|${v.name}`} data-volume={v.name}>
          <td className="mono">
            <Link href={`/volumes/${v.node.id}/${encodeURIComponent(v.name)}`} title={v.name}>
              {v.anonymous ? shortId(v.name) : v.name}
            </Link>{" "}
            {v.anonymous && <Badge>anonymous</Badge>}
          </td>
          <td>{v.driver}</td>
          <td className="mono muted">{v.mountpoint}</td>
          {!nodeId && <NodeCell node={v.node} />}
          <td>{v.createdAt ? new Date(v.createdAt).toLocaleString() : "—"}</td>
          {can.operate && (
            <td>
              <RemoveButton kind="volume" nodeId={v.node.id} nodeName={v.node.name} id={v.name} name={v.anonymous ? shortId(v.name) : v.name} />
            </td>
          )}
        </tr>
      ))}
    </Frame>
  );
}

export function NetworksTable({ nodeId }: { nodeId?: string }) {
  const can = useCan();
  const paging = usePaging(nodeId);
  const q = trpc.inventory.networks.useQuery(paging.input, { placeholderData: (p) => p });
  return (
    <Frame
      what="networks"
      placeholder="Search networks (name, ID, driver, subnet, node)"
      fixedNodeId={nodeId}
      paging={paging}
      data={q.data}
      error={q.error}
      cols={(nodeId ? 6 : 7) + (can.operate ? 1 : 0)}
      actions={
        can.operate && (
          <>
            <CreateNetworkButton nodeId={nodeId} />
            <PruneButton kind="networks" {...(nodeId ? { nodeIds: [nodeId], nodesText: "on this node" } : {})} />
          </>
        )
      }
      head={
        <tr>
          <th>Name</th>
          <th>ID</th>
          <th>Driver</th>
          <th>Subnet / gateway</th>
          <th className="num">Containers</th>
          {!nodeId && <th>Node</th>}
          <th>Created</th>
          {can.operate && <th />}
        </tr>
      }
    >
      {q.data?.items.map((n) => (
        <tr key={`${n.node.id}|${n.id}`} data-network={n.name}>
          <td>
            {n.name} {n.internal && <Badge>internal</Badge>}
          </td>
          <td className="mono" title={n.id}>
            {shortId(n.id)}
          </td>
          <td>{n.driver}</td>
          <td className="mono">
            {n.subnet ?? "—"}
            {n.gateway ? <span className="muted"> via {n.gateway}</span> : null}
          </td>
          <td className="num">{n.containers.length}</td>
          {!nodeId && <NodeCell node={n.node} />}
          <td>{n.created ? new Date(n.created).toLocaleString() : "—"}</td>
          {can.operate && (
            <td>{!PREDEFINED_NETWORKS.has(n.name) && <RemoveButton kind="network" nodeId={n.node.id} nodeName={n.node.name} id={n.id} name={n.name} />}</td>
          )}
        </tr>
      ))}
    </Frame>
  );
}
