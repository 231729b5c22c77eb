"use client";
import { useState, type FormEvent } from "react";
import { trpc, type RouterOutputs } from "../../../lib/trpc.ts";
import { Badge, EmptyRow, ErrorBox, Field } from "../../../components/ui.tsx";
import { ConfirmButton, NodeGroupOptions, OneTimeSecret, when } from "../../../components/admin-ui.tsx";

type Issued = RouterOutputs["admin"]["tokens"]["create"];

export default function TokensPage() {
  const tokens = trpc.admin.tokens.list.useQuery();
  const groups = trpc.admin.groups.list.useQuery();
  const utils = trpc.useUtils();
  const refresh = () => void utils.admin.tokens.invalidate();
  const [issued, setIssued] = useState<Issued | null>(null);
  const create = trpc.admin.tokens.create.useMutation({ onSuccess: (r) => (refresh(), setIssued(r), setNote("")) });
  const revoke = trpc.admin.tokens.revoke.useMutation({ onSuccess: refresh });
  const [note, setNote] = useState("");
  const [groupId, setGroupId] = useState("");
  const [ttl, setTtl] = useState("24");

  function submit(e: FormEvent) {
    e.preventDefault();
    create.mutate({ note, nodeGroupId: groupId || null, ttlHours: Number(ttl) });
  }

  return (
    <>
      <h1>Join tokens</h1>
      <p className="muted">A join token enrolls one node, once, before it expires. Only its hash is kept: the token is shown once, right after it is made.</p>
      <form className="panel" onSubmit={submit} aria-label="new join token">
        <div className="grid2">
          <Field label="Note">
            <input id="token-note" value={note} onChange={(e) => setNote(e.target.value)} placeholder="e.g. rack 4, web-07" style={{ width: "100%" }} />
          </Field>
          <Field label="Node group the node joins">
            <select id="token-group" value={groupId} onChange={(e) => setGroupId(e.target.value)}>
              <NodeGroupOptions groups={groups.data} />
            </select>
          </Field>
          <Field label="Valid for (hours, 1 to 168)">
            <input id="token-ttl" type="number" min={1} max={168} step={1} value={ttl} onChange={(e) => setTtl(e.target.value)} required />
          </Field>
        </div>
        <ErrorBox error={create.error} />
        <p>
          <button className="primary" type="submit" disabled={create.isPending}>
            Create join token
          </button>
        </p>
      </form>

      {issued && (
        <OneTimeSecret title="New join token" testId="join-token" value={issued.token} onDismiss={() => setIssued(null)}>
          <p className="muted">Valid until {when(issued.expiresAt)}. On the new node, either run the agent with it:</p>
          <pre className="mono" data-testid="agent-command" style={{ whiteSpace: "pre-wrap", wordBreak: "break-all" }}>
            {issued.agentCommand}
          </pre>
          <p className="muted">or install the agent as a service and enroll in one step:</p>
          <pre className="mono" data-testid="install-command" style={{ whiteSpace: "pre-wrap", wordBreak: "break-all" }}>
            {issued.installCommand}
          </pre>
        </OneTimeSecret>
      )}

      <ErrorBox error={tokens.error ?? revoke.error} />
      <table data-testid="tokens">
        <thead>
          <tr>
            <th>Note</th>
            <th>Group</th>
            <th>Created by</th>
            <th>Created</th>
            <th>Expires</th>
            <th>Status</th>
            <th>Enrolled node</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          {tokens.data?.map((t) => (
            <tr key={t.id} data-token-note={t.note}>
              <td>{t.note || <span className="muted">—</span>}</td>
              <td>{t.group?.name ?? <span className="muted">none</span>}</td>
              <td>{t.createdBy ?? <span className="muted">—</span>}</td>
              <td>{when(t.createdAt)}</td>
              <td>{when(t.expiresAt)}</td>
              <td>
                <Badge kind={t.status === "used" ? "ok" : t.status === "expired" ? "bad" : "warn"}>{t.status}</Badge>
                {t.usedAt && <div className="muted">{when(t.usedAt)}</div>}
              </td>
              <td>{t.node?.name ?? <span className="muted">—</span>}</td>
              <td>
                {t.status !== "used" && (
                  <ConfirmButton label={`Revoke ${t.note || "token"}`} confirmLabel="Really revoke" onConfirm={() => revoke.mutate({ tokenId: t.id })} />
                )}
              </td>
            </tr>
          ))}
          {tokens.data?.length === 0 && <EmptyRow cols={8}>No join tokens.</EmptyRow>}
        </tbody>
      </table>
    </>
  );
}
