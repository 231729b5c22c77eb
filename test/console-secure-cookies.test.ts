// The Secure flag follows the public URL: a console whose public URL is https (TLS ended
// by a proxy, or its own) gives the session and CSRF cookies Secure and the __Secure-/
// __Host- prefixes, so a browser never sends them over plain HTTP. Needs `npm run build:ui`
// (next-auth runs inside Next.js); one Next.js app per process, hence a file of its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createUser, startTestConsole } from "./helpers/console.ts";
import { signInOverHttp } from "./helpers/sign-in-http.ts";

test("the session and CSRF cookies carry Secure (and the __Secure-/__Host- prefixes)", async () => {
  const c = await startTestConsole("secure_cookies", { ui: true, publicUrl: "https://console.berth.test" });
  try {
    const u = await createUser(c, "operator");
    // Served over http on 127.0.0.1 here (TLS would be a proxy's); the flags follow the public URL.
    const base = `http://127.0.0.1:${c.port}`;
    const csrf = (await fetch(`${base}/api/auth/csrf`)).headers.getSetCookie();
    assert.ok(
      csrf.some((s) => /^__Host-next-auth\.csrf-token=.*; Secure/.test(s)),
      JSON.stringify(csrf),
    );
    const r = await signInOverHttp(base, { email: u.email, password: u.password });
    assert.ok(r.ok, r.error);
    const session = r.setCookies.find((s) => s.startsWith("__Secure-next-auth.session-token="));
    assert.ok(session, `a __Secure- session cookie in ${JSON.stringify(r.setCookies)}`);
    assert.match(session, /; Secure/);
    assert.match(session, /; HttpOnly/);
  } finally {
    await c.stop();
  }
});
