import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import type { ExtendedError, Namespace, Server, Socket } from "socket.io";
import {
  AGENTS_NAMESPACE,
  applyInventoryChanges,
  isRequestId,
  LINK_EVENTS,
  LINK_MAX_MESSAGE_BYTES,
  LINK_PROTOCOL_VERSION,
  METHODS,
  parseAck,
  parseEvent,
  parseHandshake,
  parseParams,
  parseResult,
  parseStreamEvent,
  parseStreamMessage,
  type AgentToConsoleEvents,
  type ConsoleToAgentEvents,
  type EngineEvent,
  type Enrollment,
  type ExecInput,
  type HostFactsWire,
  type InventoryChanges,
  type InventorySnapshot,
  type LinkErrorKind,
  type LinkRefusal,
  type LinkRequestInput,
  type MethodName,
  type ParamsOf,
  type RefusalCode,
  type ResultOf,
  type StreamEventOf,
} from "../../agent/link/contract.ts";
import type { NodeRegistry } from "./node-registry.ts";

/** What the console knows about one node right now. */
export interface NodeStatus {
  nodeId: string;
  hostname: string;
  online: boolean;
  revoked: boolean;
  /** Unix ms of the current connection (undefined while offline). */
  connectedAt?: number;
  /** Unix ms of the last sign of life: a message or a heartbeat. */
  lastSeen: number;
  agentVersion?: string;
  facts?: HostFactsWire;
  /** The last-known inventory: kept while the node is offline. */
  inventory?: InventorySnapshot;
  /** Unix ms when the agent read `inventory`. */
  inventoryAt?: number;
  /** The address the node's current (or last) link came from: where its published ports are reached. */
  remoteAddress?: string;
}

/** The hub's events, for the browser socket to relay. */
export interface HubEvents {
  "node.online": [status: NodeStatus];
  "node.offline": [info: { nodeId: string; reason: string; status: NodeStatus }];
  /** A new snapshot (`changes` undefined) or a delta (`changes` set, `inventory` already updated). */
  "node.inventory": [info: { nodeId: string; inventory: InventorySnapshot; changes?: InventoryChanges }];
  "node.event": [info: { nodeId: string; event: EngineEvent }];
  "node.enrolled": [info: { nodeId: string; hostname: string }];
  "node.revoked": [info: { nodeId: string; reason: string }];
}

/** A request that did not succeed: the agent's engine error, or the link's own (offline, no answer). */
export class LinkRequestError extends Error {
  override name = "LinkRequestError";
  constructor(
    readonly kind: LinkErrorKind,
    message: string,
    readonly nodeId: string,
    readonly method: string,
  ) {
    super(message);
  }
}

export interface RequestOptions<M extends MethodName> {
  /** How long to wait for the answer (default: the method's own limit). Sent to the agent as its limit too. */
  timeoutMs?: number;
  /** Idempotency key (a UUID). A request repeated with the same id runs once on the node. Default: a new one. */
  requestId?: string;
  /** Receives the request's stream events (pull/push progress, followed log lines) in order. */
  onStream?: (event: StreamEventOf<M>) => void;
  /** Aborting cancels the request on the node (abortable methods) and rejects with kind Canceled. */
  signal?: AbortSignal;
}

export interface AgentHubOptions {
  io: Server;
  registry: NodeRegistry;
  logger: Logger;
  /** Browser origins allowed on the agents namespace. Agents send no Origin; anything else sending one is refused. */
  allowedOrigins?: string[];
  /** Shortest time between two `saveInventory` calls per node (ms, default 5 s). */
  inventorySaveIntervalMs?: number;
  /** Shortest time between two `markSeen` calls per node while connected (ms, default 30 s). */
  seenIntervalMs?: number;
  /** How long the agent has to store its credential after enrollment (ms, default 30 s). */
  enrollAckTimeoutMs?: number;
}

interface SocketData {
  nodeId: string;
  hostname: string;
  agentVersion: string;
  /** Set after a join: the credential still to hand over. */
  enrollment?: Enrollment;
}

type AgentSocket = Socket<AgentToConsoleEvents, ConsoleToAgentEvents, Record<string, never>, SocketData>;

interface NodeState extends NodeStatus {
  socket?: AgentSocket;
  /** seq of the last inventory message applied on the current connection. */
  seq: number;
  resyncing: boolean;
  lastSave: number;
  saveTimer?: NodeJS.Timeout;
  lastMarkSeen: number;
}

interface Pending {
  id: string;
  nodeId: string;
  method: MethodName;
  params: unknown;
  deadline: number;
  timer: NodeJS.Timeout;
  listeners: Set<(event: unknown) => void>;
  lastSeq: number;
  promise: Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: LinkRequestError) => void;
}

function refusal(code: RefusalCode, message: string): ExtendedError {
  const err = new Error(message) as ExtendedError;
  err.data = { code, message } satisfies LinkRefusal;
  return err;
}

/**
 * The console's end of the agent link (see agent/link/contract.ts): authenticates agents
 * on the `/agents` namespace (join token or node credential, through the NodeRegistry),
 * keeps each node's status and last-known inventory, and sends requests to nodes.
 *
 * Requests survive a dropped connection: a request in flight when its node disconnects
 * is sent again, with the same id, when the node comes back (the agent answers a repeated
 * id from its first run, and one it was running when it died, restarting, with kind
 * Interrupted), until the request's time limit. A request to a node that is
 * offline when it is made fails at once with kind Unavailable.
 */
export class AgentHub extends EventEmitter<HubEvents> {
  private readonly nsp: Namespace<AgentToConsoleEvents, ConsoleToAgentEvents, Record<string, never>, SocketData>;
  private readonly registry: NodeRegistry;
  private readonly log: Logger;
  private readonly allowedOrigins: Set<string>;
  private readonly states = new Map<string, NodeState>();
  private readonly pending = new Map<string, Pending>();
  private readonly saveIntervalMs: number;
  private readonly seenIntervalMs: number;
  private readonly enrollAckTimeoutMs: number;
  private closed = false;

  constructor(opts: AgentHubOptions) {
    super();
    this.registry = opts.registry;
    this.log = opts.logger.child({ concern: "agent-hub" });
    this.allowedOrigins = new Set(opts.allowedOrigins ?? []);
    this.saveIntervalMs = opts.inventorySaveIntervalMs ?? 5_000;
    this.seenIntervalMs = opts.seenIntervalMs ?? 30_000;
    this.enrollAckTimeoutMs = opts.enrollAckTimeoutMs ?? 30_000;
    const limit = (opts.io.engine as { opts?: { maxHttpBufferSize?: number } } | undefined)?.opts?.maxHttpBufferSize;
    if (limit !== undefined && limit < LINK_MAX_MESSAGE_BYTES) {
      this.log.warn(
        { maxHttpBufferSize: limit, needed: LINK_MAX_MESSAGE_BYTES },
        "the socket.io server refuses messages the agent link may send (large inventories): set maxHttpBufferSize",
      );
    }
    this.nsp = opts.io.of(AGENTS_NAMESPACE) as unknown as typeof this.nsp;
    this.nsp.use((socket, next) => {
      this.authenticate(socket).then(
        () => next(),
        (e: unknown) => next(e as ExtendedError),
      );
    });
    this.nsp.on("connection", (socket) => this.onConnection(socket));
  }

  // --- API for the rest of the console -------------------------------------------------

  /** Every node seen since the hub started, online or not, with its last-known inventory. */
  nodes(): NodeStatus[] {
    return [...this.states.values()].map((s) => this.status(s));
  }

  /**
   * Makes nodes known from the console's database (at start): shown offline with their
   * last-known inventory until they connect. Nodes already connected are left as they are.
   */
  seed(
    known: ReadonlyArray<{
      nodeId: string;
      hostname: string;
      revoked: boolean;
      lastSeen?: number;
      agentVersion?: string;
      facts?: HostFactsWire;
      inventory?: InventorySnapshot;
      inventoryAt?: number;
    }>,
  ): void {
    for (const k of known) {
      if (this.states.get(k.nodeId)?.online) continue;
      const s = this.stateOf(k.nodeId, k.hostname);
      s.revoked = k.revoked;
      s.lastSeen = k.lastSeen ?? 0;
      if (k.agentVersion !== undefined) s.agentVersion = k.agentVersion;
      if (k.facts) s.facts = k.facts;
      if (k.inventory) {
        s.inventory = k.inventory;
        s.inventoryAt = k.inventoryAt ?? k.inventory.takenAt;
      }
    }
  }

  /** Forgets a node (deleted by an administrator after revocation). */
  forget(nodeId: string): void {
    const s = this.states.get(nodeId);
    if (s?.socket) s.socket.disconnect(true);
    this.states.delete(nodeId);
  }

  node(nodeId: string): NodeStatus | undefined {
    const s = this.states.get(nodeId);
    return s ? this.status(s) : undefined;
  }

  /**
   * Sends a request to a node and waits for its answer.
   * @throws LinkRequestError: the engine's error kind and message; InvalidArgument for
   *         params the contract refuses; Unavailable when the node is offline, revoked, or
   *         does not answer within `timeoutMs`; Canceled when `signal` aborts
   */
  request<M extends MethodName>(nodeId: string, method: M, params: ParamsOf<M>, opts: RequestOptions<M> = {}): Promise<ResultOf<M>> {
    const id = opts.requestId ?? randomUUID();
    const fail = (kind: LinkErrorKind, message: string) => Promise.reject(new LinkRequestError(kind, message, nodeId, method));
    if (!isRequestId(id)) return fail("InvalidArgument", `request id ${id} is not a UUID`);
    const known = this.pending.get(id);
    if (known) {
      if (known.nodeId !== nodeId || known.method !== method)
        return fail("InvalidArgument", `request id ${id} is already in use for ${known.method} on node ${known.nodeId}`);
      if (opts.onStream) known.listeners.add(opts.onStream as (e: unknown) => void);
      return known.promise as Promise<ResultOf<M>>;
    }
    if (this.closed) return fail("Unavailable", "the agent hub is closed");
    const p = parseParams(method, params);
    if (!p.ok) return fail("InvalidArgument", p.message);
    const state = this.states.get(nodeId);
    if (!state) return fail("NotFound", `node ${nodeId} has not connected since the console started`);
    if (state.revoked) return fail("Unavailable", `node ${state.hostname} (${nodeId}) is revoked`);
    if (!state.socket) return fail("Unavailable", `node ${state.hostname} (${nodeId}) is offline (last seen ${new Date(state.lastSeen).toISOString()})`);
    if (opts.signal?.aborted) return fail("Canceled", `${method} on ${state.hostname} was canceled before it was sent`);

    const timeoutMs = opts.timeoutMs ?? METHODS[method].defaultTimeoutMs;
    let resolve!: (v: unknown) => void;
    let reject!: (e: LinkRequestError) => void;
    const promise = new Promise<unknown>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const pending: Pending = {
      id,
      nodeId,
      method,
      params: p.value,
      deadline: Date.now() + timeoutMs,
      listeners: new Set(opts.onStream ? [opts.onStream as (e: unknown) => void] : []),
      lastSeq: -1,
      promise,
      resolve,
      reject,
      timer: setTimeout(() => {
        this.settle(
          id,
          new LinkRequestError(
            "Unavailable",
            `node ${state.hostname} (${nodeId}) did not answer ${method} within ${timeoutMs < 1_000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1_000)} s`}`,
            nodeId,
            method,
          ),
        );
        if (METHODS[method].abortable) this.states.get(nodeId)?.socket?.emit(LINK_EVENTS.cancel, { requestId: id });
      }, timeoutMs),
    };
    pending.timer.unref();
    this.pending.set(id, pending);
    opts.signal?.addEventListener(
      "abort",
      () => {
        if (!this.pending.has(id)) return;
        this.states.get(nodeId)?.socket?.emit(LINK_EVENTS.cancel, { requestId: id });
        this.settle(id, new LinkRequestError("Canceled", `${method} on ${state.hostname} was canceled`, nodeId, method));
      },
      { once: true },
    );
    this.send(pending, state.socket);
    return promise as Promise<ResultOf<M>>;
  }

  /** Asks the node to abort a running request (abortable methods only); the request then fails with kind Canceled. */
  cancel(nodeId: string, requestId: string): void {
    this.states.get(nodeId)?.socket?.emit(LINK_EVENTS.cancel, { requestId });
  }

  /** Sends keystrokes, a window size or end of input to a running `container.exec` request. */
  sendInput(nodeId: string, input: ExecInput): boolean {
    const socket = this.states.get(nodeId)?.socket;
    if (!socket || !this.pending.has(input.requestId)) return false;
    socket.emit(LINK_EVENTS.input, input);
    return true;
  }

  /** Revokes a node for good: recorded in the registry, its connection closed at once, its requests failed. */
  async revoke(nodeId: string, reason = "revoked by an administrator"): Promise<void> {
    await this.registry.revokeNode(nodeId);
    const state = this.states.get(nodeId);
    this.log.warn({ nodeId, reason }, "node revoked");
    if (state) {
      state.revoked = true;
      const socket = state.socket;
      if (socket) {
        this.goOffline(state, socket, "revoked");
        socket.emit(LINK_EVENTS.revoked, { reason });
        socket.disconnect(true);
      }
    }
    for (const p of [...this.pending.values()])
      if (p.nodeId === nodeId) this.settle(p.id, new LinkRequestError("Unavailable", `node ${nodeId} was revoked`, nodeId, p.method));
    this.emit("node.revoked", { nodeId, reason });
  }

  /** Fails pending requests, saves inventories, and stops timers. Does not close the socket.io server (its owner does). */
  async close(): Promise<void> {
    this.closed = true;
    for (const p of [...this.pending.values()]) this.settle(p.id, new LinkRequestError("Unavailable", "the console is shutting down", p.nodeId, p.method));
    const saves: Array<Promise<void>> = [];
    for (const s of this.states.values()) {
      clearTimeout(s.saveTimer);
      s.saveTimer = undefined;
      if (s.inventory)
        saves.push(
          this.registry.saveInventory(s.nodeId, s.inventory).catch((e: unknown) => this.log.error({ nodeId: s.nodeId, err: e }, "cannot save inventory")),
        );
    }
    await Promise.all(saves);
    this.nsp.removeAllListeners("connection");
  }

  // --- authentication ---------------------------------------------------------------

  private async authenticate(socket: AgentSocket): Promise<void> {
    if (this.closed) throw refusal("unavailable", "the console is shutting down");
    const origin = socket.handshake.headers.origin;
    if (origin !== undefined && !this.allowedOrigins.has(origin)) throw refusal("origin", `origin ${origin} may not connect to the agents namespace`);
    const h = parseHandshake(socket.handshake.auth);
    if (!h.ok) throw refusal("bad_request", h.message);
    const auth = h.value;
    if (auth.protocol !== LINK_PROTOCOL_VERSION)
      throw refusal(
        "protocol",
        `the agent speaks link protocol ${auth.protocol}, this console speaks ${LINK_PROTOCOL_VERSION}: upgrade the ${auth.protocol < LINK_PROTOCOL_VERSION ? "agent" : "console"}`,
      );
    const address = socket.handshake.address;
    try {
      if (auth.kind === "join") {
        const consumed = await this.registry.consumeJoinToken(auth.token);
        if (!consumed.ok) {
          this.log.warn({ address, hostname: auth.hostname, reason: consumed.reason }, "enrollment refused");
          throw refusal("join_refused", consumed.reason);
        }
        let created: { nodeId: string; credential: string };
        try {
          created = await this.registry.createNode(auth.hostname, auth.facts, {
            agentVersion: auth.agentVersion,
            ...(consumed.joinTokenId ? { joinTokenId: consumed.joinTokenId } : {}),
          });
        } catch (e) {
          // The agent is told "unavailable" and retries: its token must still work then.
          await this.registry.releaseJoinToken(auth.token).catch((err: unknown) => this.log.error({ err }, "cannot give back a join token"));
          throw e;
        }
        const { nodeId, credential } = created;
        socket.data = { nodeId, hostname: auth.hostname, agentVersion: auth.agentVersion, enrollment: { nodeId, credential } };
        this.log.info({ nodeId, hostname: auth.hostname, address }, "node enrolled");
        this.emit("node.enrolled", { nodeId, hostname: auth.hostname });
        const state = this.stateOf(nodeId, auth.hostname);
        state.facts = auth.facts;
        return;
      }
      if (!(await this.registry.verifyNode(auth.nodeId, auth.credential))) {
        this.log.warn({ address, nodeId: auth.nodeId }, "node refused: unknown node or wrong credential");
        throw refusal("unauthorized", "unknown node or wrong credential");
      }
      if (await this.registry.isRevoked(auth.nodeId)) {
        this.log.warn({ address, nodeId: auth.nodeId }, "revoked node refused");
        throw refusal("revoked", "this node was revoked");
      }
      const known = this.states.get(auth.nodeId);
      socket.data = { nodeId: auth.nodeId, hostname: known?.hostname ?? auth.nodeId, agentVersion: auth.agentVersion };
    } catch (e) {
      if ((e as ExtendedError).data) throw e;
      this.log.error({ address, err: e }, "node registry failed during the handshake");
      throw refusal("unavailable", "the console cannot check nodes right now; retry later");
    }
  }

  // --- connections --------------------------------------------------------------------

  private stateOf(nodeId: string, hostname: string): NodeState {
    let s = this.states.get(nodeId);
    if (!s) {
      s = { nodeId, hostname, online: false, revoked: false, lastSeen: Date.now(), seq: -1, resyncing: false, lastSave: 0, lastMarkSeen: 0 };
      this.states.set(nodeId, s);
    }
    return s;
  }

  private onConnection(socket: AgentSocket): void {
    const { nodeId, hostname, agentVersion, enrollment } = socket.data;
    const state = this.stateOf(nodeId, hostname);
    const previous = state.socket;
    const now = Date.now();
    Object.assign(state, {
      socket,
      online: true,
      revoked: false,
      connectedAt: now,
      lastSeen: now,
      agentVersion,
      seq: -1,
      resyncing: false,
      remoteAddress: socket.handshake.address.replace(/^::ffff:/, ""),
    });
    if (previous && previous !== socket) {
      this.log.warn({ nodeId }, "node connected again while its previous connection was open: closing the previous one");
      previous.disconnect(true);
    }
    this.log.info({ nodeId, hostname: state.hostname, address: socket.handshake.address }, "node online");
    this.markSeen(state, true);

    socket.on("disconnect", (reason) => this.goOffline(state, socket, reason));
    socket.conn.on("heartbeat", () => this.touch(state, socket));
    socket.on(LINK_EVENTS.event, (raw) => this.onAgentEvent(state, socket, raw));
    socket.on(LINK_EVENTS.stream, (raw) => this.onStream(state, socket, raw));

    if (enrollment) {
      socket.timeout(this.enrollAckTimeoutMs).emit(LINK_EVENTS.enrolled, enrollment, (err: Error | null, reply?: { ok: boolean; message?: string }) => {
        if (err || !reply?.ok)
          this.log.error(
            { nodeId, ...(err ? { err } : { reply: reply?.message }) },
            "the agent did not confirm storing its credential; it may need a new join token after a restart",
          );
        else this.log.info({ nodeId }, "the agent stored its credential");
      });
      socket.data.enrollment = undefined;
    }
    this.emit("node.online", this.status(state));
    // Requests in flight when the node went away: the same ids again (the agent runs each once).
    for (const p of this.pending.values()) if (p.nodeId === nodeId) this.send(p, socket);
  }

  private goOffline(state: NodeState, socket: AgentSocket, reason: string): void {
    if (state.socket !== socket) return; // an older connection of a node that is already back
    state.socket = undefined;
    state.online = false;
    state.connectedAt = undefined;
    state.lastSeen = Date.now();
    this.log.info({ nodeId: state.nodeId, reason }, "node offline");
    this.markSeen(state, true);
    this.saveInventory(state, true);
    this.emit("node.offline", { nodeId: state.nodeId, reason, status: this.status(state) });
  }

  private touch(state: NodeState, socket: AgentSocket): void {
    if (state.socket !== socket) return;
    state.lastSeen = Date.now();
    this.markSeen(state, false);
  }

  private markSeen(state: NodeState, force: boolean): void {
    const now = Date.now();
    if (!force && now - state.lastMarkSeen < this.seenIntervalMs) return;
    state.lastMarkSeen = now;
    this.registry
      .markSeen(state.nodeId, new Date(state.lastSeen))
      .catch((e: unknown) => this.log.error({ nodeId: state.nodeId, err: e }, "cannot record last seen"));
  }

  private saveInventory(state: NodeState, now: boolean): void {
    if (!state.inventory) return;
    const run = () => {
      state.saveTimer = undefined;
      state.lastSave = Date.now();
      const inv = state.inventory;
      if (inv) this.registry.saveInventory(state.nodeId, inv).catch((e: unknown) => this.log.error({ nodeId: state.nodeId, err: e }, "cannot save inventory"));
    };
    if (now) {
      clearTimeout(state.saveTimer);
      run();
      return;
    }
    if (state.saveTimer) return;
    const wait = Math.max(0, state.lastSave + this.saveIntervalMs - Date.now());
    state.saveTimer = setTimeout(run, wait);
    state.saveTimer.unref();
  }

  private status(s: NodeState): NodeStatus {
    const out: NodeStatus = { nodeId: s.nodeId, hostname: s.hostname, online: s.online, revoked: s.revoked, lastSeen: s.lastSeen };
    if (s.connectedAt !== undefined) out.connectedAt = s.connectedAt;
    if (s.agentVersion !== undefined) out.agentVersion = s.agentVersion;
    if (s.facts) out.facts = s.facts;
    if (s.inventory) out.inventory = s.inventory;
    if (s.inventoryAt !== undefined) out.inventoryAt = s.inventoryAt;
    if (s.remoteAddress) out.remoteAddress = s.remoteAddress;
    return out;
  }

  // --- messages from agents -----------------------------------------------------------

  private onAgentEvent(state: NodeState, socket: AgentSocket, raw: unknown): void {
    if (state.socket !== socket) return;
    this.touch(state, socket);
    const parsed = parseEvent(raw);
    if (!parsed.ok) {
      this.log.warn({ nodeId: state.nodeId, err: parsed.message }, "malformed event from agent ignored");
      return;
    }
    const ev = parsed.value;
    switch (ev.type) {
      case "inventory.snapshot": {
        const snap = ev.snapshot;
        state.inventory = snap;
        state.inventoryAt = snap.takenAt;
        state.seq = ev.seq;
        state.resyncing = false;
        state.facts = snap.facts;
        state.hostname = snap.facts.hostname;
        state.agentVersion = snap.agentVersion;
        this.saveInventory(state, false);
        this.emit("node.inventory", { nodeId: state.nodeId, inventory: snap });
        return;
      }
      case "inventory.changed": {
        if (!state.inventory || ev.seq !== state.seq + 1) {
          this.resync(state, `inventory message ${ev.seq} does not follow ${state.seq}`);
          return;
        }
        state.inventory = applyInventoryChanges(state.inventory, ev.changes, ev.takenAt);
        state.inventoryAt = ev.takenAt;
        state.seq = ev.seq;
        this.saveInventory(state, false);
        this.emit("node.inventory", { nodeId: state.nodeId, inventory: state.inventory, changes: ev.changes });
        return;
      }
      case "engine.events":
        for (const event of ev.events) this.emit("node.event", { nodeId: state.nodeId, event });
        return;
    }
  }

  /** Asks for a full snapshot after a gap; it arrives as an `inventory.snapshot` event. */
  private resync(state: NodeState, why: string): void {
    if (state.resyncing) return;
    state.resyncing = true;
    this.log.warn({ nodeId: state.nodeId, why }, "inventory out of step; asking for a snapshot");
    this.request(state.nodeId, "inventory.snapshot", {}, { timeoutMs: 60_000 }).catch((e: unknown) => {
      state.resyncing = false;
      this.log.warn({ nodeId: state.nodeId, err: e }, "inventory resync failed");
    });
  }

  private onStream(state: NodeState, socket: AgentSocket, raw: unknown): void {
    if (state.socket !== socket) return;
    const m = parseStreamMessage(raw);
    if (!m.ok) return;
    const p = this.pending.get(m.value.requestId);
    if (!p || p.nodeId !== state.nodeId || m.value.seq <= p.lastSeq) return;
    const ev = parseStreamEvent(p.method, m.value.event);
    if (!ev.ok) {
      this.log.warn({ nodeId: state.nodeId, requestId: p.id, err: ev.message }, "malformed stream event ignored");
      return;
    }
    p.lastSeq = m.value.seq;
    for (const l of p.listeners) {
      try {
        l(ev.value);
      } catch (e) {
        this.log.error({ requestId: p.id, err: e }, "stream listener failed");
      }
    }
  }

  private send(p: Pending, socket: AgentSocket): void {
    const remaining = Math.max(1, p.deadline - Date.now());
    const wire: LinkRequestInput = { id: p.id, method: p.method, params: p.params as ParamsOf<MethodName>, timeoutMs: remaining };
    socket.emit(LINK_EVENTS.request, wire, (raw: unknown) => {
      // socket.io hands events to listeners on the next tick but acknowledgements at once:
      // let the stream messages that arrived before this answer reach their listeners first.
      setImmediate(() => this.onAck(p, raw));
    });
  }

  private onAck(p: Pending, raw: unknown): void {
    const a = parseAck(raw);
    if (!a.ok || a.value.id !== p.id) {
      this.settle(
        p.id,
        new LinkRequestError(
          "Internal",
          `node ${p.nodeId} sent a malformed answer to ${p.method}: ${a.ok ? "wrong request id" : a.message}`,
          p.nodeId,
          p.method,
        ),
      );
      return;
    }
    if (!a.value.ok) {
      this.settle(p.id, new LinkRequestError(a.value.error.kind, a.value.error.message, p.nodeId, p.method));
      return;
    }
    const r = parseResult(p.method, a.value.result);
    if (!r.ok)
      this.settle(p.id, new LinkRequestError("Internal", `node ${p.nodeId} sent a malformed result for ${p.method}: ${r.message}`, p.nodeId, p.method));
    else this.settle(p.id, undefined, r.value);
  }

  private settle(id: string, error: LinkRequestError | undefined, value?: unknown): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (error) p.reject(error);
    else p.resolve(value);
  }
}
