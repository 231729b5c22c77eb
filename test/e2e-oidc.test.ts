// Single sign-on in the browser: the console configured with an OpenID Connect provider
// (node-oidc-provider, a certified OP, running here with its development login pages).
// A user an admin created signs in through it; an unknown email is refused with the reason.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import { type Browser, type Page } from "playwright-core";
import { launchChromium } from "./helpers/chromium.ts";
import Provider from "oidc-provider";
import { createUser, startTestConsole, type TestConsole, type TestUser } from "./helpers/console.ts";
import { freePort } from "./helpers/sshd.ts";

describe("single sign-on with OpenID Connect", () => {
  let op: Server;
  let c: TestConsole;
  let browser: Browser;
  let user: TestUser;
  const saved = { ...process.env };

  before(async () => {
    const [opPort, consolePort] = [await freePort(), await freePort()];
    const issuer = `http://127.0.0.1:${opPort}`;
    const consoleUrl = `http://127.0.0.1:${consolePort}`;
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: "berth",
          client_secret: "berth-test-secret",
          redirect_uris: [`${consoleUrl}/api/auth/callback/oidc`],
          grant_types: ["authorization_code"],
          response_types: ["code"],
        },
      ],
      // The development login page takes any login; the account's email is that login.
      findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id, email: id, email_verified: true, name: id.split("@")[0] }) }),
      claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"] },
      conformIdTokenClaims: false,
      cookies: { keys: ["berth-test-cookie-key"] },
    });
    const handle = provider.callback();
    op = createServer((req, res) => {
      Promise.resolve(handle(req, res)).catch((e: unknown) => res.writeHead(500).end(String(e)));
    });
    await new Promise<void>((r) => op.listen(opPort, "127.0.0.1", () => r()));
    Object.assign(process.env, {
      BERTH_OIDC_ISSUER: issuer,
      BERTH_OIDC_CLIENT_ID: "berth",
      BERTH_OIDC_CLIENT_SECRET: "berth-test-secret",
      BERTH_OIDC_NAME: "Test SSO",
    });
    c = await startTestConsole("e2e-oidc", { ui: true, port: consolePort });
    user = await createUser(c, "operator", { email: "sso-user@test.local" });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await c?.stop();
    await new Promise<void>((r) => (op ? op.close(() => r()) : r()));
    for (const k of ["BERTH_OIDC_ISSUER", "BERTH_OIDC_CLIENT_ID", "BERTH_OIDC_CLIENT_SECRET", "BERTH_OIDC_NAME"]) if (!(k in saved)) delete process.env[k];
  });

  async function ssoLogin(page: Page, login: string) {
    await page.goto(`${c.url}/login`);
    await page.getByRole("button", { name: "Sign in with Test SSO" }).click();
    await page.locator("input[name=login]").fill(login);
    await page.locator("input[name=password]").fill("anything");
    await page.getByRole("button", { name: "Sign-in" }).click();
    // The provider asks to authorise the client once.
    const consent = page.getByRole("button", { name: /continue|authorize/i });
    await consent
      .waitFor({ timeout: 10_000 })
      .then(() => consent.click())
      .catch(() => undefined);
  }

  test("a known user signs in through the provider and lands on the fleet with their role", async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    page.setDefaultTimeout(20_000);
    await ssoLogin(page, user.email);
    await page.getByRole("heading", { name: "Fleet" }).waitFor();
    assert.equal(await page.getByTestId("role").innerText(), "operator");
    const audit = await c.services.prisma.auditLog.findFirst({ where: { action: "auth.login", actorUserId: user.id }, orderBy: { at: "desc" } });
    assert.equal(audit?.outcome, "success");
    assert.equal((audit?.details as { method?: string }).method, "oidc");
    await ctx.close();
  });

  test("an email with no Berth account is refused, saying why", async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    page.setDefaultTimeout(20_000);
    await ssoLogin(page, "stranger@test.local");
    await page.getByText("no enabled Berth account has that email").waitFor();
    const denied = await c.services.prisma.auditLog.findFirst({ where: { action: "auth.login", actorLabel: "stranger@test.local" } });
    assert.equal(denied?.outcome, "denied");
    await ctx.close();
  });
});
