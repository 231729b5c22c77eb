import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { hostname as osHostname } from "node:os";
import { join } from "node:path";

import type { Logger } from "pino";
import { canceled, conflict, EngineError, invalidArgument, isEngineError, notFound, notImplemented, toEngineError } from "../errors.ts";
import type { ImageService } from "../images/image-service.ts";
import type { ContainerConfig } from "../images/image-config.ts";
import type { LayerStore } from "../layers/layer-store.ts";
import { chainIdOf } from "../layers/chain-id.ts";
import type { ContainerMonitor, ExecSession, ExitStatus, MonitorPaths, StdioSession } from "../monitor/monitor.ts";
import { readLogs } from "../monitor/monitor.ts";
import { resizeLine, writeCtl } from "../monitor/attach.ts";
import type { NetworkManager } from "../network/network-manager.ts";
import { buildRuntimeSpec, type DeviceNode, type NamespaceOptions, type SpecHost, type SpecProcess, type BindMount } from "../runtime/spec.ts";
import { deviceNodes, hostDevices } from "../runtime/devices.ts";
import { Runc, RuncError, signalNumber } from "../runtime/runc.ts";
import type { Runtimes } from "../runtime/runtimes.ts";
import { resolveUser } from "../runtime/user.ts";
import { mkdirInRoot } from "../runtime/mkdir-in-root.ts";
import { guardRuntimeDirs } from "../runtime/rootfs-guard.ts";
import { unmountAll, isMounted } from "../snapshots/mount.ts";
import { RootfsMounts, RUNNING } from "./rootfs-mounts.ts";
import { applyUpdate, type ContainerUpdate } from "./update.ts";
import type { Snapshotter } from "../snapshots/snapshotter.ts";
import type { VolumeStore } from "../volumes/volume-store.ts";
import { applyChanges } from "../images/changes.ts";
import { containerEnv } from "../../../shared/env.ts";
import { parseNormalizedReference, withDefaultTag } from "../../../shared/reference.ts";
import { teeStream } from "../streams.ts";
import { pipeline } from "node:stream/promises";
import { diffUpper, type Change } from "../archive/upper-diff.ts";
import { upperToLayerTar } from "../archive/layer-tar.ts";
import { rootfsTar } from "../archive/rootfs-tar.ts";
import {
  CreateOptionsSchema,
  type ContainerOptions,
  type ContainerRecord,
  type CreateOptions,
  type MountSpec,
  type NetworkAttachment,
  type PortSpec,
} from "./container-record.ts";
import type { ContainerStore } from "./container-store.ts";
import { generateName, VALID_CONTAINER_NAME } from "./names.ts";
import { effectiveHealthcheck, healthcheckToDocker, healthProbe, HealthMonitor, validateHealthcheck } from "./health.ts";
import { checkHostOptions, logsReadable, parseVolumesFrom } from "./host-options.ts";
import { isErrno } from "../fs-util.ts";
import { confineBindSource } from "./bind-confinement.ts";
import { parseExtraHost } from "../network/hosts.ts";
import { KeyedQueue } from "../keyed-queue.ts";
import { bestEffort } from "../../../shared/best-effort.ts";

export interface ContainerServiceDeps {
  store: ContainerStore;
  images: ImageService;
  layers: LayerStore;
  snapshots: Snapshotter;
  monitor: ContainerMonitor;
  runc: Runc;
  network: NetworkManager;
  volumes: VolumeStore;
  specHost: SpecHost;
  logger: Logger;
  /** cgroup parent of every container ("/berth" → /sys/fs/cgroup/<controller>/berth/<id>). */
  cgroupParent: string;
  /** The runtime `runc` and `monitor` run (default: runc only), for `--runtime` at create. */
  runtimes?: Runtimes;
}

export interface ContainerEvent {
  type: "container";
  action: string;
  id: string;
  attributes: Record<string, string>;
  time: number;
}

export interface WaitResult {
  statusCode: number;
  error?: string;
}

export interface ExecConfig {
  cmd: string[];
  tty: boolean;
  attachStdin: boolean;
  /** Whether the client reads the process's stdout / stderr (Docker's AttachStdout/AttachStderr); undefined: it does. */
  attachStdout?: boolean;
  attachStderr?: boolean;
  env: string[];
  user?: string;
  workingDir?: string;
  privileged?: boolean;
  /** The client's detach keys as it gave them (Docker's form, e.g. "ctrl-p,ctrl-q"); kept for its door. */
  detachKeys?: string;
}

export interface ExecInstance {
  id: string;
  containerId: string;
  config: ExecConfig;
  running: boolean;
  exitCode: number | null;
  pid: number;
  session?: ExecSession;
  /** Settles when the exec process has ended and its exit code is recorded. */
  done: Promise<void>;
}

const NEVER = "0001-01-01T00:00:00Z";
/** conmon rotates a container's log at this size, so a chatty container cannot fill the disk. */
const LOG_MAX_BYTES = 64 * 1024 * 1024;
const RESTART_BACKOFF_START_MS = 100;
const RESTART_BACKOFF_MAX_MS = 60_000;
/** State.Error of a container whose monitor (conmon) died without recording its exit. */
const MONITOR_DIED = "its monitor died: the container was stopped";

/**
 * The container lifecycle (Docker's semantics): create, start, stop, kill, restart,
 * pause, remove, rename, wait, logs, exec, attach, top, diff, export, commit, and
 * restart policies, built from the snapshotter (root filesystem), the runtime spec,
 * the monitor (conmon holds stdio, logs and the exit code, so containers outlive the
 * agent), the network manager and the volume store.
 *
 * Each container has one owner of its resources: start builds them with an undo
 * stack (nothing is left if a step fails); the exit handler releases them; remove
 * releases what is left. Operations on one container are serialised.
 */
export class ContainerService extends EventEmitter {
  private readonly locks = new KeyedQueue();
  private readonly exitWatchers = new Map<string, AbortController>();
  private readonly exitWaiters = new Map<string, Array<(r: WaitResult) => void>>();
  private readonly removeWaiters = new Map<string, Array<() => void>>();
  private readonly pendingAttach = new Map<
    string,
    Array<{ opts: { stdin: boolean; stdout: boolean; stderr: boolean }; resolve: (s: StdioSession) => void; reject: (e: unknown) => void }>
  >();
  private readonly restartTimers = new Map<string, NodeJS.Timeout>();
  readonly execs = new Map<string, ExecInstance>();
  private reconcileTimer?: NodeJS.Timeout;
  private readonly health: HealthMonitor;
  /** The one owner of every container's rootfs mount: the running container and copies share it. */
  private readonly rootfsMounts: RootfsMounts;

  constructor(readonly deps: ContainerServiceDeps) {
    super();
    this.rootfsMounts = new RootfsMounts((id) => deps.snapshots.mounts(id));
    this.health = new HealthMonitor({
      exec: (id, cmd) => this.probeExec(id, cmd),
      record: (id) => this.deps.store.get(id),
      save: (record) => this.deps.store.save(record),
      event: (record, action, attributes) => this.emitEvent(action, record, attributes),
      logger: deps.logger.child({ part: "health" }),
    });
  }

  // --- lookups --------------------------------------------------------------

  /** Whether containers get a seccomp filter (Docker's default profile) on this kernel. */
  get seccompAvailable(): boolean {
    return this.deps.specHost.seccomp !== false;
  }

  get(idOrName: string): ContainerRecord {
    return this.deps.store.resolve(idOrName);
  }

  list(): ContainerRecord[] {
    return this.deps.store.list().sort((a, b) => b.created.localeCompare(a.created));
  }

  /** Containers using an image (for image removal). */
  usingImage(imageId: string): Array<{ id: string; running: boolean }> {
    return this.deps.store
      .list()
      .filter((c) => c.imageId === imageId)
      .map((c) => ({ id: c.id, running: c.state.status === "running" || c.state.status === "paused" || c.state.status === "restarting" }));
  }

  /** Volume names used by containers. */
  volumeUsers(name: string): string[] {
    return this.deps.store
      .list()
      .filter((c) => c.mounts.some((m) => m.type === "volume" && m.source === name))
      .map((c) => c.id);
  }

  paths(id: string): MonitorPaths & { dir: string; rootfs: string; hostsPath: string; hostnamePath: string; resolvConfPath: string } {
    const dir = this.deps.store.dir(id);
    return {
      dir,
      stateDir: join(dir, "monitor"),
      bundle: dir,
      logPath: join(dir, "container.log"),
      rootfs: join(dir, "rootfs"),
      hostsPath: join(dir, "hosts"),
      hostnamePath: join(dir, "hostname"),
      resolvConfPath: join(dir, "resolv.conf"),
    };
  }

  /** The init PID of a running container another one joins (`--pid container:NAME`). */
  private runningPid(idOrName: string, what: string): number {
    const target = this.get(idOrName);
    if (target.state.status !== "running" || !target.state.pid) throw conflict(`cannot join ${what} of a non running container: ${target.id}`);
    return target.state.pid;
  }

  private emitEvent(action: string, record: ContainerRecord, extra: Record<string, string> = {}): void {
    const event: ContainerEvent = {
      type: "container",
      action,
      id: record.id,
      attributes: { name: record.name, image: record.imageName, ...extra },
      time: Date.now(),
    };
    this.emit("event", event);
  }

  private withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }

  // --- start-up: adopt what survived the agent --------------------------------

  /**
   * Adopts every container found on disk with its true state: running ones are
   * watched again; those that exited while the agent was away get their exit
   * handled (resources released, restart policy applied); leftovers of crashed
   * operations (a half-created or half-removed container, orphan snapshots, runc
   * state, mounts) are cleaned up.
   */
  async init(): Promise<void> {
    const { store, network, snapshots, runc, logger } = this.deps;
    const records = await store.load();
    const live: ContainerRecord[] = [];
    const removing: ContainerRecord[] = [];
    for (const r of records) {
      if (r.state.status === "removing") removing.push(r);
      else if (["running", "paused", "restarting"].includes(r.state.status)) live.push(r);
    }
    const stillRunning: ContainerRecord[] = [];
    for (const r of live) {
      const paths = this.paths(r.id);
      const state = await runc.state(r.id).catch(bestEffort(this.deps.logger, `runc state ${r.id}`));
      const alive = state && (state.status === "running" || state.status === "paused") && (await this.deps.monitor.monitorAlive(paths));
      if (alive) {
        r.state.status = state.status === "paused" ? "paused" : "running";
        r.state.pid = state.pid ?? r.state.pid;
        stillRunning.push(r);
      }
    }
    await network.init(stillRunning.map((r) => r.id));
    // Removals cut short by a crash are finished (they need the network manager initialised).
    for (const r of removing) {
      await this.finishRemove(r, { volumes: false }).catch((err: unknown) => logger.warn({ err, id: r.id }, "could not finish an interrupted remove"));
    }
    for (const r of stillRunning) {
      this.rootfsMounts.adopt(r.id, RUNNING);
      // As Docker at daemon start: the check starts again, from "starting".
      this.health.start(r, await this.healthProbeOf(r));
      if (r.state.status === "paused") await this.health.stop(r); // as at pause()
      await store.save(r);
      this.watchExit(r);
      logger.info({ id: r.id, name: r.name }, "adopted a running container");
    }
    // Orphans, before any restart policy can start a container again: runc containers and
    // rootfs mounts of every container that is not running (a start cut short after `runc
    // create` leaves a "created" runc container, its init process and cgroups), and runc
    // state and snapshots without a record.
    const running = new Set(stillRunning.map((r) => r.id));
    const known = new Set(store.list().map((r) => r.id));
    for (const s of await runc.list().catch(() => [])) {
      if (running.has(s.id)) continue;
      if (known.has(s.id)) logger.info({ id: s.id, status: s.status }, "removing the runc container of a container that is not running");
      await runc.delete(s.id, { force: true }).catch((err: unknown) => logger.warn({ err, id: s.id }, "could not delete an orphan runc container"));
    }
    for (const s of await snapshots.list()) {
      if (!known.has(s.key)) {
        await unmountAll(join(store.dir(s.key), "rootfs"), { detach: true }).catch(bestEffort(this.deps.logger, "unmount a leftover root"));
        await snapshots.remove(s.key).catch((err: unknown) => logger.warn({ err, key: s.key }, "could not remove an orphan snapshot"));
      }
    }
    for (const r of store.list()) {
      if (running.has(r.id)) continue;
      const { rootfs } = this.paths(r.id);
      if (await isMounted(rootfs)) await unmountAll(rootfs, { detach: true }).catch(bestEffort(this.deps.logger, `unmount ${rootfs}`));
    }
    await snapshots.removeStale();
    for (const r of live) {
      if (stillRunning.includes(r)) continue;
      const recorded = await this.deps.monitor.exitStatus(this.paths(r.id)).catch(bestEffort(this.deps.logger, `read the recorded exit of ${r.id}`));
      const status = recorded ?? { exitCode: 255, oomKilled: false, finishedAt: new Date().toISOString() };
      logger.info({ id: r.id, exitCode: status.exitCode, monitorDied: !recorded }, "container exited while the agent was away");
      await this.handleExit(r, status, { adopting: true, monitorDied: !recorded });
    }
    // Restart policies that apply after a host reboot or agent restart. As Docker at daemon
    // start: `always` even when it was stopped by hand, `unless-stopped` only if it was not.
    for (const r of store.list()) {
      if (r.state.status === "running" || r.state.status === "paused") continue;
      const p = r.options.restartPolicy.name;
      if ((p === "always" || (p === "unless-stopped" && !r.state.stoppedByUser)) && r.state.startedAt !== NEVER) {
        this.start(r.id).catch((err: unknown) => logger.warn({ err, id: r.id }, "restart policy: start failed"));
      }
    }
    this.reconcileTimer = setInterval(() => {
      network.reconcileRules().catch((err: unknown) => logger.warn({ err }, "firewall reconcile failed"));
    }, 10_000);
    this.reconcileTimer.unref();
  }

  close(): void {
    if (this.reconcileTimer) clearInterval(this.reconcileTimer);
    for (const c of this.exitWatchers.values()) c.abort();
    for (const t of this.restartTimers.values()) clearTimeout(t);
    this.health.close();
  }

  // --- create ----------------------------------------------------------------

  async create(input: CreateOptions): Promise<ContainerRecord> {
    const parsed = CreateOptionsSchema.safeParse(input);
    if (!parsed.success) throw invalidArgument(`invalid container options: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
    for (const h of parsed.data.extraHosts) parseExtraHost(h); // refused at create, as Docker does
    const options = parsed.data;
    checkHostOptions(options, this.deps.runtimes);
    const { images, store, snapshots, volumes, network } = this.deps;
    const image = images.resolve(options.image);
    const config = (await images.config(image.id)).config ?? {};

    let name = options.name?.replace(/^\//, "");
    if (name !== undefined && name !== "") {
      if (!VALID_CONTAINER_NAME.test(name)) throw invalidArgument(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    } else {
      do name = generateName();
      while (store.nameTaken(name));
    }
    const existing = store.nameTaken(name);
    if (existing)
      throw conflict(
        `Conflict. The container name "/${name}" is already in use by container "${existing.id}". You have to remove (or rename) that container to be able to reuse that name.`,
      );

    const { path, args } = commandLine(config, options);
    if (options.networkMode.startsWith("container:")) throw notImplemented("--network container:NAME is not supported");
    if (options.networkMode === "default") options.networkMode = "bridge";
    // Docker joins the networks of NetworkingConfig (when given) rather than NetworkMode's. A network
    // that does not exist is refused at start ("network X not found"), as Docker does: a 404 here
    // would make the docker CLI believe the image is missing and pull it.
    const networks = joinsNetworks(options.networkMode) ? defaultNetworks(options) : [];
    // A network that does not exist (yet) is refused at start, as Docker does; only its name is looked up here.
    for (const n of networks)
      n.name =
        (await network.inspect(n.name).catch((e: unknown) => (isEngineError(e) && e.kind === "NotFound" ? undefined : Promise.reject(e))))?.name ?? n.name;

    checkNamespaceModes(options);
    validateHealthcheck(options.healthcheck);
    if (options.pidMode.startsWith("container:")) this.get(options.pidMode.slice("container:".length));
    if (options.utsMode === "host" && options.hostname) throw invalidArgument("conflicting options: hostname and the UTS mode");
    // A missing or non-device path is refused now (Docker finds out only at start).
    const devices: DeviceNode[] = [];
    for (const d of options.devices) devices.push(...(await deviceNodes(d)));

    // Validate resources and security options now, as Docker does at create (a 400, nothing made).
    buildRuntimeSpec({
      image: config,
      run: runOptions(options, "x"),
      rootfs: "rootfs",
      user: { uid: 0, gid: 0, additionalGids: [] },
      namespaces: { ...namespaceModes(options, () => 1), network: options.networkMode === "host" ? "host" : "none" },
      devices,
      cgroupsPath: "/validate",
      host: this.deps.specHost,
    });

    const ports = publishedPortSpecs(options, config);
    const mounts = await this.mountSpecs(options, config);
    const id = randomBytes(32).toString("hex");
    const record: ContainerRecord = {
      id,
      name,
      created: new Date().toISOString(),
      imageId: image.id,
      imageName: options.image,
      imageChainId: image.layers.length ? chainIdOf(image.layers.map((l) => l.diffId)) : undefined,
      // Docker: with the host's network a container also gets the host's name, unless --hostname.
      options: { ...options, ports, hostname: options.hostname || (options.networkMode === "host" || options.utsMode === "host" ? osHostname() : undefined) },
      path,
      args,
      state: {
        status: "created",
        pid: 0,
        exitCode: 0,
        error: "",
        oomKilled: false,
        startedAt: NEVER,
        finishedAt: NEVER,
        restartCount: 0,
        stoppedByUser: false,
      },
      endpoints: [],
      networks,
      publishedPorts: [],
      mounts,
    };
    await store.add(record);
    try {
      await snapshots.prepare(id, record.imageChainId);
      for (const m of mounts) if (m.type === "volume") await volumes.create({ name: m.source, anonymous: m.anonymous });
    } catch (e) {
      await snapshots.remove(id).catch(bestEffort(this.deps.logger, `remove the snapshot of ${id}`));
      await store.delete(id);
      throw e;
    }
    this.emitEvent("create", record);
    return record;
  }

  /** Mounts from `-v`/`--mount`, plus an anonymous volume for each image VOLUME not covered. */
  private async mountSpecs(options: ReturnType<typeof CreateOptionsSchema.parse>, config: ContainerConfig): Promise<MountSpec[]> {
    const mounts: MountSpec[] = [];
    const seen = new Set<string>();
    for (const m of options.mounts) {
      if (!m.destination.startsWith("/")) throw invalidArgument(`invalid mount config: mount path must be absolute: ${m.destination}`);
      if (seen.has(m.destination)) throw invalidArgument(`Duplicate mount point: ${m.destination}`);
      seen.add(m.destination);
      if (m.type === "bind") {
        if (!m.source.startsWith("/"))
          throw invalidArgument(`invalid mount config for type "bind": invalid mount path: '${m.source}' mount path must be absolute`);
        mounts.push(options.hostPathRules ? { ...m, source: await confineBindSource(m.source, m.readonly, options.hostPathRules) } : m);
      } else {
        mounts.push({ ...m, source: m.source || randomBytes(32).toString("hex"), anonymous: m.anonymous || !m.source });
      }
    }
    // --volumes-from: the other container's volumes and binds, where this one mounts nothing itself;
    // shared, so never this container's anonymous volumes to remove with it.
    for (const vf of options.volumesFrom) {
      const { container, mode } = parseVolumesFrom(vf);
      for (const m of this.get(container).mounts) {
        if (seen.has(m.destination)) continue;
        seen.add(m.destination);
        mounts.push({ ...m, readonly: mode === "" ? m.readonly : mode === "ro", anonymous: false });
      }
    }
    for (const dest of Object.keys(config.Volumes ?? {})) {
      if (seen.has(dest)) continue;
      mounts.push({ type: "volume", source: randomBytes(32).toString("hex"), destination: dest, readonly: false, anonymous: true });
    }
    return mounts;
  }

  // --- start -----------------------------------------------------------------

  /** @returns false when the container was already running (Docker's 304) */
  start(idOrName: string): Promise<boolean> {
    const record = this.get(idOrName);
    return this.withLock(record.id, () => this.startLocked(record));
  }

  private async startLocked(record: ContainerRecord): Promise<boolean> {
    if (record.state.status === "running") return false;
    if (record.state.status === "paused") throw conflict("cannot start a paused container, try unpause instead");
    if (record.state.status === "removing" || record.state.status === "dead")
      throw conflict(`container ${record.id} is marked for removal and cannot be started`);
    const timer = this.restartTimers.get(record.id);
    if (timer) {
      clearTimeout(timer);
      this.restartTimers.delete(record.id);
    }
    const { images, network, volumes, monitor, runc, logger } = this.deps;
    const p = this.paths(record.id);
    const undo: Array<() => Promise<unknown>> = [];
    try {
      const image = await images.config(record.imageId).catch(bestEffort(this.deps.logger, `read the config of image ${record.imageId}`));
      const config = image?.config ?? {};
      await this.rootfsMounts.acquire(record.id, p.rootfs, RUNNING);
      undo.push(() => this.rootfsMounts.release(record.id, p.rootfs, RUNNING));
      const replaced = await guardRuntimeDirs(p.rootfs);
      if (replaced.length) logger.info({ id: record.id, replaced }, "image paths runc mounts over were not directories: replaced in the container's layer");

      const hostname = record.options.hostname || record.id.slice(0, 12);
      await writeFile(p.hostnamePath, `${hostname}\n`);
      const joins = joinsNetworks(record.options.networkMode) ? this.withShortIdAliases(record, record.networks ?? defaultNetworks(record.options)) : [];
      record.networks = joins;
      const attached = await network.attach({
        containerId: record.id,
        name: record.name,
        hostname,
        networkMode: record.options.networkMode,
        ports: record.options.ports,
        networks: joins.map((n) => ({ network: n.name, aliases: n.aliases, ipv4Address: n.ipv4Address })),
        macAddress: record.options.macAddress || undefined,
        extraHosts: record.options.extraHosts,
        hostsPath: p.hostsPath,
        resolvConfPath: p.resolvConfPath,
      });
      undo.push(() => network.detach(record.id));

      const binds: BindMount[] = [];
      for (const m of record.mounts) {
        if (m.type === "bind") {
          // Checked again at every start: the host path may have become a link since the create.
          const source = record.options.hostPathRules ? await confineBindSource(m.source, m.readonly, record.options.hostPathRules) : m.source;
          binds.push({ source, destination: m.destination, readonly: m.readonly });
          continue;
        }
        const v = await volumes.create({ name: m.source, anonymous: m.anonymous });
        await volumes.populate(m.source, p.rootfs, m.destination);
        binds.push({ source: v.mountpoint, destination: m.destination, readonly: m.readonly });
      }
      // Directories are made in advance (safely, inside the rootfs); a file bind's destination is
      // left to runc, which creates an empty file there (a directory would make the mount fail).
      for (const b of binds) {
        if (
          !(await stat(b.source).then(
            (st) => st.isDirectory(),
            () => true,
          ))
        )
          continue;
        await mkdirInRoot(p.rootfs, b.destination).catch(bestEffort(this.deps.logger, `make the mount point ${b.destination}`));
      }

      const user = await resolveUser(p.rootfs, record.options.user ?? config.User ?? "", record.options.groupAdd);
      const devices: DeviceNode[] = record.options.privileged ? await hostDevices() : [];
      for (const d of record.options.devices) devices.push(...(await deviceNodes(d)));
      const spec = buildRuntimeSpec({
        image: config,
        run: runOptions(record.options, hostname),
        rootfs: p.rootfs,
        user,
        namespaces: {
          ...namespaceModes(record.options, (target) => this.runningPid(target, "PID")),
          network: attached.netnsPath ? { path: attached.netnsPath } : record.options.networkMode === "host" ? "host" : "none",
        },
        devices,
        mounts: binds,
        files: { hosts: p.hostsPath, hostname: p.hostnamePath, resolvConf: p.resolvConfPath },
        cgroupsPath: `${this.deps.cgroupParent}/${record.id}`,
        host: this.deps.specHost,
      });
      await mkdirInRoot(p.rootfs, spec.process.cwd);
      await writeFile(join(p.bundle, "config.json"), JSON.stringify(spec));
      if (await runc.hasState(record.id)) await runc.delete(record.id, { force: true }).catch(bestEffort(this.deps.logger, `runc delete ${record.id}`));
      await rm(p.stateDir, { recursive: true, force: true });
      const created = await monitor.create({
        ...monitorPaths(p),
        id: record.id,
        name: record.name,
        tty: record.options.tty,
        stdin: record.options.openStdin,
        stdinOnce: record.options.stdinOnce,
        logMaxSize: LOG_MAX_BYTES,
      });
      undo.push(() => runc.delete(record.id, { force: true }));
      // Clients that asked to attach before the start (docker run) are connected now, so they miss no output.
      for (const pending of this.pendingAttach.get(record.id) ?? []) {
        await monitor.attach(monitorPaths(p), pending.opts).then(pending.resolve, pending.reject);
      }
      this.pendingAttach.delete(record.id);
      await monitor.start(record.id, monitorPaths(p));
      record.state = {
        ...record.state,
        status: "running",
        pid: created.pid,
        exitCode: 0,
        error: "",
        oomKilled: false,
        startedAt: new Date().toISOString(),
        finishedAt: NEVER,
        stoppedByUser: false,
      };
      this.health.start(record, healthProbe(effectiveHealthcheck(config.Healthcheck, record.options.healthcheck), config.Shell));
      record.endpoints = attached.endpoints;
      record.networks = joins.map((n) => ({ ...n, networkId: attached.endpoints.find((e) => e.networkName === n.name)?.networkId ?? n.networkId }));
      record.publishedPorts = attached.ports;
      await this.deps.store.save(record);
      this.watchExit(record);
      this.emitEvent("start", record);
      return true;
    } catch (e) {
      for (const step of undo.reverse()) await step().catch((err: unknown) => logger.warn({ err, id: record.id }, "undo of a failed start failed"));
      const err = toEngineError(e);
      const notFoundExec = /executable file not found|no such file or directory/.test(err.message);
      record.state.exitCode = notFoundExec ? 127 : /permission denied/.test(err.message) ? 126 : 128;
      record.state.error = err.message;
      record.state.pid = 0;
      await this.deps.store.save(record);
      for (const pending of this.pendingAttach.get(record.id) ?? []) pending.reject(err);
      this.pendingAttach.delete(record.id);
      // Docker removes an AutoRemove (`--rm`) container whose start failed: `docker run --rm`
      // waits for the removal after a failed start, and would otherwise wait forever.
      if (record.options.autoRemove) {
        await this.finishRemove(record, { volumes: true }).catch((rmErr: unknown) =>
          logger.warn({ err: rmErr, id: record.id }, "auto-remove after a failed start failed"),
        );
      }
      throw err;
    }
  }

  private watchExit(record: ContainerRecord): void {
    this.exitWatchers.get(record.id)?.abort();
    const ac = new AbortController();
    this.exitWatchers.set(record.id, ac);
    this.deps.monitor
      .waitExit(monitorPaths(this.paths(record.id)), ac.signal)
      .then((status) => {
        if (ac.signal.aborted) return;
        this.exitWatchers.delete(record.id);
        return this.withLock(record.id, () => this.handleExit(record, status, {}));
      })
      .catch((err: unknown) => {
        if (ac.signal.aborted) return;
        this.exitWatchers.delete(record.id);
        // The monitor died without recording an exit (kill -9 of conmon, an OOM kill of it):
        // nothing holds the container's stdio or will report its end, so it is ended here
        // and recorded as Docker records a container whose shim died.
        this.deps.logger.error({ err, id: record.id }, "the container's monitor died: stopping the container");
        const status: ExitStatus = { exitCode: 255, oomKilled: false, finishedAt: new Date().toISOString() };
        this.withLock(record.id, () => this.handleExit(record, status, { monitorDied: true })).catch((e: unknown) =>
          this.deps.logger.error({ err: e, id: record.id }, "handling the death of a container's monitor failed"),
        );
      });
  }

  /** The container's main process ended: release its resources, record the exit, apply the restart policy. */
  private async handleExit(record: ContainerRecord, status: ExitStatus, opts: { adopting?: boolean; monitorDied?: boolean }): Promise<void> {
    const { network, runc, logger } = this.deps;
    if (!this.deps.store.get(record.id)) return;
    if (record.state.status !== "running" && record.state.status !== "paused" && record.state.status !== "restarting") return; // handled already
    const p = this.paths(record.id);
    await this.health.stop(record);
    // Without a monitor the processes may still run: --force kills them all (the cgroup) before deleting.
    await runc.delete(record.id, { force: true }).catch((err: unknown) => logger.warn({ err, id: record.id }, "runc delete after the exit failed"));
    await network.detach(record.id).catch((err: unknown) => logger.warn({ err, id: record.id }, "network detach failed"));
    await this.rootfsMounts.release(record.id, p.rootfs, RUNNING).catch((err: unknown) => logger.warn({ err, id: record.id }, "unmount failed"));
    const ranFor = record.state.startedAt !== NEVER ? Date.now() - Date.parse(record.state.startedAt) : 0;
    record.state = {
      ...record.state,
      status: "exited",
      pid: 0,
      exitCode: status.exitCode,
      oomKilled: status.oomKilled,
      finishedAt: status.finishedAt,
      error: opts.monitorDied ? MONITOR_DIED : record.state.error,
    };
    record.endpoints = [];
    record.publishedPorts = [];
    // Straight from running to restarting: never "exited" in between, where a `docker stop`
    // would find nothing to stop and the policy would bring the container back anyway.
    const restart = this.shouldRestart(record);
    if (restart) {
      record.state.restartCount += 1;
      record.state.status = "restarting";
    }
    await this.deps.store.save(record);
    if (status.oomKilled) this.emitEvent("oom", record);
    this.emitEvent("die", record, { exitCode: String(status.exitCode) });
    for (const w of this.exitWaiters.get(record.id) ?? []) w({ statusCode: status.exitCode });
    this.exitWaiters.delete(record.id);

    if (restart) {
      // Docker's back-off: doubles from 100 ms while the container keeps failing fast; reset after 10 s of running.
      const delay =
        ranFor > 10_000 ? RESTART_BACKOFF_START_MS : Math.min(RESTART_BACKOFF_MAX_MS, RESTART_BACKOFF_START_MS * 2 ** Math.min(record.state.restartCount, 10));
      const t = setTimeout(
        () => {
          this.restartTimers.delete(record.id);
          // Under the container's lock, and still "restarting" while it starts: a `docker stop`
          // meanwhile waits for the lock and then stops what this start made (see stop()).
          this.withLock(record.id, async () => {
            const current = this.deps.store.get(record.id);
            if (!current || current.state.status !== "restarting" || current.state.stoppedByUser) return;
            try {
              await this.startLocked(current);
            } catch (err) {
              // Docker leaves a container whose policy restart failed exited, and does not retry.
              if (current.state.status === "restarting") {
                current.state.status = "exited";
                await this.deps.store.save(current);
              }
              throw err;
            }
          }).catch((err: unknown) => logger.warn({ err, id: record.id }, "restart policy: start failed"));
        },
        opts.adopting ? 0 : delay,
      );
      this.restartTimers.set(record.id, t);
      return;
    }
    if (record.options.autoRemove) {
      await this.finishRemove(record, { volumes: true }).catch((err: unknown) => logger.warn({ err, id: record.id }, "auto-remove failed"));
    }
  }

  private shouldRestart(record: ContainerRecord): boolean {
    if (record.state.stoppedByUser) return false;
    const policy = record.options.restartPolicy;
    switch (policy.name) {
      case "always":
      case "unless-stopped":
        return true;
      case "on-failure":
        return record.state.exitCode !== 0 && (policy.maximumRetryCount === 0 || record.state.restartCount < policy.maximumRetryCount);
      default:
        return false;
    }
  }

  // --- stop, kill, restart, pause ------------------------------------------------

  /** @returns false when it was not running (Docker's 304) */
  async stop(idOrName: string, timeoutSeconds?: number, signal?: string): Promise<boolean> {
    const record = this.get(idOrName);
    if (record.state.status === "restarting") {
      // Waiting for the back-off: cancel the restart. Under the lock, so that a policy restart
      // already under way finishes first (then the container is running and is stopped below).
      const cancelled = await this.withLock(record.id, async () => {
        if (record.state.status !== "restarting") return false;
        const t = this.restartTimers.get(record.id);
        if (t) clearTimeout(t);
        this.restartTimers.delete(record.id);
        record.state.status = "exited";
        record.state.stoppedByUser = true;
        await this.deps.store.save(record);
        return true;
      });
      if (cancelled) {
        this.emitEvent("stop", record);
        return true;
      }
    }
    if (record.state.status !== "running" && record.state.status !== "paused") return false;
    record.state.stoppedByUser = true;
    // Registered before any await: an exit being handled right now must not be missed.
    const exited = this.nextExit(record.id);
    await this.deps.store.save(record);
    const timeout = timeoutSeconds ?? record.options.stopTimeout ?? 10;
    const sig =
      signal ??
      record.options.stopSignal ??
      (await this.deps.images.config(record.imageId).catch(bestEffort(this.deps.logger, `read the config of image ${record.imageId}`)))?.config?.StopSignal ??
      "SIGTERM";
    if (record.state.status === "paused") await this.deps.runc.resume(record.id).catch(bestEffort(this.deps.logger, `resume ${record.id} before stopping it`));
    await this.deps.runc.kill(record.id, sig).catch(bestEffort(this.deps.logger, `send ${sig} to ${record.id}`));
    const graceful = timeout < 0 ? await exited.then(() => true) : await Promise.race([exited.then(() => true), sleep(timeout * 1000).then(() => false)]);
    if (!graceful) {
      await this.deps.runc.kill(record.id, "SIGKILL", { all: true }).catch(bestEffort(this.deps.logger, `SIGKILL ${record.id}`));
      await exited;
    }
    this.emitEvent("stop", record);
    return true;
  }

  async kill(idOrName: string, signal = "SIGKILL"): Promise<void> {
    const record = this.get(idOrName);
    signalNumber(signal);
    if (record.state.status !== "running" && record.state.status !== "paused") {
      throw conflict(`Cannot kill container: ${idOrName}: Container ${record.id} is not running`);
    }
    const num = signalNumber(signal);
    // Registered before any await: an exit being handled right now must not be missed.
    const exited = num === 9 ? this.nextExit(record.id) : undefined;
    if (num === 9 || num === 15 || num === 2) {
      record.state.stoppedByUser = true;
      await this.deps.store.save(record);
    }
    await this.deps.runc.kill(record.id, signal, { all: num === 9 });
    this.emitEvent("kill", record, { signal: String(num) });
    await exited;
  }

  async restart(idOrName: string, timeoutSeconds?: number): Promise<void> {
    const record = this.get(idOrName);
    await this.stop(record.id, timeoutSeconds);
    await this.start(record.id);
    this.emitEvent("restart", record);
  }

  async pause(idOrName: string): Promise<void> {
    const record = this.get(idOrName);
    await this.withLock(record.id, async () => {
      if (record.state.status === "paused") throw conflict(`Container ${record.id} is already paused`);
      if (record.state.status !== "running") throw conflict(`Container ${record.id} is not running`);
      await this.deps.runc.pause(record.id);
      record.state.status = "paused";
      // As Docker: no checks while paused, and the container counts as unhealthy meanwhile.
      await this.health.stop(record);
      await this.deps.store.save(record);
    });
    this.emitEvent("pause", record);
  }

  async unpause(idOrName: string): Promise<void> {
    const record = this.get(idOrName);
    await this.withLock(record.id, async () => {
      if (record.state.status !== "paused") throw conflict(`Container ${record.id} is not paused`);
      await this.deps.runc.resume(record.id);
      record.state.status = "running";
      this.health.resume(record, await this.healthProbeOf(record));
      await this.deps.store.save(record);
    });
    this.emitEvent("unpause", record);
  }

  /**
   * `docker update`: new limits and restart policy, kept in the record (inspect shows them)
   * and applied at once to a running or paused container (runc update); a restarting or
   * stopped one gets them at its next start. All or nothing: a refused change changes nothing.
   * @returns Docker's warnings (none).
   * @throws InvalidArgument for a bad value (Docker's text), Conflict for what Docker refuses.
   */
  update(idOrName: string, changes: ContainerUpdate): Promise<string[]> {
    const record = this.get(idOrName);
    return this.withLock(record.id, async () => {
      if (record.state.status === "removing" || record.state.status === "dead")
        throw conflict(`Cannot update container ${record.id}: container is marked for removal and cannot be "update"`);
      const next = applyUpdate(record.id, record.options, changes, this.deps.specHost.swapLimit);
      // Docker's checks of the values (the same as at create), and the cgroup values to apply.
      const spec = buildRuntimeSpec({
        image: {},
        run: { ...runOptions(next, "x"), cmd: ["x"] },
        rootfs: "rootfs",
        user: { uid: 0, gid: 0, additionalGids: [] },
        namespaces: { ...namespaceModes(next, () => 1), network: "none" },
        cgroupsPath: "/validate",
        host: this.deps.specHost,
      });
      if (record.state.status === "running" || record.state.status === "paused") {
        const { memory, cpu, pids } = spec.linux.resources;
        await this.deps.runc.update(record.id, { ...(memory ? { memory } : {}), ...(cpu ? { cpu } : {}), ...(pids ? { pids } : {}) }).catch((e: unknown) => {
          throw conflict(`Cannot update container ${record.id}: ${(e as Error).message}`, e);
        });
      }
      record.options = next;
      await this.deps.store.save(record);
      this.emitEvent("update", record);
      return [];
    });
  }

  // --- remove, rename, wait ------------------------------------------------------

  async remove(idOrName: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    const record = this.get(idOrName);
    if (record.state.status === "running" || record.state.status === "paused" || record.state.status === "restarting") {
      if (!opts.force) {
        throw conflict(`You cannot remove a ${record.state.status} container ${record.id}. Stop the container before attempting removal or force remove`);
      }
      if (record.state.status === "restarting") await this.stop(record.id);
      else
        await this.kill(record.id, "SIGKILL").catch((e: unknown) => {
          if (!isEngineError(e, "Conflict")) throw e;
        });
    }
    await this.withLock(record.id, () => this.finishRemove(record, { volumes: !!opts.volumes }));
  }

  private async finishRemove(record: ContainerRecord, opts: { volumes: boolean }): Promise<void> {
    const { store, snapshots, network, runc, monitor, volumes, logger } = this.deps;
    if (!store.get(record.id)) return;
    record.state.status = "removing";
    await store.save(record);
    // Clients attached before a start that will never come: their connections end now.
    for (const pending of this.pendingAttach.get(record.id) ?? []) pending.reject(conflict(`container ${record.id} was removed before it started`));
    this.pendingAttach.delete(record.id);
    this.exitWatchers.get(record.id)?.abort();
    this.exitWatchers.delete(record.id);
    await this.health.stop(record);
    const p = this.paths(record.id);
    // Usually deleted at the exit already: a second `runc delete` would only fork to say so.
    if (await runc.hasState(record.id)) await runc.delete(record.id, { force: true }).catch(bestEffort(logger, `runc delete ${record.id}`));
    await network.detach(record.id);
    await this.rootfsMounts
      .releaseAll(record.id, p.rootfs)
      .catch((err: unknown) => logger.warn({ err, id: record.id }, "unmounting the container's root failed"));
    await snapshots.remove(record.id);
    await monitor.cleanup(monitorPaths(p)).catch(bestEffort(logger, `clean up the monitor files of ${record.id}`));
    await store.delete(record.id).catch(async (err: unknown) => {
      // Seen once under heavy load: the root was a mount point again at this moment. Unmount and
      // retry once rather than leave a record without its directory's removal.
      if (!isErrno(err, "EBUSY")) throw err;
      logger.warn({ err, id: record.id }, "the container's directory was busy while removing it: unmounting its root again");
      await unmountAll(p.rootfs, { detach: true });
      await store.delete(record.id);
    });
    if (opts.volumes) {
      for (const m of record.mounts) {
        if (m.type !== "volume" || !m.anonymous) continue;
        await volumes
          .remove(m.source, {}, (n: string) => this.volumeUsers(n))
          .catch((err: unknown) => logger.warn({ err, volume: m.source }, "could not remove an anonymous volume"));
      }
    }
    this.emitEvent("destroy", record);
    for (const w of this.removeWaiters.get(record.id) ?? []) w();
    this.removeWaiters.delete(record.id);
    for (const [execId, e] of this.execs) if (e.containerId === record.id) this.execs.delete(execId);
  }

  async rename(idOrName: string, newName: string): Promise<void> {
    const record = this.get(idOrName);
    const name = newName.replace(/^\//, "");
    if (!name) throw invalidArgument("Neither old nor new names may be empty");
    if (!VALID_CONTAINER_NAME.test(name)) throw invalidArgument(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    if (name === record.name) throw conflict(`Renaming a container with the same name as its current name`);
    const other = this.deps.store.nameTaken(name, record.id);
    if (other)
      throw conflict(
        `Error when allocating new name: Conflict. The container name "/${name}" is already in use by container "${other.id}". You have to remove (or rename) that container to be able to reuse that name.`,
      );
    const old = record.name;
    record.name = name;
    await this.deps.store.save(record);
    this.emitEvent("rename", record, { oldName: `/${old}` });
  }

  private nextExit(id: string, signal?: AbortSignal): Promise<WaitResult> {
    return waitInList(this.exitWaiters, id, { statusCode: -1 }, signal);
  }

  /** `docker wait` conditions: not-running (default), next-exit, removed. */
  async wait(idOrName: string, condition: "not-running" | "next-exit" | "removed" = "not-running", signal?: AbortSignal): Promise<WaitResult> {
    const record = this.get(idOrName);
    const running = ["running", "paused", "restarting"].includes(record.state.status);
    if (condition === "removed") {
      if (!this.deps.store.get(record.id)) return { statusCode: record.state.exitCode };
      await waitInList(this.removeWaiters, record.id, undefined, signal);
      return { statusCode: record.state.exitCode };
    }
    if (condition === "not-running" && !running && record.state.status !== "created") return { statusCode: record.state.exitCode };
    return this.nextExit(record.id, signal);
  }

  // --- stdio: attach, logs, exec ---------------------------------------------------

  /**
   * Attaches to the container's stdio; before start, the session is connected when the container starts.
   * @throws Canceled when `signal` fires while waiting for the start (the client left).
   */
  attach(idOrName: string, opts: { stdin: boolean; stdout: boolean; stderr: boolean }, signal?: AbortSignal): Promise<StdioSession> {
    const record = this.get(idOrName);
    if (record.state.status === "running" || record.state.status === "paused") {
      return this.deps.monitor.attach(monitorPaths(this.paths(record.id)), opts);
    }
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(canceled("attach canceled: the client left"));
      const list = this.pendingAttach.get(record.id) ?? [];
      const onAbort = () => {
        const left = (this.pendingAttach.get(record.id) ?? []).filter((p) => p !== pending);
        if (left.length) this.pendingAttach.set(record.id, left);
        else this.pendingAttach.delete(record.id);
        reject(canceled("attach canceled: the client left"));
      };
      const pending = {
        opts,
        resolve: (s: StdioSession) => {
          signal?.removeEventListener("abort", onAbort);
          // The client left while the session was being connected: nobody will read it.
          if (signal?.aborted) s.close();
          resolve(s);
        },
        reject: (e: unknown) => {
          signal?.removeEventListener("abort", onAbort);
          reject(e);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      list.push(pending);
      this.pendingAttach.set(record.id, list);
    });
  }

  logs(idOrName: string, opts: { follow?: boolean; tail?: number; since?: number; until?: number; signal?: AbortSignal }) {
    const record = this.get(idOrName);
    if (!logsReadable(record.options)) throw notImplemented("configured logging driver does not support reading");
    return readLogs(this.paths(record.id).logPath, {
      ...opts,
      isRunning: async () => {
        const r = this.deps.store.get(record.id);
        return !!r && ["running", "paused", "restarting"].includes(r.state.status);
      },
    });
  }

  createExec(idOrName: string, config: ExecConfig): ExecInstance {
    const record = this.get(idOrName);
    if (record.state.status === "paused") throw conflict(`Container ${record.id} is paused, unpause the container before exec`);
    if (record.state.status !== "running") throw conflict(`Container ${record.id} is not running`);
    if (config.cmd.length === 0) throw invalidArgument("No exec command specified");
    const exec: ExecInstance = {
      id: randomBytes(32).toString("hex"),
      containerId: record.id,
      config,
      running: false,
      exitCode: null,
      pid: 0,
      done: Promise.resolve(),
    };
    this.execs.set(exec.id, exec);
    return exec;
  }

  execDone(id: string): Promise<void> {
    return this.getExec(id).done;
  }

  /**
   * Ends a running exec process with SIGKILL: what Docker does when the client of an
   * attached (not detached) exec goes away. A process that already ended is left alone.
   */
  killExec(id: string): void {
    const exec = this.execs.get(id);
    if (!exec?.running || exec.pid <= 0) return;
    try {
      process.kill(exec.pid, "SIGKILL");
      this.deps.logger.debug({ exec: id, pid: exec.pid }, "killed an exec process whose client left");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH")
        this.deps.logger.warn({ err: e, exec: id, pid: exec.pid }, "could not kill an exec process whose client left");
    }
  }

  getExec(id: string): ExecInstance {
    const e = this.execs.get(id);
    if (!e) throw notFound(`No such exec instance: ${id}`);
    return e;
  }

  async startExec(execId: string, opts: { detach?: boolean } = {}): Promise<ExecSession> {
    const exec = this.getExec(execId);
    if (exec.running || exec.exitCode !== null) throw conflict(`Error: Exec command ${execId} has already run`);
    const record = this.deps.store.get(exec.containerId);
    if (!record || record.state.status !== "running") throw conflict(`Container ${exec.containerId} is not running`);
    exec.running = true;
    try {
      return await this.runExec(exec, record, opts);
    } catch (e) {
      // As Docker: an exec that could not start has ended, with 127 for a command that is not
      // there and 126 for anything else (not executable, unknown user…); its client reads that.
      exec.running = false;
      exec.exitCode = /executable file not found|no such file or directory/.test(e instanceof Error ? e.message : "") ? 127 : 126;
      // containerd's wording around runc's message, which Docker's clients print.
      if (e instanceof RuncError) throw new EngineError(e.kind, `OCI runtime exec failed: ${e.message}: unknown`, { cause: e });
      throw e;
    }
  }

  private async runExec(exec: ExecInstance, record: ContainerRecord, opts: { detach?: boolean }): Promise<ExecSession> {
    const process = await this.execProcess(record, exec.config);
    const session = await this.deps.monitor.exec(record.id, monitorPaths(this.paths(record.id)), process, {
      tty: exec.config.tty,
      stdin: exec.config.attachStdin,
      detach: opts.detach,
    });
    exec.session = session;
    exec.pid = session.pid;
    exec.done = session.wait().then(
      (code) => {
        exec.running = false;
        exec.exitCode = code;
      },
      () => {
        exec.running = false;
        exec.exitCode = 126;
      },
    );
    this.emitEvent("exec_start", record, { execID: exec.id });
    return session;
  }

  /** The process of an exec in a running container: its user, environment and working directory as Docker resolves them. */
  private async execProcess(record: ContainerRecord, config: ExecConfig): Promise<SpecProcess> {
    const p = this.paths(record.id);
    const image =
      (await this.deps.images.config(record.imageId).catch(bestEffort(this.deps.logger, `read the config of image ${record.imageId}`)))?.config ?? {};
    const user = await resolveUser(p.rootfs, config.user || record.options.user || image.User || "", record.options.groupAdd);
    const spec = buildRuntimeSpec({
      image,
      // `exec --privileged` gives the process every capability; runc keeps the container's seccomp filter, as with Docker.
      run: {
        ...runOptions(record.options, record.options.hostname || record.id.slice(0, 12)),
        cmd: config.cmd,
        entrypoint: "",
        init: false,
        env: [...record.options.env, ...config.env],
        tty: config.tty,
        workingDir: config.workingDir || record.options.workingDir,
        privileged: record.options.privileged || !!config.privileged,
      },
      rootfs: p.rootfs,
      user,
      namespaces: { network: "none" },
      cgroupsPath: `${this.deps.cgroupParent}/${record.id}`,
      host: this.deps.specHost,
    });
    return spec.process;
  }

  // --- health checks (the monitor is health.ts; these feed it) -----------------------------

  /** A health probe's exec: the container's user and environment, output attached, no stdin. */
  private async probeExec(id: string, cmd: string[]): Promise<ExecSession> {
    const record = this.deps.store.get(id);
    if (record?.state.status === "paused") throw conflict(`Container ${id} is paused, unpause the container before exec`);
    if (!record || record.state.status !== "running") throw conflict(`Container ${id} is not running`);
    const process = await this.execProcess(record, { cmd, tty: false, attachStdin: false, env: [] });
    return this.deps.monitor.exec(record.id, monitorPaths(this.paths(record.id)), process, { tty: false, stdin: false });
  }

  private async healthProbeOf(record: ContainerRecord) {
    const config =
      (await this.deps.images.config(record.imageId).catch(bestEffort(this.deps.logger, `read the config of image ${record.imageId}`)))?.config ?? {};
    return healthProbe(effectiveHealthcheck(config.Healthcheck, record.options.healthcheck), config.Shell);
  }

  // --- inspection: top, stats handled by callers with these paths ------------------------

  async top(idOrName: string, psArgs = "-ef"): Promise<{ titles: string[]; processes: string[][] }> {
    const record = this.get(idOrName);
    if (record.state.status !== "running" && record.state.status !== "paused") throw conflict(`Container ${record.id} is not running`);
    const pids = new Set(await this.deps.runc.ps(record.id));
    const { execFile } = await import("node:child_process");
    const { promisify } = await import("node:util");
    const args = psArgs.split(/\s+/).filter(Boolean);
    let out: string;
    try {
      // ps lists every process of the host (Docker filters by PID afterwards): a busy host prints megabytes.
      out = (await promisify(execFile)("ps", args, { maxBuffer: 256 * 1024 * 1024 })).stdout;
    } catch (e) {
      throw invalidArgument(`ps: ${(e as Error).message}`);
    }
    const lines = out.trimEnd().split("\n");
    const titles = lines[0]!.trim().split(/\s+/);
    const pidCol = titles.indexOf("PID");
    if (pidCol < 0) throw invalidArgument(`Couldn't find PID field in ps output`);
    const processes: string[][] = [];
    for (const line of lines.slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (!pids.has(Number(fields[pidCol]))) continue;
      const row = fields.slice(0, titles.length - 1);
      row.push(fields.slice(titles.length - 1).join(" "));
      processes.push(row);
    }
    return { titles, processes };
  }

  /**
   * Runs `fn` with the container's root filesystem mounted (it is mounted already while
   * running). The mount is shared: a start or another operation meanwhile keeps it.
   */
  async withRootfs<T>(idOrName: string, fn: (rootfs: string, record: ContainerRecord) => Promise<T>): Promise<T> {
    const record = this.get(idOrName);
    const p = this.paths(record.id);
    const holder = randomBytes(8).toString("hex");
    await this.rootfsMounts.acquire(record.id, p.rootfs, holder);
    try {
      return await fn(p.rootfs, record);
    } finally {
      await this.rootfsMounts.release(record.id, p.rootfs, holder).catch(bestEffort(this.deps.logger, `unmount the root of ${record.id}`));
    }
  }

  async upperDir(idOrName: string): Promise<string> {
    return this.deps.snapshots.upperDir(this.get(idOrName).id);
  }

  /** Absolute lower dirs of the container's image, topmost first. */
  async lowerDirs(idOrName: string): Promise<string[]> {
    const record = this.get(idOrName);
    if (!record.imageChainId) return [];
    const { cwd, lowers } = await this.deps.layers.lowerDirs(record.imageChainId);
    // The short links are symlinks; the diff walks real directories without following any.
    return Promise.all(lowers.map((l) => realpath(join(cwd, l))));
  }

  /** Removes every stopped container. */
  async prune(): Promise<{ deleted: string[]; spaceReclaimed: number }> {
    const deleted: string[] = [];
    let spaceReclaimed = 0;
    for (const r of this.deps.store.list()) {
      if (r.state.status !== "exited" && r.state.status !== "created" && r.state.status !== "dead") continue;
      spaceReclaimed += (await this.deps.snapshots.usage(r.id).catch(() => ({ size: 0 }))).size;
      await this.remove(r.id);
      deleted.push(r.id);
    }
    return { deleted, spaceReclaimed };
  }

  /**
   * `docker network connect`. A running container joins at once; a created or stopped one gets the
   * network recorded and joins it at its next start (as Docker: compose disconnects and reconnects
   * containers it has just created).
   * @throws NotFound container or network; Conflict host/none modes, a container being removed; and
   *         the network manager's errors (address in use, aliases or `--ip` where Docker refuses them).
   */
  async connect(idOrName: string, networkName: string, cfg: Partial<Omit<NetworkAttachment, "name">>): Promise<void> {
    const record = this.get(idOrName);
    await this.withLock(record.id, async () => {
      if (record.state.status === "removing" || record.state.status === "dead")
        throw conflict(`container ${record.id} is marked for removal and cannot be connected or disconnected to the network`);
      const net = await this.deps.network.inspect(networkName === "default" ? "bridge" : networkName);
      const mode = record.options.networkMode;
      if (mode === "host" || net.driver === "host") throw conflict("container cannot be disconnected from host network or connected to host network");
      if (mode === "none" || net.driver === "null")
        throw conflict("container cannot be connected to multiple networks with one of the networks in private (none) mode");
      const desired = record.networks ?? defaultNetworks(record.options);
      const [attachment] = this.withShortIdAliases(record, [
        { name: net.name, aliases: cfg.aliases ?? [], ipv4Address: cfg.ipv4Address || undefined, links: cfg.links ?? [], driverOpts: cfg.driverOpts ?? {} },
      ]);
      if (record.state.status === "running" || record.state.status === "paused") {
        const ep = await this.deps.network.connect(record.id, { network: net.id, aliases: attachment!.aliases, ipv4Address: attachment!.ipv4Address });
        record.endpoints = [...record.endpoints.filter((e) => e.networkId !== ep.networkId), ep];
        attachment!.networkId = ep.networkId;
      } else {
        if (desired.some((n) => n.name === net.name)) return; // Docker keeps the first settings
        if (net.name === "bridge" && attachment!.aliases.length > 0)
          throw invalidArgument("network-scoped alias is supported only for containers in user defined networks");
        if (attachment!.ipv4Address && (net.name === "bridge" || !net.userSubnet)) {
          throw invalidArgument(
            net.name === "bridge"
              ? "user specified IP address is supported on user defined networks only"
              : "user specified IP address is supported only when connecting to networks with user configured subnets",
          );
        }
      }
      record.networks = [...desired.filter((n) => n.name !== net.name), attachment!];
      await this.deps.store.save(record);
    });
  }

  /**
   * `docker network disconnect`: off the network now if running, and in any case not joined again
   * at the next start. `force`: also for a network that no longer exists.
   */
  async disconnect(idOrName: string, networkName: string, force: boolean): Promise<void> {
    const record = this.get(idOrName);
    await this.withLock(record.id, async () => {
      const net = await this.deps.network.inspect(networkName).catch((e: unknown) => {
        if (force) return undefined;
        throw e;
      });
      const name = net?.name ?? networkName;
      if (record.options.networkMode === "host" || net?.driver === "host")
        throw conflict("container cannot be disconnected from host network or connected to host network");
      const desired = record.networks ?? defaultNetworks(record.options);
      if (record.state.status === "running" || record.state.status === "paused") {
        if (net) await this.deps.network.disconnect(record.id, net.id, force);
        record.endpoints = record.endpoints.filter((e) => e.networkName !== name && e.networkId !== net?.id);
      } else if (!desired.some((n) => n.name === name) && !force) {
        throw conflict(`container ${record.id} is not connected to the network ${name}`);
      }
      record.networks = desired.filter((n) => n.name !== name);
      await this.deps.store.save(record);
    });
  }

  /** Docker adds a container's short ID to its aliases on every user-defined network it joins. */
  private withShortIdAliases(record: ContainerRecord, networks: NetworkAttachment[]): NetworkAttachment[] {
    const short = record.id.slice(0, 12);
    const out: NetworkAttachment[] = [];
    for (const n of networks) {
      const predefined = ["bridge", "host", "none"].includes(n.name);
      out.push(predefined || n.aliases.includes(short) ? n : { ...n, aliases: [...n.aliases, short] });
    }
    return out;
  }

  exists(id: string): boolean {
    return this.deps.store.get(id) !== undefined;
  }

  async resize(idOrName: string, cols: number, rows: number): Promise<void> {
    const record = this.get(idOrName);
    if (record.state.status !== "running") throw conflict(`Container ${record.id} is not running`);
    // Straight to conmon's control fifo: an attach session would close stdin (stdinOnce) when it ends.
    await writeCtl(join(this.paths(record.id).bundle, "ctl"), resizeLine(cols, rows), "container");
  }

  async volumeMountpoint(name: string): Promise<string> {
    return (await this.deps.volumes.get(name).catch(bestEffort(this.deps.logger, `read volume ${name}`)))?.mountpoint ?? "";
  }

  /** Bytes in the container's writable layer. */
  async sizeRw(idOrName: string): Promise<number> {
    return (await this.deps.snapshots.usage(this.get(idOrName).id).catch(() => ({ size: 0 }))).size;
  }

  /** `docker diff`: changes of the writable layer against the image. */
  async diff(idOrName: string): Promise<Change[]> {
    const record = this.get(idOrName);
    return diffUpper(await this.upperDir(record.id), await this.lowerDirs(record.id), { exclude: BIND_TARGETS });
  }

  /** `docker export`: the container's merged filesystem as a tar. */
  async exportTo(idOrName: string, out: NodeJS.WritableStream): Promise<void> {
    await this.withRootfs(idOrName, (rootfs) => pipeline(rootfsTar(rootfs), out as import("node:stream").Writable));
  }

  /**
   * `docker commit`: the writable layer becomes a new layer on top of the image; the
   * new config is the container's (command, env, ports…) with `changes` applied, and a
   * history entry records author and message.
   */
  async commit(
    idOrName: string,
    opts: {
      reference?: string;
      author?: string;
      comment?: string;
      changes?: string[];
      pause?: boolean;
      config?: { Cmd?: string[]; Entrypoint?: string[]; Env?: string[]; Labels?: Record<string, string> };
    },
  ): Promise<string> {
    const record = this.get(idOrName);
    const { images, layers, content, runc } = { ...this.deps, content: this.deps.images.deps.content };
    const ref = opts.reference ? withDefaultTag(parseNormalizedReference(opts.reference)) : undefined;
    const base = await images.config(record.imageId);
    const baseRecord = images.deps.store.get(record.imageId);
    const containerConfig = applyChanges(
      {
        ...(base.config ?? {}),
        Env: containerEnv(base.config?.Env, record.options.env),
        Cmd: record.options.cmd?.length ? record.options.cmd : record.options.entrypoint !== undefined ? [] : base.config?.Cmd,
        Entrypoint: record.options.entrypoint === "" ? null : (record.options.entrypoint ?? base.config?.Entrypoint),
        WorkingDir: record.options.workingDir ?? base.config?.WorkingDir,
        User: record.options.user ?? base.config?.User,
        Labels: { ...(base.config?.Labels ?? {}), ...record.options.labels },
        ...(record.options.healthcheck
          ? { Healthcheck: healthcheckToDocker(effectiveHealthcheck(base.config?.Healthcheck, record.options.healthcheck)!) }
          : {}),
        ...(opts.config?.Cmd ? { Cmd: opts.config.Cmd } : {}),
        ...(opts.config?.Entrypoint ? { Entrypoint: opts.config.Entrypoint } : {}),
      },
      opts.changes ?? [],
    );
    // As Docker: a running container is paused while its layer is read (consistent files), and
    // resumed after, also when the commit fails.
    const paused = opts.pause !== false && record.state.status === "running";
    if (paused) {
      await runc.pause(record.id);
      this.emitEvent("pause", record);
    }
    try {
      const upper = await this.upperDir(record.id);
      const [toStore, toUnpack] = teeStream(upperToLayerTar(upper, { exclude: BIND_TARGETS }));
      const [blob, layer] = await Promise.all([content.writeStream(toStore), layers.unpack({ parent: record.imageChainId }, toUnpack)]);
      const now = new Date().toISOString();
      const config = {
        ...base,
        created: now,
        author: opts.author ?? "",
        ...(opts.comment ? { comment: opts.comment } : {}),
        config: containerConfig,
        rootfs: { type: "layers", diff_ids: [...base.rootfs.diff_ids, blob.digest] },
        history: [
          ...(base.history ?? []),
          {
            created: now,
            created_by: [record.path, ...record.args].join(" "),
            ...(opts.author ? { author: opts.author } : {}),
            ...(opts.comment ? { comment: opts.comment } : {}),
          },
        ],
      };
      const { id } = await images.registerImage(
        {
          configBytes: Buffer.from(JSON.stringify(config)),
          layers: [
            ...(baseRecord?.layers ?? []),
            {
              diffId: blob.digest,
              chainId: layer.chainId,
              size: layer.size,
              tarSize: blob.size,
              blob: { mediaType: "application/vnd.docker.image.rootfs.diff.tar", digest: blob.digest, size: blob.size },
            },
          ],
          parent: record.imageId,
        },
        ref ? [ref] : [],
      );
      this.emitEvent("commit", record, { comment: opts.comment ?? "" });
      return id;
    } finally {
      if (paused) {
        await runc.resume(record.id).catch((err: unknown) => this.deps.logger.warn({ err, id: record.id }, "could not resume the container after its commit"));
        this.emitEvent("unpause", record);
      }
    }
  }

  async readTextFile(id: string, name: "hosts" | "hostname" | "resolv.conf"): Promise<string> {
    return readFile(join(this.deps.store.dir(id), name), "utf8").catch(() => "");
  }
}

/**
 * Joins the waiters of `key` until one of them is called, or `signal` fires: then the
 * waiter leaves the list (a client that gave up leaves nothing behind) and `onAbort` is the answer.
 */
function waitInList<T>(lists: Map<string, Array<(v: T) => void>>, key: string, onAbort: T, signal?: AbortSignal): Promise<T> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(onAbort);
    const abort = () => {
      const left = (lists.get(key) ?? []).filter((w) => w !== waiter);
      if (left.length) lists.set(key, left);
      else lists.delete(key);
      resolve(onAbort);
    };
    const waiter = (v: T) => {
      signal?.removeEventListener("abort", abort);
      resolve(v);
    };
    signal?.addEventListener("abort", abort, { once: true });
    lists.set(key, [...(lists.get(key) ?? []), waiter]);
  });
}

/** Files the engine bind-mounts into every container: not part of its filesystem. */
const BIND_TARGETS = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

function monitorPaths(p: MonitorPaths): MonitorPaths {
  return { stateDir: p.stateDir, bundle: p.bundle, logPath: p.logPath };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

/** Docker's command line of a container: entrypoint and cmd, with run-time overrides. */
export function commandLine(image: ContainerConfig, options: { cmd?: string[]; entrypoint?: string[] | "" }): { path: string; args: string[] } {
  let entrypoint = image.Entrypoint ?? [];
  let cmd = image.Cmd ?? [];
  if (options.entrypoint !== undefined) {
    entrypoint = options.entrypoint === "" ? [] : options.entrypoint.filter((x, i) => !(i === 0 && x === "" && options.entrypoint!.length === 1));
    cmd = [];
  }
  if (options.cmd && options.cmd.length > 0) cmd = options.cmd;
  const full = [...entrypoint, ...cmd];
  if (full.length === 0) throw invalidArgument("No command specified");
  return { path: full[0]!, args: full.slice(1) };
}

/** Docker's accepted `--pid`, `--ipc` and `--uts` values; what Berth cannot do is refused by name. */
function checkNamespaceModes(o: ReturnType<typeof CreateOptionsSchema.parse>): void {
  if (!(o.pidMode === "" || o.pidMode === "host" || /^container:.+$/.test(o.pidMode))) throw invalidArgument(`invalid PID mode: ${o.pidMode}`);
  if (!(o.utsMode === "" || o.utsMode === "host")) throw invalidArgument(`invalid UTS mode: ${o.utsMode}`);
  if (o.ipcMode.startsWith("container:"))
    throw notImplemented(
      `--ipc ${o.ipcMode} is not supported by Berth: a container can have an IPC namespace of its own (private, shareable, none) or the host's`,
    );
  if (!["", "private", "shareable", "none", "host"].includes(o.ipcMode)) throw invalidArgument(`invalid IPC mode: ${o.ipcMode}`);
}

/** The pid, ipc and uts namespaces of a container; `pidOf` gives a `container:<name>` target's init PID. */
/** Whether a network mode joins networks (bridge or a user network), rather than host, none or another container's. */
function joinsNetworks(mode: string): boolean {
  return !["host", "none"].includes(mode) && !mode.startsWith("container:");
}

/** The networks a container created with these options joins: NetworkingConfig's, or else NetworkMode's. */
function defaultNetworks(o: ContainerOptions): NetworkAttachment[] {
  if (o.networks && o.networks.length > 0)
    return o.networks.map((n) => ({
      ...n,
      name: n.name === "default" ? "bridge" : n.name,
      aliases: [...n.aliases],
      links: [...n.links],
      driverOpts: { ...n.driverOpts },
    }));
  return [{ name: o.networkMode === "default" ? "bridge" : o.networkMode, aliases: [...o.aliases], links: [], driverOpts: {} }];
}

function namespaceModes(o: ReturnType<typeof CreateOptionsSchema.parse>, pidOf: (target: string) => number): Omit<NamespaceOptions, "network"> {
  const pid =
    o.pidMode === "host" ? "host" : o.pidMode.startsWith("container:") ? { path: `/proc/${pidOf(o.pidMode.slice("container:".length))}/ns/pid` } : "private";
  const ipc = o.ipcMode === "host" ? "host" : o.ipcMode === "none" ? "none" : "private";
  return { pid, ipc, uts: o.utsMode === "host" ? "host" : "private", cgroup: o.cgroupns };
}

function runOptions(o: ReturnType<typeof CreateOptionsSchema.parse>, hostname: string) {
  return {
    cmd: o.cmd,
    entrypoint: o.entrypoint,
    env: o.env,
    workingDir: o.workingDir || undefined,
    hostname,
    domainname: o.domainname,
    tty: o.tty,
    openStdin: o.openStdin,
    consoleSize: o.consoleSize,
    readonlyRootfs: o.readonlyRootfs,
    capAdd: o.capAdd,
    capDrop: o.capDrop,
    noNewPrivileges: o.noNewPrivileges,
    privileged: o.privileged,
    seccompProfile: o.seccompProfile,
    sysctls: o.sysctls,
    deviceCgroupRules: o.deviceCgroupRules,
    maskedPaths: o.maskedPaths,
    readonlyPaths: o.readonlyPaths,
    memory: o.memory || undefined,
    memorySwap: o.memorySwap || undefined,
    cpus: o.nanoCpus ? o.nanoCpus / 1e9 : undefined,
    cpuShares: o.cpuShares || undefined,
    cpuQuota: o.cpuQuota || undefined,
    cpuPeriod: o.cpuPeriod || undefined,
    cpusetCpus: o.cpusetCpus || undefined,
    pidsLimit: o.pidsLimit,
    shmSize: o.shmSize || undefined,
    init: o.init,
    tmpfs: o.tmpfs,
    memorySwappiness: o.memorySwappiness,
    oomKillDisable: o.oomKillDisable,
  };
}

/** Port bindings, with `-P` adding every exposed port (image EXPOSE and --expose) on a free host port. */
function publishedPortSpecs(o: ReturnType<typeof CreateOptionsSchema.parse>, config: ContainerConfig): PortSpec[] {
  const ports = [...o.ports];
  if (o.publishAll) {
    const exposed = new Set([...Object.keys(config.ExposedPorts ?? {}), ...o.exposedPorts]);
    for (const e of exposed) {
      const [port, proto] = e.split("/");
      const containerPort = Number(port);
      const protocol = (proto === "udp" ? "udp" : "tcp") as "tcp" | "udp";
      if (!ports.some((p) => p.containerPort === containerPort && p.protocol === protocol)) ports.push({ containerPort, protocol, hostIp: "", hostPort: 0 });
    }
  }
  return ports;
}
