// Connection chaos (issue 11): clients of every streaming endpoint of the Docker API hang up at
// random points — before the response headers, mid-request-head, mid-upload, mid-body,
// mid-hijack — hundreds of times, several at once, against one real agent. After it, the agent
// must be the same process (never restarted), hold exactly the descriptors it held before,
// have no exec process, exec monitor, mount or temp file left over, and about the memory it had.
//
// The clients are raw sockets on the agent's unix socket (not the docker CLI), so the cut point
// is ours. The random plan is seeded: the seed is printed, and CHAOS_SEED=<seed> replays it.
// CHAOS_ITERATIONS (hang-ups per endpoint, default 40) and CHAOS_CONCURRENCY (clients at once,
// default 8) make a longer run.
//
// A second test kills the agent (kill -9) in the middle of a `docker load` and checks that the
// restarted agent sweeps what the load left in its scratch folders.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { randomInt } from "node:crypto";
import { once } from "node:events";
import { readdir, readFile } from "node:fs/promises";
import { createConnection, type Socket } from "node:net";
import { join } from "node:path";
import { docker, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { makeTar } from "./helpers/raw-images.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";
import { sleep, until } from "./helpers/wait.ts";

const ITERATIONS = Number(process.env.CHAOS_ITERATIONS ?? 40);
const CONCURRENCY = Number(process.env.CHAOS_CONCURRENCY ?? 8);
const SEED = Number(process.env.CHAOS_SEED ?? randomInt(2 ** 31));

/** mulberry32: a small seeded generator, so a failing plan can be replayed. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ─── a raw HTTP client that hangs up where it is told ───────────────────────────────────

type Cut =
  /** Only part of the request head is sent. */
  | { at: "request-head"; fraction: number }
  /** The whole request is sent; the client leaves after `ms`, usually before the answer's headers. */
  | { at: "before-response"; ms: number }
  /** Part of the request body is sent (load, import). */
  | { at: "mid-upload"; fraction: number }
  /** The client leaves after receiving `bytes` of the answer (headers included), or after `ms` once it started. */
  | { at: "mid-body"; bytes: number; ms: number }
  /** Upgraded (attach, exec): after the 101, the client sends `stdin`, waits `ms` and leaves. */
  | { at: "mid-hijack"; ms: number; stdin: string };

interface RawRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
  upgrade?: boolean;
}

interface Outcome {
  received: number;
  /** The agent closed the connection first (the answer was complete before the cut). */
  endedByAgent: boolean;
}

/** Sends `req` on a new connection and hangs up at `cut`. Never throws: the agent's answer does not matter here. */
async function chaosRequest(socketPath: string, req: RawRequest, cut: Cut): Promise<Outcome> {
  const sock: Socket = createConnection(socketPath);
  sock.on("error", () => undefined);
  try {
    await once(sock, "connect");
  } catch {
    return { received: 0, endedByAgent: true };
  }
  const body = req.body ?? Buffer.alloc(0);
  const headers: Record<string, string> = { Host: "docker", ...(req.headers ?? {}) };
  if (req.body) headers["Content-Length"] = String(body.length);
  if (req.upgrade) Object.assign(headers, { Connection: "Upgrade", Upgrade: "tcp" });
  const head = Buffer.from(
    `${req.method} ${req.path} HTTP/1.1\r\n${Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join("")}\r\n`,
  );
  let received = 0;
  let upgraded = false;
  let seen = "";
  return new Promise<Outcome>((resolve) => {
    let done = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (endedByAgent: boolean) => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      sock.destroy();
      resolve({ received, endedByAgent });
    };
    const later = (ms: number, fn: () => void) => timers.push(setTimeout(fn, ms));
    // No plan waits longer than this; an answer that never comes is cut here too.
    later(15_000, () => finish(false));
    sock.on("close", () => finish(true));
    sock.on("data", (d: Buffer) => {
      received += d.length;
      if (cut.at === "mid-body" && received >= cut.bytes) finish(false);
      if (cut.at === "mid-hijack" && !upgraded) {
        seen += d.toString("latin1");
        if (seen.includes("\r\n\r\n")) {
          upgraded = true;
          if (cut.stdin && !sock.destroyed) sock.write(cut.stdin);
          later(cut.ms, () => finish(false));
        }
      }
    });
    switch (cut.at) {
      case "request-head":
        sock.write(head.subarray(0, Math.max(1, Math.floor(head.length * cut.fraction))));
        later(randomInt(20), () => finish(false));
        return;
      case "mid-upload": {
        sock.write(head);
        const n = Math.floor(body.length * cut.fraction);
        // In pieces, so the agent is busy with the body when the client leaves.
        const pieces = [body.subarray(0, n >> 1), body.subarray(n >> 1, n)];
        const send = () => {
          const p = pieces.shift();
          if (!p || done) return finish(false);
          sock.write(p, () => later(5, send));
        };
        send();
        return;
      }
      default:
        sock.write(Buffer.concat([head, body]));
        if (cut.at === "before-response") later(cut.ms, () => finish(false));
        if (cut.at === "mid-body") sock.once("data", () => later(cut.ms, () => finish(false)));
    }
  });
}

/** A complete request over the same kind of socket, for setup: status and body. */
async function rawCall(socketPath: string, req: RawRequest): Promise<{ status: number; body: Buffer }> {
  const sock = createConnection(socketPath);
  const chunks: Buffer[] = [];
  sock.on("data", (d: Buffer) => chunks.push(d));
  const failed = once(sock, "error").then(([e]) => {
    throw new Error(`${req.method} ${req.path}: ${(e as Error).message}`);
  });
  const closed = Promise.race([once(sock, "close"), failed]);
  await once(sock, "connect");
  const body = req.body ?? Buffer.alloc(0);
  const headers: Record<string, string> = { Host: "docker", Connection: "close", "Content-Length": String(body.length), ...(req.headers ?? {}) };
  sock.write(
    Buffer.concat([
      Buffer.from(
        `${req.method} ${req.path} HTTP/1.1\r\n${Object.entries(headers)
          .map(([k, v]) => `${k}: ${v}\r\n`)
          .join("")}\r\n`,
      ),
      body,
    ]),
  );
  await closed;
  const all = Buffer.concat(chunks);
  const split = all.indexOf("\r\n\r\n");
  const status = Number(/^HTTP\/1\.1 (\d+)/.exec(all.subarray(0, split).toString())?.[1] ?? 0);
  let rest = all.subarray(split + 4);
  if (/transfer-encoding: chunked/i.test(all.subarray(0, split).toString())) {
    const parts: Buffer[] = [];
    for (;;) {
      const nl = rest.indexOf("\r\n");
      const size = parseInt(rest.subarray(0, nl).toString(), 16);
      if (!size) break;
      parts.push(rest.subarray(nl + 2, nl + 2 + size));
      rest = rest.subarray(nl + 2 + size + 2);
    }
    rest = Buffer.concat(parts);
  }
  return { status, body: rest };
}

// ─── what the agent holds ─────────────────────────────────────────────────────────────

async function fdCount(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

/**
 * The agent's descriptors at rest: the least count seen over `ms`. Its own periodic work (a
 * runc call's pipes, an idle registry connection timing out) raises the count for moments;
 * a leak raises the floor.
 */
async function fdFloor(pid: number, ms = 3000): Promise<number> {
  let least = await fdCount(pid);
  for (const end = Date.now() + ms; Date.now() < end;) {
    await sleep(100);
    least = Math.min(least, await fdCount(pid));
  }
  return least;
}

async function fdTargets(pid: number): Promise<string[]> {
  const out: string[] = [];
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const { readlink } = await import("node:fs/promises");
    out.push(`${fd} → ${await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "?")}`);
  }
  return out;
}

async function rssBytes(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) * 1024;
}

async function mountsUnder(dir: string): Promise<string[]> {
  return (await readFile("/proc/self/mountinfo", "utf8"))
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m.startsWith(dir + "/"))
    .sort();
}

/** Processes whose command line contains `marker`, and conmons of the agent's data root: "PID argv". */
async function processesWith(marker: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const argv = (await readFile(`/proc/${name}/cmdline`, "utf8").catch(() => "")).split("\0").filter(Boolean);
    if (argv.join(" ").includes(marker)) out.push(`${name} ${argv.join(" ")}`);
  }
  return out;
}

async function conmonsOf(dataRoot: string): Promise<string[]> {
  return (await processesWith(dataRoot)).filter((p) => /^\d+ \S*conmon /.test(p));
}

/** Files left in the agent's scratch places (load/import spools, content ingests, unpacks in progress). */
async function scratchLeftovers(dataRoot: string): Promise<string[]> {
  const out: string[] = [];
  for (const dir of ["tmp", "content/ingest", "layers/tmp", "snapshots/tmp"]) {
    for (const name of await readdir(join(dataRoot, dir)).catch(() => [] as string[])) out.push(`${dir}/${name}`);
  }
  return out;
}

// ─── the endpoints ──────────────────────────────────────────────────────────────────

interface Endpoint {
  name: string;
  /** Cut points that make sense for it. */
  cuts: Array<Cut["at"]>;
  /** Endpoints sharing a lane run one at a time (they change the same image). */
  lane?: string;
  /** Builds the request (it may first make what it needs, e.g. an exec instance). */
  request(): Promise<RawRequest>;
  /** How many answer bytes are interesting for a mid-body cut. */
  bodyBytes: number;
}

const MARKER = `chaos-exec-${randomInt(1e9)}`;
const auth = Buffer.from("{}").toString("base64");

describe("connection chaos: clients hang up at random points of every streaming endpoint", { timeout: 900_000 }, () => {
  let b: BusyboxAgent;
  let agent: AgentHandle;
  let saved: Buffer;
  let rootfsTar: Buffer;
  let pushRef: string;
  let pullRef: string;
  const ids: Record<"plain" | "tty" | "created", string> = { plain: "", tty: "", created: "" };

  before(async () => {
    b = await startBusyboxAgent("chaos");
    agent = b.agent;
    // A container printing all the time (logs -f, attach, stats, wait, export, commit, exec) and one on a TTY.
    ids.plain = (
      await dockerOk(agent, ["run", "-d", "--name", "chaos-plain", "busybox", "sh", "-c", "while true; do echo tick; echo tock >&2; sleep 0.1; done"])
    ).trim();
    // The TTY one prints too: a client that half-closed its side (as the CLI does when it has no
    // stdin) is only known to be gone when the next write fails, as with Docker.
    ids.tty = (
      await dockerOk(agent, ["run", "-d", "-i", "-t", "--name", "chaos-tty", "busybox", "sh", "-c", "while true; do echo tty; sleep 0.1; done"])
    ).trim();
    // Never started: an attach to it waits for the start (as `docker run` attaches first).
    ids.created = (await dockerOk(agent, ["create", "--name", "chaos-created", "busybox", "echo", "started"])).trim();
    // An image with a layer of its own in the registry, so each pull downloads (and tees) a blob.
    await dockerOk(agent, ["exec", "chaos-plain", "sh", "-c", "head -c 2000000 /dev/urandom > /blob"]);
    pullRef = `${b.reg.host}/chaos/pullme:latest`;
    pushRef = `${b.reg.host}/chaos/pushme`;
    await dockerOk(agent, ["commit", "chaos-plain", pullRef]);
    await dockerOk(agent, ["push", pullRef]);
    await dockerOk(agent, ["rmi", pullRef]);
    await dockerOk(agent, ["tag", "busybox", `${pushRef}:latest`]);
    const savedCall = await rawCall(agent.socket, { method: "GET", path: "/images/get?names=busybox" });
    saved = savedCall.body;
    if (saved.length < 100) console.log(savedCall.status, saved.toString());
    assert.ok(saved.length > 100_000, `docker save of busybox gave ${saved.length} bytes`);
    // docker export of the container: a root filesystem tar for import.
    rootfsTar = (await rawCall(agent.socket, { method: "GET", path: `/containers/${ids.plain}/export` })).body;
    assert.ok(rootfsTar.length > 100_000, `docker export gave ${rootfsTar.length} bytes`);
  });
  after(async () => {
    if (agent && agent.process.exitCode !== null)
      console.error(
        `the agent exited; its log:\n${agent
          .logs()
          .split("\n")
          .filter((l) => !l.startsWith('{"level":20'))
          .slice(-40)
          .join("\n")}`,
      );
    await b?.stop();
  });

  test(`${ITERATIONS} hang-ups per endpoint, ${CONCURRENCY} at once (seed ${SEED}): the agent stays up and gives everything back`, async (t) => {
    t.diagnostic(`seed ${SEED} (CHAOS_SEED=${SEED} replays this plan)`);
    const random = seededRandom(SEED);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const sock = agent.socket;
    const createExec = async (body: Record<string, unknown>) => {
      const r = await rawCall(sock, {
        method: "POST",
        path: `/containers/${ids.plain}/exec`,
        headers: { "Content-Type": "application/json" },
        body: Buffer.from(JSON.stringify(body)),
      });
      assert.equal(r.status, 201, `exec create: ${r.body.toString()}`);
      return (JSON.parse(r.body.toString()) as { Id: string }).Id;
    };
    const execLoop = ["sh", "-c", `: ${MARKER}; while true; do echo x; echo y >&2; sleep 0.05; done`];
    const json = (v: unknown) => ({ headers: { "Content-Type": "application/json" }, body: Buffer.from(JSON.stringify(v)) });
    const buildContext = await makeTar([
      { name: "Dockerfile", content: `FROM busybox\nRUN i=0; while [ $i -lt 30 ]; do echo ${MARKER} step $i; i=$((i+1)); sleep 0.05; done\n` },
      { name: "pad.bin", content: "x".repeat(200_000) },
    ]);
    const endpoints: Endpoint[] = [
      {
        name: "attach",
        cuts: ["request-head", "before-response", "mid-hijack"],
        bodyBytes: 200,
        request: async () => ({ method: "POST", path: `/containers/${ids.plain}/attach?stream=1&stdout=1&stderr=1`, upgrade: true }),
      },
      {
        name: "attach (tty)",
        cuts: ["request-head", "before-response", "mid-hijack"],
        bodyBytes: 200,
        request: async () => ({ method: "POST", path: `/containers/${ids.tty}/attach?stream=1&stdin=1&stdout=1&stderr=1`, upgrade: true }),
      },
      {
        name: "attach (before start)",
        cuts: ["request-head", "before-response", "mid-hijack"],
        bodyBytes: 200,
        request: async () => ({ method: "POST", path: `/containers/${ids.created}/attach?stream=1&stdin=1&stdout=1&stderr=1`, upgrade: true }),
      },
      {
        name: "exec start",
        cuts: ["request-head", "before-response", "mid-hijack"],
        bodyBytes: 300,
        request: async () => ({
          method: "POST",
          path: `/exec/${await createExec({ Cmd: execLoop, AttachStdout: true, AttachStderr: true })}/start`,
          upgrade: true,
          ...json({ Detach: false, Tty: false }),
        }),
      },
      {
        name: "exec start (tty)",
        cuts: ["request-head", "before-response", "mid-hijack"],
        bodyBytes: 300,
        request: async () => ({
          method: "POST",
          path: `/exec/${await createExec({ Cmd: execLoop, Tty: true, AttachStdin: true, AttachStdout: true })}/start`,
          upgrade: true,
          ...json({ Detach: false, Tty: true }),
        }),
      },
      {
        name: "exec start (detached)",
        cuts: ["request-head", "before-response", "mid-body"],
        bodyBytes: 40,
        request: async () => ({
          method: "POST",
          path: `/exec/${await createExec({ Cmd: ["sh", "-c", `sleep 0.3; : ${MARKER}`] })}/start`,
          upgrade: true,
          ...json({ Detach: true }),
        }),
      },
      {
        name: "logs -f",
        cuts: ["request-head", "before-response", "mid-body"],
        bodyBytes: 4000,
        request: async () => ({ method: "GET", path: `/containers/${ids.plain}/logs?follow=1&stdout=1&stderr=1&timestamps=1` }),
      },
      { name: "events", cuts: ["request-head", "before-response", "mid-body"], bodyBytes: 300, request: async () => ({ method: "GET", path: "/events" }) },
      {
        name: "stats",
        cuts: ["request-head", "before-response", "mid-body"],
        bodyBytes: 3000,
        request: async () => ({ method: "GET", path: `/containers/${ids.plain}/stats?stream=1` }),
      },
      {
        name: "wait",
        cuts: ["request-head", "before-response", "mid-body"],
        bodyBytes: 100,
        request: async () => ({ method: "POST", path: `/containers/${ids.plain}/wait?condition=not-running` }),
      },
      {
        name: "pull",
        lane: "pull",
        cuts: ["request-head", "before-response", "mid-body"],
        bodyBytes: 1500,
        request: async () => {
          // Without the image, the pull downloads its layer again (through the tee into the store and the unpacker).
          await rawCall(sock, { method: "DELETE", path: `/images/${pullRef}?force=1` });
          const [name, tag] = [pullRef.slice(0, pullRef.lastIndexOf(":")), "latest"];
          return { method: "POST", path: `/images/create?fromImage=${encodeURIComponent(name)}&tag=${tag}`, headers: { "X-Registry-Auth": auth } };
        },
      },
      {
        name: "push",
        lane: "push",
        cuts: ["request-head", "before-response", "mid-body"],
        bodyBytes: 800,
        request: async () => ({ method: "POST", path: `/images/${pushRef}/push?tag=latest`, headers: { "X-Registry-Auth": auth } }),
      },
      {
        name: "save",
        cuts: ["request-head", "before-response", "mid-body"],
        bodyBytes: 2_000_000,
        request: async () => ({ method: "GET", path: "/images/get?names=busybox" }),
      },
      {
        name: "load",
        lane: "load",
        cuts: ["request-head", "mid-upload", "before-response", "mid-body"],
        bodyBytes: 100,
        request: async () => ({ method: "POST", path: "/images/load?quiet=1", headers: { "Content-Type": "application/x-tar" }, body: saved }),
      },
      {
        name: "import",
        lane: "import",
        cuts: ["request-head", "mid-upload", "before-response", "mid-body"],
        bodyBytes: 100,
        request: async () => ({
          method: "POST",
          path: "/images/create?fromSrc=-&repo=chaos-import&tag=latest",
          headers: { "Content-Type": "application/x-tar" },
          body: rootfsTar,
        }),
      },
      {
        name: "export",
        cuts: ["request-head", "before-response", "mid-body"],
        bodyBytes: 2_000_000,
        request: async () => ({ method: "GET", path: `/containers/${ids.plain}/export` }),
      },
      {
        // A RUN that prints for a while: a hang-up mid-upload, before the answer or mid-step
        // must end the build and remove its step container (checked below with the rest).
        name: "build",
        lane: "build",
        cuts: ["request-head", "mid-upload", "before-response", "mid-body"],
        bodyBytes: 400,
        request: async () => ({
          method: "POST",
          path: "/build?t=chaos-build&rm=1&forcerm=1&nocache=1",
          headers: { "Content-Type": "application/x-tar" },
          body: buildContext,
        }),
      },
      {
        name: "commit",
        lane: "commit",
        cuts: ["request-head", "before-response", "mid-body"],
        bodyBytes: 100,
        request: async () => ({ method: "POST", path: `/commit?container=${ids.plain}&repo=chaos-commit&tag=latest`, ...json({}) }),
      },
    ];

    // CHAOS_ENDPOINTS=regex narrows a replay to some endpoints.
    if (process.env.CHAOS_ENDPOINTS) endpoints.splice(0, endpoints.length, ...endpoints.filter((e) => new RegExp(process.env.CHAOS_ENDPOINTS!).test(e.name)));
    const pid = agent.process.pid!;
    const dataRoot = agent.dataRoot;
    // One clean round first, so what the agent opens once and keeps (the inotify instance,
    // the thread pool, lazily loaded modules) is in the baseline.
    // A follow of the logs stays long enough to reach its file watch (the inotify instance).
    for (const e of endpoints)
      await chaosRequest(sock, await e.request(), e.name === "logs -f" ? { at: "mid-body", bytes: 1e9, ms: 1500 } : { at: "mid-body", bytes: 1, ms: 300 });
    await sleep(5000); // idle registry connections of the warm-up time out
    const startFds = await fdFloor(pid);
    const startFdList = await fdTargets(pid);
    const startRss = await rssBytes(pid);
    const startMounts = await mountsUnder(dataRoot.replace(/\/data$/, ""));
    const startConmons = await conmonsOf(dataRoot);

    // The plan: every endpoint × ITERATIONS, each with a random cut, in a random order.
    const plan: Array<{ e: Endpoint; cut: Cut }> = [];
    for (const e of endpoints) {
      for (let i = 0; i < ITERATIONS; i++) {
        // A cut inside the request head is the dullest (the agent has not started): half as likely.
        const at = pick([...e.cuts, ...e.cuts.filter((c) => c !== "request-head")]);
        const cut: Cut =
          at === "request-head"
            ? { at, fraction: random() }
            : at === "before-response"
              ? { at, ms: Math.floor(random() * 40) }
              : at === "mid-upload"
                ? { at, fraction: 0.05 + random() * 0.9 }
                : at === "mid-body"
                  ? { at, bytes: 1 + Math.floor(random() * e.bodyBytes), ms: Math.floor(random() * 400) }
                  : { at, ms: Math.floor(random() * 400), stdin: random() < 0.5 ? "echo hi\n" : "" };
        plan.push({ e, cut });
      }
    }
    for (let i = plan.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [plan[i], plan[j]] = [plan[j]!, plan[i]!];
    }

    const lanes = new Map<string, Promise<unknown>>();
    const counts = new Map<string, number>();
    let next = 0;
    const worker = async () => {
      while (next < plan.length) {
        const { e, cut } = plan[next++]!;
        const run = async () => chaosRequest(sock, await e.request(), cut);
        if (e.lane) {
          const prev = lanes.get(e.lane) ?? Promise.resolve();
          const mine = prev.then(run, run);
          lanes.set(
            e.lane,
            mine.catch(() => undefined),
          );
          await mine;
        } else {
          await run();
        }
        counts.set(`${e.name} @${cut.at}`, (counts.get(`${e.name} @${cut.at}`) ?? 0) + 1);
        assert.equal(
          agent.process.exitCode,
          null,
          `the agent exited during ${e.name} cut ${JSON.stringify(cut)} (seed ${SEED}):\n${agent
            .logs()
            .split("\n")
            .filter((l) => !l.startsWith('{"level":20'))
            .slice(-30)
            .join("\n")}`,
        );
      }
    };
    const started = Date.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    t.diagnostic(
      `${plan.length} hang-ups over ${endpoints.length} endpoints × ${ITERATIONS} iterations, ${CONCURRENCY} clients at once, in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
    t.diagnostic(
      [...counts]
        .sort()
        .map(([k, v]) => `${k}: ${v}`)
        .join(", "),
    );

    // The same agent, never restarted, and nothing logged as fatal.
    assert.equal(agent.process.pid, pid);
    assert.equal(agent.process.exitCode, null, "the agent exited");
    assert.doesNotMatch(agent.logs(), /"level":60|uncaught|unhandled/i, "the agent logged a fatal error");

    // Builds whose clients left removed their step containers.
    await until(
      "no build step container left",
      async () => (await dockerOk(agent, ["ps", "-aq", "--filter", "label=io.berth.build-step"])).trim() === "",
      30_000,
    );

    // Exec processes of departed clients were killed, detached ones ended; their monitors are gone.
    await until("no exec process left", async () => (await processesWith(MARKER)).length === 0, 20_000).catch(async (e: Error) => {
      throw new Error(`${e.message}\n${(await processesWith(MARKER)).join("\n")}`);
    });
    await until("only the containers' own monitors", async () => (await conmonsOf(dataRoot)).length === startConmons.length, 20_000).catch(async (e: Error) => {
      throw new Error(`${e.message}\nbefore:\n${startConmons.join("\n")}\nnow:\n${(await conmonsOf(dataRoot)).join("\n")}`);
    });
    assert.deepEqual(await conmonsOf(dataRoot), startConmons);
    assert.deepEqual(await mountsUnder(dataRoot.replace(/\/data$/, "")), startMounts, "mounts below the agent's directories changed");
    await until("no scratch files", async () => (await scratchLeftovers(dataRoot)).length === 0, 20_000).catch(async (e: Error) => {
      throw new Error(`${e.message}: ${(await scratchLeftovers(dataRoot)).join(", ")}`);
    });

    // Every descriptor the requests opened was closed: the count comes back exactly.
    await until("the agent's descriptors back to the start", async () => (await fdFloor(pid, 1000)) === startFds, 30_000).catch(async (e: Error) => {
      const now = await fdTargets(pid);
      const sockets = await new Promise<string>((r) =>
        execFile("ss", ["-xapn"], (_e, out) =>
          r(
            String(out)
              .split("\n")
              .filter((l) => l.includes(`pid=${pid},`))
              .join("\n"),
          ),
        ),
      );
      throw new Error(
        `${e.message}: ${startFds} at the start, ${now.length} now\nnew: ${now.filter((x) => !startFdList.includes(x)).join("\n")}\ngone: ${startFdList.filter((x) => !now.includes(x)).join("\n")}\nunix sockets:\n${sockets}`,
      );
    });
    const endFds = await fdFloor(pid);
    assert.equal(endFds, startFds, "fd delta");

    // Memory: a loose bound (the heap grows and shrinks with the garbage collector's moods).
    const endRss = await rssBytes(pid);
    t.diagnostic(
      `agent pid ${pid}: fds ${startFds} → ${endFds} (delta ${endFds - startFds}), rss ${(startRss / 2 ** 20).toFixed(0)} MiB → ${(endRss / 2 ** 20).toFixed(0)} MiB, restarts 0`,
    );
    assert.ok(endRss < startRss * 2 + 64 * 2 ** 20, `rss grew from ${startRss} to ${endRss}`);

    // And everything still works, through the real CLI.
    assert.equal((await dockerOk(agent, ["exec", "chaos-plain", "echo", "still here"])).trim(), "still here");
    assert.match(await dockerOk(agent, ["logs", "--tail", "10", "chaos-plain"]), /tick/);
    await dockerOk(agent, ["pull", pullRef]);
    assert.match(await dockerOk(agent, ["load"], { input: saved }), /Loaded image: busybox:latest/);
    assert.equal((await dockerOk(agent, ["inspect", "-f", "{{.State.Running}}", "chaos-plain", "chaos-tty"])).trim(), "true\ntrue");
    // Hundreds of clients waited for its start and left: it starts, and prints to the one attached.
    assert.equal(await dockerOk(agent, ["start", "-a", "chaos-created"]), "started\n");
  });

  test("Ctrl-C of docker exec (the CLI killed mid-stream) ends the exec process and nothing else (issue 11)", async () => {
    const pid = agent.process.pid;
    for (const flags of [[], ["-i"], ["-d"]]) {
      const marker = `chaos-cli-${randomInt(1e9)}`;
      const cli = spawn("docker", ["exec", ...flags, "chaos-plain", "sh", "-c", `: ${marker}; while true; do echo x; sleep 0.05; done`], {
        env: { ...process.env, DOCKER_HOST: agent.dockerHost, DOCKER_CONFIG: agent.dockerConfig },
        stdio: ["pipe", "pipe", "pipe"],
      });
      cli.stdin.on("error", () => undefined);
      let out = "";
      cli.stdout.on("data", (d: Buffer) => (out += d.toString()));
      const exited = once(cli, "exit");
      if (flags[0] === "-d") await exited;
      else await until(`docker exec ${flags.join(" ")} printing`, () => out.includes("x"), 20_000, agent);
      await until("the exec process running", async () => (await processesWith(marker)).length > 0, 20_000, agent);
      cli.kill("SIGKILL");
      await exited;
      if (flags[0] === "-d") {
        // Detached: its own life, as with Docker; it goes when killed inside the container.
        await sleep(500);
        assert.equal((await processesWith(marker)).length, 1, "a detached exec keeps running after its client left");
        for (const p of await processesWith(marker)) process.kill(Number(p.split(" ")[0]), "SIGKILL");
      }
      await until(
        `no process of docker exec ${flags.join(" ")} after its client was killed`,
        async () => (await processesWith(marker)).length === 0,
        20_000,
        agent,
      );
      assert.equal(agent.process.pid, pid);
      assert.equal(agent.process.exitCode, null, "the agent exited");
    }
    assert.equal((await dockerOk(agent, ["exec", "chaos-plain", "echo", "ok"])).trim(), "ok");
  });

  test("docker load of an archive whose member is ../x is refused with a message; the agent stays up and keeps no spool (issue 11)", async () => {
    const evil = await makeTar([{ name: "../x", content: "outside".repeat(1000) }]);
    const r = await docker(agent, ["load"], { input: evil });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /archive entry escapes the archive: \.\.\/x/);
    assert.equal(agent.process.exitCode, null, "the agent exited");
    assert.deepEqual(await scratchLeftovers(agent.dataRoot), []);
    assert.match(await dockerOk(agent, ["load"], { input: saved }), /Loaded image: busybox:latest/);
  });

  test("kill -9 in the middle of docker load: the restarted agent sweeps the spooled archive", async () => {
    const dataRoot = agent.dataRoot;
    // Half the archive, then the client waits: the agent is spooling it into a load-* folder.
    const sock = createConnection(agent.socket);
    sock.on("error", () => undefined);
    await once(sock, "connect");
    sock.write(`POST /images/load HTTP/1.1\r\nHost: docker\r\nContent-Type: application/x-tar\r\nContent-Length: ${saved.length}\r\n\r\n`);
    sock.write(saved.subarray(0, saved.length >> 1));
    const spool = await until(
      "a load-* spool folder",
      async () => {
        const names = (await readdir(join(dataRoot, "tmp")).catch(() => [] as string[])).filter((n) => n.startsWith("load-"));
        return names.length && (await readdir(join(dataRoot, "tmp", names[0]!))).length ? names : undefined;
      },
      20_000,
      agent,
    );
    await agent.kill();
    sock.destroy();
    assert.ok((await readdir(join(dataRoot, "tmp"))).includes(spool[0]!), "the spool is there after the crash");
    await agent.restart();
    assert.deepEqual(await scratchLeftovers(dataRoot), [], "scratch folders after the restart");
    assert.match(agent.logs(), /removed leftovers of interrupted work/);
    assert.match(await dockerOk(agent, ["load"], { input: saved }), /Loaded image: busybox:latest/);
    assert.deepEqual(await scratchLeftovers(dataRoot), []);
  });
});
