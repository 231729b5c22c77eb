"use client";
import { useState, type FormEvent } from "react";
import { trpc } from "../../../lib/trpc.ts";
import { Badge, EmptyRow, ErrorBox, Field } from "../../../components/ui.tsx";
import { ConfirmButton, when } from "../../../components/admin-ui.tsx";
import { ApiError, FieldError } from "../../../components/action-bar.tsx";

const REGISTRY_FIELDS = ["address", "username", "password"] as const;

export default function RegistriesPage() {
  const registries = trpc.admin.registries.list.useQuery();
  const utils = trpc.useUtils();
  const refresh = () => void utils.admin.registries.invalidate();
  const [address, setAddress] = useState("");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [clearPassword, setClearPassword] = useState(false);
  const [insecure, setInsecure] = useState(false);
  const [saved, setSaved] = useState<string | null>(null);
  const save = trpc.admin.registries.save.useMutation({
    onSuccess: (r) => {
      refresh();
      setSaved(r.address);
      setPassword("");
      setClearPassword(false);
    },
  });
  const remove = trpc.admin.registries.remove.useMutation({ onSuccess: refresh });
  const known = registries.data?.find((r) => r.address === address.trim());

  function submit(e: FormEvent) {
    e.preventDefault();
    setSaved(null);
    save.reset();
    save.mutate({ address, username, insecure, ...(password ? { password } : {}), ...(clearPassword ? { clearPassword } : {}) });
  }

  return (
    <>
      <h1>Registries</h1>
      <p className="muted">Credentials are encrypted at rest and used by every node for pulls and pushes; the password is never shown again.</p>
      <form className="panel" onSubmit={submit} aria-label="registry">
        <b>{known ? `Edit ${known.address}` : "Add a registry"}</b>
        <div className="grid2">
          <Field label="Address (host[:port])" error={<FieldError error={save.error} field="address" fields={REGISTRY_FIELDS} />}>
            <input
              id="registry-address"
              value={address}
              onChange={(e) => setAddress(e.target.value)}
              placeholder="registry.example.com:5000"
              required
              style={{ width: "100%" }}
            />
          </Field>
          <Field label="Username" error={<FieldError error={save.error} field="username" fields={REGISTRY_FIELDS} />}>
            <input id="registry-username" value={username} onChange={(e) => setUsername(e.target.value)} autoComplete="off" style={{ width: "100%" }} />
          </Field>
          <Field
            label={`Password${known?.hasPassword ? " (empty: keep the stored one)" : ""}`}
            error={<FieldError error={save.error} field="password" fields={REGISTRY_FIELDS} />}
          >
            <input
              id="registry-password"
              type="password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              autoComplete="new-password"
              disabled={clearPassword}
              style={{ width: "100%" }}
            />
          </Field>
          <div>
            <label htmlFor="registry-insecure">
              <input id="registry-insecure" type="checkbox" checked={insecure} onChange={(e) => setInsecure(e.target.checked)} /> Insecure (plain HTTP or an
              unverified certificate)
            </label>
            {known?.hasPassword && (
              <label htmlFor="registry-clear-password">
                <input id="registry-clear-password" type="checkbox" checked={clearPassword} onChange={(e) => setClearPassword(e.target.checked)} /> Remove the
                stored password
              </label>
            )}
          </div>
        </div>
        <ApiError error={save.error} fields={REGISTRY_FIELDS} />
        {saved && <p className="badge ok">Saved {saved}.</p>}
        <p className="row">
          <button className="primary" type="submit" disabled={save.isPending}>
            Save registry
          </button>
          {(address || username) && (
            <button
              type="button"
              onClick={() => {
                setAddress("");
                setUsername("");
                setPassword("");
                setInsecure(false);
                setClearPassword(false);
              }}
            >
              Clear form
            </button>
          )}
        </p>
      </form>

      <ErrorBox error={registries.error ?? remove.error} />
      <table data-testid="registries">
        <thead>
          <tr>
            <th>Address</th>
            <th>Username</th>
            <th>Password</th>
            <th>Insecure</th>
            <th>Updated</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          {registries.data?.map((r) => (
            <tr key={r.id} data-registry={r.address}>
              <td className="mono">{r.address}</td>
              <td>{r.username ?? <span className="muted">—</span>}</td>
              <td>{r.hasPassword ? <Badge kind="ok">set</Badge> : <span className="muted">none</span>}</td>
              <td>{r.insecure ? <Badge kind="warn">insecure</Badge> : "no"}</td>
              <td>{when(r.updatedAt)}</td>
              <td>
                <div className="row">
                  <button
                    type="button"
                    aria-label={`Edit ${r.address}`}
                    onClick={() => {
                      setAddress(r.address);
                      setUsername(r.username ?? "");
                      setPassword("");
                      setInsecure(r.insecure);
                      setClearPassword(false);
                      setSaved(null);
                    }}
                  >
                    Edit
                  </button>
                  <ConfirmButton
                    label={`Remove ${r.address}`}
                    confirmLabel={`Really remove ${r.address}`}
                    onConfirm={() => remove.mutate({ address: r.address })}
                  />
                </div>
              </td>
            </tr>
          ))}
          {registries.data?.length === 0 && <EmptyRow cols={6}>No registries. Images from registries not listed here are pulled anonymously.</EmptyRow>}
        </tbody>
      </table>
    </>
  );
}
