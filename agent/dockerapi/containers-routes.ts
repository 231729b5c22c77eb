import type { Engine } from "../engine/engine.ts";
import type { ContainerRecord, CreateOptions, MountSpec, PortSpec } from "../engine/containers/container-record.ts";
import { EngineError, invalidArgument, isEngineError, notFound } from "../engine/errors.ts";
import { settled } from "../../shared/best-effort.ts";
import { parseUntil } from "../engine/images/image-service.ts";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { setTimeout as delay } from "node:timers/promises";
import { frame, hijack, parseDetachKeys, pumpSession, readUpgradeBody, type HijackedStream } from "./stdio-stream.ts";
import { boolParam, clientGone, parseFilters, readJsonBody, sendJson, sendNoContent, type Router } from "./router.ts";
import { containerStatusText } from "../../shared/container-status-text.ts";
import { containerEnv } from "../../shared/env.ts";
import { configFields, configVolumes, hostConfigFields } from "./inspect-fields.ts";
import { parseSecurityOpts } from "../engine/runtime/security-opt.ts";
import { MASKED_PATHS, READONLY_PATHS } from "../engine/runtime/spec.ts";
import { effectiveHealthcheck, healthcheckToDocker } from "../engine/containers/health.ts";
import {
  CommitBodySchema,
  CreateBodySchema,
  ExecCreateBodySchema,
  ExecStartBodySchema,
  parseDockerBody,
  type DockerCreateBody,
  type DockerHostConfig,
} from "./schemas.ts";

/** The /containers and /exec endpoints of the Docker Engine API, translated into engine calls. */
export function addContainerRoutes(router: Router, engine: Engine): void {
  const { containers } = engine;

  router.post("/containers/create", async ({ req, res, query, apiVersion }) => {
    const body = parseDockerBody(CreateBodySchema, await readJsonBody(req));
    // Go leaves the embedded Config nil when no field of it was sent.
    if (Object.keys(body).every((k) => k === "HostConfig" || k === "NetworkingConfig"))
      throw invalidArgument("Config cannot be empty in order to create a container");
    const endpoints = Object.keys(body.NetworkingConfig?.EndpointsConfig ?? {});
    // Before API 1.44 Docker took one network at create (the others by connect), and says so.
    if (endpoints.length > 1 && versionBelow(apiVersion, "1.44"))
      throw invalidArgument(`Container cannot be connected to network endpoints: ${endpoints.join(", ")}`);
    const options = createOptionsFromDocker(body, query.get("name") ?? undefined);
    try {
      engine.images.resolve(options.image);
    } catch (e) {
      throw notFound(`No such image: ${options.image}`, e);
    }
    const record = await containers.create(options);
    sendJson(res, 201, { Id: record.id, Warnings: [] });
  });

  router.get("/containers/json", async ({ res, query }) => {
    const f = parseFilters(query);
    const all = boolParam(query, "all");
    const limit = Number(query.get("limit") ?? -1);
    let list = containers.list();
    list = filterContainers(list, f, all || limit > 0 || f.has("status") || f.has("exited"), engine);
    if (limit > 0) list = list.slice(0, limit);
    const size = boolParam(query, "size");
    const out = [];
    for (const c of list) out.push(await containerSummaryJson(engine, c, size));
    sendJson(res, 200, out);
  });

  router.post("/containers/prune", async ({ res }) => {
    const r = await containers.prune();
    sendJson(res, 200, { ContainersDeleted: r.deleted.length ? r.deleted : null, SpaceReclaimed: r.spaceReclaimed });
  });

  router.get("/containers/{id}/json", async ({ res, params, query }) => {
    sendJson(res, 200, await containerInspectJson(engine, containers.get(params.id!), boolParam(query, "size")));
  });

  router.post("/containers/{id}/start", async ({ res, params }) => {
    const started = await containers.start(params.id!);
    sendNoContent(res, started ? 204 : 304);
  });

  router.post("/containers/{id}/stop", async ({ res, params, query }) => {
    const t = query.get("t") ?? query.get("timeout");
    const stopped = await containers.stop(params.id!, t !== null && t !== "" ? Number(t) : undefined, query.get("signal") ?? undefined);
    sendNoContent(res, stopped ? 204 : 304);
  });

  router.post("/containers/{id}/restart", async ({ res, params, query }) => {
    const t = query.get("t");
    await containers.restart(params.id!, t !== null && t !== "" ? Number(t) : undefined);
    sendNoContent(res);
  });

  router.post("/containers/{id}/kill", async ({ res, params, query }) => {
    await containers.kill(params.id!, query.get("signal") || "SIGKILL");
    sendNoContent(res);
  });

  router.post("/containers/{id}/pause", async ({ res, params }) => {
    await containers.pause(params.id!);
    sendNoContent(res);
  });

  router.post("/containers/{id}/unpause", async ({ res, params }) => {
    await containers.unpause(params.id!);
    sendNoContent(res);
  });

  router.post("/containers/{id}/rename", async ({ res, params, query }) => {
    await containers.rename(params.id!, query.get("name") ?? "");
    sendNoContent(res);
  });

  router.post("/containers/{id}/wait", async (ctx) => {
    const { res, params, query } = ctx;
    const condition = (query.get("condition") || "not-running") as "not-running" | "next-exit" | "removed";
    if (!["not-running", "next-exit", "removed"].includes(condition)) throw invalidArgument(`invalid condition: "${condition}"`);
    const record = containers.get(params.id!);
    const waiting = containers.wait(record.id, condition, clientGone(ctx));
    // Headers go out at once so the CLI knows the wait is registered before it starts the container.
    res.writeHead(200, { "Content-Type": "application/json" });
    res.flushHeaders();
    const r = await waiting;
    res.end(JSON.stringify({ StatusCode: r.statusCode, Error: r.error ? { Message: r.error } : null }));
  });

  router.delete("/containers/{id}", async ({ res, params, query }) => {
    if (boolParam(query, "link")) {
      // A legacy link is named /parent/name; a plain container name is its own default link, which Docker never removes.
      containers.get(params.id!);
      throw new EngineError("Internal", "Conflict, cannot remove the default link name of the container");
    }
    await containers.remove(params.id!, { force: boolParam(query, "force"), volumes: boolParam(query, "v") });
    sendNoContent(res);
  });

  router.post("/containers/{id}/resize", async ({ res, params, query }) => {
    await containers.resize(params.id!, Number(query.get("w") ?? 80), Number(query.get("h") ?? 24));
    sendNoContent(res, 200);
  });

  router.post("/containers/{id}/attach", async (ctx) => {
    const { params, query } = ctx;
    const record = containers.get(params.id!);
    const wantStdin = boolParam(query, "stdin");
    const wantStdout = boolParam(query, "stdout");
    const wantStderr = boolParam(query, "stderr");
    // Docker's defaults: neither the logs nor the live stream unless asked for (the CLI asks for stream=1).
    const replay = boolParam(query, "logs");
    const live = boolParam(query, "stream");
    const detachKeys = parseDetachKeys(query.get("detachKeys") ?? "");
    const tty = record.options.tty;
    const gone = clientGone(ctx);
    const attach = () => containers.attach(record.id, { stdin: wantStdin, stdout: wantStdout, stderr: wantStderr }, gone);
    // The CLI (docker run) waits for the upgrade before it starts the container, and the
    // session of a created container only exists once it starts: register before switching
    // protocols. With logs to replay first, the session is connected after them, as Docker does.
    let attaching = live && !replay ? attach() : undefined;
    const stream = hijack(ctx, !tty);
    let session;
    try {
      if (replay) {
        for await (const entry of containers.logs(record.id, { signal: gone })) {
          if ((entry.stream === "stdout" && !wantStdout) || (entry.stream === "stderr" && !wantStderr)) continue;
          await writeOut(stream, tty ? entry.data : frame(entry.stream, entry.data));
          if (stream.gone) return;
        }
      }
      if (!live) {
        stream.close();
        return;
      }
      attaching ??= attach();
      session = await attaching;
    } catch (e) {
      if (stream.gone) return;
      stream.close();
      throw e;
    }
    // The container keeps running when its client leaves or detaches: only the session ends.
    pumpSession(stream, session, {
      framed: !tty,
      stdin: wantStdin,
      closeStdinOnEof: record.options.stdinOnce,
      detachKeys: tty && wantStdin ? detachKeys : undefined,
    });
  });

  router.get("/containers/{id}/logs", async (ctx) => {
    const { res, params, query } = ctx;
    const record = containers.get(params.id!);
    const stdout = boolParam(query, "stdout");
    const stderr = boolParam(query, "stderr");
    if (!stdout && !stderr) throw invalidArgument("Bad parameters: you must choose at least one stream");
    const tailParam = query.get("tail");
    const tail = tailParam && tailParam !== "all" ? Number(tailParam) : undefined;
    const since = query.get("since") ? logTime(query.get("since")!) : undefined;
    const until = query.get("until") ? logTime(query.get("until")!) : undefined;
    const timestamps = boolParam(query, "timestamps");
    const signal = clientGone(ctx);
    const tty = record.options.tty;
    // Before the headers: a driver that cannot be read is refused with a status of its own.
    const entries = containers.logs(record.id, { follow: boolParam(query, "follow"), tail, since, until, signal });
    res.writeHead(200, { "Content-Type": tty ? "application/vnd.docker.raw-stream" : "application/vnd.docker.multiplexed-stream" });
    res.flushHeaders();
    try {
      for await (const entry of entries) {
        if ((entry.stream === "stdout" && !stdout) || (entry.stream === "stderr" && !stderr)) continue;
        const data = timestamps ? Buffer.concat([Buffer.from(entry.time + " "), entry.data]) : entry.data;
        // A slow reader holds the log reader back instead of filling memory.
        if (!res.write(tty ? data : frame(entry.stream, data))) await once(res, "drain", { signal });
      }
    } catch (e) {
      if (!signal.aborted) throw e;
      return;
    }
    res.end();
  });

  router.get("/containers/{id}/top", async ({ res, params, query }) => {
    const r = await containers.top(params.id!, query.get("ps_args") || "-ef");
    sendJson(res, 200, { Titles: r.titles, Processes: r.processes });
  });

  router.get("/containers/{id}/changes", async ({ res, params }) => {
    const changes = await containers.diff(params.id!);
    sendJson(
      res,
      200,
      changes.map((c) => ({ Path: c.path, Kind: c.kind })),
    );
  });

  router.get("/containers/{id}/export", async ({ res, params }) => {
    const record = containers.get(params.id!);
    res.writeHead(200, { "Content-Type": "application/x-tar" });
    try {
      await containers.exportTo(record.id, res);
    } catch (e) {
      // Half a tar was sent: cutting the connection is how the client learns it is incomplete.
      res.destroy(e as Error);
    }
  });

  router.get("/containers/{id}/stats", async (ctx) => {
    const { res, params, query } = ctx;
    const record = containers.get(params.id!);
    const stream = query.get("stream") === null ? true : boolParam(query, "stream");
    const oneShot = boolParam(query, "one-shot");
    const signal = clientGone(ctx);
    res.writeHead(200, { "Content-Type": "application/json" });
    let previous: StatsSample | undefined;
    const sample = async () => statsJson(engine, containers.get(record.id), previous);
    if (!oneShot) {
      previous = await sample();
      if (!(await pause(stream ? 0 : 1000, signal))) return;
    }
    do {
      const current = await sample();
      if (signal.aborted) return;
      res.write(JSON.stringify(current) + "\n");
      previous = current;
      if (!stream) break;
    } while ((await pause(1000, signal)) && containers.exists(record.id));
    res.end();
  });

  router.post("/containers/{id}/exec", async ({ req, res, params }) => {
    const body = parseDockerBody(ExecCreateBodySchema, await readJsonBody(req));
    const detachKeys = body.DetachKeys ?? "";
    try {
      parseDetachKeys(detachKeys);
    } catch (e) {
      throw invalidArgument(`Invalid escape keys (${detachKeys}) provided`, e);
    }
    const exec = containers.createExec(params.id!, {
      cmd: body.Cmd ?? [],
      tty: !!body.Tty,
      attachStdin: !!body.AttachStdin,
      attachStdout: !!body.AttachStdout,
      attachStderr: !!body.AttachStderr,
      env: body.Env ?? [],
      user: body.User || undefined,
      workingDir: body.WorkingDir || undefined,
      privileged: !!body.Privileged,
      detachKeys,
    });
    sendJson(res, 201, { Id: exec.id });
  });

  router.post("/exec/{id}/start", async (ctx) => {
    const body = parseDockerBody(ExecStartBodySchema, (await readUpgradeBody(ctx)).body);
    const exec = containers.getExec(ctx.params.id!);
    const detach = !!body.Detach;
    if (detach) {
      await containers.startExec(exec.id, { detach });
      sendNoContent(ctx.res, 200);
      return;
    }
    // Docker frames by what the start request says (Tty), not by how the exec was created: a
    // client that created a TTY exec but starts it without Tty gets the terminal's bytes framed as stdout.
    const framed = !body.Tty;
    const stream = hijack(ctx, framed);
    let session;
    try {
      session = await containers.startExec(exec.id);
    } catch (e) {
      // As Docker: the exec did not start (a missing binary, an unknown user…); the stream
      // carries the error on stdout and ends, and the exec's exit code (126/127) tells the CLI.
      if (!stream.gone) {
        const text = Buffer.from(`${e instanceof Error ? e.message : String(e)}\r\n`);
        stream.write(framed ? frame("stdout", text) : text);
        stream.close();
      }
      return;
    }
    const size = body.ConsoleSize;
    if (exec.config.tty && Array.isArray(size) && size.length === 2 && Number(size[0]) > 0 && Number(size[1]) > 0) {
      // An exec that already ended has no terminal to size; its client hears the end itself.
      await settled(session.resize(Number(size[1]), Number(size[0])));
    }
    pumpSession(stream, session, {
      framed,
      stdout: exec.config.attachStdout !== false,
      stderr: exec.config.attachStderr !== false,
      stdin: exec.config.attachStdin,
      closeStdinOnEof: true,
      detachKeys: exec.config.tty && exec.config.attachStdin ? parseDetachKeys(exec.config.detachKeys ?? "") : undefined,
      // The CLI reads the exit code (GET /exec/ID/json) as soon as the stream ends: end it only once the code is known.
      beforeClose: () => containers.execDone(exec.id),
      // As Docker: the process of an attached exec ends with its client (Ctrl-C of `docker exec`).
      onClientGone: () => containers.killExec(exec.id),
    });
  });

  router.post("/exec/{id}/resize", async ({ res, params, query }) => {
    const exec = containers.getExec(params.id!);
    await exec.session?.resize(Number(query.get("w") ?? 80), Number(query.get("h") ?? 24));
    sendNoContent(res, 200);
  });

  router.get("/exec/{id}/json", ({ res, params }) => {
    const e = containers.getExec(params.id!);
    sendJson(res, 200, {
      ID: e.id,
      Running: e.running,
      ExitCode: e.exitCode,
      ProcessConfig: { tty: e.config.tty, entrypoint: e.config.cmd[0], arguments: e.config.cmd.slice(1), privileged: false, user: e.config.user ?? "" },
      OpenStdin: e.config.attachStdin,
      OpenStderr: e.config.attachStderr !== false,
      OpenStdout: e.config.attachStdout !== false,
      CanRemove: false,
      ContainerID: e.containerId,
      DetachKeys: "",
      Pid: e.pid,
    });
  });

  router.post("/commit", async ({ req, res, query }) => {
    const body = parseDockerBody(CommitBodySchema, await readJsonBody(req));
    const container = query.get("container");
    if (!container) throw invalidArgument("container is required");
    const repo = query.get("repo") ?? "";
    const tag = query.get("tag") ?? "";
    const id = await containers.commit(container, {
      reference: repo ? (tag ? `${repo}:${tag}` : repo) : undefined,
      author: query.get("author") ?? "",
      comment: query.get("comment") ?? "",
      changes: query
        .getAll("changes")
        .flatMap((c) => c.split("\n"))
        .filter(Boolean),
      pause: query.get("pause") === null ? true : boolParam(query, "pause"),
      config: { Cmd: asArray(body.Cmd), Entrypoint: asArray(body.Entrypoint), Env: body.Env ?? undefined, Labels: body.Labels ?? undefined },
    });
    sendJson(res, 201, { Id: id });
  });
}

/** Writes to a client stream, waiting while it is full; returns at once once the client is gone. */
async function writeOut(stream: HijackedStream, chunk: Buffer): Promise<void> {
  if (stream.write(chunk) || stream.gone) return;
  await new Promise<void>((resolve) => {
    stream.onDrain(resolve);
    stream.onGone(resolve);
  });
}

/** Waits `ms`; false when `signal` fired first. */
async function pause(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return false;
  try {
    await delay(ms, undefined, { signal });
    return true;
  } catch {
    return false;
  }
}

/**
 * `since`/`until` of the logs endpoint as Unix seconds with their fraction: the CLI sends
 * "SECONDS.NANOSECONDS" (`--since 1s`, `--since 2024-05-01T10:00:00.5Z` are converted by it),
 * and Docker compares log times at that precision. Other forms as parseUntil.
 */
function logTime(value: string): number {
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value);
  return parseUntil(value);
}

// --- Docker JSON ↔ engine options ------------------------------------------------------------

/** "1.41" < "1.44" */
function versionBelow(v: string, than: string): boolean {
  const [a = 0, b = 0] = v.split(".").map(Number);
  const [c = 0, d = 0] = than.split(".").map(Number);
  return a < c || (a === c && b < d);
}

/**
 * Security-relevant HostConfig fields Berth does not implement: refused when set (not
 * their empty or default value, which the docker CLI always sends) instead of ignored.
 */
type UnsupportedHostConfig = Pick<DockerHostConfig, "UsernsMode" | "Capabilities" | "DeviceRequests" | "Ulimits" | "OomScoreAdj" | "CgroupParent">;

const UNSUPPORTED_HOST_CONFIG: Array<[keyof UnsupportedHostConfig, string, (v: unknown) => boolean]> = [
  ["UsernsMode", "--userns", (v) => v !== "" && v !== "host"],
  ["Capabilities", "HostConfig.Capabilities", (v) => Array.isArray(v) && v.length > 0],
  ["DeviceRequests", "--gpus", (v) => Array.isArray(v) && v.length > 0],
  ["Ulimits", "--ulimit", (v) => Array.isArray(v) && v.length > 0],
  ["OomScoreAdj", "--oom-score-adj", (v) => v !== 0],
  ["CgroupParent", "--cgroup-parent", (v) => v !== ""],
];

function asArray(v: string[] | string | null | undefined): string[] | undefined {
  if (v === null || v === undefined) return undefined;
  return typeof v === "string" ? [v] : v;
}

/** "name:/path[:ro]", "/host:/path[:rw]" (Docker's -v syntax) → a mount. */
export function parseBind(spec: string): MountSpec {
  const parts = spec.split(":");
  if (parts.length < 2 || parts.length > 3) throw invalidArgument(`invalid volume specification: '${spec}'`);
  const [source, destination, mode = "rw"] = parts as [string, string, string?];
  const modes = mode.split(",");
  for (const m of modes)
    if (!["ro", "rw", "z", "Z", "private", "rprivate", "shared", "rshared", "slave", "rslave", "nocopy"].includes(m))
      throw invalidArgument(`invalid mode: ${mode}`);
  if (!destination.startsWith("/"))
    throw invalidArgument(
      `invalid volume specification: '${spec}': invalid mount config for type "volume": invalid mount path: '${destination}' mount path must be absolute`,
    );
  const readonly = modes.includes("ro");
  if (source.startsWith("/")) return { type: "bind", source, destination, readonly, anonymous: false };
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(source))
    throw invalidArgument(
      `create ${source}: "${source}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`,
    );
  return { type: "volume", source, destination, readonly, anonymous: false };
}

export function createOptionsFromDocker(body: DockerCreateBody, name: string | undefined): CreateOptions {
  if (!body.Image) throw invalidArgument("Config.Image is required");
  const hc = body.HostConfig ?? {};
  for (const [field, flag, isSet] of UNSUPPORTED_HOST_CONFIG) {
    const v = hc[field];
    if (v !== undefined && v !== null && isSet(v)) throw invalidArgument(`${flag} is not supported by Berth (HostConfig.${field}: ${JSON.stringify(v)})`);
  }
  if (hc.CgroupnsMode && hc.CgroupnsMode !== "host" && hc.CgroupnsMode !== "private")
    throw invalidArgument(`invalid cgroup namespace mode: ${hc.CgroupnsMode}`);
  // Docker records "label=disable" for what shares the host's processes or IPC when no option was given.
  const sharesHost = !!hc.Privileged || hc.PidMode === "host" || hc.IpcMode === "host";
  const securityOpt = hc.SecurityOpt ?? (sharesHost ? ["label=disable"] : []);
  const security = parseSecurityOpts(securityOpt);
  const ports: PortSpec[] = [];
  for (const [key, bindings] of Object.entries(hc.PortBindings ?? {})) {
    const [p, proto = "tcp"] = key.split("/");
    const containerPort = Number(p);
    if (!Number.isInteger(containerPort) || containerPort < 1 || containerPort > 65535) throw invalidArgument(`invalid containerPort: ${p}`);
    if (proto !== "tcp" && proto !== "udp") throw invalidArgument(`invalid proto: ${proto}`);
    for (const b of bindings ?? [{}]) {
      const hostPort = b.HostPort ? Number(b.HostPort) : 0;
      if (!Number.isInteger(hostPort) || hostPort < 0 || hostPort > 65535) throw invalidArgument(`invalid hostPort: ${b.HostPort}`);
      ports.push({ containerPort, protocol: proto, hostIp: b.HostIp ?? "", hostPort });
    }
  }
  const mounts: MountSpec[] = [];
  for (const b of hc.Binds ?? []) mounts.push(parseBind(b));
  for (const m of hc.Mounts ?? []) {
    if (m.Type !== "bind" && m.Type !== "volume") throw invalidArgument(`mount type ${m.Type} is not supported`);
    mounts.push({ type: m.Type, source: m.Source ?? "", destination: m.Target ?? "", readonly: !!m.ReadOnly, anonymous: m.Type === "volume" && !m.Source });
  }
  for (const dest of Object.keys(body.Volumes ?? {})) {
    if (!mounts.some((m) => m.destination === dest)) mounts.push({ type: "volume", source: "", destination: dest, readonly: false, anonymous: true });
  }
  const restart = hc.RestartPolicy?.Name || "no";
  if (!["no", "always", "on-failure", "unless-stopped"].includes(restart)) throw invalidArgument(`invalid restart policy '${restart}'`);
  if (hc.AutoRemove && restart !== "no") throw invalidArgument("can't create 'AutoRemove' container with restart policy");
  const entrypoint = asArray(body.Entrypoint);
  const endpoints = Object.entries(body.NetworkingConfig?.EndpointsConfig ?? {});
  const aliases = endpoints.flatMap(([, e]) => e?.Aliases ?? []);
  const networks = endpoints.map(([name, e]) => {
    if (e?.IPAMConfig?.IPv6Address) throw invalidArgument("IPv6 addresses are not supported by Berth (--ip6)");
    const ip = e?.IPAMConfig?.IPv4Address;
    if (ip && !/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) throw invalidArgument(`invalid IPv4 address: ${ip}`);
    return { name, aliases: e?.Aliases ?? [], ipv4Address: ip || undefined, links: e?.Links ?? [], driverOpts: e?.DriverOpts ?? {} };
  });
  return {
    name,
    image: body.Image,
    cmd: asArray(body.Cmd),
    entrypoint: entrypoint === undefined ? undefined : entrypoint.length === 0 || (entrypoint.length === 1 && entrypoint[0] === "") ? "" : entrypoint,
    env: body.Env ?? [],
    workingDir: body.WorkingDir || undefined,
    user: body.User || undefined,
    hostname: body.Hostname || undefined,
    domainname: body.Domainname || undefined,
    labels: body.Labels ?? {},
    tty: !!body.Tty,
    openStdin: !!body.OpenStdin,
    stdinOnce: !!body.StdinOnce,
    exposedPorts: Object.keys(body.ExposedPorts ?? {}),
    stopSignal: body.StopSignal || undefined,
    stopTimeout: body.StopTimeout ?? undefined,
    // Docker records "default" when no mode was given (the default bridge), and shows it so.
    networkMode: hc.NetworkMode || "default",
    ports,
    publishAll: !!hc.PublishAllPorts,
    aliases,
    ...(networks.length > 0 ? { networks } : {}),
    mounts,
    restartPolicy: { name: restart as "no", maximumRetryCount: hc.RestartPolicy?.MaximumRetryCount ?? 0 },
    autoRemove: !!hc.AutoRemove,
    memory: hc.Memory ?? 0,
    memorySwap: hc.MemorySwap ?? 0,
    nanoCpus: hc.NanoCpus ?? 0,
    cpuShares: hc.CpuShares ?? 0,
    cpuQuota: hc.CpuQuota ?? 0,
    cpuPeriod: hc.CpuPeriod ?? 0,
    cpusetCpus: hc.CpusetCpus ?? "",
    pidsLimit: hc.PidsLimit ?? undefined,
    readonlyRootfs: !!hc.ReadonlyRootfs,
    capAdd: asArray(hc.CapAdd) ?? [],
    capDrop: asArray(hc.CapDrop) ?? [],
    noNewPrivileges: security.noNewPrivileges,
    seccompProfile: security.seccompProfile,
    securityOpt,
    privileged: !!hc.Privileged,
    pidMode: hc.PidMode ?? "",
    ipcMode: hc.IpcMode ?? "",
    utsMode: hc.UTSMode ?? "",
    cgroupns: hc.CgroupnsMode === "private" ? "private" : "host",
    devices: (hc.Devices ?? []).map((d) => ({
      pathOnHost: d.PathOnHost ?? "",
      pathInContainer: d.PathInContainer || d.PathOnHost || "",
      cgroupPermissions: d.CgroupPermissions || "rwm",
    })),
    sysctls: hc.Sysctls ?? {},
    deviceCgroupRules: hc.DeviceCgroupRules ?? [],
    maskedPaths: hc.MaskedPaths ?? undefined,
    readonlyPaths: hc.ReadonlyPaths ?? undefined,
    shmSize: hc.ShmSize ?? 0,
    consoleSize: hc.ConsoleSize && (hc.ConsoleSize[0] ?? 0) > 0 ? { height: hc.ConsoleSize[0]!, width: hc.ConsoleSize[1] ?? 0 } : undefined,
    healthcheck: body.Healthcheck
      ? {
          test: body.Healthcheck.Test ?? [],
          interval: body.Healthcheck.Interval ?? 0,
          timeout: body.Healthcheck.Timeout ?? 0,
          startPeriod: body.Healthcheck.StartPeriod ?? 0,
          retries: body.Healthcheck.Retries ?? 0,
        }
      : undefined,
    attachStdin: !!body.AttachStdin,
    attachStdout: !!body.AttachStdout,
    attachStderr: !!body.AttachStderr,
    init: !!hc.Init,
    groupAdd: hc.GroupAdd ?? [],
    logConfig: { type: hc.LogConfig?.Type || "json-file", config: hc.LogConfig?.Config ?? {} },
    tmpfs: hc.Tmpfs ?? {},
    extraHosts: hc.ExtraHosts ?? [],
    volumesFrom: hc.VolumesFrom ?? [],
    runtime: hc.Runtime ?? "",
    isolation: hc.Isolation ?? "",
    // -1 is the API's "unset".
    memorySwappiness: hc.MemorySwappiness === null || hc.MemorySwappiness === undefined || hc.MemorySwappiness === -1 ? undefined : hc.MemorySwappiness,
    oomKillDisable: !!hc.OomKillDisable,
    volumeDriver: hc.VolumeDriver ?? "",
    dns: hc.Dns ?? [],
    dnsSearch: hc.DnsSearch ?? [],
    dnsOptions: hc.DnsOptions ?? [],
    links: hc.Links ?? [],
    macAddress: body.MacAddress || Object.values(body.NetworkingConfig?.EndpointsConfig ?? {}).find((e) => e?.MacAddress)?.MacAddress || "",
  };
}

// --- engine records → Docker JSON ------------------------------------------------------------

export function statusText(c: ContainerRecord): string {
  return containerStatusText(
    { state: c.state.status, exitCode: c.state.exitCode, startedAt: c.state.startedAt, finishedAt: c.state.finishedAt, health: c.state.health?.status },
    Date.now(),
  );
}

const HEALTH_FILTER_VALUES = ["starting", "healthy", "unhealthy", "none"];

/** Config.Healthcheck as Docker returns it: the merged check, zero fields left out. */
function healthcheckJson(imageHealthcheck: unknown, c: ContainerRecord) {
  const h = effectiveHealthcheck(imageHealthcheck, c.options.healthcheck);
  return h ? { Healthcheck: healthcheckToDocker(h) } : {};
}

function portsJson(c: ContainerRecord, config: { ExposedPorts?: Record<string, object> | null } | undefined) {
  const out: Array<{ IP?: string; PrivatePort: number; PublicPort?: number; Type: string }> = [];
  for (const p of c.publishedPorts) out.push({ IP: p.hostIp || "0.0.0.0", PrivatePort: p.containerPort, PublicPort: p.hostPort, Type: p.protocol });
  const exposed = new Set([...Object.keys(config?.ExposedPorts ?? {}), ...c.options.exposedPorts]);
  for (const e of exposed) {
    const [port, proto = "tcp"] = e.split("/");
    if (!out.some((o) => o.PrivatePort === Number(port) && o.Type === proto)) out.push({ PrivatePort: Number(port), Type: proto });
  }
  return out;
}

function filterContainers(list: ContainerRecord[], f: Map<string, string[]>, all: boolean, engine: Engine): ContainerRecord[] {
  const statuses = f.get("status");
  for (const s of statuses ?? [])
    if (!["created", "restarting", "running", "removing", "paused", "exited", "dead"].includes(s)) throw invalidArgument(`invalid filter 'status=${s}'`);
  for (const key of f.keys())
    if (
      ![
        "status",
        "name",
        "id",
        "ancestor",
        "label",
        "exited",
        "before",
        "since",
        "network",
        "volume",
        "publish",
        "expose",
        "health",
        "isolation",
        "is-task",
      ].includes(key)
    )
      throw invalidArgument(`invalid filter '${key}'`);
  const health = f.get("health");
  for (const h of health ?? []) if (!HEALTH_FILTER_VALUES.includes(h)) throw invalidArgument(`Unrecognised filter value for health: ${h}`);
  const ancestorIds = (f.get("ancestor") ?? []).map((a) => {
    try {
      return engine.images.resolve(a).id;
    } catch {
      return `none:${a}`;
    }
  });
  // Docker's ancestor filter also matches containers of images built on the given ones (their parent chain).
  const descendsFromAncestor = (imageId: string) => {
    const seen = new Set<string>();
    for (let id: string | undefined = imageId; id && !seen.has(id); id = engine.images.parentOf(id)) {
      if (ancestorIds.includes(id)) return true;
      seen.add(id);
    }
    return false;
  };
  const before = f.get("before")?.[0];
  const since = f.get("since")?.[0];
  const beforeCreated = before ? engine.containers.get(before).created : undefined;
  const sinceCreated = since ? engine.containers.get(since).created : undefined;
  return list.filter((c) => {
    if (!all && c.state.status !== "running" && c.state.status !== "paused" && c.state.status !== "restarting") return false;
    if (statuses && !statuses.includes(c.state.status)) return false;
    const names = f.get("name");
    if (names && !names.some((n) => new RegExp(n.replace(/^\//, "")).test(c.name))) return false;
    const ids = f.get("id");
    if (ids && !ids.some((i) => c.id.startsWith(i))) return false;
    if (ancestorIds.length && !descendsFromAncestor(c.imageId)) return false;
    const labels = f.get("label");
    if (labels && !labels.every((l) => (l.includes("=") ? c.options.labels[l.split("=")[0]!] === l.slice(l.indexOf("=") + 1) : l in c.options.labels)))
      return false;
    const exited = f.get("exited");
    if (exited && !(c.state.status === "exited" && exited.map(Number).includes(c.state.exitCode))) return false;
    if (beforeCreated && !(c.created < beforeCreated)) return false;
    if (sinceCreated && !(c.created > sinceCreated)) return false;
    const networks = f.get("network");
    if (
      networks &&
      !networks.some(
        (n) =>
          c.options.networkMode === n ||
          (c.networks ?? []).some((x) => x.name === n) ||
          c.endpoints.some((e) => e.networkName === n || e.networkId.startsWith(n)),
      )
    )
      return false;
    const volumes = f.get("volume");
    if (volumes && !volumes.some((v) => c.mounts.some((m) => m.source === v || m.destination === v))) return false;
    if (health && !health.includes(c.state.health?.status ?? "none")) return false;
    return true;
  });
}

/** The config of a container's image, or undefined when the image was removed since (`rmi -f`), as Docker shows such containers. */
function imageConfigIfPresent(engine: Engine, imageId: string) {
  return engine.images.config(imageId).catch((e: unknown) => {
    if (isEngineError(e) && e.kind === "NotFound") return undefined;
    throw e;
  });
}

async function containerSummaryJson(engine: Engine, c: ContainerRecord, size: boolean) {
  const config = (await imageConfigIfPresent(engine, c.imageId))?.config ?? undefined;
  const rw = size ? await engine.containers.sizeRw(c.id) : undefined;
  return {
    Id: c.id,
    Names: [`/${c.name}`],
    Image: c.imageName,
    ImageID: c.imageId,
    Command: [c.path, ...c.args].map((a) => (a.includes(" ") ? JSON.stringify(a) : a)).join(" "),
    Created: Math.floor(Date.parse(c.created) / 1000),
    Ports: portsJson(c, config ?? undefined),
    Labels: c.options.labels,
    State: c.state.status,
    Status: statusText(c),
    HostConfig: { NetworkMode: c.options.networkMode },
    NetworkSettings: { Networks: networksJson(engine, c) },
    Mounts: await mountsJson(engine, c),
    ...(rw !== undefined ? { SizeRw: rw, SizeRootFs: rw + engine.images.size(c.imageId) } : {}),
  };
}

/**
 * NetworkSettings.Networks: every network the container is set to join, with the settings it was
 * given (aliases, IPAMConfig, links, driver options) and, while it runs, its live endpoint.
 */
function networksJson(engine: Engine, c: ContainerRecord) {
  const out: Record<string, unknown> = {};
  const ids = new Map<string, string>();
  for (const n of engine.network.listNow()) ids.set(n.name, n.id);
  // Docker's endpoint IDs are 64 hex; one per container and network.
  const endpointId = (networkId: string) => createHash("sha256").update(`${networkId}/${c.id}`).digest("hex");
  const configured =
    c.networks ??
    (["host", "none"].includes(c.options.networkMode)
      ? []
      : [
          {
            name: c.options.networkMode === "default" ? "bridge" : c.options.networkMode,
            aliases: c.options.aliases,
            links: [],
            driverOpts: {} as Record<string, string>,
            ipv4Address: undefined,
          },
        ]);
  const endpoint = (e: ContainerRecord["endpoints"][number] | undefined) => ({
    NetworkID: e?.networkId ?? "",
    EndpointID: e ? endpointId(e.networkId) : "",
    Gateway: e?.gateway ?? "",
    IPAddress: e?.ipAddress ?? "",
    IPPrefixLen: e?.prefixLen ?? 0,
    IPv6Gateway: e?.ipv6Gateway ?? "",
    GlobalIPv6Address: e?.ipv6Address ?? "",
    GlobalIPv6PrefixLen: e?.ipv6PrefixLen ?? 0,
    MacAddress: e?.macAddress ?? "",
  });
  for (const n of configured) {
    const e = c.endpoints.find((x) => x.networkName === n.name);
    out[n.name] = {
      IPAMConfig: n.ipv4Address ? { IPv4Address: n.ipv4Address } : null,
      Links: n.links.length ? n.links : null,
      Aliases: n.aliases.length ? n.aliases : null,
      ...endpoint(e),
      // Docker shows the network's ID once the container has been on it (also after stop).
      NetworkID: e?.networkId ?? n.networkId ?? "",
      DriverOpts: Object.keys(n.driverOpts).length ? n.driverOpts : null,
    };
  }
  for (const e of c.endpoints) {
    if (!(e.networkName in out))
      out[e.networkName] = { IPAMConfig: null, Links: null, Aliases: e.aliases.length ? e.aliases : null, ...endpoint(e), DriverOpts: null };
  }
  if (c.endpoints.length === 0 && (c.options.networkMode === "host" || c.options.networkMode === "none")) {
    out[c.options.networkMode] = {
      IPAMConfig: null,
      Links: null,
      Aliases: null,
      ...endpoint(undefined),
      NetworkID: ids.get(c.options.networkMode) ?? "",
      DriverOpts: null,
    };
  }
  return out;
}

async function mountsJson(engine: Engine, c: ContainerRecord) {
  const out = [];
  for (const m of c.mounts)
    out.push({
      Type: m.type,
      ...(m.type === "volume" ? { Name: m.source, Source: await engine.containers.volumeMountpoint(m.source), Driver: "local" } : { Source: m.source }),
      Destination: m.destination,
      Mode: m.readonly ? "ro" : m.type === "volume" ? "z" : "",
      RW: !m.readonly,
      Propagation: m.type === "bind" ? "rprivate" : "",
    });
  return out;
}

async function containerInspectJson(engine: Engine, c: ContainerRecord, size: boolean) {
  const p = engine.containers.paths(c.id);
  const image = (await imageConfigIfPresent(engine, c.imageId))?.config ?? {};
  const o = c.options;
  const portsMap: Record<string, Array<{ HostIp: string; HostPort: string }> | null> = {};
  for (const e of new Set([...Object.keys(image.ExposedPorts ?? {}), ...o.exposedPorts])) portsMap[e.includes("/") ? e : `${e}/tcp`] = null;
  for (const pb of c.publishedPorts) {
    const key = `${pb.containerPort}/${pb.protocol}`;
    (portsMap[key] ??= []).push({ HostIp: pb.hostIp || "0.0.0.0", HostPort: String(pb.hostPort) });
  }
  const portBindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const pb of o.ports)
    (portBindings[`${pb.containerPort}/${pb.protocol}`] ??= []).push({ HostIp: pb.hostIp, HostPort: pb.hostPort ? String(pb.hostPort) : "" });
  const bridge = c.endpoints.find((e) => e.networkName === "bridge");
  const rw = size ? await engine.containers.sizeRw(c.id) : undefined;
  return {
    Id: c.id,
    Created: c.created,
    Path: c.path,
    Args: c.args,
    State: {
      Status: c.state.status,
      Running: c.state.status === "running" || c.state.status === "paused",
      Paused: c.state.status === "paused",
      Restarting: c.state.status === "restarting",
      OOMKilled: c.state.oomKilled,
      Dead: c.state.status === "dead",
      Pid: c.state.pid,
      ExitCode: c.state.exitCode,
      Error: c.state.error,
      StartedAt: c.state.startedAt,
      FinishedAt: c.state.finishedAt,
      ...(c.state.health
        ? {
            Health: {
              Status: c.state.health.status,
              FailingStreak: c.state.health.failingStreak,
              Log: c.state.health.log.map((r) => ({ Start: r.start, End: r.end, ExitCode: r.exitCode, Output: r.output })),
            },
          }
        : {}),
    },
    Image: c.imageId,
    ResolvConfPath: p.resolvConfPath,
    HostnamePath: p.hostnamePath,
    HostsPath: p.hostsPath,
    // Docker names a file only for json-file, the format tools read.
    LogPath: c.options.logConfig.type === "json-file" ? p.jsonLogPath : "",
    Name: `/${c.name}`,
    RestartCount: c.state.restartCount,
    Driver: "overlay2",
    Platform: "linux",
    MountLabel: "",
    ProcessLabel: "",
    AppArmorProfile: "",
    ExecIDs: engine.containers.execIds(c.id),
    HostConfig: {
      Binds: nullIfEmpty(o.mounts.filter((m) => !m.anonymous).map((m) => `${m.source}:${m.destination}${m.readonly ? ":ro" : ""}`)),
      NetworkMode: o.networkMode,
      PortBindings: portBindings,
      RestartPolicy: { Name: o.restartPolicy.name, MaximumRetryCount: o.restartPolicy.maximumRetryCount },
      AutoRemove: o.autoRemove,
      PublishAllPorts: o.publishAll,
      ReadonlyRootfs: o.readonlyRootfs,
      CapAdd: o.capAdd.length ? o.capAdd : null,
      CapDrop: o.capDrop.length ? o.capDrop : null,
      Memory: o.memory,
      // Docker records the swap limit it applies: without --memory-swap, twice --memory (when swap can be limited).
      MemorySwap: engine.containers.memorySwap(o),
      NanoCpus: o.nanoCpus,
      CpuShares: o.cpuShares,
      CpuQuota: o.cpuQuota,
      CpuPeriod: o.cpuPeriod,
      CpusetCpus: o.cpusetCpus,
      // Docker normalizes 0 and negative limits ("unlimited") to null.
      PidsLimit: o.pidsLimit !== undefined && o.pidsLimit > 0 ? o.pidsLimit : null,
      ShmSize: o.shmSize || 67108864,
      SecurityOpt: o.securityOpt.length ? o.securityOpt : o.noNewPrivileges ? ["no-new-privileges"] : null,
      Privileged: o.privileged,
      PidMode: o.pidMode,
      IpcMode: o.ipcMode || "private",
      UTSMode: o.utsMode,
      CgroupnsMode: o.cgroupns,
      Devices: o.devices.map((d) => ({ PathOnHost: d.pathOnHost, PathInContainer: d.pathInContainer, CgroupPermissions: d.cgroupPermissions })),
      DeviceCgroupRules: o.deviceCgroupRules.length ? o.deviceCgroupRules : null,
      ...(Object.keys(o.sysctls).length ? { Sysctls: o.sysctls } : {}),
      MaskedPaths: o.maskedPaths ?? (o.privileged ? null : MASKED_PATHS),
      ReadonlyPaths: o.readonlyPaths ?? (o.privileged ? null : READONLY_PATHS),
      ...hostConfigFields(o, c.name),
    },
    GraphDriver: { Name: "overlay2", Data: { UpperDir: await engine.containers.upperDir(c.id).catch(() => ""), MergedDir: p.rootfs } },
    ...(rw !== undefined ? { SizeRw: rw } : {}),
    Mounts: await mountsJson(engine, c),
    Config: {
      Hostname: o.hostname || c.id.slice(0, 12),
      Domainname: o.domainname ?? "",
      User: o.user ?? image.User ?? "",
      ...configFields(o),
      ExposedPorts: Object.keys(portsMap).length ? Object.fromEntries(Object.keys(portsMap).map((k) => [k, {}])) : undefined,
      Tty: o.tty,
      OpenStdin: o.openStdin,
      StdinOnce: o.stdinOnce,
      Env: containerEnv(image.Env, o.env),
      Cmd: o.cmd ?? (o.entrypoint !== undefined ? null : (image.Cmd ?? null)),
      Image: c.imageName,
      Volumes: configVolumes(image.Volumes, o.mounts),
      WorkingDir: o.workingDir ?? image.WorkingDir ?? "",
      Entrypoint: o.entrypoint === "" ? null : (o.entrypoint ?? image.Entrypoint ?? null),
      OnBuild: null,
      Labels: { ...(image.Labels ?? {}), ...o.labels },
      ...(o.stopSignal || image.StopSignal ? { StopSignal: o.stopSignal ?? image.StopSignal } : {}),
      ...healthcheckJson(image.Healthcheck, c),
    },
    NetworkSettings: {
      Bridge: "",
      SandboxID: c.state.pid ? c.id : "",
      SandboxKey: c.state.pid ? `/run/berth/netns/${c.id.slice(0, 12)}` : "",
      Ports: portsMap,
      Gateway: bridge?.gateway ?? "",
      IPAddress: bridge?.ipAddress ?? "",
      IPPrefixLen: bridge?.prefixLen ?? 0,
      MacAddress: bridge?.macAddress ?? "",
      Networks: networksJson(engine, c),
    },
  };
}

/** Docker's JSON null for an empty list (Go's nil slice). */
function nullIfEmpty<T>(list: T[]): T[] | null {
  return list.length ? list : null;
}

interface StatsSample {
  read: string;
  cpu_stats: unknown;
}

async function statsJson(engine: Engine, c: ContainerRecord, previous: StatsSample | undefined) {
  const running = c.state.status === "running" || c.state.status === "paused";
  const s = running ? await engine.containers.stats(c) : undefined;
  const cpuStats = s
    ? {
        cpu_usage: { total_usage: s.cpu.totalUsage, percpu_usage: s.cpu.perCpu, usage_in_kernelmode: s.cpu.kernel, usage_in_usermode: s.cpu.user },
        system_cpu_usage: s.cpu.systemUsage,
        online_cpus: s.cpu.onlineCpus,
        throttling_data: { periods: s.cpu.periods, throttled_periods: s.cpu.throttledPeriods, throttled_time: s.cpu.throttledTime },
      }
    : { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } };
  return {
    read: s?.read ?? new Date().toISOString(),
    preread: previous?.read ?? "0001-01-01T00:00:00Z",
    pids_stats: s ? { current: s.pids.current, ...(s.pids.limit ? { limit: s.pids.limit } : {}) } : {},
    blkio_stats: { io_service_bytes_recursive: s ? s.blkio.map((b) => ({ major: b.major, minor: b.minor, op: b.op, value: b.value })) : null },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpuStats,
    precpu_stats: previous?.cpu_stats ?? {
      cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 },
      throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 },
    },
    memory_stats: s ? { usage: s.memory.usage, max_usage: s.memory.maxUsage, stats: s.memory.stats, limit: s.memory.limit } : {},
    name: `/${c.name}`,
    id: c.id,
    networks: s
      ? Object.fromEntries(
          Object.entries(s.networks).map(([k, n]) => [
            k,
            {
              rx_bytes: n.rxBytes,
              rx_packets: n.rxPackets,
              rx_errors: n.rxErrors,
              rx_dropped: n.rxDropped,
              tx_bytes: n.txBytes,
              tx_packets: n.txPackets,
              tx_errors: n.txErrors,
              tx_dropped: n.txDropped,
            },
          ]),
        )
      : undefined,
  };
}
