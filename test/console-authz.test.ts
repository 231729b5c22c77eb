// The authorisation matrix: every tRPC procedure of the console, called over HTTP by
// each kind of caller — admin, operator and viewer of the node's team, an operator of
// another team, a disabled user, no session, an expired session — and the browser
// socket with each of them and with a foreign Origin. Nothing a caller may not do
// succeeds, and every refusal says why.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { io as ioClient, type Socket } from "socket.io-client";
import { appRouter } from "../server/trpc/router.ts";
import { updateSecuritySettings } from "../server/auth/settings.ts";
import { createTeamWithGroup, createUser, sessionCookie, startTestConsole, type TestConsole, type TestUser } from "./helpers/console.ts";

type Need = "public" | "signed-in" | "read" | "operate" | "admin";

/**
 * What each procedure needs. A procedure missing here fails the test: a new procedure
 * must be placed in the matrix before it ships.
 */
function needOf(path: string): Need | undefined {
  if (path === "auth.me") return "public";
  if (["auth.changePassword", "auth.logoutEverywhere", "auth.sessions", "auth.revokeSession"].includes(path) || path.startsWith("auth.twoFactor."))
    return "signed-in";
  if (path.startsWith("admin.") || path.startsWith("installer.") || ["nodes.revoke", "nodes.delete", "nodes.update", "nodes.restartAgent"].includes(path))
    return "admin";
  if (path.startsWith("jobs.") && !["jobs.list", "jobs.get"].includes(path)) return "operate";
  if (path.startsWith("nodes.") || path.startsWith("inventory.") || path.startsWith("jobs.")) return "read";
  return undefined;
}

type Principal = "admin" | "operator" | "viewer" | "outsider" | "disabled" | "anonymous" | "expired";
const PRINCIPALS: Principal[] = ["admin", "operator", "viewer", "outsider", "disabled", "anonymous", "expired"];

/** Whether `who` may call a procedure needing `need` on the team's node. */
function allowed(who: Principal, need: Need, nodeScoped: boolean): boolean {
  if (need === "public") return true;
  if (who === "disabled" || who === "anonymous" || who === "expired") return false;
  if (need === "signed-in") return true;
  if (need === "admin") return who === "admin";
  if (need === "operate") return who === "admin" || who === "operator";
  // read: an outsider may list (and sees nothing of the team's nodes) but not name a node of theirs.
  return who !== "outsider" || !nodeScoped;
}

interface CallResult {
  status: number;
  code: string;
  message: string;
}

describe("authorisation matrix", () => {
  let c: TestConsole;
  let nodeId: string;
  let jobId: string;
  let secondNodeId: string;
  const users = {} as Record<"admin" | "operator" | "viewer" | "outsider" | "disabled", TestUser>;

  before(async () => {
    c = await startTestConsole("console-authz");
    const p = c.services.prisma;
    const group = await p.nodeGroup.create({ data: { name: "prod" } });
    const other = await p.nodeGroup.create({ data: { name: "staging" } });
    const node = await p.node.create({ data: { hostname: "node-a", name: "node-a", groupId: group.id } });
    nodeId = node.id;
    secondNodeId = (await p.node.create({ data: { hostname: "node-b", name: "node-b", groupId: group.id } })).id;
    const job = await p.job.create({
      data: { kind: "image.pull", status: "succeeded", steps: { create: [{ nodeId, action: "image.pull", status: "succeeded" }] } },
    });
    jobId = job.id;
    const team = await createTeamWithGroup(c, "ops", group.id);
    const otherTeam = await createTeamWithGroup(c, "web", other.id);
    users.admin = await createUser(c, "admin");
    users.operator = await createUser(c, "operator", { teamIds: [team] });
    users.viewer = await createUser(c, "viewer", { teamIds: [team] });
    users.outsider = await createUser(c, "operator", { teamIds: [otherTeam] });
    users.disabled = await createUser(c, "operator", { teamIds: [team] });
  });

  after(async () => {
    await c?.stop();
  });

  async function cookieOf(who: Principal): Promise<string | undefined> {
    if (who === "anonymous") return undefined;
    if (who === "expired") return sessionCookie(c, users.operator.id, { ttlMs: 1_000, now: new Date(Date.now() - 60_000) });
    const cookie = await sessionCookie(c, users[who].id);
    // Disabled after signing in: the session exists, the account no longer works.
    if (who === "disabled") await c.services.prisma.user.update({ where: { id: users.disabled.id }, data: { disabled: true } });
    return cookie;
  }

  async function call(path: string, type: string, input: unknown, cookie: string | undefined, origin = c.url): Promise<CallResult> {
    const headers: Record<string, string> = { origin, "content-type": "application/json" };
    if (cookie) headers.cookie = cookie;
    const url = `${c.url}/api/trpc/${path}`;
    const res =
      type === "query"
        ? await fetch(`${url}?input=${encodeURIComponent(JSON.stringify(input))}`, { headers })
        : await fetch(url, { method: "POST", headers, body: JSON.stringify(input) });
    const body = (await res.json().catch(() => ({}))) as { error?: { message?: string; data?: { code?: string } } };
    return { status: res.status, code: body.error?.data?.code ?? (res.ok ? "OK" : `HTTP ${res.status}`), message: body.error?.message ?? "" };
  }

  /** Inputs that pass validation, aimed at the team's node (or at nothing, for destructive admin calls). */
  function sampleInput(path: string): { input: unknown; nodeScoped: boolean } {
    const ref = "127.0.0.1:5999/none/such:1";
    const samples: Record<string, unknown> = {
      "auth.changePassword": { current: "not the password", next: "a new password 123" },
      "auth.revokeSession": { sessionId: randomUUID() },
      "auth.twoFactor.begin": { password: "not the password" },
      "auth.twoFactor.confirm": { token: "123456" },
      "auth.twoFactor.disable": { password: "not the password" },
      "auth.twoFactor.newRecoveryCodes": { password: "not the password" },
      "admin.security.hostAccess.set": { groupId: randomUUID(), allowHostNetwork: false, bindMounts: [] },
      "admin.security.locks.unlock": { key: "account:nobody@test.local" },
      "admin.security.updateSettings": {},
      "admin.security.resetTwoFactor": { userId: randomUUID() },
      "nodes.list": {},
      "nodes.get": { nodeId },
      "nodes.revoke": { nodeId: randomUUID() },
      "nodes.delete": { nodeId: randomUUID() },
      "nodes.update": { nodeId: randomUUID(), name: "x", labels: { env: "prod" } },
      "inventory.images": { nodeId },
      "inventory.containers": { nodeId },
      "inventory.volumes": { nodeId },
      "inventory.networks": { nodeId },
      "inventory.containerLogs": { nodeId, id: "web" },
      "inventory.containerInspect": { nodeId, id: "web" },
      "inventory.imageHistory": { nodeId, reference: "busybox" },
      "inventory.volume": { nodeId, name: "data" },
      "inventory.image": { nodeId, id: "sha256:0000" },
      "nodes.engine": { nodeId },
      "nodes.diskUsage": { nodeId },
      "jobs.createVolume": { nodeIds: [nodeId], name: "data", driverOpts: { type: "tmpfs", device: "tmpfs" } },
      "jobs.removeVolumes": { targets: [{ nodeId, name: "data" }] },
      "jobs.pruneVolumes": { nodeIds: [nodeId] },
      "jobs.createNetwork": { nodeIds: [nodeId], name: "backend", subnet: "10.30.0.0/24", gateway: "10.30.0.1" },
      "jobs.removeNetworks": { targets: [{ nodeId, id: "backend" }] },
      "jobs.pruneNetworks": { nodeIds: [nodeId] },
      "jobs.pruneContainers": { nodeIds: [nodeId] },
      "jobs.list": { nodeId },
      "jobs.get": { jobId },
      "jobs.cancel": { jobId },
      "jobs.pull": { nodeIds: [nodeId], reference: ref },
      "jobs.push": { nodeIds: [nodeId], reference: ref },
      "jobs.tag": { nodeIds: [nodeId], source: ref, target: `${ref}-b` },
      "jobs.removeImage": { nodeIds: [nodeId], reference: ref },
      "jobs.prune": { nodeIds: [nodeId] },
      "jobs.distribute": { sourceNodeId: nodeId, targetNodeIds: [secondNodeId], reference: ref },
      "jobs.container": { action: "stop", targets: [{ nodeId, id: "web" }] },
      "jobs.run": { nodeId, image: ref },
      "jobs.build": { nodeId, dockerfile: `FROM ${ref}\n` },
    };
    const input = path in samples ? samples[path] : {};
    const nodeScoped = JSON.stringify(input).includes(nodeId) || JSON.stringify(input).includes(jobId);
    return { input, nodeScoped };
  }

  test("every procedure is in the matrix", () => {
    const missing = Object.keys(appRouter._def.procedures).filter((p) => needOf(p) === undefined);
    assert.deepEqual(missing, [], "procedures without an entry in the matrix");
  });

  for (const who of PRINCIPALS) {
    test(`${who}: allowed calls pass the check, the rest are refused with a clear error`, async () => {
      const wrong: string[] = [];
      for (const [path, proc] of Object.entries(appRouter._def.procedures)) {
        const need = needOf(path);
        if (!need) continue;
        const { input, nodeScoped } = sampleInput(path);
        const r = await call(path, (proc as unknown as { _def: { type: string } })._def.type, input, await cookieOf(who));
        const refused = r.code === "UNAUTHORIZED" || r.code === "FORBIDDEN";
        const expectAllowed = allowed(who, need, nodeScoped);
        if (expectAllowed && refused) wrong.push(`${path}: refused (${r.code}: ${r.message})`);
        if (!expectAllowed) {
          if (!refused) wrong.push(`${path}: not refused (${r.code} ${r.message})`);
          else if (r.message.length < 10) wrong.push(`${path}: refusal without a clear message: "${r.message}"`);
          else if (["disabled", "anonymous", "expired"].includes(who) && r.code !== "UNAUTHORIZED") wrong.push(`${path}: ${r.code} instead of UNAUTHORIZED`);
        }
      }
      assert.deepEqual(wrong, []);
    });
  }

  test("the messages say what is wrong", async () => {
    const viewer = await cookieOf("viewer");
    const r = await call("jobs.pull", "mutation", { nodeIds: [nodeId], reference: "busybox" }, viewer);
    assert.equal(r.code, "FORBIDDEN");
    assert.match(r.message, /viewer role may not/);
    const outsider = await cookieOf("outsider");
    const o = await call("nodes.get", "query", { nodeId }, outsider);
    assert.match(o.message, new RegExp(`node ${nodeId} is not in a node group of your teams`));
    const anon = await call("nodes.list", "query", {}, undefined);
    assert.match(anon.message, /not signed in/);
  });

  test("an outsider's lists hold nothing of the team's nodes", async () => {
    const outsider = await cookieOf("outsider");
    const nodes = await call("nodes.list", "query", {}, outsider);
    assert.equal(nodes.code, "OK");
    const res = await fetch(`${c.url}/api/trpc/nodes.list?input=${encodeURIComponent("{}")}`, { headers: { cookie: outsider ?? "" } });
    const body = (await res.json()) as { result: { data: { nodes: Array<{ id: string }> } } };
    assert.deepEqual(body.result.data.nodes, []);
    const jobs = await fetch(`${c.url}/api/trpc/jobs.list?input=${encodeURIComponent("{}")}`, { headers: { cookie: outsider ?? "" } });
    assert.equal(((await jobs.json()) as { result: { data: { total: number } } }).result.data.total, 0);
  });

  test("no answer of any query holds a secret: registry passwords, kept SSH credentials, TOTP secrets, password or token hashes", async () => {
    const p = c.services.prisma;
    const box = c.services.secretBox;
    const clear = ["registry-pw-Zq81", "ssh-pw-Kx93", "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"];
    const reg = await p.registry.create({
      data: { address: "registry.secret.test:5000", username: "deploy", passwordEncrypted: box.seal(clear[0]!, "registry-password:registry.secret.test:5000") },
    });
    const ssh = await p.sshHost.create({
      data: {
        host: "10.9.8.7",
        hostKeyAlgorithm: "ssh-ed25519",
        hostKeyFingerprint: "SHA256:abc",
        username: "root",
        credentialsSealed: box.seal(JSON.stringify({ password: clear[1] }), "ssh-credentials:10.9.8.7:22"),
        nodeId,
      },
    });
    await p.user.update({ where: { id: users.admin.id }, data: { totpSecretSealed: box.seal(clear[2]!, `totp:${users.admin.id}`) } });
    const stored = [
      reg.passwordEncrypted!,
      ssh.credentialsSealed!,
      ...(await p.user.findMany({ select: { passwordHash: true, totpSecretSealed: true } }))
        .flatMap((u) => [u.passwordHash, u.totpSecretSealed])
        .filter((x): x is string => !!x),
      ...(await p.session.findMany({ select: { tokenHash: true } })).map((x) => x.tokenHash),
    ];
    try {
      const leaks: string[] = [];
      let answered = 0;
      for (const who of ["admin", "operator", "viewer"] as const) {
        const cookie = await cookieOf(who);
        for (const [path, proc] of Object.entries(appRouter._def.procedures)) {
          if ((proc as unknown as { _def: { type: string } })._def.type !== "query") continue;
          const res = await fetch(`${c.url}/api/trpc/${path}?input=${encodeURIComponent(JSON.stringify(sampleInput(path).input))}`, {
            headers: { origin: c.url, ...(cookie ? { cookie } : {}) },
          });
          const body = await res.text();
          if (res.ok) answered++;
          for (const secret of [...clear, ...stored]) if (body.includes(secret)) leaks.push(`${who} ${path}: ${secret.slice(0, 12)}…`);
          if (/\$scrypt\$|passwordEncrypted|credentialsSealed|totpSecret|tokenHash|codeHash/.test(body)) leaks.push(`${who} ${path}: a secret column's name`);
        }
      }
      assert.ok(answered > 20, `queries answered (${answered})`);
      assert.deepEqual(leaks, []);
    } finally {
      await p.registry.delete({ where: { id: reg.id } });
      await p.sshHost.delete({ where: { id: ssh.id } });
      await p.user.update({ where: { id: users.admin.id }, data: { totpSecretSealed: null } });
    }
  });

  test("a foreign Origin is refused on the API", async () => {
    const r = await call("nodes.list", "query", {}, await cookieOf("admin"), "https://evil.example");
    assert.equal(r.status, 403);
  });

  test("refusals are in the audit log as denied", async () => {
    const rows = await c.services.prisma.auditLog.findMany({ where: { outcome: "denied", action: "jobs.pull" } });
    assert.ok(rows.length >= 3, `viewer, outsider, disabled, anonymous, expired pulls recorded as denied (${rows.length})`);
    assert.ok(rows.every((r) => r.targetNodeIds.includes(nodeId) || r.actorLabel === "anonymous" || r.actorUserId !== null));
  });

  // --- the browser socket --------------------------------------------------------------

  function connect(cookie: string | undefined, origin: string): Promise<{ socket: Socket; error?: string }> {
    return new Promise((resolve) => {
      const socket = ioClient(`${c.url}/ui`, {
        transports: ["websocket"],
        reconnection: false,
        forceNew: true,
        extraHeaders: { origin, ...(cookie ? { cookie } : {}) },
      });
      socket.once("connect", () => resolve({ socket }));
      socket.once("connect_error", (e) => resolve({ socket, error: e.message }));
    });
  }

  test("the browser socket: signed-in callers connect; none, expired, disabled or a foreign Origin are refused", async () => {
    const cases: Array<[Principal, string, boolean]> = [
      ["admin", c.url, true],
      ["viewer", c.url, true],
      ["outsider", c.url, true],
      ["anonymous", c.url, false],
      ["expired", c.url, false],
      ["disabled", c.url, false],
      ["admin", "https://evil.example", false],
    ];
    for (const [who, origin, ok] of cases) {
      const { socket, error } = await connect(await cookieOf(who), origin);
      socket.close();
      assert.equal(!error, ok, `${who} from ${origin}: ${error ?? "connected"}`);
      if (!ok) assert.match(error ?? "", /not signed in|expired|origin/);
    }
  });

  test("the browser socket: a node's changes reach its team and admins, not other teams; a role change applies at once", async () => {
    const viewer = await connect(await cookieOf("viewer"), c.url);
    const outsider = await connect(await cookieOf("outsider"), c.url);
    const seen = { viewer: 0, outsider: 0 };
    viewer.socket.on("node.changed", () => seen.viewer++);
    outsider.socket.on("node.changed", () => seen.outsider++);
    await new Promise((r) => setTimeout(r, 200));
    c.services.live.nodeChanged(nodeId, "status");
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(seen, { viewer: 1, outsider: 0 });

    const dropped = new Promise<string>((r) => outsider.socket.once("disconnect", (reason) => r(reason)));
    await c.services.prisma.user.update({ where: { id: users.outsider.id }, data: { disabled: true } });
    await c.services.live.refreshUser(users.outsider.id);
    assert.equal(await dropped, "io server disconnect");
    viewer.socket.close();
    outsider.socket.close();
  });

  test("the agents' namespace refuses a browser Origin", async () => {
    const r = await new Promise<string>((resolve) => {
      const s = ioClient(`${c.url}/agents`, {
        transports: ["websocket"],
        reconnection: false,
        forceNew: true,
        extraHeaders: { origin: "https://evil.example" },
        auth: {},
      });
      s.once("connect", () => {
        s.close();
        resolve("connected");
      });
      s.once("connect_error", (e) => {
        s.close();
        resolve(e.message);
      });
    });
    assert.match(r, /origin/);
  });
});

// --- host-level container options -------------------------------------------------------
//
// A container that binds `/` or joins the host's network is root on the node. Each such
// option is a row: the operator is refused (naming the option and the setting that allows
// it), the admin is allowed, the operator is allowed only inside the node group's host
// policy; refusals are audited as denied. The check sits on every job the console makes,
// so the escape is also tried through every mutation of the API.

describe("authorisation matrix: host-level options", () => {
  let c: TestConsole;
  let nodeId: string;
  let groupId: string;
  let otherNodeId: string;
  let operatorId: string;
  const cookies = {} as Record<"admin" | "operator" | "viewer" | "outsider", string>;

  before(async () => {
    c = await startTestConsole("console-authz-host");
    const p = c.services.prisma;
    groupId = (await p.nodeGroup.create({ data: { name: "prod" } })).id;
    const other = await p.nodeGroup.create({ data: { name: "staging" } });
    nodeId = (await p.node.create({ data: { hostname: "node-a", name: "node-a", groupId } })).id;
    otherNodeId = (await p.node.create({ data: { hostname: "node-s", name: "node-s", groupId: other.id } })).id;
    const team = await createTeamWithGroup(c, "ops", groupId);
    const otherTeam = await createTeamWithGroup(c, "web", other.id);
    cookies.admin = await sessionCookie(c, (await createUser(c, "admin")).id);
    operatorId = (await createUser(c, "operator", { teamIds: [team] })).id;
    cookies.operator = await sessionCookie(c, operatorId);
    cookies.viewer = await sessionCookie(c, (await createUser(c, "viewer", { teamIds: [team] })).id);
    cookies.outsider = await sessionCookie(c, (await createUser(c, "operator", { teamIds: [otherTeam] })).id);
  });

  after(async () => {
    await c?.stop();
  });

  async function run(who: keyof typeof cookies, form: Record<string, unknown>, node = nodeId): Promise<CallResult> {
    const res = await fetch(`${c.url}/api/trpc/jobs.run`, {
      method: "POST",
      headers: { origin: c.url, "content-type": "application/json", cookie: cookies[who] },
      body: JSON.stringify({ nodeId: node, image: "busybox", ...form }),
    });
    const body = (await res.json().catch(() => ({}))) as { error?: { message?: string; data?: { code?: string } } };
    return { status: res.status, code: body.error?.data?.code ?? (res.ok ? "OK" : `HTTP ${res.status}`), message: body.error?.message ?? "" };
  }

  async function setPolicy(rules: { allowHostNetwork: boolean; bindMounts: Array<{ path: string; access: "ro" | "rw" }> }) {
    const res = await fetch(`${c.url}/api/trpc/admin.security.hostAccess.set`, {
      method: "POST",
      headers: { origin: c.url, "content-type": "application/json", cookie: cookies.admin },
      body: JSON.stringify({ groupId, ...rules }),
    });
    assert.equal(res.status, 200, await res.text());
  }

  /** Each host-level option of the run form, the option the refusal must name, and whether the engine can apply it today. */
  const ROWS: Array<{ form: Record<string, unknown>; names: RegExp; engine: boolean }> = [
    { form: { volumes: ["/:/host"] }, names: /--volume "\/:\/host" binds host path \/,/, engine: true },
    { form: { volumes: ["/var/lib/berth:/x"] }, names: /--volume "\/var\/lib\/berth:\/x" binds host path \/var\/lib\/berth,/, engine: true },
    { form: { volumes: ["/var/../:/host"] }, names: /binds host path \/,/, engine: true },
    { form: { volumes: ["//etc//:/e:ro"] }, names: /binds host path \/etc,/, engine: true },
    { form: { network: "host" }, names: /--network "host" uses the host's network/, engine: true },
    { form: { network: "container:db" }, names: /--network "container:db"/, engine: true },
    { form: { capAdd: ["SYS_ADMIN"] }, names: /--cap-add .*SYS_ADMIN.* only admins/, engine: true },
    { form: { privileged: true }, names: /--privileged "true" is a host-level option/, engine: false },
    { form: { pid: "host" }, names: /--pid "host"/, engine: false },
    { form: { ipc: "host" }, names: /--ipc "host"/, engine: false },
    { form: { uts: "host" }, names: /--uts "host"/, engine: false },
    { form: { devices: ["/dev/sda"] }, names: /--device .*\/dev\/sda/, engine: false },
    { form: { securityOpt: ["seccomp=unconfined"] }, names: /--security-opt "seccomp=unconfined"/, engine: false },
    { form: { sysctls: ["kernel.core_pattern=|/tmp/x"] }, names: /--sysctl /, engine: false },
  ];

  for (const row of ROWS) {
    test(`${JSON.stringify(row.form)}: operator refused naming it, viewer refused, admin allowed`, async () => {
      const op = await run("operator", row.form);
      assert.equal(op.code, "FORBIDDEN", op.message);
      assert.match(op.message, row.names);
      assert.match(op.message, /Admin → Security → Host access|only admins/);
      const viewer = await run("viewer", row.form);
      assert.equal(viewer.code, "FORBIDDEN");
      const admin = await run("admin", row.form);
      if (row.engine) assert.equal(admin.code, "OK", admin.message);
      // Options the node's engine cannot apply yet pass the check and are then refused by name, not dropped.
      else assert.ok(admin.code === "BAD_REQUEST" && /engine/.test(admin.message), `${admin.code}: ${admin.message}`);
    });
  }

  test("named volumes and ordinary options stay allowed for operators", async () => {
    const r = await run("operator", {
      volumes: ["data:/var/lib/data", "/anonymous"],
      network: "bridge",
      securityOpt: ["no-new-privileges"],
      ports: ["8080:80"],
    });
    assert.equal(r.code, "OK", r.message);
  });

  test("a volume whose driver options bind a host path is judged like that bind", async () => {
    const create = async (who: keyof typeof cookies, driverOpts: Record<string, string>): Promise<CallResult> => {
      const res = await fetch(`${c.url}/api/trpc/jobs.createVolume`, {
        method: "POST",
        headers: { origin: c.url, "content-type": "application/json", cookie: cookies[who] },
        body: JSON.stringify({ nodeIds: [nodeId], name: "hostroot", driverOpts }),
      });
      const body = (await res.json().catch(() => ({}))) as { error?: { message?: string; data?: { code?: string } } };
      return { status: res.status, code: body.error?.data?.code ?? (res.ok ? "OK" : `HTTP ${res.status}`), message: body.error?.message ?? "" };
    };
    const op = await create("operator", { type: "none", o: "bind", device: "/" });
    assert.equal(op.code, "FORBIDDEN", op.message);
    assert.match(op.message, /--opt "device=\/" binds host path \/,/);
    assert.equal((await create("operator", { type: "tmpfs", device: "tmpfs", o: "size=1m" })).code, "OK");
    assert.equal((await create("admin", { type: "none", o: "bind", device: "/" })).code, "OK");
    await setPolicy({ allowHostNetwork: false, bindMounts: [{ path: "/srv/data", access: "rw" }] });
    try {
      assert.equal((await create("operator", { type: "none", o: "bind", device: "/srv/data/vol" })).code, "OK");
    } finally {
      await setPolicy({ allowHostNetwork: false, bindMounts: [] });
    }
  });

  test("a node group's policy: operators inside its prefixes, read-only where it says so, nothing else", async () => {
    await setPolicy({
      allowHostNetwork: false,
      bindMounts: [
        { path: "/srv/data/", access: "rw" },
        { path: "/srv/data/keys", access: "ro" },
      ],
    });
    const expect = async (form: Record<string, unknown>, code: string, message?: RegExp) => {
      const r = await run("operator", form);
      assert.equal(r.code, code, `${JSON.stringify(form)}: ${r.message}`);
      if (message) assert.match(r.message, message);
    };
    await expect({ volumes: ["/srv/data/app:/app"] }, "OK");
    await expect({ volumes: ["/srv/data:/d:ro"] }, "OK");
    await expect({ volumes: ["/srv/data/keys/k:/k"] }, "FORBIDDEN", /read-only only/);
    await expect({ volumes: ["/srv/data/keys/k:/k:ro"] }, "OK");
    await expect({ volumes: ["/srv/data/../../:/host"] }, "FORBIDDEN", /host path \/,/);
    await expect({ volumes: ["/srv/database:/d"] }, "FORBIDDEN", /does not list/);
    await expect({ volumes: ["/:/host"] }, "FORBIDDEN");
    await expect({ network: "host" }, "FORBIDDEN", /does not allow it/);
    await expect({ privileged: true }, "FORBIDDEN", /only admins/);
    // The policy is the group's: another team's operator on another group's node gains nothing.
    const outsider = await run("outsider", { volumes: ["/srv/data/app:/app"] }, otherNodeId);
    assert.equal(outsider.code, "FORBIDDEN");
    assert.match(outsider.message, /node group "staging"/);

    await setPolicy({ allowHostNetwork: true, bindMounts: [] });
    await expect({ network: "host" }, "OK");
    await expect({ volumes: ["/srv/data/app:/app"] }, "FORBIDDEN", /does not list/);
    await setPolicy({ allowHostNetwork: false, bindMounts: [] });
  });

  test("the escape through every mutation of the API: no job is made with a host-level option for an operator", async () => {
    const escape = {
      volumes: ["/:/host"],
      network: "host",
      networkMode: "host",
      mounts: [{ type: "bind", source: "/", destination: "/host" }],
      privileged: true,
      binds: ["/:/host"],
    };
    const since = new Date();
    for (const [path, proc] of Object.entries(appRouter._def.procedures)) {
      if ((proc as unknown as { _def: { type: string } })._def.type !== "mutation" || !path.startsWith("jobs.")) continue;
      const base: Record<string, unknown> = {
        nodeId,
        nodeIds: [nodeId],
        dockerfile: "FROM busybox\nRUN true\n",
        image: "busybox",
        reference: "busybox",
        source: "busybox",
        target: "busybox:b",
        sourceNodeId: otherNodeId,
        targetNodeIds: [nodeId],
        action: "start",
        targets: [{ nodeId, id: "web" }],
      };
      await fetch(`${c.url}/api/trpc/${path}`, {
        method: "POST",
        headers: { origin: c.url, "content-type": "application/json", cookie: cookies.operator },
        body: JSON.stringify({ ...base, ...escape }),
      });
    }
    const steps = await c.services.prisma.jobStep.findMany({
      where: { job: { createdById: operatorId, createdAt: { gte: since } } },
      select: { action: true, params: true },
    });
    assert.ok(steps.length > 0, "the operator's ordinary jobs were made (the escape fields were dropped or refused)");
    const escaped = steps.filter((s) => JSON.stringify(s.params).match(/"source":"\/"|"networkMode":"host"|"privileged":true|"\/:\/host"/));
    assert.deepEqual(escaped, [], "job steps an operator made with host-level options");
  });

  test("refusals are audited as denied, with the option and the operator", async () => {
    const rows = await c.services.prisma.auditLog.findMany({ where: { action: "jobs.run", outcome: "denied" }, orderBy: { at: "asc" } });
    const bindRoot = rows.find((r) => JSON.stringify(r.details).includes('--volume \\"/:/host\\"'));
    assert.ok(bindRoot, "the /:/host attempt is in the audit log");
    assert.match(bindRoot.actorLabel, /^operator-/);
    assert.deepEqual(bindRoot.targetNodeIds, [nodeId]);
    assert.ok(rows.some((r) => JSON.stringify(r.details).includes('--network \\"host\\"')));
    // What an admin used is on record too.
    const allowed = await c.services.prisma.auditLog.findMany({ where: { action: "jobs.run", outcome: "success" } });
    assert.ok(allowed.some((r) => ((r.details as { hostOptions?: string[] }).hostOptions ?? []).includes("--volume /:/host")));
  });

  test("when admins must use two-factor, an admin without it may only enrol (API), until they have it", async () => {
    await updateSecuritySettings(c.services.prisma, { requireAdminTwoFactor: true });
    try {
      const r = await run("admin", { volumes: ["data:/d"] });
      assert.equal(r.code, "FORBIDDEN");
      assert.match(r.message, /two-factor sign-in is required for admins/);
      const status = await fetch(`${c.url}/api/trpc/auth.twoFactor.status`, { headers: { origin: c.url, cookie: cookies.admin } });
      assert.equal(status.status, 200);
      assert.equal(((await status.json()) as { result: { data: { requiredForYou: boolean } } }).result.data.requiredForYou, true);
      assert.equal((await run("operator", { volumes: ["data:/d"] })).code, "OK", "operators are not concerned");
    } finally {
      await updateSecuritySettings(c.services.prisma, { requireAdminTwoFactor: false });
    }
  });
});
