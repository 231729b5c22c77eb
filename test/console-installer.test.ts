// The installer's API on the real console (server/trpc/routers/installer.ts), without a browser:
// one run per host at a time, a failed run's join token is deleted and its end audited, trust
// refuses to replace another pin, and calls without input are refused before doing anything.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { KnownHosts } from "../server/installer/index.ts";
import { apiClient, codeOf, createUser, sessionCookie, startTestConsole, type ApiClient, type TestConsole } from "./helpers/console.ts";

const FP_A = "SHA256:" + "A".repeat(43);
const FP_B = "SHA256:" + "B".repeat(43);

describe("installer API", () => {
  let c: TestConsole;
  let api: ApiClient;
  let silent: Server;
  let silentPort = 0;
  const sockets = new Set<Socket>();

  before(async () => {
    c = await startTestConsole("console-installer");
    const admin = await createUser(c, "admin");
    api = apiClient(c, await sessionCookie(c, admin.id));
    // Accepts TCP and never speaks SSH: a run against it hangs in connect until its timeout.
    silent = createServer((s) => (sockets.add(s), s.on("close", () => sockets.delete(s))));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    silentPort = (silent.address() as { port: number }).port;
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent?.close(() => r()));
    await c?.stop();
  });

  test("calls without input are refused as bad requests at once", async () => {
    const t0 = Date.now();
    const calls = [
      () => api.installer.probe.mutate({} as never),
      () => api.installer.trust.mutate({} as never),
      () => api.installer.preflight.mutate({} as never),
      () => api.installer.install.mutate({} as never),
      () => api.installer.run.query({} as never),
      () => api.installer.remove.mutate({} as never),
      () => api.installer.forget.mutate({} as never),
    ];
    for (const call of calls) assert.equal(await codeOf(call()), "BAD_REQUEST");
    assert.ok(Date.now() - t0 < 5_000);
    assert.deepEqual(await api.installer.hosts.query(), []);
  });

  test("an operator may not use the installer", async () => {
    const op = await createUser(c, "operator");
    const opApi = apiClient(c, await sessionCookie(c, op.id));
    assert.equal(await codeOf(opApi.installer.hosts.query()), "FORBIDDEN");
    assert.equal(await codeOf(opApi.installer.probe.mutate({ host: "127.0.0.1", port: silentPort })), "FORBIDDEN");
  });

  test("trust refuses to replace a different pin; preflight and install need a pin", async () => {
    const target = { host: "127.0.0.1", port: silentPort, username: "root", password: "pw-not-used-here" };
    assert.equal(await codeOf(api.installer.preflight.mutate(target)), "PRECONDITION_FAILED");
    assert.equal(await codeOf(api.installer.install.mutate({ ...target, keepCredentials: false })), "PRECONDITION_FAILED");
    await new KnownHosts(c.services.prisma).pin("127.0.0.1", silentPort, { algorithm: "ssh-ed25519", fingerprint: FP_A });
    const err = await api.installer.trust.mutate({ host: "127.0.0.1", port: silentPort, fingerprint: FP_B }).catch((e: Error) => e);
    assert.ok(err instanceof Error);
    assert.match(err.message, /pinned to another host key .*forget the pinned key first/);
    const hosts = await api.installer.hosts.query();
    assert.equal(hosts.length, 1);
    assert.equal(hosts[0]!.fingerprint, FP_A);
    assert.equal(hosts[0]!.hasCredentials, false);
    assert.ok(!("credentialsSealed" in hosts[0]!));
  });

  test("one run per host: a second install is refused while the first runs; the failed run's token is deleted and its end audited", async () => {
    const password = "pw-secret-of-this-run";
    const target = { host: "127.0.0.1", port: silentPort, username: "root", password, keepCredentials: true };
    const tokensBefore = await c.services.prisma.joinToken.count();
    const { runId } = await api.installer.install.mutate(target);
    const second = await api.installer.install.mutate(target).catch((e: Error) => e);
    assert.ok(second instanceof Error);
    assert.equal(await codeOf(Promise.reject(second)), "CONFLICT");
    assert.equal(await c.services.prisma.joinToken.count(), tokensBefore + 1, "the refused run made no token");
    assert.equal(await codeOf(api.installer.forget.mutate({ host: "127.0.0.1", port: silentPort })), "CONFLICT");
    // The run reads the artifact first, then connects (and hangs there).
    let running = await api.installer.run.query({ runId });
    for (let i = 0; i < 100 && running.steps.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      running = await api.installer.run.query({ runId });
    }
    assert.equal(running.status, "running");
    assert.equal(running.steps[0]?.step, "connect");

    let view = running;
    const deadline = Date.now() + 60_000;
    while (view.status === "running" && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      view = await api.installer.run.query({ runId });
    }
    assert.equal(view.status, "failed");
    assert.equal(view.error?.step, "connect");
    assert.equal(view.error?.kind, "unreachable");
    assert.equal(await c.services.prisma.joinToken.count(), tokensBefore, "the unused join token is gone");
    const end = await c.services.prisma.auditLog.findFirstOrThrow({ where: { action: "installer.install.finished" } });
    assert.equal(end.outcome, "failure");
    const audit = JSON.stringify(await c.services.prisma.auditLog.findMany({ select: { details: true } }));
    assert.ok(!audit.includes(password), "the SSH password is in no audit entry");
    assert.equal((await api.installer.hosts.query())[0]!.hasCredentials, false, "a failed run keeps nothing");
    assert.equal(await codeOf(api.installer.run.query({ runId: "00000000-0000-4000-8000-000000000000" })), "NOT_FOUND");
  });
});
