/**
 * A browser reduced to what the console's HTTP API sees: a cookie jar, next-auth's credentials
 * sign-in and tRPC calls over plain fetch. For checks "from the outside" (CI's first-contact
 * check, the console image), where no test hook into the console exists.
 */
export class HttpBrowser {
  private readonly jar = new Map<string, string>();

  constructor(private readonly baseUrl: string) {}

  async call(path: string, init: RequestInit = {}): Promise<Response> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      signal: AbortSignal.timeout(30_000),
      ...init,
      redirect: "manual",
      headers: { ...(init.headers as Record<string, string>), cookie: [...this.jar].map(([k, v]) => `${k}=${v}`).join("; ") },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair = ""] = c.split(";");
      const i = pair.indexOf("=");
      this.jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
    return res;
  }

  /**
   * A tRPC query (or mutation) as the page makes it.
   * @throws Error with the procedure and the answer when it fails.
   */
  async trpc(path: string, input?: unknown, mutation = false): Promise<unknown> {
    const res = mutation
      ? await this.call(`/api/trpc/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(input ?? {}) })
      : await this.call(`/api/trpc/${path}${input === undefined ? "" : `?input=${encodeURIComponent(JSON.stringify(input))}`}`);
    const body = (await res.json()) as { result?: { data: unknown }; error?: unknown };
    if (!res.ok || !body.result) throw new Error(`tRPC ${path}: HTTP ${res.status} ${JSON.stringify(body)}`);
    return body.result.data;
  }

  /**
   * next-auth's credentials flow (CSRF token, then the callback).
   * @throws Error with the answer when no session cookie comes back.
   */
  async signIn(email: string, password: string): Promise<void> {
    const { csrfToken } = (await (await this.call("/api/auth/csrf")).json()) as { csrfToken: string };
    const res = await this.call("/api/auth/callback/credentials", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ csrfToken, email, password, json: "true" }).toString(),
    });
    if (![...this.jar.keys()].some((k) => k.endsWith("next-auth.session-token")))
      throw new Error(`sign-in as ${email} gave no session: HTTP ${res.status} ${await res.text()}`);
  }
}
