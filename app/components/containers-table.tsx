"use client";
// The container inventory, across the fleet or on one node (`nodeId`), with lifecycle
// buttons per row and for a selection; a click on a row opens the container's page.
// Lifecycle actions stay on the page: the rows change live as the nodes report, a
// pending action shows on its row, and the outcome arrives as a toast.
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useEffect, useState, type MouseEvent } from "react";
import { containerStatusText } from "../../shared/container-status-text.ts";
import { trpc, type RouterOutputs } from "../lib/trpc.ts";
import { useCan } from "./action-bar.tsx";
import { ACTIONS, actionLabel, ContainerButtons, STATES, useContainerActions, type State, type Target } from "./container-actions.tsx";
import { ago, ports, shortId } from "./format.ts";
import { NodeFilter } from "./node-picker.tsx";
import { NodeRefCell } from "./node-name.tsx";
import { containerKey, usePending } from "./toasts.tsx";
import { Badge, EmptyRow, ErrorBox, PageFooter, useClampPage } from "./ui.tsx";

const PAGE_SIZE = 50;

type Container = RouterOutputs["inventory"]["containers"]["items"][number];

/** The page of a container. */
export const containerHref = (nodeId: string, id: string) => `/containers/${nodeId}/${id}`;

/** Re-renders every 30 s so "Up 3 minutes" keeps counting without a refetch. */
export function useClock(ms = 30_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

const keyOf = (c: { node: { id: string }; id: string }) => `${c.node.id}|${c.id}`;

export function ContainersTable({ nodeId: fixedNodeId }: { nodeId?: string }) {
  const can = useCan();
  const now = useClock();
  const router = useRouter();
  const pending = usePending();
  const [search, setSearch] = useState("");
  const [state, setState] = useState<"" | State>("");
  const [nodeFilter, setNodeFilter] = useState("");
  const [page, setPage] = useState(1);
  const [selected, setSelected] = useState<Map<string, Target>>(new Map());
  const nodeId = fixedNodeId ?? nodeFilter;
  const containers = trpc.inventory.containers.useQuery(
    { page, pageSize: PAGE_SIZE, ...(search.trim() ? { search: search.trim() } : {}), ...(nodeId ? { nodeId } : {}), ...(state ? { state } : {}) },
    { placeholderData: (p) => p },
  );
  const data = containers.data;
  useClampPage(data?.pages, page, setPage);
  const actions = useContainerActions();

  const reset =
    <T,>(set: (v: T) => void) =>
    (v: T) => {
      set(v);
      setPage(1);
    };
  const items = data?.items ?? [];
  const allSelected = items.length > 0 && items.every((c) => selected.has(keyOf(c)));
  const targetOf = (c: Container): Target => ({ nodeId: c.node.id, id: c.id, name: c.name, state: c.state });
  const toggle = (c: Container, on: boolean) =>
    setSelected((prev) => {
      const next = new Map(prev);
      if (on) next.set(keyOf(c), targetOf(c));
      else next.delete(keyOf(c));
      return next;
    });
  // The whole row opens the container, except where a click means something else (buttons, boxes, links).
  const openRow = (e: MouseEvent, c: Container) => {
    if ((e.target as HTMLElement).closest("button, input, a, label, select")) return;
    router.push(containerHref(c.node.id, c.id));
  };
  const cols = (can.operate ? 2 : 0) + (fixedNodeId ? 5 : 6);
  // The selection's latest states, for what the confirmation says.
  const selection = [...selected.values()].map((t) => {
    const c = items.find((i) => keyOf(i) === `${t.nodeId}|${t.id}`);
    return c ? targetOf(c) : t;
  });

  return (
    <>
      <div className="row panel">
        <input
          placeholder="Search containers (name, ID, image, command, node)"
          value={search}
          onChange={(e) => reset(setSearch)(e.target.value)}
          style={{ flex: 1, minWidth: 200 }}
          aria-label="search containers"
        />
        <select value={state} onChange={(e) => reset(setState)(e.target.value as typeof state)} aria-label="state">
          <option value="">any state</option>
          {STATES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        {!fixedNodeId && <NodeFilter value={nodeFilter} onChange={reset(setNodeFilter)} />}
      </div>
      {can.operate && selected.size > 0 && (
        <div className="panel row" data-testid="selection-actions" aria-label="actions on the selected containers">
          <span>
            {selected.size} selected (
            {selection
              .map((s) => s.name)
              .slice(0, 5)
              .join(", ")}
            {selected.size > 5 ? ", …" : ""}):
          </span>
          {ACTIONS.map((a) => (
            <button
              key={a}
              type="button"
              className={a === "remove" || a === "kill" ? "danger" : ""}
              disabled={actions.busy}
              onClick={() => {
                actions.request(a, selection);
                if (a !== "kill" && a !== "remove") setSelected(new Map());
              }}
            >
              {actionLabel(a)}
            </button>
          ))}
          <button type="button" onClick={() => setSelected(new Map())}>
            Clear selection
          </button>
        </div>
      )}
      {actions.dialog}
      <ErrorBox error={containers.error} />
      <table data-testid="containers">
        <thead>
          <tr>
            {can.operate && (
              <th>
                <input
                  type="checkbox"
                  aria-label="select every container on this page"
                  checked={allSelected}
                  onChange={(e) => items.forEach((c) => toggle(c, e.target.checked))}
                />
              </th>
            )}
            <th>Name</th>
            <th>Image</th>
            <th>State / status</th>
            <th>Ports</th>
            {!fixedNodeId && <th>Node</th>}
            <th>Created</th>
            {can.operate && <th>Actions</th>}
          </tr>
        </thead>
        <tbody>
          {items.map((c) => {
            const p = pending.get(containerKey(c.node.id, c.id));
            return (
              <tr
                key={keyOf(c)}
                data-container={c.name}
                data-state={c.state}
                data-pending={p?.action}
                onClick={(e) => openRow(e, c)}
                style={{ cursor: "pointer" }}
                className="clickable"
              >
                {can.operate && (
                  <td>
                    <input type="checkbox" aria-label={`select ${c.name}`} checked={selected.has(keyOf(c))} onChange={(e) => toggle(c, e.target.checked)} />
                  </td>
                )}
                <td>
                  <Link href={containerHref(c.node.id, c.id)} title="details, stats, logs and terminal">
                    {c.name}
                  </Link>
                  <div className="muted mono" title={c.command}>
                    {shortId(c.id)}
                  </div>
                </td>
                <td className="mono">{c.image}</td>
                <td className="muted">
                  {/* The status text stays a bare text node beside the badge, so the state word ("exited") is one element of the row even though "Exited (0) …" repeats it. */}
                  <Badge kind={c.state}>{c.state}</Badge> {containerStatusText(c, now)}
                </td>
                <td className="mono">{ports(c.ports) || <span className="muted">—</span>}</td>
                {!fixedNodeId && <NodeRefCell node={c.node} />}
                <td>{ago(c.created * 1000, now)}</td>
                {can.operate && (
                  <td>
                    <ContainerButtons target={targetOf(c)} request={actions.request} busy={actions.busy} />
                  </td>
                )}
              </tr>
            );
          })}
          {data && items.length === 0 && <EmptyRow cols={cols}>No containers{search || state || nodeFilter ? " match" : ""}.</EmptyRow>}
        </tbody>
      </table>
      <PageFooter data={data} onPage={setPage} />
    </>
  );
}
