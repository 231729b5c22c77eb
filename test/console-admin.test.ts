// Administration through the API, as an admin, and what the other users see right after:
// users (disable and demote apply at once, to cookies and sockets), teams and node groups
// (what a member reaches), join tokens (shown once, work once), registries (the password
// never comes back, nor reaches the audit log), and the audit log's filters.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { io as ioClient, type Socket } from "socket.io-client";
import { appRouter } from "../server/trpc/router.ts";
import { verifyPassword } from "../server/auth/password.ts";
import { apiClient, codeOf, createUser, sessionCookie, startTestConsole, type ApiClient, type TestConsole, type TestUser } from "./helpers/console.ts";
import { TRPCClientError } from "@trpc/client";
import type { inferRouterInputs } from "@trpc/server";
import { sleep } from "./helpers/wait.ts";

type RouterInputs = inferRouterInputs<typeof appRouter>;

type AuditFilter = Partial<RouterInputs["admin"]["audit"]["list"]>;

/** The refusal's code and message of a call expected to fail. */
async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof TRPCClientError) return { code: (e.data as { code?: string } | undefined)?.code ?? "?", message: e.message };
    throw e;
  }
  throw new Error("the call succeeded but was expected to fail");
}

describe("console administration", () => {
  let c: TestConsole;
  let adminUser: TestUser;
  let admin: ApiClient;
  const sockets: Socket[] = [];

  before(async () => {
    c = await startTestConsole("console-admin");
    adminUser = await createUser(c, "admin", { email: "root@test.local" });
    admin = apiClient(c, await sessionCookie(c, adminUser.id));
  });

  after(async () => {
    for (const s of sockets) s.close();
    await c?.stop();
  });

  function connect(cookie: string): Promise<{ socket: Socket; error?: string }> {
    return new Promise((resolve) => {
      const socket = ioClient(`${c.url}/ui`, { transports: ["websocket"], reconnection: false, forceNew: true, extraHeaders: { cookie, origin: c.url } });
      sockets.push(socket);
      socket.once("connect", () => resolve({ socket }));
      socket.once("connect_error", (e) => resolve({ socket, error: e.message }));
    });
  }

  async function signedIn(u: TestUser) {
    const cookie = await sessionCookie(c, u.id);
    return { cookie, api: apiClient(c, cookie) };
  }

  test("operators and viewers are refused every admin procedure with a clear message", async () => {
    const paths = Object.entries(appRouter._def.procedures as unknown as Record<string, { _def: { type: string } }>).filter(([p]) => p.startsWith("admin."));
    assert.ok(paths.length >= 25, `admin procedures: ${paths.map(([p]) => p).join(", ")}`);
    for (const role of ["operator", "viewer"] as const) {
      const u = await createUser(c, role);
      const { cookie } = await signedIn(u);
      const wrong: string[] = [];
      for (const [path, proc] of paths) {
        const url = `${c.url}/api/trpc/${path}`;
        const headers = { cookie, origin: c.url, "content-type": "application/json" };
        const res =
          proc._def.type === "query"
            ? await fetch(`${url}?input=${encodeURIComponent("{}")}`, { headers })
            : await fetch(url, { method: "POST", headers, body: "{}" });
        const body = (await res.json()) as { error?: { message: string; data: { code: string } } };
        if (body.error?.data.code !== "FORBIDDEN") wrong.push(`${path}: ${body.error?.data.code ?? "OK"}`);
        else if (!body.error.message.includes(`${path} needs the admin role; you are ${role}`)) wrong.push(`${path}: unclear message "${body.error.message}"`);
      }
      assert.deepEqual(wrong, [], role);
    }
    // Refusals of mutations are on record as denied.
    const denied = await c.services.prisma.auditLog.count({ where: { action: "admin.users.create", outcome: "denied" } });
    assert.equal(denied, 2);
  });

  test("users: create with a one-time password, list without secrets, clear errors", async () => {
    const made = await admin.admin.users.create.mutate({ email: " Alice@Test.local ", name: "Alice", role: "operator" });
    assert.equal(made.email, "alice@test.local");
    assert.ok(made.oneTimePassword && made.oneTimePassword.length >= 16, "a generated one-time password is returned");
    const row = await c.services.prisma.user.findUniqueOrThrow({ where: { id: made.id } });
    assert.equal(row.mustChangePassword, true);
    assert.ok(await verifyPassword(made.oneTimePassword, row.passwordHash));

    const chosen = await admin.admin.users.create.mutate({ email: "bob@test.local", role: "viewer", password: "a chosen password 1" });
    assert.equal(chosen.oneTimePassword, null);
    assert.equal((await c.services.prisma.user.findUniqueOrThrow({ where: { id: chosen.id } })).mustChangePassword, true);

    const list = await admin.admin.users.list.query();
    const alice = list.find((u) => u.id === made.id);
    assert.deepEqual(
      { ...alice, createdAt: undefined },
      {
        id: made.id,
        email: "alice@test.local",
        name: "Alice",
        role: "operator",
        disabled: false,
        mustChangePassword: true,
        twoFactor: false,
        teams: [],
        createdAt: undefined,
        lastLoginAt: null,
        lastActiveAt: null,
      },
    );
    const me = list.find((u) => u.id === adminUser.id);
    assert.ok(me?.lastLoginAt, "the last sign-in comes from the sessions");
    const json = JSON.stringify(list);
    assert.doesNotMatch(json, /scrypt|passwordHash|password_hash/);

    const dup = await refusal(admin.admin.users.create.mutate({ email: "ALICE@test.local", role: "viewer" }));
    assert.deepEqual(dup, { code: "CONFLICT", message: "a user with email alice@test.local already exists" });
    const short = await refusal(admin.admin.users.create.mutate({ email: "carol@test.local", role: "viewer", password: "short" }));
    assert.equal(short.code, "BAD_REQUEST");
    assert.match(short.message, /at least 12 characters/);
    const badEmail = await refusal(admin.admin.users.create.mutate({ email: "not-an-email", role: "viewer" }));
    assert.match(badEmail.message, /email must look like/);
    const badRole = await refusal(admin.admin.users.create.mutate({ email: "dave@test.local", role: "root" as "admin" }));
    assert.match(badRole.message, /role must be one of admin, operator, viewer/);

    // The generated password never reaches the audit log; the chosen one neither.
    const leaked = await c.services.prisma.$queryRaw<
      Array<{ n: bigint }>
    >`SELECT count(*) AS n FROM audit_log WHERE details::text LIKE ${`%${made.oneTimePassword}%`} OR details::text LIKE ${"%a chosen password 1%"}`;
    assert.equal(Number(leaked[0]!.n), 0);
  });

  test("disabling a user refuses their existing cookie and drops their socket at once", async () => {
    const u = await createUser(c, "operator");
    const { cookie, api } = await signedIn(u);
    assert.equal(await codeOf(api.nodes.list.query()), "OK");
    const { socket, error } = await connect(cookie);
    assert.equal(error, undefined);
    const dropped = new Promise<string>((r) => socket.once("disconnect", (reason) => r(reason)));

    await admin.admin.users.update.mutate({ userId: u.id, disabled: true });
    assert.equal(await dropped, "io server disconnect");
    assert.equal(await codeOf(api.nodes.list.query()), "UNAUTHORIZED");
    assert.equal(await c.services.prisma.session.count({ where: { userId: u.id } }), 0, "their sessions are gone");
    const again = await connect(cookie);
    assert.match(again.error ?? "", /not signed in|expired/);

    // Enabled again, the old cookie stays dead (its session was ended): they sign in anew.
    await admin.admin.users.update.mutate({ userId: u.id, disabled: false });
    assert.equal(await codeOf(api.nodes.list.query()), "UNAUTHORIZED");
    assert.equal(await codeOf(apiClient(c, await sessionCookie(c, u.id)).nodes.list.query()), "OK");
    assert.equal((await admin.admin.users.list.query()).find((x) => x.id === u.id)?.disabled, false);
  });

  test("a demoted admin loses admin procedures at once, and their socket leaves the admins' room", async () => {
    const other = await createUser(c, "admin");
    const { cookie, api } = await signedIn(other);
    assert.equal(await codeOf(api.admin.users.list.query()), "OK");
    const { socket } = await connect(cookie);
    const dropped = new Promise<string>((r) => socket.once("disconnect", (reason) => r(reason)));

    await admin.admin.users.update.mutate({ userId: other.id, role: "viewer" });
    assert.equal(await dropped, "io server disconnect");
    const r = await refusal(api.admin.users.list.query());
    assert.equal(r.code, "FORBIDDEN");
    assert.match(r.message, /admin\.users\.list needs the admin role; you are viewer/);
    assert.equal(await codeOf(api.nodes.list.query()), "OK", "still signed in, as a viewer");

    // Reconnected, the socket no longer gets admin notices.
    const back = await connect(cookie);
    let notices = 0;
    back.socket.on("admin.changed", () => notices++);
    await sleep(100);
    await admin.admin.groups.create.mutate({ name: "notice-check" });
    await sleep(300);
    assert.equal(notices, 0);
  });

  test("an admin may not disable, demote, reset or delete themselves", async () => {
    const cases: Array<[() => Promise<unknown>, RegExp]> = [
      [() => admin.admin.users.update.mutate({ userId: adminUser.id, disabled: true }), /may not disable your own account/],
      [() => admin.admin.users.update.mutate({ userId: adminUser.id, role: "operator" }), /may not change your own role to operator/],
      [() => admin.admin.users.delete.mutate({ userId: adminUser.id }), /may not delete your own account/],
      [() => admin.admin.users.resetPassword.mutate({ userId: adminUser.id }), /Account page/],
    ];
    for (const [call, re] of cases) {
      const r = await refusal(call());
      assert.equal(r.code, "BAD_REQUEST");
      assert.match(r.message, re);
    }
    assert.equal(await codeOf(admin.admin.users.update.mutate({ userId: adminUser.id, name: "Root" })), "OK", "renaming oneself is fine");
    const unknown = await refusal(admin.admin.users.update.mutate({ userId: "00000000-0000-4000-8000-000000000000", role: "viewer" }));
    assert.deepEqual(unknown, { code: "NOT_FOUND", message: "user 00000000-0000-4000-8000-000000000000 does not exist" });
  });

  test("reset password: a new one-time password, the old sessions end; delete removes the user", async () => {
    const u = await createUser(c, "viewer");
    const { api } = await signedIn(u);
    const r = await admin.admin.users.resetPassword.mutate({ userId: u.id });
    assert.equal(r.email, u.email);
    assert.equal(await codeOf(api.nodes.list.query()), "UNAUTHORIZED");
    const row = await c.services.prisma.user.findUniqueOrThrow({ where: { id: u.id } });
    assert.equal(row.mustChangePassword, true);
    assert.ok(await verifyPassword(r.oneTimePassword, row.passwordHash));
    assert.equal(await verifyPassword(u.password, row.passwordHash), false);

    await admin.admin.users.delete.mutate({ userId: u.id });
    assert.equal(await c.services.prisma.user.count({ where: { id: u.id } }), 0);
    assert.equal((await refusal(admin.admin.users.delete.mutate({ userId: u.id }))).code, "NOT_FOUND");
  });

  test("teams and node groups: members reach the nodes of the groups granted to their team, at once", async () => {
    const p = c.services.prisma;
    const { id: groupId } = await admin.admin.groups.create.mutate({ name: "prod" });
    const node = await p.node.create({ data: { hostname: "n1", name: "n1" } });
    await admin.nodes.update.mutate({ nodeId: node.id, groupId });
    const groups = await admin.admin.groups.list.query();
    const prod = groups.find((g) => g.id === groupId);
    assert.equal(prod?.nodeCount, 1);
    assert.deepEqual(
      prod?.nodes.map((n) => n.name),
      ["n1"],
    );
    assert.deepEqual(await refusal(admin.admin.groups.create.mutate({ name: "PROD" })), { code: "CONFLICT", message: 'node group "PROD" already exists' });

    const { id: teamId } = await admin.admin.teams.create.mutate({ name: "ops" });
    assert.deepEqual(await refusal(admin.admin.teams.create.mutate({ name: "ops" })), { code: "CONFLICT", message: 'team "ops" already exists' });
    assert.match((await refusal(admin.admin.teams.create.mutate({ name: "  " }))).message, /team name is required/);

    const op = await createUser(c, "operator");
    const { cookie, api } = await signedIn(op);
    assert.deepEqual((await api.nodes.list.query()).nodes, []);
    const { socket } = await connect(cookie);
    let seen = 0;
    socket.on("node.changed", (m: { nodeId: string }) => void (m.nodeId === node.id && seen++));

    await admin.admin.teams.addMember.mutate({ teamId, userId: op.id });
    await admin.admin.teams.grantGroup.mutate({ teamId, nodeGroupId: groupId });
    assert.deepEqual(
      (await api.nodes.list.query()).nodes.map((n) => n.id),
      [node.id],
    );
    c.services.live.nodeChanged(node.id, "status");
    await sleep(300);
    assert.equal(seen, 1, "the open socket joined the node's room without reconnecting");
    assert.match((await refusal(admin.admin.teams.addMember.mutate({ teamId, userId: op.id }))).message, /is already a member of team "ops"/);

    const teams = await admin.admin.teams.list.query();
    const ops = teams.find((t) => t.id === teamId);
    assert.deepEqual(
      ops?.members.map((m) => m.email),
      [op.email],
    );
    assert.deepEqual(
      ops?.groups.map((g) => g.name),
      ["prod"],
    );
    assert.deepEqual(
      (await admin.admin.users.list.query()).find((u) => u.id === op.id)?.teams.map((t) => t.name),
      ["ops"],
    );

    await admin.admin.teams.rename.mutate({ teamId, name: "operations" });
    await admin.admin.groups.rename.mutate({ groupId, name: "production" });
    assert.deepEqual(
      (await admin.admin.teams.list.query()).find((t) => t.id === teamId)?.groups.map((g) => g.name),
      ["production"],
    );

    await admin.admin.teams.revokeGroup.mutate({ teamId, nodeGroupId: groupId });
    assert.deepEqual((await api.nodes.list.query()).nodes, []);
    c.services.live.nodeChanged(node.id, "status");
    await sleep(300);
    assert.equal(seen, 1, "the socket left the node's room");
    assert.match((await refusal(admin.admin.teams.revokeGroup.mutate({ teamId, nodeGroupId: groupId }))).message, /does not have node group "production"/);

    await admin.admin.teams.grantGroup.mutate({ teamId, nodeGroupId: groupId });
    await admin.admin.teams.removeMember.mutate({ teamId, userId: op.id });
    assert.deepEqual((await api.nodes.list.query()).nodes, []);

    // Deleting the group leaves its nodes in no group.
    const del = await admin.admin.groups.delete.mutate({ groupId });
    assert.equal(del.nodesUngrouped, 1);
    assert.equal((await p.node.findUniqueOrThrow({ where: { id: node.id } })).groupId, null);
    assert.deepEqual((await admin.admin.teams.list.query()).find((t) => t.id === teamId)?.groups, []);
    await admin.admin.teams.delete.mutate({ teamId });
    assert.equal(
      (await admin.admin.teams.list.query()).some((t) => t.id === teamId),
      false,
    );
    assert.equal((await refusal(admin.admin.teams.delete.mutate({ teamId }))).code, "NOT_FOUND");
  });

  test("join tokens: shown once with both commands, listed without the secret, work exactly once, unused ones can be revoked", async () => {
    const { id: groupId } = await admin.admin.groups.create.mutate({ name: "edge" });
    assert.match((await refusal(admin.admin.tokens.create.mutate({ note: "x", ttlHours: 0 }))).message, /at least 1 hour/);
    assert.match((await refusal(admin.admin.tokens.create.mutate({ note: "x", ttlHours: 169 }))).message, /at most 168 hours/);

    const t = await admin.admin.tokens.create.mutate({ note: "rack 4", nodeGroupId: groupId, ttlHours: 2 });
    assert.match(t.token, /^bjt_/);
    assert.equal(t.agentCommand, `berth-agent --console-url ${c.url} --join-token ${t.token}`);
    assert.equal(t.installCommand, `curl -fsSL '${c.url}/install.sh?token=${t.token}' | sudo bash`);
    const hours = (Date.parse(t.expiresAt) - Date.now()) / 3600_000;
    assert.ok(hours > 1.9 && hours <= 2, `expires in 2 hours (${hours})`);

    const list = await admin.admin.tokens.list.query();
    const row = list.find((x) => x.id === t.id);
    assert.equal(row?.note, "rack 4");
    assert.equal(row?.group?.name, "edge");
    assert.equal(row?.createdBy, adminUser.email);
    assert.equal(row?.status, "unused");
    const stored = await c.services.prisma.joinToken.findUniqueOrThrow({ where: { id: t.id } });
    assert.doesNotMatch(JSON.stringify(list), new RegExp(`${t.token}|${stored.tokenHash}`));

    const first = await c.services.nodeRegistry.consumeJoinToken(t.token);
    assert.deepEqual(first, { ok: true, joinTokenId: t.id, nodeGroupId: groupId });
    const { nodeId } = await c.services.nodeRegistry.createNode("edge-1", {} as never, { joinTokenId: t.id });
    assert.deepEqual(await c.services.nodeRegistry.consumeJoinToken(t.token), { ok: false, reason: "join token already used" });
    const used = (await admin.admin.tokens.list.query()).find((x) => x.id === t.id);
    assert.equal(used?.status, "used");
    assert.deepEqual(used?.node, { id: nodeId, name: "edge-1" });
    const r = await refusal(admin.admin.tokens.revoke.mutate({ tokenId: t.id }));
    assert.equal(r.code, "PRECONDITION_FAILED");
    assert.match(r.message, /already used by node edge-1/);

    const unused = await admin.admin.tokens.create.mutate({ note: "spare", ttlHours: 1 });
    await admin.admin.tokens.revoke.mutate({ tokenId: unused.id });
    assert.deepEqual(await c.services.nodeRegistry.consumeJoinToken(unused.token), { ok: false, reason: "unknown join token" });
    assert.equal(
      (await admin.admin.tokens.list.query()).some((x) => x.id === unused.id),
      false,
    );

    const leaked = await c.services.prisma.$queryRaw<
      Array<{ n: bigint }>
    >`SELECT count(*) AS n FROM audit_log WHERE details::text LIKE ${`%${t.token}%`} OR details::text LIKE ${`%${unused.token}%`}`;
    assert.equal(Number(leaked[0]!.n), 0, "no token in the audit log");
  });

  test("registries: the password is sealed, never listed, never in the audit log; an empty password keeps the old one", async () => {
    const secret = "s3cret-Registry-pw!";
    const saved = await admin.admin.registries.save.mutate({ address: "registry.test.local:5000", username: "deploy", password: secret, insecure: true });
    assert.deepEqual(
      { ...saved, id: undefined },
      { id: undefined, address: "registry.test.local:5000", username: "deploy", hasPassword: true, insecure: true },
    );
    const list = await admin.admin.registries.list.query();
    assert.equal(list.length, 1);
    assert.equal(list[0]!.hasPassword, true);
    const sealed = (await c.services.prisma.registry.findUniqueOrThrow({ where: { address: "registry.test.local:5000" } })).passwordEncrypted!;
    assert.ok(sealed && !sealed.includes(secret), "stored sealed");
    const json = JSON.stringify(list);
    assert.ok(!json.includes(secret) && !json.includes(sealed) && !/passwordEncrypted/.test(json));

    await admin.admin.registries.save.mutate({ address: "registry.test.local:5000", username: "deploy2", password: "", insecure: false });
    assert.deepEqual(await c.services.registries.getCredentials("registry.test.local:5000"), { username: "deploy2", password: secret, insecure: false });
    await admin.admin.registries.save.mutate({ address: "registry.test.local:5000", username: "deploy2", clearPassword: true });
    assert.equal((await admin.admin.registries.list.query())[0]!.hasPassword, false);

    const bad = await refusal(admin.admin.registries.save.mutate({ address: "https://registry.test.local/v2", password: secret }));
    assert.equal(bad.code, "BAD_REQUEST");
    assert.match(bad.message, /host\[:port\]/);

    const leaked = await c.services.prisma.$queryRaw<Array<{ n: bigint }>>`SELECT count(*) AS n FROM audit_log WHERE details::text LIKE ${`%${secret}%`}`;
    assert.equal(Number(leaked[0]!.n), 0, "the password is in no audit entry");
    assert.ok((await c.services.prisma.auditLog.count({ where: { action: "admin.registries.save" } })) >= 3, "the saves are recorded");

    await admin.admin.registries.remove.mutate({ address: "registry.test.local:5000" });
    assert.deepEqual(await admin.admin.registries.list.query(), []);
    assert.deepEqual(await refusal(admin.admin.registries.remove.mutate({ address: "registry.test.local:5000" })), {
      code: "NOT_FOUND",
      message: "registry registry.test.local:5000 does not exist",
    });
  });

  test("audit log: filters on actor, action prefix, node, outcome and time, paginated newest first", async () => {
    const p = c.services.prisma;
    const nodeA = (await p.node.create({ data: { hostname: "audit-a", name: "audit-a" } })).id;
    const base = Date.parse("2020-01-01T00:00:00Z");
    const at = (min: number) => new Date(base + min * 60_000);
    await p.auditLog.createMany({
      data: [
        {
          at: at(0),
          actorLabel: "ann@corp.example",
          action: "jobs.pull",
          targetNodeIds: [nodeA],
          outcome: "success",
          details: { input: { reference: "busybox" } },
        },
        {
          at: at(1),
          actorLabel: "ann@corp.example",
          action: "jobs.container",
          targetNodeIds: [nodeA],
          outcome: "failure",
          details: { error: "no such container" },
        },
        { at: at(2), actorLabel: "ben@corp.example", action: "jobs.pull", targetNodeIds: [], outcome: "denied", details: {} },
        { at: at(3), actorLabel: "ben@corp.example", action: "nodes.revoke", targetNodeIds: [nodeA], outcome: "success", details: {} },
      ],
    });
    const range = { from: at(0).toISOString(), to: at(10).toISOString() };
    const all = await admin.admin.audit.list.query({ ...range });
    assert.equal(all.total, 4);
    assert.deepEqual(
      all.items.map((i) => i.action),
      ["nodes.revoke", "jobs.pull", "jobs.container", "jobs.pull"],
      "newest first",
    );
    assert.deepEqual(all.items[2]!.details, { error: "no such container" });

    const q = async (f: AuditFilter) => (await admin.admin.audit.list.query({ ...range, ...f })).items.map((i) => `${i.actor} ${i.action} ${i.outcome}`);
    assert.deepEqual(await q({ actor: "ANN@" }), ["ann@corp.example jobs.container failure", "ann@corp.example jobs.pull success"]);
    assert.deepEqual(await q({ action: "jobs." }), [
      "ben@corp.example jobs.pull denied",
      "ann@corp.example jobs.container failure",
      "ann@corp.example jobs.pull success",
    ]);
    assert.deepEqual(await q({ action: "jobs.pull", outcome: "denied" }), ["ben@corp.example jobs.pull denied"]);
    assert.deepEqual(await q({ nodeId: nodeA, actor: "ben" }), ["ben@corp.example nodes.revoke success"]);
    assert.deepEqual(await q({ from: at(1).toISOString(), to: at(2).toISOString() }), [
      "ben@corp.example jobs.pull denied",
      "ann@corp.example jobs.container failure",
    ]);

    const page1 = await admin.admin.audit.list.query({ ...range, pageSize: 3 });
    const page2 = await admin.admin.audit.list.query({ ...range, pageSize: 3, page: 2 });
    assert.deepEqual([page1.pages, page1.items.length, page2.items.length, page2.items[0]!.action], [2, 3, 1, "jobs.pull"]);
    assert.equal(page2.items[0]!.actor, "ann@corp.example");

    // The admin's own changes are there, with their outcome.
    const mine = await admin.admin.audit.list.query({ actor: adminUser.email, action: "admin.users.update", outcome: "failure" });
    assert.ok(mine.total >= 3, "the refused self-demotion and friends are recorded as failures");
    assert.ok((await admin.admin.audit.actions.query()).includes("admin.teams.create"));

    const bad = await refusal(admin.admin.audit.list.query({ from: "yesterday-ish" }));
    assert.match(bad.message, /from is not a date and time/);
    assert.match((await refusal(admin.admin.audit.list.query({ from: at(5).toISOString(), to: at(1).toISOString() }))).message, /from is after to/);
  });
});
