"use client";
import { useState } from "react";
import { NodeName, nodeLabel } from "../../../components/node-name.tsx";
import { trpc, type RouterOutputs } from "../../../lib/trpc.ts";
import { Badge, EmptyRow, ErrorBox } from "../../../components/ui.tsx";
import { ConfirmButton, CreateByNameForm, NodeGroupOptions } from "../../../components/admin-ui.tsx";

type Group = RouterOutputs["admin"]["groups"]["list"][number];

export default function GroupsPage() {
  const groups = trpc.admin.groups.list.useQuery();
  const nodes = trpc.nodes.list.useQuery();
  const utils = trpc.useUtils();
  const refresh = () => {
    void utils.admin.invalidate();
    void utils.nodes.invalidate();
  };
  const create = trpc.admin.groups.create.useMutation({ onSuccess: refresh });
  const assign = trpc.nodes.update.useMutation({ onSuccess: refresh });

  return (
    <>
      <h1>Node groups</h1>
      <p className="muted">Teams are given node groups. A node in no group is reached by admins only.</p>
      <CreateByNameForm
        id="group-name"
        ariaLabel="new node group"
        label="Group name"
        button="Create group"
        pending={create.isPending}
        onCreate={(name, clear) => create.mutate({ name }, { onSuccess: clear })}
      />
      <ErrorBox error={create.error} />
      <ErrorBox error={groups.error} />
      <table data-testid="groups">
        <thead>
          <tr>
            <th>Group</th>
            <th className="num">Nodes</th>
            <th>Which</th>
            <th>Teams</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          {groups.data?.map((g) => (
            <GroupRow key={g.id} group={g} onChanged={refresh} />
          ))}
          {groups.data?.length === 0 && <EmptyRow cols={5}>No node groups yet.</EmptyRow>}
        </tbody>
      </table>

      <h2 style={{ fontSize: 16, marginTop: 24 }}>Nodes and their group</h2>
      <ErrorBox error={nodes.error ?? assign.error} />
      <table data-testid="node-groups">
        <thead>
          <tr>
            <th>Node</th>
            <th>Status</th>
            <th>Group</th>
          </tr>
        </thead>
        <tbody>
          {nodes.data?.nodes.map((n) => (
            <tr key={n.id} data-node={n.name}>
              <td>
                <NodeName node={n} /> <span className="muted mono">{n.hostname !== n.name ? `(${n.hostname})` : ""}</span>
              </td>
              <td>
                <Badge kind={n.revoked ? "revoked" : n.online ? "online" : "offline"}>{n.revoked ? "revoked" : n.online ? "online" : "offline"}</Badge>
              </td>
              <td>
                <select
                  aria-label={`group of ${nodeLabel(n)}`}
                  value={n.group?.id ?? ""}
                  disabled={assign.isPending}
                  onChange={(e) => assign.mutate({ nodeId: n.id, groupId: e.target.value || null })}
                >
                  <NodeGroupOptions groups={groups.data} />
                </select>
              </td>
            </tr>
          ))}
          {nodes.data?.nodes.length === 0 && <EmptyRow cols={3}>No nodes enrolled yet.</EmptyRow>}
        </tbody>
      </table>
    </>
  );
}

function GroupRow({ group: g, onChanged }: { group: Group; onChanged: () => void }) {
  const rename = trpc.admin.groups.rename.useMutation({ onSuccess: () => (onChanged(), setEditing(false)) });
  const del = trpc.admin.groups.delete.useMutation({ onSuccess: onChanged });
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(g.name);
  return (
    <tr data-group={g.name}>
      <td>
        {editing ? (
          <form
            className="row"
            onSubmit={(e) => {
              e.preventDefault();
              rename.mutate({ groupId: g.id, name });
            }}
          >
            <input aria-label={`new name of ${g.name}`} value={name} onChange={(e) => setName(e.target.value)} required />
            <button type="submit" disabled={rename.isPending}>
              Save name
            </button>
            <button type="button" onClick={() => setEditing(false)}>
              Cancel
            </button>
          </form>
        ) : (
          g.name
        )}
        <ErrorBox error={rename.error ?? del.error} />
      </td>
      <td className="num">{g.nodeCount}</td>
      <td>{g.nodes.length ? g.nodes.map((n) => nodeLabel(n)).join(", ") : <span className="muted">none</span>}</td>
      <td>{g.teams.length ? g.teams.map((t) => t.name).join(", ") : <span className="muted">none</span>}</td>
      <td>
        <div className="row">
          {!editing && (
            <button type="button" onClick={() => (setName(g.name), setEditing(true))} aria-label={`Rename ${g.name}`}>
              Rename
            </button>
          )}
          <ConfirmButton
            label={`Delete group ${g.name}`}
            confirmLabel={`Really delete ${g.name} (its ${g.nodeCount} nodes move to no group)`}
            onConfirm={() => del.mutate({ groupId: g.id })}
          />
        </div>
      </td>
    </tr>
  );
}
