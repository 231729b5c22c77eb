// Container sessions through the console: a shell in a container on a real agent, and its
// log followed as it is written, over the browser socket and the agent link. Only roles with
// exec on the node's team get a shell (each session in the audit log), readers of the team
// follow logs; a role change ends a running shell at once.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { io as ioClient, type Socket } from "socket.io-client";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "./fixtures/images.ts";
import { startAgent, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { sleep, until } from "./helpers/wait.ts";
import { createTeamWithGroup, createUser, sessionCookie, startTestConsole, type TestConsole, type TestUser } from "./helpers/console.ts";

interface Terminal {
  socket: Socket;
  output: () => string;
  start(nodeId: string, containerId: string): Promise<{ ok: true; sessionId: string } | { ok: false; error: string }>;
  type(text: string): void;
  exit: Promise<{ exitCode?: number; error?: string }>;
  close(): void;
}

async function openTerminal(c: TestConsole, cookie: string): Promise<Terminal> {
  const socket = ioClient(`${c.url}/ui`, { transports: ["websocket"], forceNew: true, reconnection: false, extraHeaders: { cookie, origin: c.url } });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("connect_error", reject);
  });
  let out = "";
  let sessionId: string | undefined;
  let exited!: (v: { exitCode?: number; error?: string }) => void;
  const exit = new Promise<{ exitCode?: number; error?: string }>((r) => (exited = r));
  socket.on("exec.output", (m: { sessionId: string; data: string }) => {
    if (m.sessionId === sessionId) out += Buffer.from(m.data, "base64").toString("utf8");
  });
  socket.on("exec.exit", (m: { sessionId: string; exitCode?: number; error?: string }) => {
    if (m.sessionId === sessionId) exited(m);
  });
  socket.on("disconnect", () => exited({ error: "socket closed" }));
  return {
    socket,
    output: () => out,
    async start(nodeId, containerId) {
      const r = (await socket.timeout(20_000).emitWithAck("exec.start", { nodeId, containerId, cmd: ["/bin/sh"], cols: 80, rows: 24 })) as
        { ok: true; sessionId: string } | { ok: false; error: string };
      if (r.ok) sessionId = r.sessionId;
      return r;
    },
    type(text) {
      socket.emit("exec.input", { sessionId, data: text });
    },
    exit,
    close: () => socket.close(),
  };
}

describe("container sessions through the console: terminals and followed logs", () => {
  let registry: RegistryFixture;
  let images: FixtureImages;
  let c: TestConsole;
  let agent: AgentHandle;
  let nodeId: string;
  let containerId: string;
  const users = {} as Record<"operator" | "viewer" | "outsider", TestUser>;

  before(async () => {
    registry = await startRegistry({ auth: "none" });
    images = await pushFixtureImages(registry);
    c = await startTestConsole("console-exec");
    const token = await c.services.nodeRegistry.createJoinToken({});
    agent = await startAgent({ consoleUrl: c.url, joinToken: token.token });
    await until("the node online", () => c.services.hub.nodes().some((n) => n.online), 30_000);
    nodeId = c.services.hub.nodes()[0]!.nodeId;
    const group = await c.services.prisma.nodeGroup.create({ data: { name: "exec" } });
    await c.services.prisma.node.update({ where: { id: nodeId }, data: { groupId: group.id } });
    const other = await c.services.prisma.nodeGroup.create({ data: { name: "other" } });
    const team = await createTeamWithGroup(c, "exec-team", group.id);
    const otherTeam = await createTeamWithGroup(c, "other-team", other.id);
    users.operator = await createUser(c, "operator", { teamIds: [team] });
    users.viewer = await createUser(c, "viewer", { teamIds: [team] });
    users.outsider = await createUser(c, "operator", { teamIds: [otherTeam] });
    containerId = (await dockerOk(agent, ["run", "-d", "--name", "shellbox", images.busybox.ref, "sleep", "3600"])).trim();
  });

  after(async () => {
    await agent?.destroy();
    await c?.stop();
    await registry?.stop();
  });

  test("an operator of the node's team gets a shell: typed commands run in the container, exit ends it", async () => {
    const t = await openTerminal(c, await sessionCookie(c, users.operator.id));
    try {
      const r = await t.start(nodeId, containerId);
      assert.ok(r.ok, JSON.stringify(r));
      t.type("echo hello-$((40+2)) && hostname\r");
      await until("the command's output", () => t.output().includes("hello-42"));
      assert.ok(t.output().includes(containerId.slice(0, 12)), "the hostname is the container's");
      t.type("exit 3\r");
      assert.equal((await t.exit).exitCode, 3);
    } finally {
      t.close();
    }
    const rows = await c.services.prisma.auditLog.findMany({ where: { action: "container.exec", actorUserId: users.operator.id } });
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.outcome, "success");
    assert.deepEqual(rows[0]!.targetNodeIds, [nodeId]);
    assert.equal((rows[0]!.details as { exitCode?: number }).exitCode, 3);
  });

  test("a viewer and an operator of another team are refused, with the reason, and it is audited", async () => {
    for (const [who, reason] of [
      [users.viewer, /viewer role may not open a shell/],
      [users.outsider, /not in a node group of your teams/],
    ] as const) {
      const t = await openTerminal(c, await sessionCookie(c, who.id));
      try {
        const r = await t.start(nodeId, containerId);
        assert.equal(r.ok, false);
        if (!r.ok) assert.match(r.error, reason);
      } finally {
        t.close();
      }
      const denied = await c.services.prisma.auditLog.count({ where: { action: "container.exec", actorUserId: who.id, outcome: "denied" } });
      assert.equal(denied, 1);
    }
  });

  test("followed logs: a viewer of the team sees new lines as they are written; another team's operator is refused", async () => {
    const ticker = (
      await dockerOk(agent, ["run", "-d", "--name", "ticker", images.busybox.ref, "sh", "-c", "i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.2; done"])
    ).trim();
    const follow = async (who: TestUser) => {
      const socket = ioClient(`${c.url}/ui`, {
        transports: ["websocket"],
        forceNew: true,
        reconnection: false,
        extraHeaders: { cookie: await sessionCookie(c, who.id), origin: c.url },
      });
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", () => resolve());
        socket.once("connect_error", reject);
      });
      const lines: string[] = [];
      socket.on("logs.line", (m: { line: { text: string } }) => lines.push(m.line.text));
      const r = (await socket.timeout(10_000).emitWithAck("logs.follow", { nodeId, containerId: ticker, tail: 0 })) as
        { ok: true; sessionId: string } | { ok: false; error: string };
      return { socket, lines, r };
    };
    const outsider = await follow(users.outsider);
    outsider.socket.close();
    assert.equal(outsider.r.ok, false);
    if (!outsider.r.ok) assert.match(outsider.r.error, /not in a node group of your teams/);

    const viewer = await follow(users.viewer);
    try {
      assert.ok(viewer.r.ok);
      await until("three new lines", () => viewer.lines.length >= 3);
      assert.ok(
        viewer.lines.every((l) => /^tick-\d+\n$/.test(l)),
        viewer.lines.join(""),
      );
      const numbers = viewer.lines.map((l) => Number(/\d+/.exec(l)![0]));
      assert.deepEqual(
        numbers,
        [...numbers].sort((a, b) => a - b),
        "in order",
      );
      const ended = new Promise<{ error?: string }>((r) => viewer.socket.once("logs.end", r));
      if (viewer.r.ok) viewer.socket.emit("logs.stop", { sessionId: viewer.r.sessionId });
      assert.match((await ended).error ?? "", /cancel/i);
    } finally {
      viewer.socket.close();
      await dockerOk(agent, ["rm", "-f", "ticker"]);
    }
  });

  test("demoting the operator ends their running shell on the node at once", async () => {
    const t = await openTerminal(c, await sessionCookie(c, users.operator.id));
    const r = await t.start(nodeId, containerId);
    assert.ok(r.ok);
    t.type("sleep 600\r");
    await sleep(500);
    await c.services.prisma.user.update({ where: { id: users.operator.id }, data: { role: "viewer" } });
    await c.services.live.refreshUser(users.operator.id);
    assert.equal((await t.exit).error, "socket closed");
    // The shell's process is gone from the container.
    await until("the shell gone from the container", async () => !/sleep 600/.test(await dockerOk(agent, ["top", "shellbox"])), 15_000);
    t.close();
  });
});
