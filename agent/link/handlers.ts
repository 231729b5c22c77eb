import { Readable } from "node:stream";
import type { Engine } from "../engine/engine.ts";
import { isDockerfileError } from "../engine/build/dockerfile.ts";
import { conflict, invalidArgument } from "../engine/errors.ts";
import type { ContainerStats } from "../engine/containers/stats.ts";
import type { ContainerRecord } from "../engine/containers/container-record.ts";
import type { DeleteRecord } from "../engine/images/image-service.ts";
import { familiarString, parseNormalizedReference } from "../../shared/reference.ts";
import { API_VERSION, BERTH_VERSION, ENGINE_VERSION } from "../version.ts";
import {
  MAX_LOG_BYTES,
  type ContainerInspect,
  type StatsSample,
  type ExecInput,
  type LinkRequest,
  type LogLine,
  type MethodName,
  type ResultOf,
  type StreamEventOf,
} from "./contract.ts";
import { bestEffort, type DebugLog } from "../../shared/best-effort.ts";
import { containerEnv } from "../../shared/env.ts";

/** What a request handler gets besides its params. */
export interface HandlerContext {
  /** Aborted on `cancel` or on the request's time limit (abortable methods only). */
  signal: AbortSignal;
  /** Reports a stream event of the request (progress, log lines). */
  stream: (event: unknown) => void;
  /** Asks for an inventory look soon (after a change the engine does not announce). */
  inventoryChanged: () => void;
  /** Sends a fresh full snapshot on the link and returns it (`inventory.snapshot`). */
  snapshot: () => Promise<ResultOf<"inventory.snapshot">>;
  /** Receives the console's `input` messages for this request (exec). */
  onInput: (listener: (input: ExecInput) => void) => void;
}

type Handlers = {
  [M in MethodName]: (
    params: Extract<LinkRequest, { method: M }>["params"],
    ctx: HandlerContext & { stream: (event: StreamEventOf<M>) => void },
  ) => Promise<ResultOf<M>>;
};

function deleteLists(records: DeleteRecord[]): { untagged: string[]; deleted: string[] } {
  const untagged: string[] = [];
  const deleted: string[] = [];
  for (const r of records) {
    if ("Untagged" in r) untagged.push(r.Untagged);
    else deleted.push(r.Deleted);
  }
  return { untagged, deleted };
}

/** An empty tar archive: the context of a build that has only its Dockerfile. */
const EMPTY_TAR = Buffer.alloc(1024);

/**
 * Gathers a build's text (RUN output arrives in small chunks) into one stream event per
 * `intervalMs`, or sooner when `maxChars` are held, so a chatty RUN does not send a link
 * message per write.
 */
class TextBatcher {
  private held = "";
  private timer?: NodeJS.Timeout;
  constructor(
    private readonly send: (text: string) => void,
    private readonly intervalMs = 100,
    private readonly maxChars = 64 * 1024,
  ) {}

  push(text: string): void {
    this.held += text;
    if (this.held.length >= this.maxChars) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.intervalMs);
  }

  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.held) return;
    const t = this.held;
    this.held = "";
    this.send(t);
  }
}

/** `docker stats`'s numbers from two readings: CPU since the previous one, memory without the page cache. */
export function statsSample(s: ContainerStats, previous: ContainerStats | undefined): StatsSample {
  let cpuPercent: number | null = null;
  if (previous) {
    const cpuDelta = s.cpu.totalUsage - previous.cpu.totalUsage;
    const systemDelta = s.cpu.systemUsage - previous.cpu.systemUsage;
    const cpus = s.cpu.onlineCpus || s.cpu.perCpu.length || 1;
    cpuPercent = systemDelta > 0 && cpuDelta > 0 ? (cpuDelta / systemDelta) * cpus * 100 : 0;
  }
  const cache = s.memory.stats.inactive_file ?? s.memory.stats.total_inactive_file ?? 0;
  const sum = (op: string) => s.blkio.filter((b) => b.op === op).reduce((n, b) => n + b.value, 0);
  const nets = Object.values(s.networks);
  return {
    time: Date.parse(s.read),
    cpuPercent,
    onlineCpus: s.cpu.onlineCpus,
    memoryUsage: Math.max(0, cache < s.memory.usage ? s.memory.usage - cache : s.memory.usage),
    memoryLimit: s.memory.limit,
    netRx: nets.reduce((n, x) => n + x.rxBytes, 0),
    netTx: nets.reduce((n, x) => n + x.txBytes, 0),
    blockRead: sum("read"),
    blockWrite: sum("write"),
    pids: s.pids.current,
  };
}

const isLive = (c: ContainerRecord) => c.state.status === "running" || c.state.status === "paused";

/** The agent process as the link sees it: what would start it again after it exits. */
export interface AgentProcess {
  supervisor: string | null;
}

/**
 * The link's methods as engine calls: one translation per method, nothing else. Errors
 * are the engine's own (EngineError); the caller turns them into acknowledgements.
 */
export function linkHandlers(engine: Engine, log: DebugLog, agent: AgentProcess = { supervisor: null }): Handlers {
  const { images, containers } = engine;
  return {
    "inventory.snapshot": async (_p, ctx) => ctx.snapshot(),
    "system.info": async () => {
      const all = engine.containers.list();
      const count = (st: string) => all.filter((c) => c.state.status === st).length;
      return {
        engineId: engine.id,
        agentVersion: BERTH_VERSION,
        engineVersion: ENGINE_VERSION,
        apiVersion: API_VERSION,
        facts: engine.facts,
        dataRoot: engine.config.dataRoot,
        driver: "overlay2",
        images: images.count(),
        containers: all.length,
        containersRunning: count("running"),
        containersPaused: count("paused"),
        containersStopped: all.length - count("running") - count("paused"),
        registryMirrors: engine.config.registryMirrors,
        insecureRegistries: engine.config.insecureRegistries,
        systemTime: new Date().toISOString(),
        defaultRuntime: engine.runtimes.default.name,
        supervisor: agent.supervisor,
      };
    },
    // The restart itself is the link's, once this answer is sent (ConsoleLink "restart").
    "agent.restart": async () => {
      if (!agent.supervisor)
        throw conflict("this agent is not supervised (no systemd unit, no --supervised): nothing would start it again after it exits; restart it on the host");
      return { supervisor: agent.supervisor };
    },
    "image.pull": async (p, ctx) => {
      if (p.insecure) engine.registry.allowInsecure(parseNormalizedReference(p.reference).domain);
      const r = await engine.puller.pull(p.reference, { credentials: p.credentials, onProgress: ctx.stream, signal: ctx.signal });
      const reference = familiarString(r.reference);
      ctx.inventoryChanged();
      return { id: r.id, reference, digest: r.digest, upToDate: r.upToDate };
    },
    "image.push": async (p, ctx) => {
      if (p.insecure) engine.registry.allowInsecure(parseNormalizedReference(p.reference).domain);
      const pushed = await engine.pusher.push(p.reference, p.tag, { credentials: p.credentials, onProgress: ctx.stream, signal: ctx.signal });
      return { pushed };
    },
    "build.upload": async (p) => ({ size: await engine.builder.uploads.write(p.uploadId, p.offset, Buffer.from(p.data, "base64")) }),
    "image.build": async (p, ctx) => {
      const text = new TextBatcher((t) => ctx.stream({ text: t }));
      try {
        const context = p.context ? await engine.builder.uploads.open(p.context.uploadId, p.context.size) : Readable.from([EMPTY_TAR]);
        const r = await engine.builder.build(
          {
            context,
            dockerfileText: p.dockerfile,
            tags: p.tags,
            buildArgs: p.buildArgs,
            ...(p.target ? { target: p.target } : {}),
            noCache: p.noCache,
            pull: p.pull,
            labels: p.labels,
            networkMode: p.networkMode,
            extraHosts: [],
            shmSize: 0,
            rm: true,
            forceRm: true,
            cacheFrom: [],
            signal: ctx.signal,
          },
          {
            stream: (t) => text.push(t),
            // Byte counters of a base image's pull would flood the link; its status changes say enough here.
            progress: (e) => {
              if (e.current === undefined) {
                text.flush();
                ctx.stream(e);
              }
            },
            aux: () => undefined,
          },
        );
        ctx.inventoryChanged();
        return { imageId: r.imageId, tags: r.tags };
      } catch (e) {
        // The console shows the Dockerfile in an editor: point at its line the way editors and BuildKit do.
        if (isDockerfileError(e)) throw invalidArgument(`Dockerfile:${e.dockerfileLine}: ${e.reason}`);
        throw e;
      } finally {
        text.flush();
        if (p.context) await engine.builder.uploads.remove(p.context.uploadId);
      }
    },
    "image.tag": async (p, ctx) => {
      await images.tag(p.source, p.target);
      ctx.inventoryChanged();
      return {};
    },
    "image.remove": async (p, ctx) => {
      const result = deleteLists(await images.remove(p.reference, { force: p.force, noPrune: p.noPrune }));
      ctx.inventoryChanged();
      return result;
    },
    "image.prune": async (p, ctx) => {
      const r = await images.prune({ all: p.all, until: p.until, label: p.label });
      ctx.inventoryChanged();
      return { ...deleteLists(r.deleted), spaceReclaimed: r.spaceReclaimed };
    },
    "image.history": async (p) => ({ items: await images.history(p.reference) }),
    "system.df": async () => {
      const du = await images.diskUsage();
      const all = containers.list();
      let containerBytes = 0;
      for (const c of all) containerBytes += await containers.sizeRw(c.id);
      const vols = await engine.volumes.list({});
      let volumeBytes = 0;
      let inUse = 0;
      for (const v of vols) {
        volumeBytes += (await engine.volumes.usage(v.name).catch(bestEffort(log, `measure volume ${v.name}`))) ?? 0;
        if (containers.volumeUsers(v.name).length) inUse++;
      }
      return {
        images: { count: du.images.length, active: du.images.filter((i) => all.some((c) => c.imageId === i.id)).length, size: du.layersSize },
        containers: { count: all.length, running: all.filter((c) => c.state.status === "running").length, size: containerBytes },
        volumes: { count: vols.length, inUse, size: volumeBytes },
      };
    },
    "container.prune": async (_p, ctx) => {
      const r = await containers.prune();
      ctx.inventoryChanged();
      return r;
    },
    "volume.create": async (p, ctx) => {
      const v = await engine.volumes.create({ ...(p.name ? { name: p.name } : {}), labels: p.labels, options: p.driverOpts });
      ctx.inventoryChanged();
      return { name: v.name };
    },
    "volume.remove": async (p, ctx) => {
      await engine.volumes.remove(p.name, { force: p.force }, (n) => containers.volumeUsers(n));
      ctx.inventoryChanged();
      return {};
    },
    "volume.prune": async (p, ctx) => {
      const r = await engine.volumes.prune((n) => containers.volumeUsers(n).length > 0, { all: p.all });
      ctx.inventoryChanged();
      return r;
    },
    "volume.inspect": async (p) => {
      const v = await engine.volumes.get(p.name);
      const users = new Set(containers.volumeUsers(v.name));
      return {
        name: v.name,
        driver: v.driver,
        mountpoint: v.mountpoint,
        createdAt: v.createdAt,
        labels: v.labels,
        options: v.options,
        containers: containers
          .list()
          .filter((c) => users.has(c.id))
          .map((c) => ({ id: c.id, name: c.name, state: c.state.status })),
      };
    },
    "network.create": async (p, ctx) => {
      const n = await engine.network.createNetwork({ name: p.name, subnet: p.subnet, gateway: p.gateway, internal: p.internal, labels: p.labels });
      ctx.inventoryChanged();
      return { id: n.id };
    },
    "network.remove": async (p, ctx) => {
      await engine.network.removeNetwork(p.id);
      ctx.inventoryChanged();
      return {};
    },
    "network.prune": async (_p, ctx) => {
      const deleted = await engine.network.prune();
      ctx.inventoryChanged();
      return { deleted };
    },
    "container.create": async (p) => {
      const record = await containers.create(p);
      return { id: record.id, name: record.name };
    },
    "container.start": async (p) => ({ changed: await containers.start(p.id) }),
    "container.stop": async (p) => ({ changed: await containers.stop(p.id, p.timeoutSeconds, p.signal) }),
    "container.restart": async (p) => {
      await containers.restart(p.id, p.timeoutSeconds);
      return {};
    },
    "container.pause": async (p) => {
      await containers.pause(p.id);
      return {};
    },
    "container.unpause": async (p) => {
      await containers.unpause(p.id);
      return {};
    },
    "container.kill": async (p) => {
      await containers.kill(p.id, p.signal);
      return {};
    },
    "container.remove": async (p, ctx) => {
      await containers.remove(p.id, { force: p.force, volumes: p.volumes });
      ctx.inventoryChanged();
      return {};
    },
    "container.exec": async (p, ctx) => {
      const exec = containers.createExec(p.id, { cmd: p.cmd, tty: p.tty, attachStdin: true, env: [], ...(p.user ? { user: p.user } : {}) });
      const session = await containers.startExec(exec.id);
      if (p.tty) await session.resize(p.cols, p.rows).catch(bestEffort(log, `resize the terminal of an exec in ${p.id}`));
      session.output.on("data", (chunk: { data: Buffer }) => ctx.stream({ data: chunk.data.toString("base64") }));
      ctx.onInput((input) => {
        if (input.data && session.stdin) session.stdin.write(Buffer.from(input.data, "base64"));
        if (input.resize) void session.resize(input.resize.cols, input.resize.rows).catch(bestEffort(log, `resize the terminal of an exec in ${p.id}`)); // it may have ended
        if (input.eof) session.stdin?.end();
      });
      // The console's user left (closed terminal, logout, role taken away): end what they ran, not only the stream.
      const abort = () => void containers.killExecTree(exec.id).finally(() => session.close());
      ctx.signal.addEventListener("abort", abort, { once: true });
      try {
        await containers.execDone(exec.id);
        return { exitCode: containers.getExec(exec.id).exitCode ?? 0 };
      } finally {
        ctx.signal.removeEventListener("abort", abort);
        session.close();
      }
    },
    "container.inspect": async (p): Promise<ContainerInspect> => {
      const c = containers.get(p.id);
      const image = (await images.config(c.imageId).catch(bestEffort(log, `read the config of image ${c.imageId}`)))?.config ?? {};
      const o = c.options;
      return {
        id: c.id,
        name: c.name,
        created: c.created,
        imageId: c.imageId,
        imageName: c.imageName,
        path: c.path,
        args: c.args,
        state: { ...c.state },
        options: o,
        config: {
          env: containerEnv(image.Env, o.env),
          labels: { ...(image.Labels ?? {}), ...o.labels },
          user: o.user ?? image.User ?? "",
          workingDir: o.workingDir ?? image.WorkingDir ?? "",
          entrypoint: o.entrypoint === "" ? null : (o.entrypoint ?? image.Entrypoint ?? null),
          cmd: o.cmd ?? (o.entrypoint !== undefined ? null : (image.Cmd ?? null)),
        },
        mounts: c.mounts.map((m) => ({ type: m.type, source: m.source, destination: m.destination, readonly: m.readonly, anonymous: m.anonymous })),
        networks: c.endpoints.map((e) => ({
          name: e.networkName,
          networkId: e.networkId,
          ipAddress: e.ipAddress,
          prefixLen: e.prefixLen,
          gateway: e.gateway,
          macAddress: e.macAddress,
          aliases: e.aliases,
        })),
        ports: c.publishedPorts,
      };
    },
    "container.stats": async (p, ctx) => {
      let previous: ContainerStats | undefined;
      // Ends when the container stops (like `docker stats` on one container) or the viewer leaves.
      for (let c = containers.get(p.id); isLive(c) && !ctx.signal.aborted; c = containers.get(c.id)) {
        const s = await containers.stats(c);
        ctx.stream(statsSample(s, previous));
        previous = s;
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, p.intervalMs);
          function done() {
            clearTimeout(t);
            ctx.signal.removeEventListener("abort", done);
            resolve();
          }
          ctx.signal.addEventListener("abort", done, { once: true });
        });
      }
      ctx.signal.throwIfAborted();
      return {};
    },
    "container.logs": async (p, ctx) => {
      const lines: LogLine[] = [];
      let bytes = 0;
      let truncated = false;
      const entries = containers.logs(p.id, { tail: p.tail, since: p.since, until: p.until, follow: p.follow, signal: ctx.signal });
      for await (const e of entries) {
        const line: LogLine = { stream: e.stream, time: e.time, text: e.data.toString("utf8") };
        if (p.follow) {
          ctx.stream(line);
          continue;
        }
        lines.push(line);
        bytes += e.data.length;
        while (bytes > MAX_LOG_BYTES && lines.length > 1) {
          bytes -= Buffer.byteLength(lines.shift()!.text);
          truncated = true;
        }
      }
      ctx.signal.throwIfAborted(); // reading stops quietly on abort: say it was canceled, not done
      return { lines, truncated };
    },
  };
}
