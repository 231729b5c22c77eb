"use client";
import { useState } from "react";
import { trpc, type RouterOutputs } from "../../../lib/trpc.ts";
import { ErrorBox } from "../../../components/ui.tsx";
import { ChooseAndAddForm, ConfirmButton, CreateByNameForm } from "../../../components/admin-ui.tsx";

type Team = RouterOutputs["admin"]["teams"]["list"][number];

export default function TeamsPage() {
  const teams = trpc.admin.teams.list.useQuery();
  const users = trpc.admin.users.list.useQuery();
  const groups = trpc.admin.groups.list.useQuery();
  const utils = trpc.useUtils();
  // Memberships show on the users page too, grants on the groups page.
  const refresh = () => void utils.admin.invalidate();
  const create = trpc.admin.teams.create.useMutation({ onSuccess: refresh });

  return (
    <>
      <h1>Teams</h1>
      <p className="muted">A team&apos;s members act, with their own role, on the nodes of the node groups given to the team.</p>
      <CreateByNameForm
        id="team-name"
        ariaLabel="new team"
        label="Team name"
        button="Create team"
        pending={create.isPending}
        onCreate={(name, clear) => create.mutate({ name }, { onSuccess: clear })}
      />
      <ErrorBox error={create.error} />
      <ErrorBox error={teams.error ?? users.error ?? groups.error} />
      {teams.data?.map((t) => (
        <TeamPanel key={t.id} team={t} users={users.data ?? []} groups={groups.data ?? []} onChanged={refresh} />
      ))}
      {teams.data?.length === 0 && <p className="muted">No teams yet.</p>}
    </>
  );
}

function TeamPanel({
  team: t,
  users,
  groups,
  onChanged,
}: {
  team: Team;
  users: RouterOutputs["admin"]["users"]["list"];
  groups: RouterOutputs["admin"]["groups"]["list"];
  onChanged: () => void;
}) {
  const opts = { onSuccess: onChanged };
  const rename = trpc.admin.teams.rename.useMutation(opts);
  const del = trpc.admin.teams.delete.useMutation(opts);
  const addMember = trpc.admin.teams.addMember.useMutation(opts);
  const removeMember = trpc.admin.teams.removeMember.useMutation(opts);
  const grant = trpc.admin.teams.grantGroup.useMutation(opts);
  const revoke = trpc.admin.teams.revokeGroup.useMutation(opts);
  const [newName, setNewName] = useState(t.name);
  const error = rename.error ?? del.error ?? addMember.error ?? removeMember.error ?? grant.error ?? revoke.error;
  const nonMembers = users.filter((u) => !t.members.some((m) => m.id === u.id));
  const notGranted = groups.filter((g) => !t.groups.some((x) => x.id === g.id));
  const idp = `team-${t.id}`;

  return (
    <section className="panel" aria-label={`team ${t.name}`} data-team={t.name}>
      <div className="row" style={{ justifyContent: "space-between" }}>
        <h2 style={{ margin: 0, fontSize: 16 }}>{t.name}</h2>
        <form
          className="row"
          onSubmit={(e) => {
            e.preventDefault();
            rename.mutate({ teamId: t.id, name: newName });
          }}
        >
          <label htmlFor={`${idp}-rename`} style={{ margin: 0 }}>
            Rename {t.name} to
          </label>
          <input id={`${idp}-rename`} value={newName} onChange={(e) => setNewName(e.target.value)} required />
          <button type="submit" disabled={rename.isPending || newName.trim() === t.name}>
            Rename
          </button>
          <ConfirmButton label={`Delete team ${t.name}`} confirmLabel={`Really delete team ${t.name}`} onConfirm={() => del.mutate({ teamId: t.id })} />
        </form>
      </div>
      <ErrorBox error={error} />
      <div className="grid2">
        <div>
          <h3 style={{ fontSize: 14 }}>Members</h3>
          <table>
            <tbody>
              {t.members.map((m) => (
                <tr key={m.id}>
                  <td>{m.email}</td>
                  <td>
                    <span className="badge">{m.role}</span>
                    {m.disabled && <span className="badge bad">disabled</span>}
                  </td>
                  <td>
                    <button type="button" onClick={() => removeMember.mutate({ teamId: t.id, userId: m.id })} aria-label={`Remove ${m.email} from ${t.name}`}>
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
              {t.members.length === 0 && (
                <tr>
                  <td className="muted">No members.</td>
                </tr>
              )}
            </tbody>
          </table>
          <ChooseAndAddForm
            id={`${idp}-member`}
            label={`Add member to ${t.name}`}
            placeholder="choose a user…"
            options={nonMembers.map((u) => ({ value: u.id, label: u.email }))}
            button="Add member"
            pending={addMember.isPending}
            onAdd={(userId, clear) => addMember.mutate({ teamId: t.id, userId }, { onSuccess: clear })}
          />
        </div>
        <div>
          <h3 style={{ fontSize: 14 }}>Node groups</h3>
          <table>
            <tbody>
              {t.groups.map((g) => (
                <tr key={g.id}>
                  <td>{g.name}</td>
                  <td>
                    <button type="button" onClick={() => revoke.mutate({ teamId: t.id, nodeGroupId: g.id })} aria-label={`Take ${g.name} from ${t.name}`}>
                      Take away
                    </button>
                  </td>
                </tr>
              ))}
              {t.groups.length === 0 && (
                <tr>
                  <td className="muted">No node groups: the members see no nodes through this team.</td>
                </tr>
              )}
            </tbody>
          </table>
          <ChooseAndAddForm
            id={`${idp}-group`}
            label={`Give node group to ${t.name}`}
            placeholder="choose a node group…"
            options={notGranted.map((g) => ({ value: g.id, label: g.name }))}
            button="Give group"
            pending={grant.isPending}
            onAdd={(nodeGroupId, clear) => grant.mutate({ teamId: t.id, nodeGroupId }, { onSuccess: clear })}
          />
        </div>
      </div>
    </section>
  );
}
