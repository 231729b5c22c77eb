/**
 * Signs in the way the login page does, over HTTP against a console serving pages
 * (next-auth's credentials callback, with its CSRF cookie and token): for tests and
 * benchmarks that need the real sign-in path without a browser.
 */

export interface HttpSignIn {
  ok: boolean;
  /** The console's sentence when refused (wrong password, locked until…, second-factor-needed). */
  error?: string;
  /** Set-Cookie headers of the answer (the session cookie when ok). */
  setCookies: string[];
}

function cookiePairs(setCookies: string[]): string {
  return setCookies.map((c) => c.split(";")[0]).join("; ");
}

export async function signInOverHttp(
  baseUrl: string,
  form: { email: string; password: string; token?: string; recoveryCode?: string },
  headers: Record<string, string> = {},
): Promise<HttpSignIn> {
  const csrf = await fetch(`${baseUrl}/api/auth/csrf`, { headers });
  const { csrfToken } = (await csrf.json()) as { csrfToken: string };
  const body = new URLSearchParams({ ...form, csrfToken, callbackUrl: `${baseUrl}/`, json: "true" });
  const res = await fetch(`${baseUrl}/api/auth/callback/credentials`, {
    method: "POST",
    redirect: "manual",
    headers: { ...headers, "content-type": "application/x-www-form-urlencoded", cookie: cookiePairs(csrf.headers.getSetCookie()) },
    body,
  });
  const setCookies = res.headers.getSetCookie();
  const text = await res.text();
  let url = res.headers.get("location") ?? "";
  try {
    url = (JSON.parse(text) as { url?: string }).url ?? url;
  } catch {
    // a redirect without a body
  }
  const error = url ? (new URL(url, baseUrl).searchParams.get("error") ?? undefined) : undefined;
  const ok = !error && setCookies.some((c) => /next-auth\.session-token=/.test(c));
  return { ok, ...(error ? { error } : {}), setCookies };
}
