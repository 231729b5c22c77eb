// The agent link end to end: a real socket.io server with the AgentHub (MemoryNodeRegistry)
// on 127.0.0.1, and real berth-agent processes dialling it — enrollment, requests with
// progress, inventory changes, idempotent retries, console restarts, cut-off agents,
// revocation, refused handshakes and a pinned TLS certificate.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID, X509Certificate } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { Server } from "socket.io";
import { io as ioClient } from "socket.io-client";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "./fixtures/images.ts";
import { startAgent, type AgentHandle } from "./helpers/agent.ts";
import { startLinkProxy as startProxy, type LinkProxy } from "./helpers/link-proxy.ts";
import { AgentHub, LinkRequestError } from "../server/hub/agent-hub.ts";
import { MemoryNodeRegistry } from "../server/hub/memory-node-registry.ts";
import { LINK_MAX_MESSAGE_BYTES, LINK_PROTOCOL_VERSION, type EngineEvent, type InventoryContainer, type ProgressEventWire } from "../agent/link/contract.ts";
import { selfSignedCert } from "./helpers/files.ts";
import { sleep, until } from "./helpers/wait.ts";

/** How long the agent is cut off in the outage test (the minute, shortened by default). */
const OUTAGE_MS = Number(process.env.BERTH_LINK_OUTAGE_MS ?? 15_000);
const logger = pino({ level: process.env.BERTH_TEST_LOG ?? "silent" });

// --- a console: http(s) server + socket.io + hub ------------------------------------------

interface ConsoleHandle {
  url: string;
  port: number;
  hub: AgentHub;
  events: Array<{ nodeId: string; event: EngineEvent }>;
  close(): Promise<void>;
}

async function startConsole(registry: MemoryNodeRegistry, opts: { port?: number; tls?: { key: string; cert: string } } = {}): Promise<ConsoleHandle> {
  const http: HttpServer = opts.tls ? createHttpsServer({ key: opts.tls.key, cert: opts.tls.cert }) : createHttpServer();
  // Short heartbeats so a node that stops answering is seen within seconds.
  const io = new Server(http, { pingInterval: 1_000, pingTimeout: 1_500, maxHttpBufferSize: LINK_MAX_MESSAGE_BYTES });
  const hub = new AgentHub({ io, registry, logger, allowedOrigins: ["https://console.example"], inventorySaveIntervalMs: 200 });
  const events: ConsoleHandle["events"] = [];
  hub.on("node.event", (e) => events.push(e));
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(opts.port ?? 0, "127.0.0.1", () => resolve());
  });
  const port = (http.address() as { port: number }).port;
  let closed = false;
  return {
    url: `${opts.tls ? "https" : "http"}://127.0.0.1:${port}`,
    port,
    hub,
    events,
    close: async () => {
      if (closed) return;
      closed = true;
      await hub.close();
      await io.close();
    },
  };
}

// --- waiting ------------------------------------------------------------------------------------

const online = (hub: AgentHub, nodeId: string) => {
  const n = hub.node(nodeId);
  return n?.online && n.inventory ? n : undefined;
};

const containerIn = (hub: AgentHub, nodeId: string, id: string): InventoryContainer | undefined =>
  hub.node(nodeId)?.inventory?.containers.find((c) => c.id === id);

/**
 * A raw socket.io client on the agents namespace; resolves with the refusal it got, "closed"
 * when the server dropped the connection without a word (socket.io's own protocol check), or
 * "connected".
 */
async function handshake(
  url: string,
  auth: unknown,
  extraHeaders?: Record<string, string>,
): Promise<{ code?: string; message: string } | "connected" | "closed"> {
  const socket = ioClient(`${url}/agents`, {
    transports: ["websocket"],
    auth: auth as Record<string, unknown>,
    reconnection: false,
    forceNew: true,
    extraHeaders,
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise((resolve, reject) => {
      socket.once("connect", () => resolve("connected"));
      socket.once("connect_error", (err: Error & { data?: { code?: string; message: string } }) => resolve(err.data ?? { message: err.message }));
      socket.once("disconnect", () => resolve("closed"));
      timer = setTimeout(() => reject(new Error(`no answer to the handshake ${JSON.stringify(auth)}`)), 10_000);
    });
  } finally {
    clearTimeout(timer);
    socket.close();
  }
}

describe("agent link with real agents", () => {
  let reg: RegistryFixture;
  let fx: FixtureImages;
  const registry = new MemoryNodeRegistry();
  let cons: ConsoleHandle;
  let proxy: LinkProxy;
  let agent: AgentHandle;
  let nodeId: string;
  const others: AgentHandle[] = [];
  const consoles: ConsoleHandle[] = [];

  before(async () => {
    reg = await startRegistry({ auth: "none" });
    fx = await pushFixtureImages(reg, { only: ["busybox", "multilayer"] });
    cons = await startConsole(registry);
    consoles.push(cons);
    proxy = await startProxy(() => cons.port);
  });
  after(async () => {
    for (const a of [agent, ...others]) await a?.destroy();
    await proxy?.close();
    for (const c of consoles) await c.close();
    await reg?.stop();
  });

  test("an agent enrolls with a join token, stores its credential 0600, and comes online with a snapshot of its facts", async () => {
    const token = registry.createJoinToken();
    agent = await startAgent({ consoleUrl: proxy.url, joinToken: token });
    const status = await until("the node online with an inventory", () => cons.hub.nodes().find((n) => n.online && n.inventory), 15_000, agent);
    nodeId = status.nodeId;
    const inv = status.inventory!;
    assert.equal(inv.facts.hostname, os.hostname());
    assert.equal(inv.facts.kernelVersion, os.release());
    assert.equal(inv.facts.ncpu, os.cpus().length);
    assert.equal(inv.protocol, LINK_PROTOCOL_VERSION);
    assert.deepEqual(inv.images, []);
    assert.deepEqual(inv.containers, []);
    assert.ok(
      inv.networks.some((n) => n.name === "bridge"),
      JSON.stringify(inv.networks),
    );
    assert.equal(status.hostname, os.hostname());

    await until("the credential file", () => existsSync(agent.credentialFile), 5_000, agent);
    const st = await stat(agent.credentialFile);
    assert.equal(st.mode & 0o777, 0o600);
    const stored = JSON.parse(await readFile(agent.credentialFile, "utf8"));
    assert.equal(stored.nodeId, nodeId);
    assert.match(stored.credential, /^bnc_/);
    // The console keeps a hash, never the credential itself.
    const kept = registry.nodes.get(nodeId)!;
    assert.ok(!kept.hash.toString("utf8").includes(stored.credential) && kept.hash.length === 32);
    assert.equal(await registry.verifyNode(nodeId, stored.credential), true);
    assert.equal(await registry.verifyNode(nodeId, stored.credential.slice(0, -1) + "x"), false);

    // After a restart the agent uses the stored credential, not the (now used) token.
    await agent.restart();
    await until("the node back online", () => online(cons.hub, nodeId) && agent.logs().includes('"dialling the console"'), 15_000, agent);
    assert.equal(cons.hub.nodes().length, 1, "the restart did not enroll a second node");
  });

  test("a join token used once is refused the second time, with the reason in the agent's log", async (t) => {
    // The token that enrolled the first agent is used up: take a fresh one, use it, then reuse it.
    const token = registry.createJoinToken();
    const first = await startAgent({ consoleUrl: cons.url, joinToken: token });
    others.push(first);
    const firstNode = await until("the second node", () => cons.hub.nodes().find((n) => n.nodeId !== nodeId && n.online), 15_000, first);
    const second = await startAgent({ consoleUrl: cons.url, joinToken: token });
    t.after(() => second.destroy());
    await until("the refusal in the log", () => second.logs().includes("join token already used"), 10_000, second);
    assert.match(second.logs(), /enrollment refused; not dialling again/);
    assert.ok(!existsSync(second.credentialFile), "no credential was stored");
    assert.equal(cons.hub.nodes().length, 2, "no node was created for the reused token");
    // The refused agent still serves its Docker API: only the link stopped.
    assert.equal(second.process.exitCode, null);
    await first.destroy();
    await until("the second node offline", () => cons.hub.node(firstNode.nodeId)?.online === false);
    assert.ok(cons.hub.node(firstNode.nodeId)!.inventory, "an offline node keeps its last inventory");
    await assert.rejects(
      cons.hub.request(firstNode.nodeId, "system.info", {}),
      (e: LinkRequestError) => e.kind === "Unavailable" && /is offline \(last seen /.test(e.message),
    );
  });

  test("image.pull through the hub streams per-layer progress, and the image shows in the node's inventory", async () => {
    const events: ProgressEventWire[] = [];
    const result = await cons.hub.request(nodeId, "image.pull", { reference: fx.multilayer.ref }, { timeoutMs: 120_000, onStream: (e) => events.push(e) });
    assert.equal(result.id, fx.multilayer.configDigest);
    assert.equal(result.digest, fx.multilayer.manifestDigest);
    assert.equal(result.upToDate, false);
    const layers = new Set(events.filter((e) => e.status === "Pull complete").map((e) => e.id));
    assert.equal(layers.size, fx.multilayer.layerCount, JSON.stringify(events));
    for (const id of layers) assert.match(id!, /^[0-9a-f]{12}$/);
    const downloading = events.filter((e) => e.status === "Downloading");
    assert.ok(downloading.length > 0 && downloading.every((e) => typeof e.current === "number" && typeof e.total === "number"));
    assert.match(events[0]!.status, /^Pulling from test\/multilayer/);
    const image = await until(
      "the image in the inventory",
      () => cons.hub.node(nodeId)?.inventory?.images.find((i) => i.id === fx.multilayer.configDigest),
      3_000,
      agent,
    );
    assert.deepEqual(image.repoTags, [`${reg.host}/test/multilayer:latest`]);
    assert.deepEqual(image.repoDigests, [`${reg.host}/test/multilayer@${fx.multilayer.manifestDigest}`]);
    assert.ok(image.size > 0);
    assert.ok(cons.events.some((e) => e.nodeId === nodeId && e.event.type === "image" && e.event.action === "pull"));

    // Errors come back as the engine's kinds.
    await assert.rejects(
      cons.hub.request(nodeId, "image.pull", { reference: `${reg.host}/test/no-such-image:latest` }, { timeoutMs: 60_000 }),
      (e: LinkRequestError) => e.kind === "NotFound" && /no-such-image/.test(e.message),
    );
    await assert.rejects(cons.hub.request(nodeId, "image.pull", { reference: "not a reference!" }), (e: LinkRequestError) => e.kind === "InvalidArgument");
  });

  test("a container created, started, stopped and removed through the hub shows in inventory changes", async (t) => {
    await cons.hub.request(nodeId, "image.pull", { reference: fx.busybox.ref }, { timeoutMs: 60_000 });
    // How fast is bench/fleet's figure (event → browser); here: that each change arrives.
    const within = async (what: string, check: () => boolean) => {
      const t0 = Date.now();
      await until(what, () => check() || undefined, 5_000, agent, 20);
      t.diagnostic(`${what} after ${Date.now() - t0} ms`);
    };
    const created = await cons.hub.request(nodeId, "container.create", {
      image: fx.busybox.ref,
      name: "link-lifecycle",
      cmd: ["sh", "-c", "echo hello-link; exec sleep 1000"],
    });
    assert.equal(created.name, "link-lifecycle");
    await within("created in inventory", () => containerIn(cons.hub, nodeId, created.id)?.state === "created");
    const c = containerIn(cons.hub, nodeId, created.id)!;
    assert.equal(c.name, "link-lifecycle");
    assert.equal(c.image, fx.busybox.ref);
    assert.equal(c.imageId, fx.busybox.configDigest);

    assert.deepEqual(await cons.hub.request(nodeId, "container.start", { id: "link-lifecycle" }), { changed: true });
    await within("running in inventory", () => containerIn(cons.hub, nodeId, created.id)?.state === "running");
    assert.match(containerIn(cons.hub, nodeId, created.id)!.status, /^Up /);

    const logs = await until(
      "the container's output",
      async () => {
        const r = await cons.hub.request(nodeId, "container.logs", { id: created.id, tail: 10 });
        return r.lines.length ? r : undefined;
      },
      5_000,
      agent,
    );
    assert.deepEqual(
      logs.lines.map((l) => [l.stream, l.text]),
      [["stdout", "hello-link\n"]],
    );
    assert.equal(logs.truncated, false);
    // Followed logs stream line by line until the console cancels.
    const followed: string[] = [];
    const stopFollowing = new AbortController();
    const following = cons.hub.request(
      nodeId,
      "container.logs",
      { id: created.id, follow: true },
      {
        signal: stopFollowing.signal,
        onStream: (line) => {
          followed.push(line.text);
          stopFollowing.abort();
        },
      },
    );
    await assert.rejects(following, (e: LinkRequestError) => e.kind === "Canceled");
    assert.deepEqual(followed, ["hello-link\n"]);
    await until("the agent to stop following", () => agent.logs().includes('"msg":"request canceled"'), 2_000, agent);
    // A request that outlives its time limit fails as Unavailable, and the agent stops the work too.
    const t0 = Date.now();
    const slow = randomUUID();
    await assert.rejects(
      cons.hub.request(nodeId, "container.logs", { id: created.id, follow: true }, { timeoutMs: 500, requestId: slow }),
      (e: LinkRequestError) => e.kind === "Unavailable" && /did not answer container.logs within 500 ms/.test(e.message),
    );
    assert.ok(Date.now() - t0 < 5_000, "the follow, which never ends by itself, was cut by the time limit");
    await until("the agent to end the work", () => agent.logs().includes(`"requestId":"${slow}","method":"container.logs","kind":"Canceled"`), 3_000, agent);
    await assert.rejects(cons.hub.request(nodeId, "system.info", {}, { requestId: "not-a-uuid" }), (e: LinkRequestError) => e.kind === "InvalidArgument");

    assert.deepEqual(await cons.hub.request(nodeId, "container.pause", { id: created.id }), {});
    await within("paused in inventory", () => containerIn(cons.hub, nodeId, created.id)?.state === "paused");
    await cons.hub.request(nodeId, "container.unpause", { id: created.id });
    await within("running again", () => containerIn(cons.hub, nodeId, created.id)?.state === "running");

    assert.deepEqual(await cons.hub.request(nodeId, "container.stop", { id: created.id, timeoutSeconds: 1 }), { changed: true });
    await within("exited in inventory", () => containerIn(cons.hub, nodeId, created.id)?.state === "exited");
    assert.deepEqual(await cons.hub.request(nodeId, "container.stop", { id: created.id }), { changed: false });

    await cons.hub.request(nodeId, "container.remove", { id: created.id });
    await within("gone from inventory", () => containerIn(cons.hub, nodeId, created.id) === undefined);
    await assert.rejects(cons.hub.request(nodeId, "container.start", { id: created.id }), (e: LinkRequestError) => e.kind === "NotFound");

    const actions = cons.events.filter((e) => e.event.type === "container" && e.event.id === created.id).map((e) => e.event.action);
    for (const a of ["create", "start", "pause", "unpause", "stop", "destroy"]) assert.ok(actions.includes(a), `${a} in ${actions.join(",")}`);
  });

  test("the same request id runs once: concurrent and later repeats get the first run's answer", async () => {
    const requestId = randomUUID();
    const label = { "test.request": requestId };
    const params = { image: fx.busybox.ref, cmd: ["true"], labels: label };
    const [a, b] = await Promise.all([
      cons.hub.request(nodeId, "container.create", params, { requestId }),
      cons.hub.request(nodeId, "container.create", params, { requestId }),
    ]);
    // Sent again after the first finished: the agent answers from its record.
    const c = await cons.hub.request(nodeId, "container.create", params, { requestId });
    assert.equal(a.id, b.id);
    assert.equal(a.id, c.id);
    await sleep(300);
    const made = cons.hub.node(nodeId)!.inventory!.containers.filter((x) => x.labels["test.request"] === requestId);
    assert.equal(made.length, 1, "exactly one container was created");
    assert.match(agent.logs(), new RegExp(`"requestId":"${requestId}","method":"container.create","joined":true`));
    // The same id with other params is refused, not run.
    await assert.rejects(
      cons.hub.request(nodeId, "container.create", { ...params, cmd: ["false"] }, { requestId }),
      (e: LinkRequestError) => e.kind === "InvalidArgument" && /already used/.test(e.message),
    );
    await cons.hub.request(nodeId, "container.remove", { id: a.id });
  });

  test("system.info, image.tag, image.push with progress, image.history, image.remove and image.prune", async () => {
    const info = await cons.hub.request(nodeId, "system.info", {});
    assert.equal(info.facts.hostname, os.hostname());
    assert.equal(info.images, 2);
    assert.equal(info.driver, "overlay2");

    const target = `${reg.host}/test/pushed-by-link:v1`;
    assert.deepEqual(await cons.hub.request(nodeId, "image.tag", { source: fx.multilayer.ref, target }), {});
    await until("the tag in the inventory", () => cons.hub.node(nodeId)?.inventory?.images.find((i) => i.repoTags.includes(target)), 3_000, agent);
    const progress: ProgressEventWire[] = [];
    const pushed = await cons.hub.request(nodeId, "image.push", { reference: target }, { timeoutMs: 120_000, onStream: (e) => progress.push(e) });
    assert.equal(pushed.pushed.length, 1);
    assert.equal(pushed.pushed[0]!.tag, "v1");
    assert.equal(pushed.pushed[0]!.digest, fx.multilayer.manifestDigest, "a pulled image is pushed with its own manifest");
    assert.ok(
      progress.some((e) => e.status === "Pushed" || e.status === "Layer already exists" || e.status.startsWith("Mounted from")),
      JSON.stringify(progress),
    );

    const history = await cons.hub.request(nodeId, "image.history", { reference: target });
    assert.ok(history.items.length >= fx.multilayer.layerCount);

    const removed = await cons.hub.request(nodeId, "image.remove", { reference: target });
    assert.ok(removed.untagged.includes(target), JSON.stringify(removed));
    assert.deepEqual(removed.deleted, [], "untagging leaves the image to its other name");
    await until(
      "the tag gone from the inventory",
      () => !cons.hub.node(nodeId)?.inventory?.images.some((i) => i.repoTags.includes(target)) || undefined,
      3_000,
    );
    await assert.rejects(cons.hub.request(nodeId, "image.remove", { reference: target }), (e: LinkRequestError) => e.kind === "NotFound");
    const pruned = await cons.hub.request(nodeId, "image.prune", {});
    assert.deepEqual(pruned.deleted, [], "nothing dangling");
  });

  test("console restart: the agent reconnects and resends its snapshot; a request running meanwhile answers its retry once", async (t) => {
    const box = await cons.hub.request(nodeId, "container.create", {
      image: fx.busybox.ref,
      name: "link-restart",
      cmd: ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
    });
    await cons.hub.request(nodeId, "container.start", { id: box.id });
    // A stop that takes 4 s (the process ignores SIGTERM) is under way when the console goes.
    const requestId = randomUUID();
    const first = cons.hub.request(nodeId, "container.stop", { id: box.id, timeoutSeconds: 4 }, { requestId, timeoutMs: 60_000 });
    const firstFailed = assert.rejects(first, (e: LinkRequestError) => e.kind === "Unavailable" && /shutting down/.test(e.message));
    await sleep(500);
    const port = cons.port;
    await cons.close();
    await firstFailed;
    await sleep(1_000);
    cons = await startConsole(registry, { port });
    consoles.push(cons);
    const t0 = Date.now();
    const back = await until("the node online on the new console", () => online(cons.hub, nodeId), 10_000, agent);
    const reconnectMs = Date.now() - t0;
    assert.ok(reconnectMs < 8_000, `reconnected after ${reconnectMs} ms`);
    t.diagnostic(`back on the new console ${reconnectMs} ms after it started`);
    assert.ok(
      back.inventory!.images.some((i) => i.id === fx.multilayer.configDigest),
      "the new console has the full snapshot",
    );
    assert.ok(back.inventory!.containers.some((c) => c.id === box.id));
    // The retry joins the stop still running (or gets its recorded outcome): changed is true only
    // because the stop ran once; a second stop of a stopped container would answer false.
    assert.deepEqual(await cons.hub.request(nodeId, "container.stop", { id: box.id, timeoutSeconds: 4 }, { requestId, timeoutMs: 60_000 }), { changed: true });
    await until("exited", () => containerIn(cons.hub, nodeId, box.id)?.state === "exited", 2_000);
    await cons.hub.request(nodeId, "container.remove", { id: box.id });
  });

  test(`an agent cut off for ${OUTAGE_MS / 1000} s shows as disconnected with its last inventory, and is back within seconds of the line returning`, async (t) => {
    const box = await cons.hub.request(nodeId, "container.create", {
      image: fx.busybox.ref,
      name: "link-outage",
      cmd: ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
    });
    await cons.hub.request(nodeId, "container.start", { id: box.id });
    await until("running", () => containerIn(cons.hub, nodeId, box.id)?.state === "running", 2_000);
    // A request in flight when the line dies is sent again when the node is back, and runs once.
    const stopping = cons.hub.request(nodeId, "container.stop", { id: box.id, timeoutSeconds: 2 }, { timeoutMs: OUTAGE_MS + 60_000 });
    await sleep(200);
    proxy.cut();
    const cutAt = Date.now();
    const offline = await until(
      "the node offline",
      () => {
        const n = cons.hub.node(nodeId);
        return n && !n.online ? n : undefined;
      },
      10_000,
    );
    const offlineAfterMs = Date.now() - cutAt;
    assert.ok(offlineAfterMs < 5_000, "a silent node is noticed within the heartbeat timeout");
    assert.ok(
      offline.inventory!.containers.some((c) => c.id === box.id && c.state === "running"),
      "the last-known inventory stays",
    );
    assert.ok(offline.lastSeen <= Date.now() && offline.lastSeen >= cutAt - 2_000);
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - cutAt)));
    assert.equal(cons.hub.node(nodeId)!.online, false);
    proxy.restore();
    const restoredAt = Date.now();
    const back = await until(
      "the node back online with a fresh snapshot",
      () => {
        const n = online(cons.hub, nodeId);
        return n && n.inventoryAt! >= restoredAt ? n : undefined;
      },
      15_000,
      agent,
    );
    const recoveryMs = Date.now() - restoredAt;
    assert.ok(recoveryMs < 8_000, `back after ${recoveryMs} ms`);
    t.diagnostic(`offline ${offlineAfterMs} ms after the cut; back with a fresh snapshot ${recoveryMs} ms after the line returned`);
    assert.deepEqual(await stopping, { changed: true });
    assert.equal(containerIn(cons.hub, nodeId, box.id)?.state ?? back.inventory!.containers.find((c) => c.id === box.id)?.state, "exited");
    await cons.hub.request(nodeId, "container.remove", { id: box.id });
  });

  test("a revoked node is disconnected at once, deletes its credential, and is refused when it tries again", async (t) => {
    const token = registry.createJoinToken();
    const doomed = await startAgent({ consoleUrl: cons.url, joinToken: token });
    others.push(doomed);
    const node = await until("the node online", () => cons.hub.nodes().find((n) => n.online && n.nodeId !== nodeId && n.inventory), 15_000, doomed);
    await until("its credential", () => existsSync(doomed.credentialFile), 5_000, doomed);
    const saved = await readFile(doomed.credentialFile, "utf8");
    const offline = new Promise<string>((r) => cons.hub.once("node.offline", (e) => r(e.reason)));
    await cons.hub.revoke(node.nodeId);
    assert.equal(await offline, "revoked");
    const s = cons.hub.node(node.nodeId)!;
    assert.equal(s.online, false);
    assert.equal(s.revoked, true);
    await assert.rejects(cons.hub.request(node.nodeId, "system.info", {}), (e: LinkRequestError) => e.kind === "Unavailable" && /revoked/.test(e.message));
    await until("the credential deleted", () => !existsSync(doomed.credentialFile), 5_000, doomed);
    assert.match(doomed.logs(), /the console revoked this node/);
    await sleep(2_000);
    assert.equal(cons.hub.node(node.nodeId)!.online, false, "it did not come back");

    // The stolen or restored credential is refused with the reason.
    const stored = JSON.parse(saved);
    assert.deepEqual(
      await handshake(cons.url, { kind: "node", protocol: LINK_PROTOCOL_VERSION, agentVersion: "test", nodeId: stored.nodeId, credential: stored.credential }),
      { code: "revoked", message: "this node was revoked" },
    );
    await writeFile(doomed.credentialFile, saved, { mode: 0o600 });
    await doomed.restart();
    await until("the refusal", () => !existsSync(doomed.credentialFile), 10_000, doomed);
    assert.equal(cons.hub.node(node.nodeId)!.online, false);
    t.after(() => doomed.destroy());
  });

  test("bad handshakes and wrong credentials are refused with a code saying why", async (t) => {
    const url = cons.url;
    const facts = cons.hub.node(nodeId)!.inventory!.facts;
    const base = { protocol: LINK_PROTOCOL_VERSION, agentVersion: "test" };
    for (const auth of [
      {},
      { kind: "node" },
      { ...base, kind: "node", nodeId: nodeId, credential: "short" },
      { ...base, kind: "join", token: "bjt_whatever-token", hostname: "h" }, // no facts
      { ...base, kind: "root", nodeId },
    ]) {
      const r = await handshake(url, auth);
      assert.ok(typeof r === "object" && r.code === "bad_request", `${JSON.stringify(auth)} → ${JSON.stringify(r)}`);
      assert.match(r.message, /invalid handshake/);
    }
    assert.equal(await handshake(url, "a string"), "closed", "socket.io itself drops a non-object auth payload");
    const stored = JSON.parse(await readFile(agent.credentialFile, "utf8"));
    assert.deepEqual(await handshake(url, { ...base, kind: "node", nodeId, credential: stored.credential.slice(0, -2) + "zz" }), {
      code: "unauthorized",
      message: "unknown node or wrong credential",
    });
    assert.deepEqual(await handshake(url, { ...base, kind: "node", nodeId: randomUUID(), credential: stored.credential }), {
      code: "unauthorized",
      message: "unknown node or wrong credential",
    });
    assert.deepEqual(await handshake(url, { ...base, kind: "join", token: "bjt_never-issued-token", hostname: "h", facts }), {
      code: "join_refused",
      message: "unknown join token",
    });
    const expiring = registry.createJoinToken(1);
    await sleep(5);
    assert.deepEqual(await handshake(url, { ...base, kind: "join", token: expiring, hostname: "h", facts }), {
      code: "join_refused",
      message: "join token expired",
    });
    const r = await handshake(url, { ...base, protocol: LINK_PROTOCOL_VERSION + 1, kind: "node", nodeId, credential: stored.credential });
    assert.ok(typeof r === "object" && r.code === "protocol" && /upgrade the console/.test(r.message), JSON.stringify(r));
    // A browser page from elsewhere cannot open the agents namespace, even with a good credential.
    const foreign = await handshake(url, { ...base, kind: "node", nodeId, credential: stored.credential }, { origin: "https://evil.example" });
    assert.ok(typeof foreign === "object" && foreign.code === "origin", JSON.stringify(foreign));
    assert.equal(cons.hub.node(nodeId)!.online, true, "the real node was not disturbed");

    // A real agent with a wrong credential: refused, stops dialling, the node it claims stays as it was.
    const dir = await mkdtemp(join(tmpdir(), "berth-link-impostor-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const credentialFile = join(dir, "node-credential");
    // Without a credential or a token the agent refuses to start, before touching the host.
    await assert.rejects(startAgent({ consoleUrl: url, credentialFile }), /exited with 2:[\s\S]*no node credential in .*node-credential and no join token/);
    await writeFile(credentialFile, JSON.stringify({ nodeId, credential: `bnc_${"x".repeat(43)}`, console: url, enrolledAt: new Date().toISOString() }), {
      mode: 0o600,
    });
    const impostor = await startAgent({ consoleUrl: url, credentialFile });
    t.after(() => impostor.destroy());
    await until("the refusal", () => impostor.logs().includes("the console refused this node; not dialling again"), 10_000, impostor);
    assert.match(impostor.logs(), /"code":"unauthorized"/);
    assert.equal(cons.hub.node(nodeId)!.online, true);
  });

  test("with a pinned fingerprint the agent talks only to the console holding that certificate", async (t) => {
    const dir = await mkdtemp(join(tmpdir(), "berth-link-tls-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const { key, cert: pem } = await selfSignedCert(dir);
    const fingerprint = new X509Certificate(pem).fingerprint256;
    const tlsRegistry = new MemoryNodeRegistry();
    const secure = await startConsole(tlsRegistry, { tls: { key, cert: pem } });
    consoles.push(secure);

    const wrongToken = tlsRegistry.createJoinToken();
    const wrong = await startAgent({ consoleUrl: secure.url, joinToken: wrongToken, consoleFingerprint: "AA:".repeat(31) + "AA" });
    t.after(() => wrong.destroy());
    await until("the mismatch", () => wrong.logs().includes("does not match the pinned fingerprint"), 10_000, wrong);
    assert.equal(secure.hub.nodes().length, 0);

    // openssl's own notation works as the pin.
    const right = await startAgent({
      consoleUrl: secure.url.replace("https:", "wss:"),
      joinToken: tlsRegistry.createJoinToken(),
      consoleFingerprint: `sha256 Fingerprint=${fingerprint}`,
    });
    t.after(() => right.destroy());
    const n = await until("the pinned node online", () => secure.hub.nodes().find((x) => x.online && x.inventory), 15_000, right);
    assert.equal(n.facts?.hostname, os.hostname());
    // The refused agent never presented its token: it is still unused.
    assert.deepEqual(await tlsRegistry.consumeJoinToken(wrongToken), { ok: true });
  });
});
