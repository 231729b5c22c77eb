"use client";
import { useState, type FormEvent } from "react";
import { trpc, type RouterOutputs } from "../../../lib/trpc.ts";
import { Badge, EmptyRow, ErrorBox, Field } from "../../../components/ui.tsx";
import { ConfirmButton, OneTimeSecret, when } from "../../../components/admin-ui.tsx";

type Role = "admin" | "operator" | "viewer";
type User = RouterOutputs["admin"]["users"]["list"][number];
const ROLES: Role[] = ["admin", "operator", "viewer"];

export default function UsersPage() {
  const me = trpc.auth.me.useQuery();
  const users = trpc.admin.users.list.useQuery();
  const utils = trpc.useUtils();
  const refresh = () => void utils.admin.users.invalidate();
  const [secret, setSecret] = useState<{ email: string; password: string } | null>(null);

  const create = trpc.admin.users.create.useMutation({
    onSuccess: (r) => {
      refresh();
      if (r.oneTimePassword) setSecret({ email: r.email, password: r.oneTimePassword });
      setEmail("");
      setName("");
      setPassword("");
    },
  });
  const update = trpc.admin.users.update.useMutation({ onSuccess: refresh });
  const reset = trpc.admin.users.resetPassword.useMutation({ onSuccess: (r) => (refresh(), setSecret({ email: r.email, password: r.oneTimePassword })) });
  const remove = trpc.admin.users.delete.useMutation({ onSuccess: refresh });

  const [email, setEmail] = useState("");
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("viewer");
  const [password, setPassword] = useState("");

  function submit(e: FormEvent) {
    e.preventDefault();
    create.mutate({ email, name, role, ...(password ? { password } : {}) });
  }

  const rowError = update.error ?? reset.error ?? remove.error;
  return (
    <>
      <h1>Users</h1>
      <form className="panel" onSubmit={submit} aria-label="new user">
        <b>New user</b>
        <div className="grid2">
          <Field label="Email">
            <input id="user-email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} required style={{ width: "100%" }} />
          </Field>
          <Field label="Name">
            <input id="user-name" value={name} onChange={(e) => setName(e.target.value)} style={{ width: "100%" }} />
          </Field>
          <Field label="Role">
            <select id="user-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Initial password (empty: generate a one-time password)">
            <input
              id="user-password"
              type="password"
              autoComplete="new-password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              style={{ width: "100%" }}
            />
          </Field>
        </div>
        <p className="muted">The user must choose a new password at the first sign-in.</p>
        <ErrorBox error={create.error} />
        <button className="primary" type="submit" disabled={create.isPending}>
          Create user
        </button>
      </form>

      {secret && (
        <OneTimeSecret title={`One-time password for ${secret.email}`} testId="one-time-password" value={secret.password} onDismiss={() => setSecret(null)} />
      )}

      <ErrorBox error={users.error} />
      <ErrorBox error={rowError} />
      <table data-testid="users">
        <thead>
          <tr>
            <th>Email</th>
            <th>Name</th>
            <th>Role</th>
            <th>Status</th>
            <th>Teams</th>
            <th>Created</th>
            <th>Last sign-in</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          {users.data?.map((u) => (
            <UserRow
              key={u.id}
              user={u}
              self={u.id === me.data?.id}
              busy={update.isPending || reset.isPending || remove.isPending}
              onUpdate={(data) => update.mutate({ userId: u.id, ...data })}
              onReset={() => reset.mutate({ userId: u.id })}
              onDelete={() => remove.mutate({ userId: u.id })}
            />
          ))}
          {users.data?.length === 0 && <EmptyRow cols={8}>No users.</EmptyRow>}
        </tbody>
      </table>
    </>
  );
}

function UserRow({
  user: u,
  self,
  busy,
  onUpdate,
  onReset,
  onDelete,
}: {
  user: User;
  self: boolean;
  busy: boolean;
  onUpdate: (d: { name?: string; role?: Role; disabled?: boolean }) => void;
  onReset: () => void;
  onDelete: () => void;
}) {
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(u.name);
  return (
    <tr data-user={u.email}>
      <td>
        {u.email}
        {self && <span className="muted"> (you)</span>}
      </td>
      <td>
        {editing ? (
          <form
            className="row"
            onSubmit={(e) => {
              e.preventDefault();
              onUpdate({ name });
              setEditing(false);
            }}
          >
            <input aria-label={`name of ${u.email}`} value={name} onChange={(e) => setName(e.target.value)} />
            <button type="submit">Save name</button>
          </form>
        ) : (
          <>
            {u.name || <span className="muted">—</span>}{" "}
            <button type="button" onClick={() => (setName(u.name), setEditing(true))} aria-label={`Rename ${u.email}`}>
              Rename
            </button>
          </>
        )}
      </td>
      <td>
        <select aria-label={`role of ${u.email}`} value={u.role} disabled={busy || self} onChange={(e) => onUpdate({ role: e.target.value as Role })}>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
      </td>
      <td>
        {u.disabled ? <Badge kind="bad">disabled</Badge> : <Badge kind="ok">active</Badge>}
        {u.mustChangePassword && (
          <div>
            <Badge kind="warn">one-time password</Badge>
          </div>
        )}
      </td>
      <td>{u.teams.length ? u.teams.map((t) => t.name).join(", ") : <span className="muted">none</span>}</td>
      <td>{when(u.createdAt)}</td>
      <td>{u.lastLoginAt ? when(u.lastLoginAt) : <span className="muted">never (or signed out)</span>}</td>
      <td>
        {!self && (
          <div className="row">
            <button
              type="button"
              disabled={busy}
              onClick={() => onUpdate({ disabled: !u.disabled })}
              aria-label={`${u.disabled ? "Enable" : "Disable"} ${u.email}`}
            >
              {u.disabled ? "Enable" : "Disable"}
            </button>
            <button type="button" disabled={busy} onClick={onReset} aria-label={`Reset password of ${u.email}`}>
              Reset password
            </button>
            <ConfirmButton label={`Delete ${u.email}`} confirmLabel={`Really delete ${u.email}`} disabled={busy} onConfirm={onDelete} />
          </div>
        )}
      </td>
    </tr>
  );
}
