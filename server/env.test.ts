import { test } from "node:test";
import assert from "node:assert/strict";
import { parseConsoleEnv } from "./env.ts";

test("the console's environment: values parsed, empty ones unset, other variables ignored", () => {
  const r = parseConsoleEnv({ BERTH_PORT: "9090", BERTH_TRUST_PROXY: "Yes", BERTH_HOST: "", PATH: "/bin", BERTH_TEST_CRASH_ON: "x" });
  assert.ok(r.ok);
  assert.deepEqual(r.env, { BERTH_PORT: 9090, BERTH_TRUST_PROXY: true });
});

test("each wrong variable is named with what it must be; secrets are never echoed", () => {
  const r = parseConsoleEnv({
    BERTH_PORT: "http",
    BERTH_TRUST_PROXY: "maybe",
    BERTH_SECRET_KEY: "hunter2",
    DATABASE_URL: "mysql://root:pw@db/x",
    BERTH_TLS_CERT: "/c.pem",
  });
  assert.ok(!r.ok);
  assert.deepEqual(r.problems.sort(), [
    'BERTH_PORT: must be a port number (got "http")',
    "BERTH_SECRET_KEY: must be 64 hexadecimal characters (openssl rand -hex 32)",
    "BERTH_TLS_CERT and BERTH_TLS_KEY go together",
    'BERTH_TRUST_PROXY: must be 1 or 0 (true/false) (got "maybe")',
    "DATABASE_URL: must be a postgres:// or postgresql:// URL",
  ]);
  assert.ok(!r.problems.join().includes("hunter2") && !r.problems.join().includes(":pw@"));
});

test("single sign-on needs its three variables together", () => {
  assert.ok(parseConsoleEnv({ BERTH_OIDC_ISSUER: "https://id.example", BERTH_OIDC_CLIENT_ID: "berth", BERTH_OIDC_CLIENT_SECRET: "s" }).ok);
  const r = parseConsoleEnv({ BERTH_OIDC_CLIENT_ID: "berth" });
  assert.ok(!r.ok && /needs all three/.test(r.problems[0]!));
});
