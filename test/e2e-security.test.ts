// Console security end to end in Debian's Chromium (playwright-core): an admin is refused
// a trivially guessable password, turns on two-factor from the QR code on the Account
// page, signs in with a recovery code (once only) and with the app (a wrong code
// refused), sees their browsers listed and signs one out; an operator locked by failed
// sign-ins is refused the right password until an admin unlocks them on Admin → Security;
// the operator's Run with `-v /:/host` is refused by name; a viewer finds none of it; an
// admin setting makes two-factor compulsory for admins. (Secure cookies under an https
// public URL: test/console-secure-cookies.test.ts.) Screenshots go to test-artifacts/e2e-security/.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { type Browser, type Page } from "playwright-core";
import { consolePage, launchChromium } from "./helpers/chromium.ts";
import { createTeamWithGroup, createUser, startTestConsole, type TestConsole, type TestUser } from "./helpers/console.ts";
import { PROJECT_ROOT } from "../server/console.ts";
import { createSession } from "../server/auth/sessions.ts";
import { ACCOUNT_RULE, recordFailure } from "../server/auth/throttle.ts";
import { currentCode } from "../server/auth/two-factor.ts";

const ARTIFACTS = join(PROJECT_ROOT, "test-artifacts", "e2e-security");

describe("console security in a browser", () => {
  let c: TestConsole;
  let browser: Browser;
  let admin: TestUser;
  let operator: TestUser;
  let viewer: TestUser;
  let secret = "";
  let recoveryCodes: string[] = [];
  let shot = 0;

  const screenshot = async (p: Page, name: string) => {
    shot += 1;
    await p.screenshot({ path: join(ARTIFACTS, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
  };

  const newPage = async () => {
    const p = await consolePage(browser, c.url);
    return p;
  };

  async function signIn(p: Page, email: string, password: string) {
    await p.goto("/login");
    await p.getByLabel("Email").fill(email);
    await p.getByLabel("Password").fill(password);
    await p.getByRole("button", { name: "Sign in" }).click();
  }

  async function signOut(p: Page) {
    await p.getByRole("button", { name: "Sign out", exact: true }).first().click();
    await p.waitForURL("**/login**");
  }

  before(async () => {
    await rm(ARTIFACTS, { recursive: true, force: true });
    await mkdir(ARTIFACTS, { recursive: true });
    c = await startTestConsole("e2e-security", { ui: true });
    const p = c.services.prisma;
    const group = await p.nodeGroup.create({ data: { name: "prod" } });
    await p.node.create({ data: { hostname: "node-a", name: "node-a", groupId: group.id } });
    const team = await createTeamWithGroup(c, "ops", group.id);
    admin = await createUser(c, "admin", { email: "root-admin@test.local" });
    operator = await createUser(c, "operator", { email: "op@test.local", teamIds: [team] });
    viewer = await createUser(c, "viewer", { email: "viewer@test.local", teamIds: [team] });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await c?.stop();
  });

  test("a trivially guessable new password is refused with the estimator's reason", async () => {
    const page = await newPage();
    await signIn(page, admin.email, admin.password);
    await page.getByRole("heading", { name: "Fleet" }).waitFor();
    await page.goto("/account");
    const form = page.getByRole("form", { name: "change password" });
    await form.getByLabel("Current password").fill(admin.password);
    await form.getByLabel("New password (12 characters or more)").fill("aaaaaaaaaaaa");
    await form.getByLabel("New password again").fill("aaaaaaaaaaaa");
    await form.getByRole("button", { name: "Change password" }).click();
    await form.getByRole("alert").filter({ hasText: 'new password: the password is too easy to guess: Repeated characters like "aaa"' }).waitFor();
    await screenshot(page, "weak-password-refused");
    await page.context().close();
  });

  test("two-factor: enrol from the QR code, recovery codes shown once", async () => {
    const page = await newPage();
    await signIn(page, admin.email, admin.password);
    await page.getByRole("heading", { name: "Fleet" }).waitFor();
    await page.goto("/account");
    const panel = page.getByRole("region", { name: "two-factor sign-in" });
    await panel.getByTestId("two-factor-state").filter({ hasText: "Off" }).waitFor();
    await panel.getByLabel("Current password (to set up two-factor)").fill(admin.password);
    await panel.getByRole("button", { name: "Set up two-factor" }).click();
    const qr = panel.getByTestId("totp-qr");
    await qr.waitFor();
    assert.ok(await qr.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth >= 200), "the QR code is an image the browser decoded");
    secret = (await panel.getByTestId("totp-secret").textContent()) ?? "";
    assert.match(secret, /^[A-Z2-7]{32}$/);
    await screenshot(page, "two-factor-qr");

    await panel.getByLabel("Code from the app").fill(String((Number(currentCode(secret)) + 1) % 1_000_000).padStart(6, "0"));
    await panel.getByRole("button", { name: "Turn on" }).click();
    await panel.getByRole("alert").filter({ hasText: "that code is wrong" }).waitFor();
    await panel.getByLabel("Code from the app").fill(currentCode(secret));
    await panel.getByRole("button", { name: "Turn on" }).click();
    const list = panel.getByTestId("recovery-codes");
    await list.waitFor();
    recoveryCodes = (await list.locator("li").allTextContents()).map((s) => s.trim());
    assert.equal(recoveryCodes.length, 10);
    await screenshot(page, "two-factor-recovery-codes");
    await panel.getByRole("button", { name: "I have kept them" }).click();
    await panel.getByTestId("two-factor-state").filter({ hasText: "On" }).waitFor();
    // Gone once the page has re-rendered (waiting fails if they stay).
    await list.waitFor({ state: "detached", timeout: 10_000 });
    assert.equal(await list.count(), 0, "the codes are not shown again");
    await page.context().close();
  });

  test("sign-in asks for the code: a recovery code works once, a wrong app code is refused, the right one signs in", async () => {
    const page = await newPage();
    await signIn(page, admin.email, admin.password);
    const code = page.getByLabel("Code from your authenticator app");
    await code.waitFor();
    await screenshot(page, "sign-in-asks-for-code");
    await page.getByRole("button", { name: "Use a recovery code instead" }).click();
    await page.getByLabel("Recovery code").fill(recoveryCodes[0]!);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Fleet" }).waitFor();
    await signOut(page);

    await signIn(page, admin.email, admin.password);
    await page.getByRole("button", { name: "Use a recovery code instead" }).click();
    await page.getByLabel("Recovery code").fill(recoveryCodes[0]!);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "The two-factor code is wrong or was already used." }).waitFor();

    await page.getByRole("button", { name: "Use the authenticator app instead" }).click();
    await page.getByLabel("Code from your authenticator app").fill(String((Number(currentCode(secret)) + 3) % 1_000_000).padStart(6, "0"));
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").filter({ hasText: "The two-factor code is wrong or was already used." }).waitFor();
    await screenshot(page, "wrong-code-refused");
    // The enrolment used this 30-second step's code, and a code is good once: the app's next one.
    const step = Math.floor(Date.now() / 30_000);
    await new Promise((r) => setTimeout(r, (step + 1) * 30_000 - Date.now() + 200));
    await page.getByLabel("Code from your authenticator app").fill(currentCode(secret));
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Fleet" }).waitFor();

    const logins = await c.services.prisma.auditLog.findMany({ where: { action: "auth.login", actorLabel: admin.email }, orderBy: { at: "asc" } });
    const methods = logins.map(
      (l) => `${l.outcome} ${(l.details as { method?: string; reason?: string }).reason ?? (l.details as { method?: string }).method}`,
    );
    assert.deepEqual(methods.slice(-4), [
      "success password + recovery code",
      "denied wrong or used recovery code",
      "denied wrong or reused two-factor code",
      "success password + authenticator code",
    ]);
    await page.context().close();
  });

  test("the Account page lists the user's browsers with agent and address; one is signed out from there", async () => {
    const other = await createSession(c.services.prisma, admin.id, { userAgent: "Mozilla/5.0 (Other Laptop) Firefox/128.0", ip: "203.0.113.50" });
    const page = await newPage();
    await signIn(page, admin.email, admin.password);
    await page.getByLabel("Code from your authenticator app").waitFor();
    await page.getByRole("button", { name: "Use a recovery code instead" }).click();
    await page.getByLabel("Recovery code").fill(recoveryCodes[1]!);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Fleet" }).waitFor();
    await page.goto("/account");
    const table = page.getByTestId("sessions");
    const otherRow = table.locator("tr", { hasText: "Other Laptop" });
    await otherRow.getByText("203.0.113.50").waitFor();
    await table.locator("tr", { hasText: "this browser" }).getByText("HeadlessChrome").waitFor();
    await table.locator("tr", { hasText: "this browser" }).getByText("127.0.0.1").waitFor();
    await screenshot(page, "sessions");
    await otherRow.getByRole("button", { name: "End session" }).click();
    await otherRow.waitFor({ state: "detached" });
    assert.equal(await c.services.prisma.session.count({ where: { id: other.sessionId } }), 0);
    await page.context().close();
  });

  test("a locked operator is refused the right password, the admin sees where the failures came from and unlocks", async () => {
    for (let i = 0; i < ACCOUNT_RULE.lockAfter; i++) await recordFailure(c.services.prisma, `account:${operator.email}`, ACCOUNT_RULE, "203.0.113.9");
    const op = await newPage();
    await signIn(op, operator.email, operator.password);
    await op
      .getByRole("alert")
      .filter({ hasText: /Too many failed sign-ins for this account: it is locked until \d\d:\d\d:\d\d UTC\. An admin can unlock it sooner\./ })
      .waitFor();
    await screenshot(op, "operator-locked");

    const page = await newPage();
    await signIn(page, admin.email, admin.password);
    await page.getByRole("button", { name: "Use a recovery code instead" }).click();
    await page.getByLabel("Recovery code").fill(recoveryCodes[2]!);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Fleet" }).waitFor();
    await page.getByRole("link", { name: "Security" }).click();
    const row = page.getByTestId("locks").locator("tr", { hasText: operator.email });
    await row.getByText("203.0.113.9").waitFor();
    await screenshot(page, "admin-locks");
    await row.getByRole("button", { name: "Unlock" }).click();
    await row.waitFor({ state: "detached" });

    await signIn(op, operator.email, operator.password);
    await op.getByRole("heading", { name: "Fleet" }).waitFor();
    const unlock = await c.services.prisma.auditLog.findFirstOrThrow({ where: { action: "admin.security.locks.unlock" } });
    assert.equal(unlock.outcome, "success");
    assert.equal(unlock.actorLabel, admin.email);

    // The operator's Run binding the host's root is refused, naming the option and the setting.
    await op.goto("/run");
    await op.getByLabel("Image").fill("busybox");
    await op.getByLabel("Volumes", { exact: true }).fill("/:/host");
    await op.getByRole("button", { name: /^Run/ }).click();
    await op
      .getByText(
        /--volume "\/:\/host" binds host path \/, which the host policy of node group "prod" does not list; an admin may allow it in Admin → Security → Host access/,
      )
      .waitFor();
    await screenshot(op, "operator-host-bind-refused");
    await op.context().close();
    await page.context().close();
  });

  test("a viewer sees none of the security administration", async () => {
    const page = await newPage();
    await signIn(page, viewer.email, viewer.password);
    await page.getByRole("heading", { name: "Fleet" }).waitFor();
    assert.equal(await page.getByRole("link", { name: "Security" }).count(), 0);
    await page.goto("/admin/security");
    // The admins-only page, not the forms with every call refused.
    await page.getByTestId("not-allowed").getByRole("heading", { name: "For admins only" }).waitFor();
    await page.getByTestId("not-allowed").getByText("viewer").waitFor();
    assert.equal(await page.getByTestId("locks").locator("tbody tr").count(), 0);
    await screenshot(page, "viewer-admin-security");
    await page.context().close();
  });

  test("an admin setting makes two-factor compulsory for admins", async () => {
    const second = await createUser(c, "admin", { email: "second-admin@test.local" });
    const page = await newPage();
    await signIn(page, admin.email, admin.password);
    await page.getByRole("button", { name: "Use a recovery code instead" }).click();
    await page.getByLabel("Recovery code").fill(recoveryCodes[3]!);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Fleet" }).waitFor();
    await page.goto("/admin/security");
    const settings = page.getByRole("form", { name: "security settings" });
    await settings.getByLabel("Require two-factor sign-in for every admin").check();
    await settings.getByRole("button", { name: "Save settings" }).click();
    await settings.getByText("Saved.").waitFor();
    await page.context().close();

    const p2 = await newPage();
    await signIn(p2, second.email, second.password);
    await p2.waitForURL("**/account");
    await p2.getByText("An admin setting requires two-factor sign-in for admins").waitFor();
    await screenshot(p2, "admin-must-enrol");
    await p2.context().close();
  });
});
