// The agent link's pieces without agents: the wire contract's validation (garbage in,
// a named rejection out), inventory deltas, the request ledger that makes requests
// idempotent, the progress coalescer, the credential file and the in-memory registry.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { chmod, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  applyInventoryChanges,
  containerStatusText,
  diffInventory,
  parseAck,
  parseEvent,
  parseHandshake,
  parseRequest,
  parseResult,
  parseStreamEvent,
  type InventoryContainer,
  type InventorySnapshot,
} from "../agent/link/contract.ts";
import { RequestLedger } from "../agent/link/request-ledger.ts";
import { ProgressCoalescer } from "../agent/link/progress-coalescer.ts";
import { CredentialFileError, deleteCredential, readCredential, writeCredential } from "../agent/link/credential-file.ts";
import { normalizeFingerprint } from "../agent/link/pinned-tls.ts";
import { MemoryNodeRegistry } from "../server/hub/memory-node-registry.ts";
import { notFound } from "../agent/engine/errors.ts";
import { loadAgentConfig } from "../agent/config.ts";
import { sleep } from "./helpers/wait.ts";

const facts = {
  hostname: "node-1",
  kernelVersion: "6.1.0",
  operatingSystem: "Debian GNU/Linux 12 (bookworm)",
  osVersion: "12",
  architecture: "x86_64",
  goArch: "amd64",
  ncpu: 2,
  memTotal: 4e9,
  cgroupVersion: "1" as const,
};

function container(id: string, over: Partial<InventoryContainer> = {}): InventoryContainer {
  return {
    id,
    name: `c-${id}`,
    image: "busybox",
    imageId: "sha256:aa",
    command: "sh",
    state: "running",
    status: "Up 2 seconds",
    exitCode: 0,
    startedAt: "2024-01-01T00:00:00Z",
    finishedAt: "0001-01-01T00:00:00Z",
    restartCount: 0,
    ports: [],
    created: 1,
    labels: {},
    ...over,
  };
}

function snapshot(over: Partial<InventorySnapshot> = {}): InventorySnapshot {
  return { protocol: 1, agentVersion: "0.1.0", engineId: "e", facts, images: [], containers: [], volumes: [], networks: [], takenAt: 1, ...over };
}

describe("the wire contract", () => {
  test("requests: each method's params are checked, defaults applied, unknown methods and bad ids refused", () => {
    const id = randomUUID();
    const ok = parseRequest({ id, method: "image.remove", params: { reference: "busybox" } });
    assert.ok(ok.ok);
    assert.deepEqual(ok.value.params, { reference: "busybox", force: false, noPrune: false });
    const create = parseRequest({ id, method: "container.create", params: { image: "busybox", cmd: ["true"] } });
    assert.ok(create.ok && create.value.method === "container.create" && create.value.params.networkMode === "bridge");

    const refusals: Array<[unknown, RegExp]> = [
      [null, /invalid request/],
      ["image.pull", /invalid request/],
      [{ id: "not-a-uuid", method: "system.info", params: {} }, /id/],
      [{ id, method: "system.reboot", params: {} }, /method/],
      [{ id, method: "image.pull", params: {} }, /reference/],
      [{ id, method: "image.pull", params: { reference: "" } }, /reference/],
      [{ id, method: "system.info", params: { extra: 1 } }, /extra|Unrecognized/i],
      [{ id, method: "container.logs", params: { id: "c", tail: 1e9 } }, /tail/],
      [{ id, method: "container.stop", params: { id: "c", timeoutSeconds: "10" } }, /timeoutSeconds/],
      [{ id, method: "container.create", params: { image: "busybox", memory: -1 } }, /memory/],
      [{ id, method: "image.pull", params: { reference: "x" }, timeoutMs: -5 }, /timeoutMs/],
    ];
    for (const [input, why] of refusals) {
      const r = parseRequest(input);
      assert.ok(!r.ok, `accepted ${JSON.stringify(input)}`);
      assert.match(r.message, why, JSON.stringify(input));
    }
  });

  test("handshakes, acknowledgements, events and stream events are validated", () => {
    const base = { protocol: 1, agentVersion: "0.1.0" };
    assert.ok(parseHandshake({ ...base, kind: "join", token: "bjt_abcdefgh", hostname: "n", facts }).ok);
    assert.ok(parseHandshake({ ...base, kind: "node", nodeId: "n", credential: "bnc_" + "x".repeat(40) }).ok);
    for (const bad of [
      undefined,
      {},
      { ...base, kind: "join", token: "short", hostname: "n", facts },
      { ...base, kind: "join", token: "bjt_abcdefgh", hostname: "n", facts: { ...facts, ncpu: -1 } },
      { ...base, kind: "node", nodeId: "", credential: "bnc_" + "x".repeat(40) },
      { kind: "node", nodeId: "n", credential: "bnc_" + "x".repeat(40) },
    ]) {
      assert.equal(parseHandshake(bad).ok, false, JSON.stringify(bad));
    }
    assert.ok(parseAck({ id: "a", ok: true, result: { anything: 1 } }).ok);
    assert.ok(parseAck({ id: "a", ok: false, error: { kind: "NotFound", message: "No such image: x" } }).ok);
    assert.equal(parseAck({ id: "a", ok: false, error: { kind: "Oops", message: "x" } }).ok, false);
    assert.equal(parseAck({ id: "a", ok: "yes" }).ok, false);
    assert.ok(parseResult("image.pull", { id: "sha256:1", reference: "busybox:latest", digest: "sha256:2", upToDate: false }).ok);
    assert.equal(parseResult("image.pull", { id: "sha256:1" }).ok, false);
    assert.ok(parseStreamEvent("image.pull", { id: "abc", status: "Downloading", current: 1, total: 2 }).ok);
    assert.equal(parseStreamEvent("image.tag", { status: "x" }).ok, false, "methods without streams take none");
    assert.ok(parseEvent({ type: "inventory.snapshot", seq: 0, snapshot: snapshot() }).ok);
    assert.equal(parseEvent({ type: "inventory.changed", seq: 0, takenAt: 1, changes: {} }).ok, false, "a change is never message 0");
    assert.equal(parseEvent({ type: "inventory.snapshot", seq: 0, snapshot: { ...snapshot(), facts: undefined } }).ok, false);
    assert.equal(
      parseEvent({
        type: "engine.events",
        events: Array.from({ length: 1001 }, () => ({ type: "container", action: "start", id: "x", attributes: {}, time: 1 })),
      }).ok,
      false,
    );
  });

  test("inventory deltas: only real changes, applied they give the next inventory", () => {
    const a = snapshot({
      containers: [container("1"), container("2")],
      images: [{ id: "sha256:aa", repoTags: ["busybox:latest"], repoDigests: [], size: 1, created: 1, labels: {}, containers: 2 }],
    });
    assert.equal(
      diffInventory(a, { ...a, containers: a.containers.map((c) => ({ ...c, status: "Up 3 minutes" })), takenAt: 2 }),
      undefined,
      "a STATUS text alone is no change",
    );
    const b = snapshot({
      containers: [container("1", { state: "exited", exitCode: 137 }), container("3")],
      images: a.images,
      volumes: [{ name: "v", driver: "local", mountpoint: "/v", createdAt: "t", labels: {}, anonymous: false }],
      takenAt: 5,
    });
    const d = diffInventory(a, b)!;
    assert.deepEqual(d.containers?.remove, ["2"]);
    assert.deepEqual(d.containers?.upsert.map((c) => c.id).sort(), ["1", "3"]);
    assert.equal(d.images, undefined);
    assert.equal(d.volumes?.upsert.length, 1);
    const applied = applyInventoryChanges(a, d, 5);
    const byId = (s: InventorySnapshot) => ({ ...s, containers: [...s.containers].sort((x, y) => x.id.localeCompare(y.id)) });
    assert.deepEqual(byId(applied), byId(b));
    assert.equal(a.containers.length, 2, "the input is not changed");
  });

  test("Docker's STATUS column", () => {
    const now = Date.parse("2024-01-01T00:03:00Z");
    assert.equal(
      containerStatusText({ state: "running", exitCode: 0, startedAt: "2024-01-01T00:00:00Z", finishedAt: "0001-01-01T00:00:00Z" }, now),
      "Up 3 minutes",
    );
    assert.equal(
      containerStatusText({ state: "exited", exitCode: 137, startedAt: "2024-01-01T00:00:00Z", finishedAt: "2024-01-01T00:02:59Z" }, now),
      "Exited (137) 1 second ago",
    );
    assert.equal(containerStatusText({ state: "created", exitCode: 0, startedAt: "0001-01-01T00:00:00Z", finishedAt: "0001-01-01T00:00:00Z" }, now), "Created");
  });
});

describe("the request ledger", () => {
  const opts = (over: Partial<Parameters<RequestLedger["begin"]>[1]> = {}) => ({
    fingerprint: "f",
    record: true,
    abortable: false,
    timeoutMs: 60_000,
    what: "test.op",
    ...over,
  });

  test("an id runs once: a repeat while running joins, a repeat after gets the record, other content is refused", async () => {
    const ledger = new RequestLedger();
    let runs = 0;
    const work = async () => {
      runs += 1;
      await sleep(50);
      return { n: runs };
    };
    const a = ledger.begin("id-1", opts(), work);
    const b = ledger.begin("id-1", opts(), work);
    assert.ok("outcome" in a && "outcome" in b);
    assert.equal(a.joined, false);
    assert.equal(b.joined, true);
    assert.deepEqual(await a.outcome, { ok: true, result: { n: 1 } });
    assert.deepEqual(await b.outcome, { ok: true, result: { n: 1 } });
    const c = ledger.begin("id-1", opts(), work);
    assert.ok("outcome" in c && c.joined);
    assert.deepEqual(await c.outcome, { ok: true, result: { n: 1 } });
    assert.equal(runs, 1);
    const d = ledger.begin("id-1", opts({ fingerprint: "other" }), work);
    assert.ok("conflict" in d && /already used for a different request/.test(d.conflict));
    assert.equal(runs, 1);
  });

  test("failures are recorded with their engine kind; reads are forgotten once done; records expire", async () => {
    let now = 0;
    const ledger = new RequestLedger({ retentionMs: 1_000, now: () => now });
    const failed = ledger.begin("f", opts(), async () => {
      throw notFound("No such container: x");
    });
    assert.ok("outcome" in failed);
    assert.deepEqual(await failed.outcome, { ok: false, error: { kind: "NotFound", message: "No such container: x" } });
    const read = ledger.begin("r", opts({ record: false }), async () => 1);
    assert.ok("outcome" in read);
    await read.outcome;
    assert.equal(ledger.size, 1, "only the mutating request is remembered");
    now = 2_000;
    let ran = false;
    const again = ledger.begin("f", opts(), async () => (ran = true));
    assert.ok("outcome" in again && !again.joined);
    await again.outcome;
    assert.ok(ran, "after the retention window the id is new again");
  });

  test("abortable work is aborted by cancel and by its time limit, and the outcome says which", async () => {
    const ledger = new RequestLedger();
    const waitAbort = (signal: AbortSignal) =>
      new Promise((_, reject) => signal.addEventListener("abort", () => reject(Object.assign(new Error("aborted"), { name: "AbortError" }))));
    const c = ledger.begin("c", opts({ abortable: true }), waitAbort);
    assert.equal(ledger.cancel("c", "canceled by the console"), true);
    assert.ok("outcome" in c);
    assert.deepEqual(await c.outcome, { ok: false, error: { kind: "Canceled", message: "canceled by the console" } });
    assert.equal(ledger.cancel("c", "again"), false, "nothing left to cancel");
    const t = ledger.begin("t", opts({ abortable: true, timeoutMs: 50 }), waitAbort);
    assert.ok("outcome" in t);
    assert.deepEqual(await t.outcome, { ok: false, error: { kind: "Canceled", message: "test.op did not finish within 50 ms" } });
    const n = ledger.begin("n", opts({ abortable: false }), async () => 1);
    assert.equal(ledger.cancel("n", "x"), false, "work that cannot be aborted is not");
    assert.ok("outcome" in n);
    assert.deepEqual(await n.outcome, { ok: true, result: 1 });
  });
});

test("progress coalescer: byte counters thinned per layer, status changes in order, nothing lost at the end", async () => {
  const sent: Array<{ id?: string; status: string; current?: number }> = [];
  const c = new ProgressCoalescer((e) => sent.push(e), 50);
  c.push({ id: "a", status: "Waiting" });
  for (let i = 1; i <= 100; i++) c.push({ id: "a", status: "Downloading", current: i, total: 100 });
  for (let i = 1; i <= 10; i++) c.push({ id: "b", status: "Downloading", current: i, total: 10 });
  c.push({ id: "a", status: "Download complete" });
  await sleep(80);
  c.flush();
  const a = sent.filter((e) => e.id === "a");
  assert.deepEqual(
    a.map((e) => e.status),
    ["Waiting", "Downloading", "Downloading", "Download complete"],
  );
  assert.deepEqual(
    a.filter((e) => e.current !== undefined).map((e) => e.current),
    [1, 100],
    "the first and the latest counter",
  );
  const b = sent.filter((e) => e.id === "b");
  assert.deepEqual(
    b.map((e) => e.current),
    [1, 10],
  );
});

test("credential file: written atomically with mode 0600, refused when others can read it, deleted on revocation", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "berth-cred-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, "etc", "berth", "node-credential");
  assert.equal(await readCredential(file), undefined);
  const value = { nodeId: "n1", credential: "bnc_" + "y".repeat(43), console: "https://c", enrolledAt: new Date().toISOString() };
  await writeCredential(file, value);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.equal((await stat(join(dir, "etc", "berth"))).mode & 0o777, 0o700);
  assert.deepEqual(await readdir(join(dir, "etc", "berth")), ["node-credential"], "no temporary file left");
  assert.deepEqual(await readCredential(file), value);
  await chmod(file, 0o644);
  await assert.rejects(readCredential(file), (e: Error) => e instanceof CredentialFileError && /readable by others/.test(e.message));
  await writeFile(file, "{ nope", { mode: 0o600 });
  await chmod(file, 0o600);
  await assert.rejects(readCredential(file), /not a node credential file/);
  await deleteCredential(file);
  assert.equal(await readCredential(file), undefined);
});

test("memory registry: tokens single-use and expiring, credentials hashed and compared in constant time", async () => {
  const r = new MemoryNodeRegistry();
  const token = r.createJoinToken();
  assert.deepEqual(await r.consumeJoinToken(token), { ok: true });
  assert.deepEqual(await r.consumeJoinToken(token), { ok: false, reason: "join token already used" });
  assert.deepEqual(await r.consumeJoinToken("bjt_unknown"), { ok: false, reason: "unknown join token" });
  const short = r.createJoinToken(1);
  await sleep(5);
  assert.deepEqual(await r.consumeJoinToken(short), { ok: false, reason: "join token expired" });
  const { nodeId, credential } = await r.createNode("node-1", facts);
  assert.ok(!JSON.stringify([...r.nodes.values()].map((n) => ({ ...n, hash: n.hash.toString("hex"), salt: n.salt.toString("hex") }))).includes(credential));
  assert.equal(await r.verifyNode(nodeId, credential), true);
  assert.equal(await r.verifyNode(nodeId, credential + "x"), false);
  assert.equal(await r.verifyNode(randomUUID(), credential), false);
  assert.equal(await r.isRevoked(nodeId), false);
  await r.revokeNode(nodeId);
  assert.equal(await r.isRevoked(nodeId), true);
});

test("agent config: the link keys, and what they need", () => {
  const c = loadAgentConfig([
    "--console-url",
    "https://console.example:8443",
    "--join-token",
    "bjt_abcdefgh",
    "--console-fingerprint",
    "sha256:" + "ab".repeat(32),
  ]);
  assert.ok(c !== "help");
  assert.deepEqual(c.link, {
    consoleUrl: "https://console.example:8443",
    joinToken: "bjt_abcdefgh",
    credentialFile: "/etc/berth/node-credential",
    consoleFingerprint: "sha256:" + "ab".repeat(32),
  });
  const none = loadAgentConfig([]);
  assert.ok(none !== "help" && none.link === undefined);
  assert.throws(() => loadAgentConfig(["--join-token", "bjt_abcdefgh"]), /join-token needs console-url/);
  assert.throws(() => loadAgentConfig(["--console-url", "ftp://x"]), /console-url/);
  assert.throws(() => loadAgentConfig(["--console-url", "http://c", "--console-fingerprint", "AB:".repeat(31) + "AB"]), /must be https/);
  assert.throws(() => loadAgentConfig(["--console-url", "https://c", "--console-fingerprint", "abc"]), /console-fingerprint/);
  assert.equal(normalizeFingerprint("sha256 Fingerprint=" + "ab:".repeat(31) + "ab"), "AB:".repeat(31) + "AB");
});
