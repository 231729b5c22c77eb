"use client";
import { useEffect, useState, type FormEvent } from "react";
import { trpc, type RouterOutputs } from "../../../lib/trpc.ts";
import { EmptyRow, ErrorBox, Field } from "../../../components/ui.tsx";
import { ConfirmButton, when } from "../../../components/admin-ui.tsx";

type GroupAccess = RouterOutputs["admin"]["security"]["hostAccess"]["list"][number];

/** "path ro|rw" per line, as the admin types it. */
function rulesText(rules: GroupAccess["rules"]): string {
  return rules.bindMounts.map((b) => `${b.path} ${b.access}`).join("\n");
}

function parseRules(text: string): Array<{ path: string; access: "ro" | "rw" }> {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const [path = "", access = "ro"] = l.split(/\s+/);
      return { path, access: access === "rw" ? "rw" : "ro" };
    });
}

function HostAccessRow({ g }: { g: GroupAccess }) {
  const utils = trpc.useUtils();
  const save = trpc.admin.security.hostAccess.set.useMutation({ onSuccess: () => utils.admin.security.invalidate() });
  const [text, setText] = useState(rulesText(g.rules));
  const [net, setNet] = useState(g.rules.allowHostNetwork);
  useEffect(() => {
    setText(rulesText(g.rules));
    setNet(g.rules.allowHostNetwork);
  }, [g]);
  return (
    <tr data-testid={`host-access-${g.groupName}`}>
      <td>{g.groupName}</td>
      <td>
        <textarea
          aria-label={`host paths operators may bind in ${g.groupName}`}
          rows={Math.max(2, text.split("\n").length)}
          cols={36}
          value={text}
          onChange={(e) => setText(e.target.value)}
          placeholder="/srv/data rw"
        />
      </td>
      <td>
        <label>
          <input type="checkbox" checked={net} onChange={(e) => setNet(e.target.checked)} aria-label={`host network in ${g.groupName}`} /> allowed
        </label>
      </td>
      <td>
        <button
          type="button"
          onClick={() => save.mutate({ groupId: g.groupId, allowHostNetwork: net, bindMounts: parseRules(text) })}
          disabled={save.isPending}
        >
          Save
        </button>
        {save.isSuccess && <span className="badge ok">saved</span>}
        <ErrorBox error={save.error} />
      </td>
    </tr>
  );
}

type Settings = RouterOutputs["admin"]["security"]["settings"];

/** Shown once the settings are loaded, so what the admin types is never overwritten by their arrival. */
function SettingsForm() {
  const settings = trpc.admin.security.settings.useQuery();
  if (!settings.data) return <ErrorBox error={settings.error} />;
  return <SettingsFields initial={settings.data} />;
}

function SettingsFields({ initial }: { initial: Settings }) {
  const utils = trpc.useUtils();
  const update = trpc.admin.security.updateSettings.useMutation({ onSuccess: () => utils.admin.security.invalidate() });
  const [idle, setIdle] = useState(String(initial.sessionIdleMinutes));
  const [absolute, setAbsolute] = useState(String(initial.sessionAbsoluteMinutes));
  const [require2fa, setRequire2fa] = useState(initial.requireAdminTwoFactor);
  function submit(e: FormEvent) {
    e.preventDefault();
    update.mutate({ sessionIdleMinutes: Number(idle), sessionAbsoluteMinutes: Number(absolute), requireAdminTwoFactor: require2fa });
  }
  return (
    <form className="panel" onSubmit={submit} style={{ maxWidth: 460 }} aria-label="security settings">
      <Field label="Sign out after this many idle minutes (0: never)">
        <input id="idle-minutes" type="number" min={0} value={idle} onChange={(e) => setIdle(e.target.value)} />
      </Field>
      <Field label="Sign out this many minutes after sign-in, used or not">
        <input id="absolute-minutes" type="number" min={5} value={absolute} onChange={(e) => setAbsolute(e.target.value)} />
      </Field>
      <label>
        <input type="checkbox" checked={require2fa} onChange={(e) => setRequire2fa(e.target.checked)} /> Require two-factor sign-in for every admin
      </label>
      <ErrorBox error={update.error} />
      {update.isSuccess && <p className="badge ok">Saved.</p>}
      <p>
        <button className="primary" type="submit" disabled={update.isPending}>
          Save settings
        </button>
      </p>
    </form>
  );
}

export default function SecurityPage() {
  const utils = trpc.useUtils();
  const access = trpc.admin.security.hostAccess.list.useQuery();
  const locks = trpc.admin.security.locks.list.useQuery(undefined, { refetchInterval: 10_000 });
  const users = trpc.admin.users.list.useQuery();
  const unlock = trpc.admin.security.locks.unlock.useMutation({ onSuccess: () => utils.admin.security.invalidate() });
  const reset = trpc.admin.security.resetTwoFactor.useMutation({ onSuccess: () => utils.admin.invalidate() });

  return (
    <>
      <h1>Security</h1>

      <h2 style={{ fontSize: 16 }}>Host access</h2>
      <p className="muted">
        Bind mounts of host paths, the host network, --privileged, added capabilities, devices, security options, sysctls and shared PID/IPC/UTS namespaces
        reach past a container into its node: only admins may use them, unless a node group allows operators the host paths below (one per line:{" "}
        <code>/path ro</code> or <code>/path rw</code>) or the host network. Named volumes are always allowed. A read-write path lets a container leave files
        and links there: grant it only for a directory no one else relies on.
      </p>
      <ErrorBox error={access.error} />
      <table data-testid="host-access">
        <thead>
          <tr>
            <th>Node group</th>
            <th>Host paths operators may bind</th>
            <th>Host network</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {access.data?.map((g) => (
            <HostAccessRow key={g.groupId} g={g} />
          ))}
          {access.data?.length === 0 && <EmptyRow cols={4}>No node groups: nodes in no group allow operators no host access.</EmptyRow>}
        </tbody>
      </table>

      <h2 style={{ fontSize: 16, marginTop: 24 }}>Sign-in locks</h2>
      <ErrorBox error={locks.error ?? unlock.error} />
      <table data-testid="locks">
        <thead>
          <tr>
            <th>Account or address</th>
            <th className="num">Failures</th>
            <th>Last failure</th>
            <th>From</th>
            <th>Locked until</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {locks.data?.map((l) => (
            <tr key={l.key}>
              <td>
                {l.scope}: {l.subject}
              </td>
              <td className="num">{l.failures}</td>
              <td>{when(l.lastFailureAt)}</td>
              <td>{l.lastAddress ?? "—"}</td>
              <td>{l.lockedUntil ? when(l.lockedUntil) : `slowed until ${when(l.waitUntil)}`}</td>
              <td>
                <button type="button" onClick={() => unlock.mutate({ key: l.key })} disabled={unlock.isPending}>
                  Unlock
                </button>
              </td>
            </tr>
          ))}
          {locks.data?.length === 0 && <EmptyRow cols={6}>No account or address is locked or slowed.</EmptyRow>}
        </tbody>
      </table>

      <h2 style={{ fontSize: 16, marginTop: 24 }}>Settings</h2>
      <SettingsForm />

      <h2 style={{ fontSize: 16, marginTop: 24 }}>Two-factor by user</h2>
      <ErrorBox error={users.error ?? reset.error} />
      <table data-testid="two-factor-users">
        <thead>
          <tr>
            <th>User</th>
            <th>Role</th>
            <th>Two-factor</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {users.data?.map((u) => (
            <tr key={u.id}>
              <td>{u.email}</td>
              <td>{u.role}</td>
              <td>{u.twoFactor ? <span className="badge ok">on</span> : <span className="muted">off</span>}</td>
              <td>
                {u.twoFactor && (
                  <ConfirmButton
                    label="Reset"
                    confirmLabel={`Turn off two-factor for ${u.email}`}
                    onConfirm={() => reset.mutate({ userId: u.id })}
                    disabled={reset.isPending}
                  />
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
