import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import { writeSync } from "node:fs";
import type { Logger } from "pino";
import { Manager, type Socket } from "socket.io-client";
import type { Engine } from "../engine/engine.ts";
import { BERTH_VERSION } from "../version.ts";
import {
  AGENTS_NAMESPACE,
  diffInventory,
  isRetryableRefusal,
  LINK_EVENTS,
  LINK_PROTOCOL_VERSION,
  METHODS,
  endsWithLink,
  parseCancel,
  parseExecInput,
  parseEnrollment,
  parseRefusal,
  parseRequest,
  parseRevoked,
  type Ack,
  type ExecInput,
  type AgentEvent,
  type AgentToConsoleEvents,
  type ConsoleToAgentEvents,
  type EngineEvent,
  type Handshake,
  type InventorySnapshot,
  type LinkRefusal,
  type LinkRequest,
  type MethodName,
  type ProgressEventWire,
} from "./contract.ts";
import { deleteCredential, readCredential, writeCredential, type StoredCredential } from "./credential-file.ts";
import { linkHandlers, type HandlerContext } from "./handlers.ts";
import { readInventory } from "./inventory.ts";
import { normalizeFingerprint, PinnedAgent } from "./pinned-tls.ts";
import { ProgressCoalescer } from "./progress-coalescer.ts";
import { formatDuration, RequestLedger, type Outcome } from "./request-ledger.ts";

export interface ConsoleLinkOptions {
  /** The console's base URL: https://console.example:8443 (http, ws and wss work too). */
  url: string;
  engine: Engine;
  /** Where the node credential lives (0600). */
  credentialFile: string;
  /** A one-time join token, used only while there is no credential file. */
  joinToken?: string;
  /** SHA-256 fingerprint of the console's TLS certificate: the only one accepted when set. */
  fingerprint?: string;
  logger: Logger;
  /** Reconnection back-off: first delay, longest delay (ms) and jitter (0..1). */
  backoff?: { initialMs?: number; maxMs?: number; jitter?: number };
  /** How long one connection attempt may take (ms, default 10 s). */
  connectTimeoutMs?: number;
  /** How often the inventory is compared for changes the engine does not announce (ms, default 2 s). */
  pollIntervalMs?: number;
  /** Shortest time between two inventory messages (ms, default 100: at most ~10 per second). */
  minInventoryIntervalMs?: number;
  /** How long finished requests are remembered for idempotent retries (ms, default 10 min). */
  requestRetentionMs?: number;
  /**
   * The request journal (in the agent's data root): requests running when the agent died
   * are answered as interrupted after its restart instead of running again. Memory only when unset.
   */
  requestJournal?: string;
  /**
   * What starts the agent again when it exits (agent/config.ts `supervisor`). With one, an
   * `agent.restart` request is answered and then the link emits "restart" for the agent to stop.
   */
  supervisor?: string | null;
}

export type LinkState = "idle" | "connecting" | "connected" | "refused" | "revoked" | "stopped";

export class LinkConfigError extends Error {
  override name = "LinkConfigError";
}

/**
 * TEST ONLY: `BERTH_TEST_CRASH_ON=<method>` (a link method such as image.pull) makes the
 * agent die at once, by SIGKILL to itself, when it starts running a request of that
 * method (after the ledger journaled it): how the tests make a request that crashes the
 * agent. Unset, as it is outside tests, it does nothing.
 */
const CRASH_ON = process.env.BERTH_TEST_CRASH_ON || undefined;

function crashForTest(req: LinkRequest): never {
  // Straight to stderr: the logger writes asynchronously and would lose the line.
  writeSync(2, `BERTH_TEST_CRASH_ON: crashing on ${req.method} ${req.id}\n`);
  process.kill(process.pid, "SIGKILL");
  throw new Error("unreachable: SIGKILL was sent to this process");
}

const DEFAULT_BACKOFF = { initialMs: 500, maxMs: 5_000, jitter: 0.5 };
const MAX_PENDING_EVENTS = 1_000;

type LinkSocket = Socket<ConsoleToAgentEvents, AgentToConsoleEvents>;

/** The console's base URL split for socket.io: origin, and the engine.io path under any base path. */
function socketTarget(url: string): { origin: string; path: string; secure: boolean } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new LinkConfigError(`console-url is not a URL: ${url}`);
  }
  const protocol = { "http:": "http:", "https:": "https:", "ws:": "http:", "wss:": "https:" }[u.protocol];
  if (!protocol) throw new LinkConfigError(`console-url must be http(s):// or ws(s)://, not ${u.protocol}//`);
  const base = u.pathname.replace(/\/+$/, "");
  return { origin: `${protocol}//${u.host}`, path: `${base}/socket.io`, secure: protocol === "https:" };
}

/**
 * Checks what the link needs before anything else starts: a usable URL, a well-formed
 * fingerprint (and https with it), and a credential or a join token.
 * @returns the stored credential, if any
 * @throws LinkConfigError naming what is missing; CredentialFileError for an unusable credential file
 */
export async function checkLinkConfig(
  opts: Pick<ConsoleLinkOptions, "url" | "credentialFile" | "joinToken" | "fingerprint">,
): Promise<{ target: ReturnType<typeof socketTarget>; credential?: StoredCredential }> {
  const target = socketTarget(opts.url);
  if (opts.fingerprint !== undefined) {
    if (!target.secure) throw new LinkConfigError("console-fingerprint pins a TLS certificate: console-url must be https:// or wss://");
    try {
      normalizeFingerprint(opts.fingerprint);
    } catch (e) {
      throw new LinkConfigError(`console-fingerprint: ${(e as Error).message}`);
    }
  }
  const credential = await readCredential(opts.credentialFile);
  if (!credential && !opts.joinToken) {
    throw new LinkConfigError(
      `no node credential in ${opts.credentialFile} and no join token: enroll this node with --join-token TOKEN (an admin creates one in the console)`,
    );
  }
  return credential ? { target, credential } : { target };
}

/**
 * The agent's end of the console link (see contract.ts for the protocol). It dials out,
 * so nodes behind NAT work; it enrolls once with a join token and then authenticates
 * with the stored credential; it reconnects with exponential back-off and jitter and
 * sends a full inventory after every (re)connect; it runs the console's requests
 * through the engine, once per request id; it forwards engine events and inventory
 * changes, coalesced.
 *
 * Emits "state" (LinkState) on every change, for the agent's logs and for tests.
 */
export class ConsoleLink extends EventEmitter {
  private readonly opts: ConsoleLinkOptions;
  private readonly log: Logger;
  private readonly ledger: RequestLedger;
  private readonly handlers: ReturnType<typeof linkHandlers>;
  private manager?: Manager;
  private socket?: LinkSocket;
  private credential?: StoredCredential;
  private currentState: LinkState = "idle";
  private stopped = false;

  // Reconnection by hand (after refusals the console may lift, or a server-side disconnect).
  private manualTimer?: NodeJS.Timeout;
  private manualAttempts = 0;
  private failedAttempts = 0;

  // Inventory: serialised through one chain; `generation` counts connections.
  private generation = 0;
  private seq = -1;
  private baseline?: InventorySnapshot;
  private baselineGeneration = -1;
  private inventoryChain: Promise<void> = Promise.resolve();
  private dirty = false;
  private flushTimer?: NodeJS.Timeout;
  private flushQueued = false;
  private lastFlush = 0;
  private pendingEvents: EngineEvent[] = [];
  private unsubscribeEvents?: () => void;
  private pollTimer?: NodeJS.Timeout;
  private readonly streamSeq = new Map<string, number>();
  /** Where `input` messages of running execs go, by request id. */
  private readonly inputs = new Map<string, (input: ExecInput) => void>();
  /** Requests running now, by id: the link's drop ends those whose method says so (`endsWithLink`). */
  private readonly runningMethods = new Map<string, MethodName>();

  constructor(opts: ConsoleLinkOptions) {
    super();
    this.opts = opts;
    this.log = opts.logger.child({ concern: "link" });
    this.ledger = new RequestLedger({ retentionMs: opts.requestRetentionMs, journalFile: opts.requestJournal, logger: this.log });
    this.handlers = linkHandlers(opts.engine, this.log, { supervisor: opts.supervisor ?? null });
  }

  get state(): LinkState {
    return this.currentState;
  }

  /** The node ID once enrolled. */
  get nodeId(): string | undefined {
    return this.credential?.nodeId;
  }

  /**
   * Reads the credential and starts dialling; returns without waiting for the console.
   * @throws LinkConfigError when there is neither a credential nor a join token, or the URL or fingerprint is malformed
   * @throws CredentialFileError when the credential file is unreadable or too open
   */
  async start(): Promise<void> {
    const { target, credential } = await checkLinkConfig(this.opts);
    this.credential = credential;
    // Before the first request can arrive: the console re-sends what it had in flight.
    await this.ledger.open();
    let agent: PinnedAgent | undefined;
    if (this.opts.fingerprint) {
      agent = new PinnedAgent(this.opts.fingerprint);
      agent.onMismatch = (e) => this.log.error({ err: e }, "console certificate does not match the pinned fingerprint");
    }
    const backoff = { ...DEFAULT_BACKOFF, ...this.opts.backoff };
    this.manager = new Manager(target.origin, {
      path: target.path,
      transports: ["websocket"],
      reconnection: true,
      reconnectionDelay: backoff.initialMs,
      reconnectionDelayMax: backoff.maxMs,
      randomizationFactor: backoff.jitter,
      timeout: this.opts.connectTimeoutMs ?? 10_000,
      autoConnect: false,
      ...(agent ? { agent: agent as unknown as string, rejectUnauthorized: false } : {}),
    });
    const socket: LinkSocket = this.manager.socket(AGENTS_NAMESPACE, { auth: (cb) => cb(this.handshake()) });
    this.socket = socket;
    socket.on("connect", () => this.onConnect());
    socket.on("disconnect", (reason) => this.onDisconnect(reason));
    socket.on("connect_error", (err) => this.onConnectError(err as Error & { data?: unknown }));
    socket.on(LINK_EVENTS.enrolled, (raw, ack) => void this.onEnrolled(raw, ack));
    socket.on(LINK_EVENTS.request, (raw, ack) => void this.onRequest(raw, ack));
    socket.on(LINK_EVENTS.cancel, (raw) => this.onCancel(raw));
    socket.on(LINK_EVENTS.input, (raw) => {
      const input = parseExecInput(raw);
      if (input.ok) this.inputs.get(input.value.requestId)?.(input.value);
    });
    socket.on(LINK_EVENTS.revoked, (raw) => {
      const r = parseRevoked(raw);
      void this.onRevoked(r.ok ? r.value.reason : "revoked by the console");
    });
    this.unsubscribeEvents = this.opts.engine.events.subscribe(this.onEngineEvent);
    this.pollTimer = setInterval(() => this.markDirty(), this.opts.pollIntervalMs ?? 2_000);
    this.pollTimer.unref();
    this.setState("connecting");
    this.log.info(
      { url: this.opts.url, enrolled: !!this.credential, pinned: !!agent },
      this.credential ? "dialling the console" : "dialling the console to enroll",
    );
    socket.connect();
  }

  /** Disconnects and stops dialling. Running abortable requests are aborted. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.teardown();
    this.ledger.abortAll("the agent is stopping");
    await this.ledger.close();
    await this.inventoryChain; // never rejects: its tasks log their own failure
    this.setState("stopped");
  }

  private teardown(): void {
    clearTimeout(this.manualTimer);
    clearTimeout(this.flushTimer);
    clearInterval(this.pollTimer);
    this.unsubscribeEvents?.();
    this.unsubscribeEvents = undefined;
    if (this.socket) {
      this.socket.removeAllListeners();
      this.socket.disconnect();
    }
    this.manager?.removeAllListeners();
  }

  private setState(state: LinkState): void {
    if (this.currentState === state) return;
    this.currentState = state;
    this.emit("state", state);
  }

  private handshake(): Handshake {
    const common = { protocol: LINK_PROTOCOL_VERSION, agentVersion: BERTH_VERSION };
    if (this.credential) return { kind: "node", ...common, nodeId: this.credential.nodeId, credential: this.credential.credential };
    const facts = this.opts.engine.facts;
    return { kind: "join", ...common, token: this.opts.joinToken ?? "", hostname: facts.hostname, facts };
  }

  // --- connection life --------------------------------------------------------------

  private onConnect(): void {
    this.manualAttempts = 0;
    if (this.failedAttempts > 0) this.log.info({ attempts: this.failedAttempts }, "reconnected to the console");
    else this.log.info({ nodeId: this.credential?.nodeId }, "connected to the console");
    this.failedAttempts = 0;
    this.generation += 1;
    this.seq = -1;
    this.baseline = undefined;
    this.pendingEvents = [];
    this.setState("connected");
    void this.sendSnapshot().catch((e: unknown) => this.log.error({ err: e }, "cannot read the inventory"));
  }

  private onDisconnect(reason: string): void {
    if (this.stopped || this.currentState === "revoked") return;
    this.log.warn({ reason }, "disconnected from the console");
    for (const [id, method] of this.runningMethods) {
      if (endsWithLink(method) && this.ledger.cancel(id, `the link to the console dropped while ${method} ran`))
        this.log.info({ requestId: id, method }, "request ended with the link");
    }
    this.setState("connecting");
    // The console closing our socket on purpose (not a transport failure): socket.io leaves reconnecting to us.
    if (reason === "io server disconnect") this.reconnectByHand();
  }

  private onConnectError(err: Error & { data?: unknown }): void {
    if (this.stopped) return;
    this.failedAttempts += 1;
    if (this.socket?.active) {
      // A transport failure: the manager retries with back-off. Say so once, then quietly.
      const level = this.failedAttempts === 1 ? "warn" : "debug";
      // The message alone: this repeats every few seconds while the console is away.
      this.log[level]({ err: err.message, attempt: this.failedAttempts }, "console unreachable; retrying with back-off");
      return;
    }
    const parsed = parseRefusal(err.data);
    const refusal: LinkRefusal = parsed.ok ? parsed.value : { code: "unavailable", message: err.message };
    if (refusal.code === "revoked") {
      void this.onRevoked(refusal.message);
      return;
    }
    if (isRetryableRefusal(refusal.code)) {
      this.log.warn({ code: refusal.code, err: refusal.message }, "the console refused the link for now; retrying with back-off");
      this.reconnectByHand();
      return;
    }
    this.log.error(
      { code: refusal.code, err: refusal.message },
      refusal.code === "join_refused"
        ? "enrollment refused; not dialling again (ask an admin for a new join token)"
        : "the console refused this node; not dialling again",
    );
    this.teardown();
    this.setState("refused");
    this.emit("refused", refusal);
  }

  private reconnectByHand(): void {
    if (this.stopped || this.manualTimer) return;
    const { initialMs, maxMs, jitter } = { ...DEFAULT_BACKOFF, ...this.opts.backoff };
    const base = Math.min(maxMs, initialMs * 2 ** this.manualAttempts);
    const delay = Math.min(maxMs, Math.round(base * (1 - jitter + Math.random() * 2 * jitter)));
    this.manualAttempts += 1;
    this.manualTimer = setTimeout(() => {
      this.manualTimer = undefined;
      if (!this.stopped) this.socket?.connect();
    }, delay);
    this.manualTimer.unref();
  }

  private async onEnrolled(raw: unknown, ack: unknown): Promise<void> {
    const reply = typeof ack === "function" ? (ack as (r: { ok: boolean; message?: string }) => void) : () => undefined;
    const e = parseEnrollment(raw);
    if (!e.ok) {
      this.log.error({ err: e }, "malformed enrollment from the console");
      reply({ ok: false, message: e.message });
      return;
    }
    if (this.credential) {
      // Enrollment answers a join; a node that already has a credential keeps it.
      const same = this.credential.nodeId === e.value.nodeId && this.credential.credential === e.value.credential;
      if (!same) this.log.error({ nodeId: this.credential.nodeId }, "the console sent an enrollment to a node that is already enrolled; ignored");
      reply(same ? { ok: true } : { ok: false, message: `already enrolled as node ${this.credential.nodeId}` });
      return;
    }
    const stored: StoredCredential = { nodeId: e.value.nodeId, credential: e.value.credential, console: this.opts.url, enrolledAt: new Date().toISOString() };
    this.credential = stored; // used from now on even if the file cannot be written
    try {
      await writeCredential(this.opts.credentialFile, stored);
    } catch (err) {
      this.log.error(
        { err, file: this.opts.credentialFile },
        "enrolled, but the credential cannot be stored: this node will need a new join token after the agent restarts",
      );
      reply({ ok: false, message: `cannot store the credential: ${(err as Error).message}` });
      return;
    }
    this.log.info({ nodeId: stored.nodeId, file: this.opts.credentialFile }, "enrolled; credential stored");
    reply({ ok: true });
    this.emit("enrolled", stored.nodeId);
  }

  private async onRevoked(reason: string): Promise<void> {
    if (this.currentState === "revoked") return;
    this.log.warn({ reason, nodeId: this.credential?.nodeId }, "the console revoked this node; deleting its credential and not dialling again");
    this.credential = undefined;
    this.teardown();
    this.ledger.abortAll("the node was revoked");
    this.setState("revoked");
    try {
      await deleteCredential(this.opts.credentialFile);
    } catch (e) {
      this.log.error({ err: e, file: this.opts.credentialFile }, "cannot delete the revoked credential");
    }
    this.emit("revoked", reason);
  }

  // --- requests -----------------------------------------------------------------------

  private async onRequest(raw: unknown, ack: unknown): Promise<void> {
    if (typeof ack !== "function") return; // a request nobody waits for is a protocol error; drop it
    const reply = ack as (a: Ack) => void;
    const rawId = typeof (raw as { id?: unknown })?.id === "string" ? (raw as { id: string }).id : "";
    const parsed = parseRequest(raw);
    if (!parsed.ok) {
      reply({ id: rawId, ok: false, error: { kind: "InvalidArgument", message: parsed.message } });
      return;
    }
    const req = parsed.value;
    const spec = METHODS[req.method];
    const timeoutMs = req.timeoutMs ?? spec.defaultTimeoutMs;
    const fingerprint = createHash("sha256")
      .update(JSON.stringify([req.method, req.params]))
      .digest("hex");
    const begun = this.ledger.begin(req.id, { fingerprint, record: spec.mutating, abortable: spec.abortable, timeoutMs, what: req.method }, (signal) =>
      this.execute(req, signal),
    );
    if ("conflict" in begun) {
      reply({ id: req.id, ok: false, error: { kind: "InvalidArgument", message: begun.conflict } });
      return;
    }
    this.log.info({ requestId: req.id, method: req.method, joined: begun.joined }, begun.joined ? "request repeated: answering with its first run" : "request");
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<Outcome>((resolve) => {
      // Abortable work ends itself at the limit; this answers for work that cannot be aborted.
      timer = setTimeout(
        () =>
          resolve({
            ok: false,
            error: {
              kind: "Unavailable",
              message: `${req.method} is still running after ${formatDuration(timeoutMs)}; ask again with the same request id for its outcome`,
            },
          }),
        timeoutMs + (spec.abortable ? 1_000 : 0),
      );
    });
    const outcome = await Promise.race([begun.outcome, late]);
    clearTimeout(timer);
    if (!outcome.ok) this.log.info({ requestId: req.id, method: req.method, kind: outcome.error.kind, err: outcome.error.message }, "request failed");
    reply({ id: req.id, ...outcome });
    // After the answer is on its way; a repeat of the request after the restart is answered from the ledger and restarts nothing.
    if (req.method === "agent.restart" && outcome.ok && !begun.joined) setImmediate(() => this.emit("restart"));
  }

  private async execute(req: LinkRequest, signal: AbortSignal): Promise<unknown> {
    if (CRASH_ON === req.method) crashForTest(req);
    const coalescer = new ProgressCoalescer((e: ProgressEventWire) => this.sendStream(req.id, e));
    const ctx: HandlerContext = {
      signal,
      stream: (event) =>
        req.method === "image.pull" || req.method === "image.push" ? coalescer.push(event as ProgressEventWire) : this.sendStream(req.id, event),
      inventoryChanged: () => this.markDirty(),
      snapshot: () => this.sendSnapshot(),
      onInput: (listener) => this.inputs.set(req.id, listener),
    };
    this.runningMethods.set(req.id, req.method);
    try {
      const handler = this.handlers[req.method] as (params: unknown, ctx: HandlerContext) => Promise<unknown>;
      return await handler(req.params, ctx);
    } finally {
      this.runningMethods.delete(req.id);
      coalescer.flush();
      this.streamSeq.delete(req.id);
      this.inputs.delete(req.id);
    }
  }

  private sendStream(requestId: string, event: unknown): void {
    const seq = this.streamSeq.get(requestId) ?? 0;
    this.streamSeq.set(requestId, seq + 1);
    // While disconnected, progress is dropped rather than buffered: a retry after the reconnect joins the request.
    if (this.socket?.connected) this.socket.emit(LINK_EVENTS.stream, { requestId, seq, event });
  }

  private onCancel(raw: unknown): void {
    const c = parseCancel(raw);
    if (!c.ok) return;
    if (this.ledger.cancel(c.value.requestId, "canceled by the console")) this.log.info({ requestId: c.value.requestId }, "request canceled");
  }

  // --- inventory and events -----------------------------------------------------------

  private readonly onEngineEvent = (event: EngineEvent): void => {
    this.queueEvent(event);
    this.markDirty();
  };

  private queueEvent(event: EngineEvent): void {
    if (!this.socket?.connected) return; // the snapshot after the reconnect covers what happened meanwhile
    if (this.pendingEvents.length >= MAX_PENDING_EVENTS) this.pendingEvents.shift();
    this.pendingEvents.push(event);
    this.scheduleFlush();
  }

  private markDirty(): void {
    this.dirty = true;
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.stopped || this.flushTimer || this.flushQueued || !this.socket?.connected) return;
    const delay = Math.max(0, this.lastFlush + (this.opts.minInventoryIntervalMs ?? 100) - Date.now());
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flushQueued = true;
      this.enqueue(async () => {
        this.flushQueued = false;
        this.lastFlush = Date.now();
        await this.flush();
      });
    }, delay);
  }

  /** Runs inventory work one at a time, so messages leave in the order they were read. A failure is logged here and ends only that task. */
  private enqueue(task: () => Promise<void>): void {
    this.inventoryChain = this.inventoryChain.then(task).catch((err: unknown) => this.log.error({ err }, "inventory update failed"));
  }

  private emitEvent(event: AgentEvent): void {
    this.socket?.emit(LINK_EVENTS.event, event);
  }

  private async flush(): Promise<void> {
    const gen = this.generation;
    const events = this.pendingEvents.splice(0);
    if (events.length && this.socket?.connected) this.emitEvent({ type: "engine.events", events });
    if (!this.dirty || this.baselineGeneration !== gen || !this.baseline) return;
    this.dirty = false;
    const next = await readInventory(this.opts.engine, this.log);
    if (gen !== this.generation || !this.socket?.connected) return;
    const changes = diffInventory(this.baseline, next);
    this.baseline = next;
    if (!changes) return;
    this.seq += 1;
    this.emitEvent({ type: "inventory.changed", seq: this.seq, takenAt: next.takenAt, changes });
  }

  /** Reads and sends a full snapshot (after each connect, and when the console asks). */
  private sendSnapshot(): Promise<InventorySnapshot> {
    return new Promise((resolve, reject) => {
      this.enqueue(async () => {
        try {
          const gen = this.generation;
          this.dirty = false;
          const snapshot = await readInventory(this.opts.engine, this.log);
          if (gen === this.generation && this.socket?.connected) {
            this.seq += 1;
            this.baseline = snapshot;
            this.baselineGeneration = gen;
            this.emitEvent({ type: "inventory.snapshot", seq: this.seq, snapshot });
          }
          resolve(snapshot);
        } catch (e) {
          reject(e);
        }
      });
    });
  }
}
