"use client";
import { useState, type FormEvent } from "react";
import { signOut } from "next-auth/react";
import { trpc } from "../../lib/trpc.ts";
import { ErrorBox, Field } from "../../components/ui.tsx";
import { ApiError, FieldError } from "../../components/action-bar.tsx";

const PASSWORD_FIELDS = ["current", "next"] as const;
import { ConfirmButton, when } from "../../components/admin-ui.tsx";

function PasswordPanel() {
  const utils = trpc.useUtils();
  const change = trpc.auth.changePassword.useMutation({ onSuccess: () => utils.auth.me.invalidate() });
  const me = trpc.auth.me.useQuery();
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [repeat, setRepeat] = useState("");
  const [mismatch, setMismatch] = useState(false);
  // An edit makes the last attempt's messages stale: they go as soon as the user types.
  const edited = (set: (v: string) => void) => (v: string) => {
    set(v);
    setMismatch(false);
    if (change.error || change.isSuccess) change.reset();
  };
  function submit(e: FormEvent) {
    e.preventDefault();
    setMismatch(next !== repeat);
    change.reset();
    if (next === repeat) change.mutate({ current, next });
  }
  return (
    <form className="panel" onSubmit={submit} style={{ maxWidth: 460 }} aria-label="change password">
      <p>
        Signed in as <b>{me.data?.email}</b> ({me.data?.role})
      </p>
      <Field label="Current password" error={<FieldError error={change.error} field="current" fields={PASSWORD_FIELDS} />}>
        <input id="current" type="password" value={current} onChange={(e) => edited(setCurrent)(e.target.value)} autoComplete="current-password" required />
      </Field>
      <Field label="New password (12 characters or more)" error={<FieldError error={change.error} field="next" fields={PASSWORD_FIELDS} />}>
        <input id="new" type="password" value={next} onChange={(e) => edited(setNext)(e.target.value)} autoComplete="new-password" required />
      </Field>
      <p className="muted">Not a common password, a keyboard pattern, a repeat or your own name or email: the console estimates how easy it is to guess.</p>
      <Field label="New password again">
        <input id="repeat" type="password" value={repeat} onChange={(e) => edited(setRepeat)(e.target.value)} autoComplete="new-password" required />
      </Field>
      {mismatch && (
        <div className="field-error" role="alert" data-field="repeat">
          The two new passwords differ.
        </div>
      )}
      <ApiError error={change.error} fields={PASSWORD_FIELDS} />
      {change.isSuccess && <p className="badge ok">Password changed.</p>}
      <p>
        <button className="primary" type="submit" disabled={change.isPending}>
          Change password
        </button>
      </p>
    </form>
  );
}

function RecoveryCodes({ codes, onDone }: { codes: string[]; onDone: () => void }) {
  return (
    <div className="panel" role="status" aria-label="recovery codes">
      <b>Recovery codes</b> <span className="muted">— each signs in once without the app. Shown only now: keep them somewhere safe.</span>
      <ul data-testid="recovery-codes" style={{ columns: 2, fontFamily: "monospace" }}>
        {codes.map((c) => (
          <li key={c}>{c}</li>
        ))}
      </ul>
      <button type="button" onClick={onDone}>
        I have kept them
      </button>
    </div>
  );
}

function TwoFactorPanel() {
  const utils = trpc.useUtils();
  const status = trpc.auth.twoFactor.status.useQuery();
  const refresh = () => {
    void utils.auth.invalidate();
  };
  const begin = trpc.auth.twoFactor.begin.useMutation();
  const confirm = trpc.auth.twoFactor.confirm.useMutation({ onSuccess: refresh });
  const disable = trpc.auth.twoFactor.disable.useMutation({ onSuccess: refresh });
  const renew = trpc.auth.twoFactor.newRecoveryCodes.useMutation({ onSuccess: refresh });
  const [password, setPassword] = useState("");
  const [code, setCode] = useState("");
  const codes = confirm.data?.recoveryCodes ?? renew.data?.recoveryCodes;
  const s = status.data;

  return (
    <section className="panel" style={{ maxWidth: 460 }} aria-label="two-factor sign-in">
      <h2 style={{ fontSize: 16 }}>Two-factor sign-in</h2>
      <ErrorBox error={status.error} />
      {s?.requiredForYou && !s.enabled && <div className="error">An admin setting requires two-factor sign-in for admins: turn it on to continue.</div>}
      {codes && (
        <RecoveryCodes
          codes={codes}
          onDone={() => {
            confirm.reset();
            renew.reset();
            begin.reset();
          }}
        />
      )}
      {s?.enabled ? (
        <>
          <p>
            <span className="badge ok" data-testid="two-factor-state">
              On
            </span>{" "}
            {s.recoveryCodesLeft} recovery codes left.
          </p>
          <Field label="Current password (to change two-factor)">
            <input id="tf-password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="current-password" />
          </Field>
          <ErrorBox error={disable.error ?? renew.error} />
          <p className="row">
            <button type="button" onClick={() => renew.mutate({ password })} disabled={renew.isPending}>
              New recovery codes
            </button>
            <ConfirmButton label="Turn off" confirmLabel="Turn two-factor off" onConfirm={() => disable.mutate({ password })} disabled={disable.isPending} />
          </p>
        </>
      ) : begin.data ? (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            confirm.mutate({ token: code });
          }}
        >
          <p>Scan this with an authenticator app (or type the key), then enter the code it shows.</p>
          <img src={begin.data.qrDataUrl} alt="QR code for your authenticator app" width={220} height={220} data-testid="totp-qr" />
          <p>
            Key:{" "}
            <code data-testid="totp-secret" style={{ userSelect: "all" }}>
              {begin.data.secret}
            </code>
          </p>
          <Field label="Code from the app">
            <input id="tf-code" inputMode="numeric" autoComplete="one-time-code" value={code} onChange={(e) => setCode(e.target.value)} required />
          </Field>
          <ErrorBox error={confirm.error} />
          <p>
            <button className="primary" type="submit" disabled={confirm.isPending}>
              Turn on
            </button>
          </p>
        </form>
      ) : (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            begin.mutate({ password });
          }}
        >
          <p>
            <span className="badge" data-testid="two-factor-state">
              Off
            </span>{" "}
            Ask for a code from an authenticator app at every sign-in.
          </p>
          <Field label="Current password (to set up two-factor)">
            <input id="tf-password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="current-password" required />
          </Field>
          <ErrorBox error={begin.error} />
          <p>
            <button type="submit" disabled={begin.isPending}>
              Set up two-factor
            </button>
          </p>
        </form>
      )}
    </section>
  );
}

function SessionsPanel() {
  const utils = trpc.useUtils();
  const sessions = trpc.auth.sessions.useQuery();
  const revoke = trpc.auth.revokeSession.useMutation({ onSuccess: () => utils.auth.sessions.invalidate() });
  const everywhere = trpc.auth.logoutEverywhere.useMutation({ onSuccess: () => void signOut({ callbackUrl: "/login" }) });
  return (
    <section style={{ marginTop: 24 }} aria-label="sessions">
      <h2 style={{ fontSize: 16 }}>Where you are signed in</h2>
      <ErrorBox error={sessions.error ?? revoke.error ?? everywhere.error} />
      <table data-testid="sessions">
        <thead>
          <tr>
            <th>Browser</th>
            <th>Address</th>
            <th>Signed in</th>
            <th>Last used</th>
            <th>Ends</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {sessions.data?.map((s) => (
            <tr key={s.id}>
              <td style={{ maxWidth: 420, wordBreak: "break-word" }}>
                {s.userAgent ?? <span className="muted">unknown</span>} {s.current && <span className="badge ok">this browser</span>}
              </td>
              <td>{s.ip ?? "—"}</td>
              <td>{when(s.createdAt)}</td>
              <td>{when(s.lastUsedAt)}</td>
              <td>{when(s.expiresAt)}</td>
              <td>
                {s.current ? null : (
                  <button type="button" onClick={() => revoke.mutate({ sessionId: s.id })} disabled={revoke.isPending}>
                    End session
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <p>
        <ConfirmButton
          label="End every session"
          confirmLabel="End every session, this one too"
          onConfirm={() => everywhere.mutate()}
          disabled={everywhere.isPending}
        />
      </p>
    </section>
  );
}

export default function AccountPage() {
  const me = trpc.auth.me.useQuery();
  return (
    <>
      <h1>Account</h1>
      {me.data?.mustChangePassword && <div className="error">This account still has its one-time password: choose a new one to continue.</div>}
      <PasswordPanel />
      {!me.data?.mustChangePassword && <TwoFactorPanel />}
      <SessionsPanel />
    </>
  );
}
