import { randomBytes } from "node:crypto";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { hostname as osHostname } from "node:os";
import { join } from "node:path";

import { canceled, conflict, invalidArgument, isEngineError, notImplemented, toEngineError } from "../errors.ts";
import type { ContainerConfig } from "../images/image-config.ts";
import { chainIdOf } from "../layers/chain-id.ts";
import type { ExecSession, ExitStatus, StdioSession } from "../monitor/monitor.ts";
import { readLogs } from "../monitor/monitor.ts";
import { JsonLogMirror, jsonLogLimits } from "../monitor/json-log.ts";
import { resizeLine, writeCtl } from "../monitor/attach.ts";
import { buildRuntimeSpec, type DeviceNode, type BindMount } from "../runtime/spec.ts";
import { deviceNodes, hostDevices } from "../runtime/devices.ts";
import { signalNumber } from "../runtime/runc.ts";
import { resolveUser } from "../runtime/user.ts";
import { mkdirInRoot } from "../runtime/mkdir-in-root.ts";
import { guardRuntimeDirs } from "../runtime/rootfs-guard.ts";
import { unmountAll } from "../snapshots/mount.ts";
import { RootfsMounts, RUNNING } from "./rootfs-mounts.ts";
import { applyUpdate, type ContainerUpdate } from "./update.ts";
import type { Change } from "../archive/upper-diff.ts";
import { CreateOptionsSchema, type ContainerRecord, type CreateOptions, type MountSpec, type NetworkAttachment } from "./container-record.ts";
import { envKey } from "../../../shared/env.ts";
import { resolveLinks } from "./links.ts";
import { generateName, VALID_CONTAINER_NAME } from "./names.ts";
import { effectiveHealthcheck, healthProbe, HealthMonitor, validateHealthcheck } from "./health.ts";
import { checkHostOptions, logsReadable, parseVolumesFrom } from "./host-options.ts";
import { isErrno } from "../fs-util.ts";
import { confineBindSource } from "./bind-confinement.ts";
import { parseExtraHost } from "../network/hosts.ts";
import { KeyedQueue } from "../keyed-queue.ts";
import { bestEffort } from "../../../shared/best-effort.ts";
import { readContainerStats, type ContainerStats } from "./stats.ts";
import type { ContainerCore, ContainerPaths, ContainerServiceDeps } from "./container-core.ts";
import { ContainerExecs, type ExecConfig, type ExecInstance } from "./exec.ts";
import { ContainerSnapshotOps } from "./snapshot-ops.ts";
import { ContainerNetworking } from "./networking.ts";
import { adoptContainers } from "./adoption.ts";
import { decideRestart } from "./restart-policy.ts";
import {
  checkNamespaceModes,
  defaultNetworks,
  joinsNetworks,
  monitorPaths,
  namespaceModes,
  NEVER,
  publishedPortSpecs,
  runOptions,
  sleep,
  waitInList,
  withShortIdAliases,
  commandLine,
} from "./run-options.ts";

export interface WaitResult {
  statusCode: number;
  error?: string;
}

/** conmon rotates a container's log at this size, so a chatty container cannot fill the disk. */
const LOG_MAX_BYTES = 64 * 1024 * 1024;
/** State.Error of a container whose monitor (conmon) died without recording its exit. */
const MONITOR_DIED = "its monitor died: the container was stopped";

/**
 * The container lifecycle (Docker's semantics): create, start, stop, kill, restart,
 * pause, remove, rename, wait, logs, attach, top, and restart policies, built from the
 * snapshotter (root filesystem), the runtime spec, the monitor (conmon holds stdio, logs
 * and the exit code, so containers outlive the agent), the network manager and the
 * volume store. Its parts, each in its own file: exec (exec.ts), the filesystem as a
 * whole (snapshot-ops.ts), networks joined by hand (networking.ts), adoption at start-up
 * (adoption.ts), the restart decision (restart-policy.ts) and what options derive
 * (run-options.ts).
 *
 * Each container has one owner of its resources: start builds them with an undo
 * stack (nothing is left if a step fails); the exit handler releases them; remove
 * releases what is left. Operations on one container are serialised by one lock, this
 * service's, which the parts take through the core they share.
 */
export class ContainerService {
  private readonly locks = new KeyedQueue();
  private readonly exitWatchers = new Map<string, AbortController>();
  private readonly exitWaiters = new Map<string, Array<(r: WaitResult) => void>>();
  private readonly removeWaiters = new Map<string, Array<() => void>>();
  private readonly pendingAttach = new Map<
    string,
    Array<{ opts: { stdin: boolean; stdout: boolean; stderr: boolean }; resolve: (s: StdioSession) => void; reject: (e: unknown) => void }>
  >();
  private readonly restartTimers = new Map<string, NodeJS.Timeout>();
  /** The back-off of each container failing fast under its restart policy (Docker keeps it in memory too). */
  private readonly restartDelays = new Map<string, number>();
  private closed = false;
  private reconcileTimer?: NodeJS.Timeout;
  private readonly core: ContainerCore;
  private readonly execs: ContainerExecs;
  private readonly snapshotOps: ContainerSnapshotOps;
  private readonly networking: ContainerNetworking;
  private jsonLogTimer?: NodeJS.Timeout;
  private readonly jsonLogs = new Map<string, JsonLogMirror>();
  private readonly health: HealthMonitor;
  /** The one owner of every container's rootfs mount: the running container and copies share it. */
  private readonly rootfsMounts: RootfsMounts;

  constructor(private readonly deps: ContainerServiceDeps) {
    this.rootfsMounts = new RootfsMounts((id) => deps.snapshots.mounts(id));
    this.core = {
      deps,
      get: (idOrName) => this.get(idOrName),
      paths: (id) => this.paths(id),
      withLock: (id, fn) => this.withLock(id, fn),
      emitEvent: (action, record, extra) => this.emitEvent(action, record, extra),
      rootfsMounts: this.rootfsMounts,
    };
    this.execs = new ContainerExecs(this.core);
    this.snapshotOps = new ContainerSnapshotOps(this.core);
    this.networking = new ContainerNetworking(this.core);
    this.health = new HealthMonitor({
      exec: (id, cmd) => this.execs.probeExec(id, cmd),
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

  /**
   * Docker's HostConfig.MemorySwap of a container: as given, or when only a memory limit is set
   * and the kernel accounts swap, twice that limit (what runc is then given).
   */
  memorySwap(o: { memory: number; memorySwap: number }): number {
    return o.memorySwap || (o.memory > 0 && this.deps.specHost.swapLimit ? o.memory * 2 : 0);
  }

  /** One reading of a running container's cgroup and network counters (`docker stats`). */
  stats(record: ContainerRecord): Promise<ContainerStats> {
    return readContainerStats(`${this.deps.cgroupParent}/${record.id}`, record.state.pid, this.deps.ncpu);
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

  paths(id: string): ContainerPaths {
    const dir = this.deps.store.dir(id);
    return {
      dir,
      stateDir: join(dir, "monitor"),
      bundle: dir,
      logPath: join(dir, "container.log"),
      jsonLogPath: join(dir, `${id}-json.log`),
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
    this.deps.events("container", action, record.id, { name: record.name, image: record.imageName, ...extra });
  }

  /** moby's volume mount/unmount events of a container's start and end (named and anonymous volumes, not binds). */
  private volumeEvents(action: "mount" | "unmount", record: ContainerRecord): void {
    for (const m of record.mounts) {
      if (m.type !== "volume") continue;
      const attributes: Record<string, string> = { driver: "local", container: record.id };
      if (action === "mount") Object.assign(attributes, { destination: m.destination, "read/write": String(!m.readonly), propagation: "" });
      this.deps.events("volume", action, m.source, attributes);
    }
  }

  private withLock<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }

  // --- start-up: adopt what survived the agent (adoption.ts) ----------------------

  async init(): Promise<void> {
    await adoptContainers({
      core: this.core,
      health: this.health,
      healthProbeOf: (r) => this.healthProbeOf(r),
      finishRemove: (r, opts) => this.finishRemove(r, opts),
      handleExit: (r, status, opts) => this.handleExit(r, status, opts),
      watchExit: (r) => this.watchExit(r),
      start: (id) => this.start(id),
    });
    const { network, logger } = this.deps;
    this.reconcileTimer = setInterval(() => {
      network.reconcileRules().catch((err: unknown) => logger.warn({ err }, "firewall reconcile failed"));
    }, 10_000);
    this.reconcileTimer.unref();
    // Docker's json-file is written as the container writes; here it follows conmon's file within a second (json-log.ts).
    this.jsonLogTimer = setInterval(() => {
      for (const r of this.deps.store.list()) {
        if (r.state.status === "running" || r.state.status === "paused" || r.state.status === "restarting")
          this.jsonLog(r)
            ?.sync()
            .catch((err: unknown) => logger.warn({ err, id: r.id }, "json-file log: catching up failed"));
      }
    }, 1000);
    this.jsonLogTimer.unref();
  }

  /** The json-file mirror of a container's log (json-file and local drivers), made on first use. */
  private jsonLog(record: ContainerRecord): JsonLogMirror | undefined {
    const driver = record.options.logConfig.type;
    if (driver !== "json-file" && driver !== "local") return undefined;
    let m = this.jsonLogs.get(record.id);
    if (!m) {
      const p = this.paths(record.id);
      m = new JsonLogMirror(p.logPath, p.jsonLogPath, jsonLogLimits(driver, record.options.logConfig.config));
      this.jsonLogs.set(record.id, m);
    }
    return m;
  }

  close(): void {
    this.closed = true;
    if (this.jsonLogTimer) clearInterval(this.jsonLogTimer);
    for (const m of this.jsonLogs.values()) void m.close().catch(bestEffort(this.deps.logger, "close a json-file log"));
    this.jsonLogs.clear();
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
    // As `docker start` (moby ResetRestartManager): a new run of the policy's back-off.
    this.restartDelays.delete(record.id);
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
      const joins = joinsNetworks(record.options.networkMode) ? withShortIdAliases(record, record.networks ?? defaultNetworks(record.options)) : [];
      record.networks = joins;
      const links = await resolveLinks(
        record,
        (n) => this.get(n),
        async (imageId) => (await images.config(imageId).catch(bestEffort(logger, `read the config of image ${imageId}`)))?.config ?? undefined,
      );
      const attached = await network.attach({
        containerId: record.id,
        name: record.name,
        hostname,
        networkMode: record.options.networkMode,
        ports: record.options.ports,
        networks: joins.map((n) => ({ network: n.name, aliases: n.aliases, ipv4Address: n.ipv4Address })),
        macAddress: record.options.macAddress || undefined,
        extraHosts: [...record.options.extraHosts, ...links.hosts],
        dns: { servers: record.options.dns, search: record.options.dnsSearch, options: record.options.dnsOptions },
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
      this.volumeEvents("mount", record);
      undo.push(async () => this.volumeEvents("unmount", record));
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
      // The container's own variables win over the links', as in Docker.
      const own = new Set(spec.process.env.map(envKey));
      spec.process.env.push(...links.env.filter((e) => !own.has(envKey(e))));
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
    // The last lines reach the json file now, not at the next look.
    await this.jsonLog(record)
      ?.sync(true)
      .catch(bestEffort(logger, `json-file log of ${record.id}: last catch-up`));
    // Without a monitor the processes may still run: --force kills them all (the cgroup) before deleting.
    await runc.delete(record.id, { force: true }).catch((err: unknown) => logger.warn({ err, id: record.id }, "runc delete after the exit failed"));
    await network.detach(record.id).catch((err: unknown) => logger.warn({ err, id: record.id }, "network detach failed"));
    await this.rootfsMounts.release(record.id, p.rootfs, RUNNING).catch((err: unknown) => logger.warn({ err, id: record.id }, "unmount failed"));
    this.volumeEvents("unmount", record);
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
    const decision = decideRestart({
      policy: record.options.restartPolicy,
      restartCount: record.state.restartCount,
      exitCode: status.exitCode,
      manualStop: record.state.stoppedByUser,
      shuttingDown: this.closed,
      ranForMs: ranFor,
      previousDelayMs: this.restartDelays.get(record.id) ?? 0,
    });
    const restart = decision.restart;
    if (decision.restart) this.restartDelays.set(record.id, decision.delayMs);
    if (restart) {
      record.state.restartCount += 1;
      record.state.status = "restarting";
    }
    await this.deps.store.save(record);
    if (status.oomKilled) this.emitEvent("oom", record);
    this.emitEvent("die", record, { exitCode: String(status.exitCode) });
    for (const w of this.exitWaiters.get(record.id) ?? []) w({ statusCode: status.exitCode });
    this.exitWaiters.delete(record.id);

    if (decision.restart) {
      const delay = decision.delayMs;
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
    await this.jsonLogs
      .get(record.id)
      ?.close()
      .catch(bestEffort(logger, `close the json-file log of ${record.id}`));
    this.jsonLogs.delete(record.id);
    this.emitEvent("destroy", record);
    for (const w of this.removeWaiters.get(record.id) ?? []) w();
    this.removeWaiters.delete(record.id);
    this.execs.forget(record.id);
    this.restartDelays.delete(record.id);
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
    const mirror = this.jsonLog(record);
    return (mirror ? mirror.read.bind(mirror) : (o: Parameters<typeof readLogs>[1]) => readLogs(this.paths(record.id).logPath, o))({
      ...opts,
      isRunning: async () => {
        const r = this.deps.store.get(record.id);
        return !!r && ["running", "paused", "restarting"].includes(r.state.status);
      },
    });
  }

  // --- health checks (the monitor is health.ts; these feed it) -----------------------------

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

  // --- exec (exec.ts) ---------------------------------------------------------------

  createExec(idOrName: string, config: ExecConfig): ExecInstance {
    return this.execs.createExec(idOrName, config);
  }

  getExec(id: string): ExecInstance {
    return this.execs.getExec(id);
  }

  startExec(execId: string, opts: { detach?: boolean } = {}): Promise<ExecSession> {
    return this.execs.startExec(execId, opts);
  }

  execDone(id: string): Promise<void> {
    return this.execs.execDone(id);
  }

  killExec(id: string): void {
    this.execs.killExec(id);
  }

  killExecTree(id: string): Promise<void> {
    return this.execs.killExecTree(id);
  }

  execIds(containerId: string): string[] {
    return this.execs.execIds(containerId);
  }

  // --- the filesystem as a whole (snapshot-ops.ts) -----------------------------------

  withRootfs<T>(idOrName: string, fn: (rootfs: string, record: ContainerRecord) => Promise<T>): Promise<T> {
    return this.snapshotOps.withRootfs(idOrName, fn);
  }

  upperDir(idOrName: string): Promise<string> {
    return this.snapshotOps.upperDir(idOrName);
  }

  sizeRw(idOrName: string): Promise<number> {
    return this.snapshotOps.sizeRw(idOrName);
  }

  diff(idOrName: string): Promise<Change[]> {
    return this.snapshotOps.diff(idOrName);
  }

  exportTo(idOrName: string, out: NodeJS.WritableStream): Promise<void> {
    return this.snapshotOps.exportTo(idOrName, out);
  }

  commit(idOrName: string, opts: Parameters<ContainerSnapshotOps["commit"]>[1]): Promise<string> {
    return this.snapshotOps.commit(idOrName, opts);
  }

  // --- networks joined by hand (networking.ts) ------------------------------------------

  connect(idOrName: string, networkName: string, cfg: Partial<Omit<NetworkAttachment, "name">>): Promise<void> {
    return this.networking.connect(idOrName, networkName, cfg);
  }

  disconnect(idOrName: string, networkName: string, force: boolean): Promise<void> {
    return this.networking.disconnect(idOrName, networkName, force);
  }

  async readTextFile(id: string, name: "hosts" | "hostname" | "resolv.conf"): Promise<string> {
    return readFile(join(this.deps.store.dir(id), name), "utf8").catch(() => "");
  }
}
