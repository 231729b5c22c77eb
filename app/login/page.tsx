"use client";
import { getProviders, signIn } from "next-auth/react";
import { useRouter, useSearchParams } from "next/navigation";
import { Suspense, useEffect, useState, type FormEvent } from "react";

function loginError(code: string | null): string | null {
  if (!code) return null;
  if (code === "oidc-unknown") return "Single sign-on worked, but no enabled Berth account has that email: ask an admin to create one.";
  if (code === "oidc-email") return "The single sign-on provider gave no verified email address.";
  return "Sign-in was refused.";
}

function LoginForm() {
  const router = useRouter();
  const params = useSearchParams();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(loginError(params.get("error")));
  const [busy, setBusy] = useState(false);
  // The password was right and the account has two-factor on: the form asks for a code.
  const [secondStep, setSecondStep] = useState(false);
  const [useRecovery, setUseRecovery] = useState(false);
  const [code, setCode] = useState("");
  // Single sign-on shows when the console is configured with an OIDC provider.
  const [sso, setSso] = useState<Array<{ id: string; name: string }>>([]);
  useEffect(() => {
    void getProviders().then((p) => setSso(Object.values(p ?? {}).filter((x) => x.type !== "credentials")));
  }, []);

  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const factor = secondStep ? (useRecovery ? { recoveryCode: code } : { token: code }) : {};
    const r = await signIn("credentials", { email, password, ...factor, redirect: false });
    setBusy(false);
    if (r?.error === "second-factor-needed") {
      setSecondStep(true);
      return;
    }
    if (!r || r.error) {
      // The console's own sentence (wrong password, locked until…, wrong code); next-auth's codes otherwise.
      setError(r?.error && / /.test(r.error) ? r.error : "Wrong email or password, or the account is disabled.");
      setCode("");
      return;
    }
    router.replace(params.get("next") ?? "/");
  }

  return (
    <form className="panel login" onSubmit={submit}>
      <h1>Berth</h1>
      <p className="muted">Sign in to the console.</p>
      <label htmlFor="email">Email</label>
      <input id="email" name="email" type="email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} required />
      <label htmlFor="password">Password</label>
      <input
        id="password"
        name="password"
        type="password"
        autoComplete="current-password"
        value={password}
        onChange={(e) => setPassword(e.target.value)}
        required
      />
      {secondStep && (
        <>
          <label htmlFor="code">{useRecovery ? "Recovery code" : "Code from your authenticator app"}</label>
          <input
            id="code"
            name="code"
            autoComplete="one-time-code"
            inputMode={useRecovery ? "text" : "numeric"}
            value={code}
            onChange={(e) => setCode(e.target.value)}
            autoFocus
            required
          />
          <p>
            <button
              type="button"
              className="link"
              onClick={() => {
                setUseRecovery(!useRecovery);
                setCode("");
              }}
            >
              {useRecovery ? "Use the authenticator app instead" : "Use a recovery code instead"}
            </button>
          </p>
        </>
      )}
      {error && (
        <div className="error" role="alert">
          {error}
        </div>
      )}
      <p>
        <button className="primary" type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </p>
      {sso.map((p) => (
        <p key={p.id}>
          <button type="button" onClick={() => void signIn(p.id, { callbackUrl: params.get("next") ?? "/" })}>
            Sign in with {p.name}
          </button>
        </p>
      ))}
    </form>
  );
}

export default function LoginPage() {
  return (
    <Suspense>
      <LoginForm />
    </Suspense>
  );
}
