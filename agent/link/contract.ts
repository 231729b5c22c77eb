/**
 * The wire contract of the agent link: the one definition both ends import (the agent
 * in `agent/link/`, the console in `server/hub/`). Nothing here does I/O, and it imports
 * nothing of the engine: only zod and the leaf modules in `shared/`.
 *
 * Shape of a link, in call order:
 *
 *  1. The agent dials the console's socket.io namespace `/agents` (websocket transport)
 *     with a handshake `auth` payload: a one-time join token on first contact, the node
 *     credential afterwards. The console refuses a bad handshake with a `connect_error`
 *     whose `data` is a `LinkRefusal` (`code` says whether retrying can help).
 *  2. After a join the console sends `enrolled` `{ nodeId, credential }`; the agent stores
 *     the credential durably and only then acknowledges. The credential is sent once.
 *  3. On every (re)connect the agent sends an `inventory.snapshot` event, then
 *     `inventory.changed` deltas (coalesced, at most ~10 per second) and `engine.events`.
 *     `seq` numbers the inventory messages of one connection: 0 for the first snapshot,
 *     +1 for each later message, so the console can tell a gap and ask for a snapshot.
 *  4. The console sends `request` `{ id, method, params }` with a socket.io
 *     acknowledgement that carries an `Ack`. `id` is an idempotency key: the agent runs a
 *     request id once; a repeat within the retention window gets the recorded answer, or
 *     waits for the running one. The agent journals requests on disk, so this outlives
 *     it: a request it was running when it died is answered after its restart with kind
 *     `Interrupted`, never run again. Long requests report `stream` messages
 *     `{ requestId, seq, event }` before their acknowledgement. `cancel` `{ requestId }`
 *     asks the agent to abort a running request (abortable methods only).
 *  5. `revoked` from the console: the agent deletes its credential and stops dialling.
 *
 * Every payload that crosses the wire is validated with the schemas below by the
 * receiving end (`parse*` functions); TypeScript types alone are never trusted.
 */
import { z } from "zod";
import { CreateOptionsSchema } from "../../shared/container-options.ts";
import { containerStatusText as statusText } from "../../shared/container-status-text.ts";
import { ENGINE_ERROR_KINDS } from "../../shared/errors.ts";

/** Bumped on any incompatible change of this file. Both ends refuse a different version. */
export const LINK_PROTOCOL_VERSION = 1;

/**
 * The largest message either end sends (a big inventory snapshot). The console's socket.io
 * server must accept it: `new Server(http, { maxHttpBufferSize: LINK_MAX_MESSAGE_BYTES })`
 * (socket.io's default of 1 MB closes the connection of a node with a large inventory).
 */
export const LINK_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** The socket.io namespace agents connect to. */
export const AGENTS_NAMESPACE = "/agents";

/** The socket.io event names of the link. */
export const LINK_EVENTS = {
  /** console → agent, with an acknowledgement carrying `{ ok: true }` once the credential is stored. */
  enrolled: "enrolled",
  /** console → agent, with an acknowledgement carrying an `Ack`. */
  request: "request",
  /** console → agent. */
  cancel: "cancel",
  /** console → agent: keystrokes, window size and end of input for a running `container.exec`. */
  input: "input",
  /** console → agent, just before the console disconnects the node for good. */
  revoked: "revoked",
  /** agent → console: inventory and engine events. */
  event: "event",
  /** agent → console: progress of a running request. */
  stream: "stream",
} as const;

// --- shared pieces ------------------------------------------------------------------

/**
 * The kinds of a failed request's answer: the engine's error kinds, and the link's own
 * `Interrupted`: the agent stopped (crashed, was killed) while it ran the request; the
 * agent answers a repeat of its id with it after its restart and does not run it again,
 * since running it may be what brought the agent down. What the request had done on the
 * node by then is unknown: look at the node before trying again.
 */
export const LINK_ERROR_KINDS = [...ENGINE_ERROR_KINDS, "Interrupted"] as const;
export type LinkErrorKind = (typeof LINK_ERROR_KINDS)[number];
export const LinkErrorKindSchema = z.enum(LINK_ERROR_KINDS);
/** The message of an `Interrupted` answer (the console shows it as the step's error). */
export const AGENT_RESTARTED_MESSAGE = "the agent restarted while running this";

/** The engine's HostFacts (`agent/engine/system/host-facts.ts`): what `docker info` shows about the machine. */
export const HostFactsSchema = z.object({
  hostname: z.string().min(1).max(253),
  kernelVersion: z.string().max(256),
  operatingSystem: z.string().max(256),
  osVersion: z.string().max(64),
  architecture: z.string().max(32),
  goArch: z.string().max(32),
  ncpu: z.number().int().nonnegative(),
  memTotal: z.number().nonnegative(),
  cgroupVersion: z.enum(["1", "2"]),
  /**
   * The node's own addresses (not loopback, link-local or the engine's bridges), so two
   * nodes with one hostname can be told apart. Optional: agents before it send none.
   */
  addresses: z.array(z.string().max(64)).max(64).optional(),
});
export type HostFactsWire = z.infer<typeof HostFactsSchema>;

const RequestIdSchema = z.uuid();
/** Request ids are UUIDs (the console makes them with `crypto.randomUUID()`). */
export const isRequestId = (v: string): boolean => RequestIdSchema.safeParse(v).success;
const ReferenceSchema = z.string().min(1).max(1024);
/** A container ID, unique ID prefix, or name. */
const ContainerRefSchema = z.string().min(1).max(256);
const CredentialSchema = z.string().min(16).max(512);

/** Registry credentials for one pull or push (engine `Credentials`). Secret: never logged, never recorded. */
export const RegistryCredentialsSchema = z.object({
  username: z.string().max(1024).optional(),
  password: z.string().max(8192).optional(),
  identitytoken: z.string().max(8192).optional(),
  registrytoken: z.string().max(8192).optional(),
});

// --- handshake ----------------------------------------------------------------------

/** The socket.io `auth` payload of an agent. */
export const HandshakeSchema = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("join"),
    protocol: z.number().int(),
    agentVersion: z.string().max(64),
    token: z.string().min(8).max(512),
    hostname: z.string().min(1).max(253),
    facts: HostFactsSchema,
  }),
  z.object({
    kind: z.literal("node"),
    protocol: z.number().int(),
    agentVersion: z.string().max(64),
    nodeId: z.string().min(1).max(128),
    credential: CredentialSchema,
  }),
]);
export type Handshake = z.infer<typeof HandshakeSchema>;

/** What the console sends once after a successful join. */
export const EnrollmentSchema = z.object({ nodeId: z.string().min(1).max(128), credential: CredentialSchema });
export type Enrollment = z.infer<typeof EnrollmentSchema>;

/**
 * Why the console refused a handshake (`connect_error` → `err.data`).
 * - `bad_request`: the auth payload is malformed; `protocol`: another protocol version;
 * - `join_refused`: the join token is unknown, used or expired (ask an admin for a new one);
 * - `unauthorized`: unknown node or wrong credential; `revoked`: the node was revoked;
 * - `origin`: a browser origin that may not connect here; `unavailable`: the console
 *   could not check (database down): retrying later can help.
 */
export const RefusalCodeSchema = z.enum(["bad_request", "protocol", "join_refused", "unauthorized", "revoked", "origin", "unavailable"]);
export type RefusalCode = z.infer<typeof RefusalCodeSchema>;
export const LinkRefusalSchema = z.object({ code: RefusalCodeSchema, message: z.string() });
export type LinkRefusal = z.infer<typeof LinkRefusalSchema>;

/** Refusals after which dialling again can succeed without anyone changing anything. */
export function isRetryableRefusal(code: RefusalCode): boolean {
  return code === "unavailable" || code === "protocol";
}

export const RevokedSchema = z.object({ reason: z.string().max(1024) });

// --- inventory ----------------------------------------------------------------------

export const InventoryImageSchema = z.object({
  /** "sha256:…" config digest. */
  id: z.string(),
  repoTags: z.array(z.string()),
  repoDigests: z.array(z.string()),
  size: z.number().nonnegative(),
  /** Unix seconds. */
  created: z.number(),
  labels: z.record(z.string(), z.string()),
  /** How many containers use it. */
  containers: z.number().int().nonnegative(),
});
export type InventoryImage = z.infer<typeof InventoryImageSchema>;

export const PortSchema = z.object({
  containerPort: z.number().int(),
  protocol: z.enum(["tcp", "udp"]),
  hostIp: z.string(),
  hostPort: z.number().int(),
});

export const ContainerStateSchema = z.enum(["created", "running", "paused", "restarting", "removing", "exited", "dead"]);
export type ContainerState = z.infer<typeof ContainerStateSchema>;

export const InventoryContainerSchema = z.object({
  id: z.string(),
  name: z.string(),
  /** The image name the container was created from. */
  image: z.string(),
  imageId: z.string(),
  command: z.string(),
  state: ContainerStateSchema,
  /**
   * Docker's STATUS text ("Up 3 minutes") as it was when sent. A change of the text
   * alone is not an inventory change; render a live clock with `containerStatusText`.
   */
  status: z.string(),
  exitCode: z.number().int(),
  /** RFC 3339; "0001-01-01T00:00:00Z" when never. */
  startedAt: z.string(),
  finishedAt: z.string(),
  restartCount: z.number().int(),
  /** Published ports, host ports resolved while running. */
  ports: z.array(PortSchema),
  /** Unix seconds. */
  created: z.number(),
  labels: z.record(z.string(), z.string()),
});
export type InventoryContainer = z.infer<typeof InventoryContainerSchema>;

export const InventoryVolumeSchema = z.object({
  name: z.string(),
  driver: z.string(),
  mountpoint: z.string(),
  createdAt: z.string(),
  labels: z.record(z.string(), z.string()),
  anonymous: z.boolean(),
});
export type InventoryVolume = z.infer<typeof InventoryVolumeSchema>;

export const InventoryNetworkSchema = z.object({
  id: z.string(),
  name: z.string(),
  driver: z.string(),
  subnet: z.string().optional(),
  gateway: z.string().optional(),
  internal: z.boolean(),
  labels: z.record(z.string(), z.string()),
  created: z.string(),
  /** IDs of the containers attached. */
  containers: z.array(z.string()),
});
export type InventoryNetwork = z.infer<typeof InventoryNetworkSchema>;

export const InventorySnapshotSchema = z.object({
  protocol: z.number().int(),
  agentVersion: z.string(),
  /** The engine's stable ID (Docker's `info.ID`). */
  engineId: z.string(),
  facts: HostFactsSchema,
  images: z.array(InventoryImageSchema),
  containers: z.array(InventoryContainerSchema),
  volumes: z.array(InventoryVolumeSchema),
  networks: z.array(InventoryNetworkSchema),
  /** Unix milliseconds when the agent read it. */
  takenAt: z.number(),
  /** The filesystem of the data root, bytes (read at each full snapshot). */
  disk: z.object({ total: z.number().nonnegative(), free: z.number().nonnegative() }).optional(),
});
export type InventorySnapshot = z.infer<typeof InventorySnapshotSchema>;

function collectionDelta<T extends z.ZodType>(item: T) {
  return z.object({ upsert: z.array(item).default([]), remove: z.array(z.string()).default([]) });
}

/**
 * A delta against the previous inventory message of the connection: items added or
 * changed (whole items, keyed by `id`, volumes by `name`) and keys removed.
 */
export const InventoryChangesSchema = z.object({
  images: collectionDelta(InventoryImageSchema).optional(),
  containers: collectionDelta(InventoryContainerSchema).optional(),
  volumes: collectionDelta(InventoryVolumeSchema).optional(),
  networks: collectionDelta(InventoryNetworkSchema).optional(),
});
export type InventoryChanges = z.infer<typeof InventoryChangesSchema>;

/** An engine event as `docker events` shows it (container events, image events of link requests). */
export const EngineEventSchema = z.object({
  type: z.string().max(32),
  action: z.string().max(64),
  id: z.string().max(1024),
  attributes: z.record(z.string(), z.string()),
  /** Unix milliseconds. */
  time: z.number(),
});
export type EngineEvent = z.infer<typeof EngineEventSchema>;

/** Agent → console, socket.io event `event`. */
export const AgentEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("inventory.snapshot"), seq: z.number().int().nonnegative(), snapshot: InventorySnapshotSchema }),
  z.object({ type: z.literal("inventory.changed"), seq: z.number().int().positive(), takenAt: z.number(), changes: InventoryChangesSchema }),
  z.object({ type: z.literal("engine.events"), events: z.array(EngineEventSchema).max(1000) }),
]);
export type AgentEvent = z.infer<typeof AgentEventSchema>;

// --- requests -----------------------------------------------------------------------

/** The engine's ProgressEvent (`agent/engine/images/progress.ts`). */
export const ProgressEventSchema = z.object({
  id: z.string().optional(),
  status: z.string(),
  current: z.number().optional(),
  total: z.number().optional(),
});
export type ProgressEventWire = z.infer<typeof ProgressEventSchema>;

export const LogLineSchema = z.object({
  stream: z.enum(["stdout", "stderr"]),
  /** RFC 3339 with nanoseconds. */
  time: z.string(),
  /** The line as UTF-8 text, with its "\n" when it had one. */
  text: z.string(),
});
export type LogLine = z.infer<typeof LogLineSchema>;

const NoParams = z.object({}).strict();
const NoResult = z.object({}).strict();
const Changed = z.object({ changed: z.boolean() });
const PushedTagSchema = z.object({ tag: z.string(), digest: z.string(), size: z.number() });
const HistoryItemSchema = z.object({
  id: z.string(),
  created: z.number(),
  createdBy: z.string(),
  tags: z.array(z.string()),
  size: z.number(),
  comment: z.string(),
});

/** The largest build context the console sends (an uploaded archive, as it was uploaded). */
export const MAX_BUILD_CONTEXT_BYTES = 64 * 1024 * 1024;
/** A build context travels in pieces of at most this many bytes (base64 of it is 4/3 larger), each a `build.upload` request. */
export const BUILD_UPLOAD_CHUNK_BYTES = 4 * 1024 * 1024;
/** The largest Dockerfile the console's editor sends. */
export const MAX_DOCKERFILE_TEXT = 256 * 1024;

/** What an `image.build` streams: the builder's text (`Step 1/3 : FROM …`, RUN output), or a base image's pull progress. */
export const BuildStreamEventSchema = z.union([z.object({ text: z.string() }).strict(), ProgressEventSchema]);
export type BuildStreamEvent = z.infer<typeof BuildStreamEventSchema>;

export const MAX_LOG_LINES = 10_000;
/** `container.logs` answers at most this much text; older lines go first (`truncated`). */
export const MAX_LOG_BYTES = 1024 * 1024;

export const SystemInfoSchema = z.object({
  engineId: z.string(),
  agentVersion: z.string(),
  engineVersion: z.string(),
  apiVersion: z.string(),
  facts: HostFactsSchema,
  dataRoot: z.string(),
  driver: z.string(),
  images: z.number().int(),
  containers: z.number().int(),
  containersRunning: z.number().int(),
  containersPaused: z.number().int(),
  containersStopped: z.number().int(),
  registryMirrors: z.array(z.string()),
  insecureRegistries: z.array(z.string()),
  systemTime: z.string(),
  /** The OCI runtime containers run with (`docker info` Default Runtime); optional: older agents leave it out. */
  defaultRuntime: z.string().optional(),
  /**
   * What starts the agent again when it exits ("systemd", "supervisor"), or null when nothing
   * would: then `agent.restart` is refused. Absent: an older agent, which has no `agent.restart`.
   */
  supervisor: z.string().max(32).nullable().optional(),
});
export type SystemInfo = z.infer<typeof SystemInfoSchema>;

/** `docker system df`, summed: what images, containers and volumes take on the data root. */
export const SystemDfSchema = z.object({
  images: z.object({ count: z.number().int(), active: z.number().int(), size: z.number() }),
  containers: z.object({ count: z.number().int(), running: z.number().int(), size: z.number() }),
  volumes: z.object({ count: z.number().int(), inUse: z.number().int(), size: z.number() }),
});
export type SystemDf = z.infer<typeof SystemDfSchema>;

const VolumeNameSchema = z.string().min(1).max(256);
const NetworkRefSchema = z.string().min(1).max(256);
const LabelsSchema = z.record(z.string().max(256), z.string().max(4096));
const PruneResult = z.object({ deleted: z.array(z.string()), spaceReclaimed: z.number() });
/** One reading of a container's usage, as `docker stats` computes it. */
export const StatsSampleSchema = z.object({
  /** Unix milliseconds of the reading. */
  time: z.number(),
  /** CPU use since the previous reading, percent of one CPU (Docker's formula: can exceed 100 with several CPUs); null for the first reading. */
  cpuPercent: z.number().nonnegative().nullable(),
  onlineCpus: z.number().int().nonnegative(),
  /** Bytes in use without the page cache (what `docker stats` shows as MEM USAGE). */
  memoryUsage: z.number().nonnegative(),
  memoryLimit: z.number().nonnegative(),
  /** Cumulative bytes since the container started (all interfaces, all devices). */
  netRx: z.number().nonnegative(),
  netTx: z.number().nonnegative(),
  blockRead: z.number().nonnegative(),
  blockWrite: z.number().nonnegative(),
  pids: z.number().int().nonnegative(),
});
export type StatsSample = z.infer<typeof StatsSampleSchema>;

/** A container as the engine keeps it: what it was created with, what it got at start, and its state. */
export const ContainerInspectSchema = z.object({
  id: z.string(),
  name: z.string(),
  created: z.string(),
  imageId: z.string(),
  imageName: z.string(),
  /** The process it runs (entrypoint and command resolved with the image's). */
  path: z.string(),
  args: z.array(z.string()),
  state: z.object({
    status: ContainerStateSchema,
    pid: z.number().int(),
    exitCode: z.number().int(),
    error: z.string(),
    oomKilled: z.boolean(),
    startedAt: z.string(),
    finishedAt: z.string(),
    restartCount: z.number().int(),
  }),
  /** The create options as given (the Run form's fields come from here). */
  options: CreateOptionsSchema,
  /** In effect: the image's settings with the container's own over them. */
  config: z.object({
    env: z.array(z.string()),
    labels: z.record(z.string(), z.string()),
    user: z.string(),
    workingDir: z.string(),
    entrypoint: z.array(z.string()).nullable(),
    cmd: z.array(z.string()).nullable(),
  }),
  mounts: z.array(z.object({ type: z.enum(["volume", "bind"]), source: z.string(), destination: z.string(), readonly: z.boolean(), anonymous: z.boolean() })),
  networks: z.array(
    z.object({
      name: z.string(),
      networkId: z.string(),
      ipAddress: z.string(),
      prefixLen: z.number(),
      gateway: z.string(),
      macAddress: z.string(),
      aliases: z.array(z.string()),
    }),
  ),
  ports: z.array(PortSchema),
  /** Present only when a health check runs for the container. */
  health: z
    .object({
      status: z.string(),
      failingStreak: z.number().int(),
      log: z.array(z.object({ start: z.string(), end: z.string(), exitCode: z.number().int(), output: z.string() })),
    })
    .optional(),
});
export type ContainerInspect = z.infer<typeof ContainerInspectSchema>;

interface MethodSpec {
  params: z.ZodType;
  result: z.ZodType;
  /** What `stream` messages of this method carry (z.never(): none). */
  stream: z.ZodType;
  /** Changes the node: the agent records its outcome for idempotent retries. */
  mutating: boolean;
  /** Honours `cancel` and its timeout by aborting the engine call. */
  abortable: boolean;
  /** The agent's time limit when the request names none. */
  defaultTimeoutMs: number;
  /**
   * The agent aborts it when the link drops (a build whose output nobody can see any more
   * should not go on holding the node); a repeat after the reconnect hears Canceled.
   */
  endsWithLink?: boolean;
}

const MINUTE = 60_000;

/** Every method of the link: its params, result, stream events and limits. */
export const METHODS = {
  "inventory.snapshot": { params: NoParams, result: InventorySnapshotSchema, stream: z.never(), mutating: false, abortable: false, defaultTimeoutMs: MINUTE },
  "system.info": { params: NoParams, result: SystemInfoSchema, stream: z.never(), mutating: false, abortable: false, defaultTimeoutMs: MINUTE },
  /**
   * The agent answers, then stops (as on SIGTERM) for its supervisor to start it again:
   * containers keep running and the next agent adopts them. Refused (Conflict) when nothing
   * supervises the agent: it would not come back.
   */
  "agent.restart": {
    params: NoParams,
    result: z.object({ supervisor: z.string() }),
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: MINUTE,
  },
  "image.pull": {
    /** `insecure`: the console's registry entry allows plain HTTP for this registry. */
    params: z.object({ reference: ReferenceSchema, credentials: RegistryCredentialsSchema.optional(), insecure: z.boolean().optional() }),
    result: z.object({ id: z.string(), reference: z.string(), digest: z.string(), upToDate: z.boolean() }),
    stream: ProgressEventSchema,
    mutating: true,
    abortable: true,
    defaultTimeoutMs: 60 * MINUTE,
  },
  "image.push": {
    params: z.object({
      reference: ReferenceSchema,
      tag: z.string().max(128).optional(),
      credentials: RegistryCredentialsSchema.optional(),
      insecure: z.boolean().optional(),
    }),
    result: z.object({ pushed: z.array(PushedTagSchema) }),
    stream: ProgressEventSchema,
    mutating: true,
    abortable: true,
    defaultTimeoutMs: 60 * MINUTE,
  },
  /** One piece of a build context: written at `offset` of upload `uploadId` on the node, for an `image.build` to use. */
  "build.upload": {
    params: z.object({
      uploadId: z.uuid(),
      offset: z.number().int().nonnegative().max(MAX_BUILD_CONTEXT_BYTES),
      data: z.base64().max(Math.ceil(BUILD_UPLOAD_CHUNK_BYTES / 3) * 4),
    }),
    result: z.object({ size: z.number().int().nonnegative() }),
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: 2 * MINUTE,
  },
  /**
   * `docker build` with the Dockerfile given as text and the context (optional) uploaded
   * before with `build.upload`; the upload is removed when the build ends. `networkMode`
   * is what RUN steps use (the console judges `host` as a host-level option).
   */
  "image.build": {
    params: z.object({
      dockerfile: z.string().min(1, "the Dockerfile is empty").max(MAX_DOCKERFILE_TEXT),
      context: z.object({ uploadId: z.uuid(), size: z.number().int().nonnegative().max(MAX_BUILD_CONTEXT_BYTES) }).optional(),
      tags: z.array(ReferenceSchema).max(32).default([]),
      buildArgs: z.record(z.string().min(1).max(256), z.string().max(8192)).default({}),
      target: z.string().max(256).optional(),
      noCache: z.boolean().default(false),
      pull: z.boolean().default(false),
      networkMode: z.string().max(256).default("bridge"),
      labels: z.record(z.string().min(1).max(256), z.string().max(8192)).default({}),
    }),
    result: z.object({ imageId: z.string(), tags: z.array(z.string()) }),
    stream: BuildStreamEventSchema,
    mutating: true,
    abortable: true,
    endsWithLink: true,
    defaultTimeoutMs: 120 * MINUTE,
  },
  "image.tag": {
    params: z.object({ source: ReferenceSchema, target: ReferenceSchema }),
    result: NoResult,
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: MINUTE,
  },
  "image.remove": {
    params: z.object({ reference: ReferenceSchema, force: z.boolean().default(false), noPrune: z.boolean().default(false) }),
    result: z.object({ untagged: z.array(z.string()), deleted: z.array(z.string()) }),
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: 5 * MINUTE,
  },
  "image.prune": {
    params: z.object({ all: z.boolean().default(false), until: z.string().max(64).optional(), label: z.array(z.string().max(512)).max(64).optional() }),
    result: z.object({ untagged: z.array(z.string()), deleted: z.array(z.string()), spaceReclaimed: z.number() }),
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: 10 * MINUTE,
  },
  "image.history": {
    params: z.object({ reference: ReferenceSchema }),
    result: z.object({ items: z.array(HistoryItemSchema) }),
    stream: z.never(),
    mutating: false,
    abortable: false,
    defaultTimeoutMs: MINUTE,
  },
  "system.df": { params: NoParams, result: SystemDfSchema, stream: z.never(), mutating: false, abortable: false, defaultTimeoutMs: 5 * MINUTE },
  "container.prune": { params: NoParams, result: PruneResult, stream: z.never(), mutating: true, abortable: false, defaultTimeoutMs: 10 * MINUTE },
  "volume.create": {
    params: z.object({
      name: VolumeNameSchema.optional(),
      driverOpts: z.record(z.string().max(256), z.string().max(4096)).default({}),
      labels: LabelsSchema.default({}),
    }),
    result: z.object({ name: z.string() }),
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: 2 * MINUTE,
  },
  "volume.remove": {
    params: z.object({ name: VolumeNameSchema, force: z.boolean().default(false) }),
    result: NoResult,
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: 5 * MINUTE,
  },
  /** `all`: also named volumes (Docker's `volume prune --all`); otherwise anonymous ones only. */
  "volume.prune": {
    params: z.object({ all: z.boolean().default(false) }),
    result: PruneResult,
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: 10 * MINUTE,
  },
  /** A volume with the containers that use it (any state). */
  "volume.inspect": {
    params: z.object({ name: VolumeNameSchema }),
    result: z.object({
      name: z.string(),
      driver: z.string(),
      mountpoint: z.string(),
      createdAt: z.string(),
      labels: z.record(z.string(), z.string()),
      options: z.record(z.string(), z.string()),
      containers: z.array(z.object({ id: z.string(), name: z.string(), state: z.string() })),
    }),
    stream: z.never(),
    mutating: false,
    abortable: false,
    defaultTimeoutMs: MINUTE,
  },
  "network.create": {
    params: z.object({
      name: NetworkRefSchema,
      subnet: z.string().max(64).optional(),
      gateway: z.string().max(64).optional(),
      internal: z.boolean().default(false),
      labels: LabelsSchema.default({}),
    }),
    result: z.object({ id: z.string() }),
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: 2 * MINUTE,
  },
  "network.remove": {
    params: z.object({ id: NetworkRefSchema }),
    result: NoResult,
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: 2 * MINUTE,
  },
  "network.prune": {
    params: NoParams,
    result: z.object({ deleted: z.array(z.string()) }),
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: 5 * MINUTE,
  },
  "container.create": {
    params: CreateOptionsSchema,
    result: z.object({ id: z.string(), name: z.string() }),
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: 2 * MINUTE,
  },
  "container.start": {
    params: z.object({ id: ContainerRefSchema }),
    result: Changed,
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: 2 * MINUTE,
  },
  "container.stop": {
    params: z.object({ id: ContainerRefSchema, timeoutSeconds: z.number().int().min(-1).max(3600).optional(), signal: z.string().max(16).optional() }),
    result: Changed,
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: 65 * MINUTE,
  },
  "container.restart": {
    params: z.object({ id: ContainerRefSchema, timeoutSeconds: z.number().int().min(-1).max(3600).optional() }),
    result: NoResult,
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: 65 * MINUTE,
  },
  "container.pause": {
    params: z.object({ id: ContainerRefSchema }),
    result: NoResult,
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: MINUTE,
  },
  "container.unpause": {
    params: z.object({ id: ContainerRefSchema }),
    result: NoResult,
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: MINUTE,
  },
  "container.kill": {
    params: z.object({ id: ContainerRefSchema, signal: z.string().max(16).optional() }),
    result: NoResult,
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: MINUTE,
  },
  "container.remove": {
    params: z.object({ id: ContainerRefSchema, force: z.boolean().default(false), volumes: z.boolean().default(false) }),
    result: NoResult,
    stream: z.never(),
    mutating: true,
    abortable: false,
    defaultTimeoutMs: 5 * MINUTE,
  },
  /** A process in a running container with a terminal; output arrives as stream events, input as `input` messages. Canceling kills the session. */
  "container.exec": {
    params: z.object({
      id: ContainerRefSchema,
      cmd: z.array(z.string().max(4096)).min(1, "a command is needed").max(64),
      tty: z.boolean().default(true),
      cols: z.number().int().min(1).max(1000).default(80),
      rows: z.number().int().min(1).max(1000).default(24),
      user: z.string().max(256).optional(),
    }),
    result: z.object({ exitCode: z.number().int() }),
    stream: z.object({ data: z.base64() }),
    mutating: true,
    abortable: true,
    defaultTimeoutMs: 12 * 60 * MINUTE,
  },
  "container.inspect": {
    params: z.object({ id: ContainerRefSchema }),
    result: ContainerInspectSchema,
    stream: z.never(),
    mutating: false,
    abortable: false,
    defaultTimeoutMs: MINUTE,
  },
  /** Usage readings every `intervalMs` as stream events, until the container stops or the request is canceled. */
  "container.stats": {
    params: z.object({ id: ContainerRefSchema, intervalMs: z.number().int().min(250).max(60_000).default(1000) }),
    result: z.object({}).strict(),
    stream: StatsSampleSchema,
    mutating: false,
    abortable: true,
    defaultTimeoutMs: 12 * 60 * MINUTE,
  },
  "container.logs": {
    params: z.object({
      id: ContainerRefSchema,
      /** The last N lines (default 1000, at most MAX_LOG_LINES). */
      tail: z.number().int().min(0).max(MAX_LOG_LINES).default(1000),
      /** Unix seconds. */
      since: z.number().nonnegative().optional(),
      until: z.number().nonnegative().optional(),
      /** Stream new lines as `stream` events until the container stops or the request is canceled; the result then holds no lines. */
      follow: z.boolean().default(false),
    }),
    result: z.object({ lines: z.array(LogLineSchema), truncated: z.boolean() }),
    stream: LogLineSchema,
    mutating: false,
    abortable: true,
    defaultTimeoutMs: MINUTE,
  },
} as const satisfies Record<string, MethodSpec>;

export type MethodName = keyof typeof METHODS;
/** The agent ends a running request of `method` when the link drops (MethodSpec.endsWithLink). */
export const endsWithLink = (method: MethodName): boolean => (METHODS[method] as MethodSpec).endsWithLink === true;
export const METHOD_NAMES = Object.keys(METHODS) as MethodName[];
/** What the caller gives (defaults may be left out). */
export type ParamsOf<M extends MethodName> = z.input<(typeof METHODS)[M]["params"]>;
/** What the handler receives (defaults applied). */
export type ParsedParamsOf<M extends MethodName> = z.output<(typeof METHODS)[M]["params"]>;
export type ResultOf<M extends MethodName> = z.output<(typeof METHODS)[M]["result"]>;
export type StreamEventOf<M extends MethodName> = z.output<(typeof METHODS)[M]["stream"]>;

function requestOf<M extends MethodName>(method: M) {
  return z.object({
    id: RequestIdSchema,
    method: z.literal(method),
    params: METHODS[method].params as (typeof METHODS)[M]["params"],
    /** How long the console waits; the agent stops abortable work after it. */
    timeoutMs: z
      .number()
      .int()
      .positive()
      .max(24 * 60 * MINUTE)
      .optional(),
  });
}

/** console → agent, socket.io event `request`. */
export const RequestSchema = z.discriminatedUnion("method", [
  requestOf("inventory.snapshot"),
  requestOf("system.info"),
  requestOf("agent.restart"),
  requestOf("image.pull"),
  requestOf("image.push"),
  requestOf("build.upload"),
  requestOf("image.build"),
  requestOf("image.tag"),
  requestOf("image.remove"),
  requestOf("image.prune"),
  requestOf("image.history"),
  requestOf("system.df"),
  requestOf("container.prune"),
  requestOf("volume.create"),
  requestOf("volume.remove"),
  requestOf("volume.prune"),
  requestOf("volume.inspect"),
  requestOf("network.create"),
  requestOf("network.remove"),
  requestOf("network.prune"),
  requestOf("container.create"),
  requestOf("container.start"),
  requestOf("container.stop"),
  requestOf("container.restart"),
  requestOf("container.pause"),
  requestOf("container.unpause"),
  requestOf("container.kill"),
  requestOf("container.remove"),
  requestOf("container.exec"),
  requestOf("container.logs"),
  requestOf("container.inspect"),
  requestOf("container.stats"),
]);
export type LinkRequest = z.infer<typeof RequestSchema>;
/** The request as the console builds it (defaults may be left out). */
export type LinkRequestInput<M extends MethodName = MethodName> = { id: string; method: M; params: ParamsOf<M>; timeoutMs?: number };

export const LinkErrorSchema = z.object({ kind: LinkErrorKindSchema, message: z.string() });
export type LinkErrorBody = z.infer<typeof LinkErrorSchema>;

/** agent → console: the acknowledgement of a request. `result` is checked per method with `parseResult`. */
export const AckSchema = z.discriminatedUnion("ok", [
  z.object({ id: z.string(), ok: z.literal(true), result: z.unknown() }),
  z.object({ id: z.string(), ok: z.literal(false), error: LinkErrorSchema }),
]);
export type Ack = z.infer<typeof AckSchema>;

/** agent → console, socket.io event `stream`. `event` is checked per method with `parseStreamEvent`. */
export const StreamMessageSchema = z.object({ requestId: z.string(), seq: z.number().int().nonnegative(), event: z.unknown() });
export type StreamMessage = z.infer<typeof StreamMessageSchema>;

export const CancelSchema = z.object({ requestId: z.string() });
/** Largest stdin chunk of an exec per message (base64 of it is 4/3 larger). */
export const EXEC_INPUT_MAX_BYTES = 64 * 1024;
export const ExecInputSchema = z.object({
  requestId: z.string(),
  /** Base64 of the bytes typed. */
  data: z
    .base64()
    .max(Math.ceil(EXEC_INPUT_MAX_BYTES / 3) * 4)
    .optional(),
  resize: z.object({ cols: z.number().int().min(1).max(1000), rows: z.number().int().min(1).max(1000) }).optional(),
  /** Closes the process's stdin. */
  eof: z.boolean().optional(),
});
export type ExecInput = z.infer<typeof ExecInputSchema>;

// --- parsing ------------------------------------------------------------------------

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

function parsed<T>(r: { success: true; data: T } | { success: false; error: z.ZodError }, what: string): Parsed<T> {
  if (r.success) return { ok: true, value: r.data };
  return {
    ok: false,
    message: `invalid ${what}: ${r.error.issues
      .slice(0, 5)
      .map((i) => `${i.path.join(".") || what}: ${i.message}`)
      .join("; ")}`,
  };
}

export const parseHandshake = (v: unknown): Parsed<Handshake> => parsed(HandshakeSchema.safeParse(v), "handshake");
export const parseEnrollment = (v: unknown): Parsed<Enrollment> => parsed(EnrollmentSchema.safeParse(v), "enrollment");
export const parseRefusal = (v: unknown): Parsed<LinkRefusal> => parsed(LinkRefusalSchema.safeParse(v), "refusal");
export const parseRequest = (v: unknown): Parsed<LinkRequest> => parsed(RequestSchema.safeParse(v), "request");
export const parseAck = (v: unknown): Parsed<Ack> => parsed(AckSchema.safeParse(v), "acknowledgement");
export const parseStreamMessage = (v: unknown): Parsed<StreamMessage> => parsed(StreamMessageSchema.safeParse(v), "stream message");
export const parseEvent = (v: unknown): Parsed<AgentEvent> => parsed(AgentEventSchema.safeParse(v), "agent event");
export const parseExecInput = (v: unknown): Parsed<ExecInput> => parsed(ExecInputSchema.safeParse(v), "exec input");
export const parseCancel = (v: unknown): Parsed<z.infer<typeof CancelSchema>> => parsed(CancelSchema.safeParse(v), "cancel");
export const parseRevoked = (v: unknown): Parsed<z.infer<typeof RevokedSchema>> => parsed(RevokedSchema.safeParse(v), "revocation");

export function parseParams<M extends MethodName>(method: M, v: unknown): Parsed<ParsedParamsOf<M>> {
  return parsed(METHODS[method].params.safeParse(v) as { success: true; data: ParsedParamsOf<M> } | { success: false; error: z.ZodError }, `${method} params`);
}
export function parseResult<M extends MethodName>(method: M, v: unknown): Parsed<ResultOf<M>> {
  return parsed(METHODS[method].result.safeParse(v) as { success: true; data: ResultOf<M> } | { success: false; error: z.ZodError }, `${method} result`);
}
export function parseStreamEvent<M extends MethodName>(method: M, v: unknown): Parsed<StreamEventOf<M>> {
  return parsed(
    METHODS[method].stream.safeParse(v) as { success: true; data: StreamEventOf<M> } | { success: false; error: z.ZodError },
    `${method} stream event`,
  );
}

// --- helpers both ends use ----------------------------------------------------------

/** Docker's STATUS column for a container at time `now` (unix ms). */
export function containerStatusText(c: Pick<InventoryContainer, "state" | "exitCode" | "startedAt" | "finishedAt">, now: number): string {
  return statusText(c, now);
}

type Keyed = { id: string } | { name: string };
const keyOf = (item: Keyed): string => ("id" in item ? item.id : item.name);

function applyDelta<T extends Keyed>(list: T[], delta: { upsert: T[]; remove: string[] } | undefined): T[] {
  if (!delta) return list;
  const byKey = new Map(list.map((i) => [keyOf(i), i]));
  for (const k of delta.remove) byKey.delete(k);
  for (const i of delta.upsert) byKey.set(keyOf(i), i);
  return [...byKey.values()];
}

/** The inventory after a delta (a new object; the input is not changed). */
export function applyInventoryChanges(snapshot: InventorySnapshot, changes: InventoryChanges, takenAt: number): InventorySnapshot {
  return {
    ...snapshot,
    images: applyDelta(snapshot.images, changes.images),
    containers: applyDelta(snapshot.containers, changes.containers),
    volumes: applyDelta(snapshot.volumes, changes.volumes),
    networks: applyDelta(snapshot.networks, changes.networks),
    takenAt,
  };
}

function diffList<T extends Keyed>(prev: T[], next: T[], comparable: (item: T) => unknown): { upsert: T[]; remove: string[] } | undefined {
  const before = new Map(prev.map((i) => [keyOf(i), JSON.stringify(comparable(i))]));
  const upsert: T[] = [];
  const seen = new Set<string>();
  for (const i of next) {
    const k = keyOf(i);
    seen.add(k);
    if (before.get(k) !== JSON.stringify(comparable(i))) upsert.push(i);
  }
  const remove = [...before.keys()].filter((k) => !seen.has(k));
  return upsert.length || remove.length ? { upsert, remove } : undefined;
}

/** The delta from one inventory to the next; undefined when nothing changed (a container's STATUS text alone is no change). */
export function diffInventory(prev: InventorySnapshot, next: InventorySnapshot): InventoryChanges | undefined {
  const changes: InventoryChanges = {};
  const images = diffList(prev.images, next.images, (i) => i);
  const containers = diffList(prev.containers, next.containers, ({ status: _status, ...rest }) => rest);
  const volumes = diffList(prev.volumes, next.volumes, (v) => v);
  const networks = diffList(prev.networks, next.networks, (n) => n);
  if (images) changes.images = images;
  if (containers) changes.containers = containers;
  if (volumes) changes.volumes = volumes;
  if (networks) changes.networks = networks;
  return Object.keys(changes).length ? changes : undefined;
}

// --- socket.io typings (for emitting; receivers still parse) -------------------------

type AckFn<T> = (reply: T) => void;

export interface ConsoleToAgentEvents {
  enrolled: (enrollment: Enrollment, ack: AckFn<{ ok: boolean; message?: string }>) => void;
  request: (request: LinkRequestInput, ack: AckFn<Ack>) => void;
  cancel: (cancel: { requestId: string }) => void;
  input: (input: ExecInput) => void;
  revoked: (message: { reason: string }) => void;
}

export interface AgentToConsoleEvents {
  event: (event: AgentEvent) => void;
  stream: (message: StreamMessage) => void;
}
