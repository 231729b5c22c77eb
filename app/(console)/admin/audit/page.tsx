"use client";
import { useState } from "react";
import { nodeLabel } from "../../../components/node-name.tsx";
import { trpc } from "../../../lib/trpc.ts";
import { Badge, EmptyRow, ErrorBox, Pager, Field } from "../../../components/ui.tsx";
import { when } from "../../../components/admin-ui.tsx";

type Outcome = "" | "success" | "failure" | "denied";

/** A datetime-local value (the browser's time zone) as an ISO instant for the server. */
function toIso(local: string): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

export default function AuditPage() {
  const [actor, setActor] = useState("");
  const [action, setAction] = useState("");
  const [nodeId, setNodeId] = useState("");
  const [outcome, setOutcome] = useState<Outcome>("");
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [page, setPage] = useState(1);
  const pageSize = 50;
  const actions = trpc.admin.audit.actions.useQuery();
  const nodes = trpc.nodes.list.useQuery();
  const fromIso = toIso(from);
  const toIsoValue = toIso(to);
  const list = trpc.admin.audit.list.useQuery(
    {
      page,
      pageSize,
      ...(actor.trim() ? { actor: actor.trim() } : {}),
      ...(action.trim() ? { action: action.trim() } : {}),
      ...(nodeId ? { nodeId } : {}),
      ...(outcome ? { outcome } : {}),
      ...(fromIso ? { from: fromIso } : {}),
      ...(toIsoValue ? { to: toIsoValue } : {}),
    },
    { placeholderData: (p) => p },
  );
  const nodeName = new Map(nodes.data?.nodes.map((n) => [n.id, nodeLabel(n)]) ?? []);
  // Any filter change starts again from the first page.
  const set =
    <T,>(f: (v: T) => void) =>
    (v: T) => {
      f(v);
      setPage(1);
    };

  return (
    <>
      <h1>Audit log</h1>
      <div className="panel">
        <div className="row">
          <Field label="Actor (email contains)">
            <input id="audit-actor" value={actor} onChange={(e) => set(setActor)(e.target.value)} />
          </Field>
          <Field label="Action (starts with)">
            <input
              id="audit-action"
              list="audit-actions"
              value={action}
              onChange={(e) => set(setAction)(e.target.value)}
              placeholder="e.g. jobs. or admin.users."
            />
            <datalist id="audit-actions">
              {actions.data?.map((a) => (
                <option key={a} value={a} />
              ))}
            </datalist>
          </Field>
          <Field label="Node">
            <select id="audit-node" value={nodeId} onChange={(e) => set(setNodeId)(e.target.value)}>
              <option value="">any node</option>
              {nodes.data?.nodes.map((n) => (
                <option key={n.id} value={n.id}>
                  {nodeLabel(n)}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Outcome">
            <select id="audit-outcome" value={outcome} onChange={(e) => set(setOutcome)(e.target.value as Outcome)}>
              <option value="">any outcome</option>
              <option value="success">success</option>
              <option value="failure">failure</option>
              <option value="denied">denied</option>
            </select>
          </Field>
          <Field label="From">
            <input id="audit-from" type="datetime-local" value={from} onChange={(e) => set(setFrom)(e.target.value)} />
          </Field>
          <Field label="To">
            <input id="audit-to" type="datetime-local" value={to} onChange={(e) => set(setTo)(e.target.value)} />
          </Field>
        </div>
      </div>
      <ErrorBox error={list.error} />
      <table data-testid="audit">
        <thead>
          <tr>
            <th>When</th>
            <th>Actor</th>
            <th>Action</th>
            <th>Outcome</th>
            <th>Nodes</th>
            <th>IP</th>
            <th>Details</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.items.map((e) => (
            <tr key={e.id} data-action={e.action} data-outcome={e.outcome}>
              <td>{when(e.at)}</td>
              <td>{e.actor}</td>
              <td className="mono">{e.action}</td>
              <td>
                <Badge kind={e.outcome === "success" ? "ok" : e.outcome === "denied" ? "warn" : "bad"}>{e.outcome}</Badge>
              </td>
              <td>{e.nodeIds.length ? e.nodeIds.map((id) => nodeName.get(id) ?? id.slice(0, 8)).join(", ") : <span className="muted">—</span>}</td>
              <td className="mono">{e.ip ?? ""}</td>
              <td>
                <details>
                  <summary>{typeof e.details.error === "string" ? e.details.error : "details"}</summary>
                  <pre className="mono" style={{ whiteSpace: "pre-wrap", wordBreak: "break-all", maxWidth: 520 }}>
                    {JSON.stringify(e.details, null, 2)}
                  </pre>
                </details>
              </td>
            </tr>
          ))}
          {list.data?.items.length === 0 && <EmptyRow cols={7}>Nothing matches these filters.</EmptyRow>}
        </tbody>
      </table>
      {list.data && <Pager page={list.data.page} pages={list.data.pages} total={list.data.total} onPage={setPage} />}
    </>
  );
}
