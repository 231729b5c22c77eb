"use client";
// The container inventory, across the fleet or on one node (`nodeId`), with lifecycle
// buttons per row and for a selection, and a panel with a container's details and logs.
// Lifecycle actions stay on the page: the rows change live as the nodes report.
import Link from "next/link";
import { useEffect, useId, useState } from "react";
import { containerStatusText } from "../../shared/container-status-text.ts";
import { trpc, type RouterOutputs } from "../lib/trpc.ts";
import { ApiError, JobNotice, useCan } from "./action-bar.tsx";
import { ContainerTerminal } from "./terminal.tsx";
import { LiveLogs } from "./live-logs.tsx";
import { ago, ports, shortId } from "./format.ts";
import { NodeFilter } from "./node-picker.tsx";
import { NodeRefCell } from "./node-name.tsx";
import { Badge, EmptyRow, ErrorBox, PageFooter, useClampPage } from "./ui.tsx";

const PAGE_SIZE = 50;
const STATES = ["created", "running", "paused", "restarting", "removing", "exited", "dead"] as const;
type State = (typeof STATES)[number];
export type Lifecycle = "start" | "stop" | "restart" | "pause" | "unpause" | "kill" | "remove";
const ACTIONS: readonly Lifecycle[] = ["start", "stop", "restart", "pause", "unpause", "kill", "remove"];
const label = (a: Lifecycle) => a[0]!.toUpperCase() + a.slice(1);

type Container = RouterOutputs["inventory"]["containers"]["items"][number];

/** The actions that make sense in a state (the engine would refuse the others). */
function actionsFor(state: State): Lifecycle[] {
  switch (state) {
    case "running":
      return ["stop", "restart", "pause", "kill", "remove"];
    case "paused":
      return ["unpause", "stop", "kill", "remove"];
    case "restarting":
      return ["stop", "kill", "remove"];
    case "removing":
      return [];
    default:
      return ["start", "remove"];
  }
}

/** Re-renders every 30 s so "Up 3 minutes" keeps counting without a refetch. */
function useClock(ms = 30_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

const keyOf = (c: { node: { id: string }; id: string }) => `${c.node.id}|${c.id}`;

/**
 * The targets as jobs that hold at most one container per node: a job has one step per
 * node and stage (job_steps is unique on job, node and seq), and stages would make one
 * container's failure skip the others. Round k holds the k-th container of every node.
 */
export function ContainersTable({ nodeId: fixedNodeId }: { nodeId?: string }) {
  const can = useCan();
  const now = useClock();
  const uid = useId();
  const [search, setSearch] = useState("");
  const [state, setState] = useState<"" | State>("");
  const [nodeFilter, setNodeFilter] = useState("");
  const [page, setPage] = useState(1);
  const [selected, setSelected] = useState<Map<string, { nodeId: string; id: string; name: string }>>(new Map());
  const [force, setForce] = useState(false);
  const [open, setOpen] = useState<{ nodeId: string; id: string } | null>(null);
  const [notice, setNotice] = useState<{ jobIds: string[]; text: string } | null>(null);
  const nodeId = fixedNodeId ?? nodeFilter;
  const containers = trpc.inventory.containers.useQuery(
    { page, pageSize: PAGE_SIZE, ...(search.trim() ? { search: search.trim() } : {}), ...(nodeId ? { nodeId } : {}), ...(state ? { state } : {}) },
    { placeholderData: (p) => p },
  );
  const data = containers.data;
  useClampPage(data?.pages, page, setPage);

  const lifecycle = trpc.jobs.container.useMutation();
  const run = async (action: Lifecycle, targets: Array<{ nodeId: string; id: string }>) => {
    const jobIds: string[] = [];
    try {
      jobIds.push((await lifecycle.mutateAsync({ action, targets, ...(action === "remove" ? { force } : {}) })).jobId);
    } catch {
      // lifecycle.error shows why; the jobs already started still get their notice
    }
    if (jobIds.length) {
      setNotice({ jobIds, text: `${label(action)} started on ${targets.length} container${targets.length === 1 ? "" : "s"}.` });
      setSelected(new Map());
    }
  };

  const reset = <T,>(set: (v: T) => void) => (v: T) => {
    set(v);
    setPage(1);
  };
  const items = data?.items ?? [];
  const allSelected = items.length > 0 && items.every((c) => selected.has(keyOf(c)));
  const toggle = (c: Container, on: boolean) =>
    setSelected((prev) => {
      const next = new Map(prev);
      if (on) next.set(keyOf(c), { nodeId: c.node.id, id: c.id, name: c.name });
      else next.delete(keyOf(c));
      return next;
    });
  const openContainer = open ? items.find((c) => c.node.id === open.nodeId && c.id === open.id) : undefined;
  const cols = (can.operate ? 2 : 0) + (fixedNodeId ? 5 : 6);

  return (
    <>
      <div className="row panel">
        <input placeholder="Search containers (name, ID, image, command, node)" value={search} onChange={(e) => reset(setSearch)(e.target.value)} style={{ flex: 1, minWidth: 200 }} aria-label="search containers" />
        <select value={state} onChange={(e) => reset(setState)(e.target.value as typeof state)} aria-label="state">
          <option value="">any state</option>
          {STATES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        {!fixedNodeId && <NodeFilter value={nodeFilter} onChange={reset(setNodeFilter)} />}
        {can.operate && (
          <span className="row" style={{ gap: 4 }}>
            <input id={`${uid}-force`} type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} />
            <label htmlFor={`${uid}-force`} style={{ margin: 0, fontWeight: 400 }}>
              force remove
            </label>
          </span>
        )}
      </div>
      {can.operate && selected.size > 0 && (
        <div className="panel row" data-testid="selection-actions" aria-label="actions on the selected containers">
          <span>
            {selected.size} selected ({[...selected.values()].map((s) => s.name).slice(0, 5).join(", ")}
            {selected.size > 5 ? ", …" : ""}):
          </span>
          {ACTIONS.map((a) => (
            <button key={a} type="button" className={a === "remove" || a === "kill" ? "danger" : ""} disabled={lifecycle.isPending} onClick={() => void run(a, [...selected.values()].map(({ nodeId, id }) => ({ nodeId, id })))}>
              {label(a)}
            </button>
          ))}
          <button type="button" onClick={() => setSelected(new Map())}>
            Clear selection
          </button>
        </div>
      )}
      {notice && (
        <JobNotice jobIds={notice.jobIds} onClose={() => setNotice(null)}>
          {notice.text}
        </JobNotice>
      )}
      <ApiError error={lifecycle.error} />
      <ErrorBox error={containers.error} />
      <table data-testid="containers">
        <thead>
          <tr>
            {can.operate && (
              <th>
                <input type="checkbox" aria-label="select every container on this page" checked={allSelected} onChange={(e) => items.forEach((c) => toggle(c, e.target.checked))} />
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
          {items.map((c) => (
            <tr key={keyOf(c)} data-container={c.name} data-state={c.state}>
              {can.operate && (
                <td>
                  <input type="checkbox" aria-label={`select ${c.name}`} checked={selected.has(keyOf(c))} onChange={(e) => toggle(c, e.target.checked)} />
                </td>
              )}
              <td>
                <button
                  type="button"
                  title="details and logs"
                  onClick={() => setOpen(open && open.id === c.id && open.nodeId === c.node.id ? null : { nodeId: c.node.id, id: c.id })}
                  style={{ padding: 0, border: 0, background: "none", color: "var(--accent)" }}
                  aria-expanded={open?.id === c.id && open.nodeId === c.node.id}
                >
                  {c.name}
                </button>
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
                  <div className="row" style={{ gap: 4, flexWrap: "nowrap" }}>
                    {actionsFor(c.state).map((a) => (
                      <button key={a} type="button" className={a === "remove" || a === "kill" ? "danger" : ""} disabled={lifecycle.isPending} onClick={() => void run(a, [{ nodeId: c.node.id, id: c.id }])}>
                        {label(a)}
                      </button>
                    ))}
                  </div>
                </td>
              )}
            </tr>
          ))}
          {data && items.length === 0 && (
            <EmptyRow cols={cols}>No containers{search || state || nodeFilter ? " match" : ""}.</EmptyRow>
          )}
        </tbody>
      </table>
      <PageFooter data={data} onPage={setPage} />
      {open && <ContainerPanel container={openContainer} nodeId={open.nodeId} id={open.id} now={now} onClose={() => setOpen(null)} />}
    </>
  );
}

/** A container's facts and its last log lines, read from its node on demand. */
export function ContainerPanel({ container: c, nodeId, id, now, onClose }: { container: Container | undefined; nodeId: string; id: string; now: number; onClose: () => void }) {
  const [tail, setTail] = useState(200);
  const can = useCan();
  const [terminal, setTerminal] = useState(false);
  const [follow, setFollow] = useState(false);
  const logs = trpc.inventory.containerLogs.useQuery({ nodeId, id, tail }, { staleTime: Infinity, refetchOnWindowFocus: false, retry: false });
  return (
    <section className="panel" style={{ marginTop: 16 }} aria-label="container details" data-testid="container-panel">
      <div className="row" style={{ justifyContent: "space-between" }}>
        <h2 style={{ margin: 0, fontSize: 17 }}>{c?.name ?? shortId(id)}</h2>
        <button type="button" onClick={onClose}>
          Close
        </button>
      </div>
      {c ? (
        <table style={{ margin: "8px 0" }}>
          <tbody>
            <tr><th>ID</th><td className="mono">{c.id}</td></tr>
            <tr><th>Node</th><td><Link href={`/nodes/${c.node.id}`}>{c.node.name}</Link></td></tr>
            <tr><th>Image</th><td className="mono">{c.image} <span className="muted">{shortId(c.imageId)}</span></td></tr>
            <tr><th>Command</th><td className="mono">{c.command}</td></tr>
            <tr><th>State</th><td><Badge kind={c.state}>{c.state}</Badge> {containerStatusText(c, now)}{c.restartCount ? ` · restarted ${c.restartCount}×` : ""}</td></tr>
            <tr><th>Ports</th><td className="mono">{ports(c.ports) || "—"}</td></tr>
          </tbody>
        </table>
      ) : (
        <p className="muted">This container is no longer in the inventory (removed, or on another page).</p>
      )}
      {can.exec && c?.state === "running" && !terminal && (
        <p>
          <button type="button" onClick={() => setTerminal(true)}>
            Open terminal
          </button>
        </p>
      )}
      {terminal && <ContainerTerminal nodeId={nodeId} containerId={id} onClose={() => setTerminal(false)} />}
      <div className="row">
        <b>Logs</b>
        <label htmlFor="log-tail" style={{ margin: 0, fontWeight: 400 }}>
          last lines
        </label>
        <select id="log-tail" value={tail} onChange={(e) => setTail(Number(e.target.value))}>
          {[50, 200, 1000, 5000].map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
        <button type="button" onClick={() => void logs.refetch()} disabled={logs.isFetching || follow}>
          Refresh
        </button>
        <label style={{ margin: 0, fontWeight: 400 }}>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow
        </label>
        {logs.isFetching && <span className="muted">reading…</span>}
        {logs.data?.truncated && <span className="muted">(earlier lines left out)</span>}
      </div>
      {follow && <LiveLogs nodeId={nodeId} containerId={id} tail={tail} />}
      {!follow && <ErrorBox error={logs.error} />}
      {!follow && logs.data && (
        <pre className="logs" data-testid="logs">
          {logs.data.lines.length === 0 ? "(no output)" : logs.data.lines.map((l) => (l.stream === "stderr" ? `[err] ${l.text}` : l.text)).join("")}
        </pre>
      )}
    </section>
  );
}
