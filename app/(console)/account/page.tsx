"use client";
import { useState, type FormEvent } from "react";
import { trpc } from "../../lib/trpc.ts";
import { ErrorBox } from "../../components/ui.tsx";

export default function AccountPage() {
  const me = trpc.auth.me.useQuery();
  const utils = trpc.useUtils();
  const change = trpc.auth.changePassword.useMutation({ onSuccess: () => utils.auth.me.invalidate() });
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [repeat, setRepeat] = useState("");
  const [mismatch, setMismatch] = useState(false);
  function submit(e: FormEvent) {
    e.preventDefault();
    setMismatch(next !== repeat);
    if (next === repeat) change.mutate({ current, next });
  }
  return (
    <>
      <h1>Account</h1>
      {me.data?.mustChangePassword && <div className="error">This account still has its one-time password: choose a new one to continue.</div>}
      <form className="panel" onSubmit={submit} style={{ maxWidth: 420 }}>
        <p>
          Signed in as <b>{me.data?.email}</b> ({me.data?.role})
        </p>
        <label htmlFor="current">Current password</label>
        <input id="current" type="password" value={current} onChange={(e) => setCurrent(e.target.value)} autoComplete="current-password" required />
        <label htmlFor="new">New password (12 characters or more)</label>
        <input id="new" type="password" value={next} onChange={(e) => setNext(e.target.value)} autoComplete="new-password" required />
        <label htmlFor="repeat">New password again</label>
        <input id="repeat" type="password" value={repeat} onChange={(e) => setRepeat(e.target.value)} autoComplete="new-password" required />
        {mismatch && <div className="error">The two new passwords differ.</div>}
        <ErrorBox error={change.error} />
        {change.isSuccess && <p className="badge ok">Password changed.</p>}
        <p>
          <button className="primary" type="submit" disabled={change.isPending}>
            Change password
          </button>
        </p>
      </form>
    </>
  );
}
