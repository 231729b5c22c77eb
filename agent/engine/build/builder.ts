/**
 * `docker build` with the classic builder's semantics (moby's builder/dockerfile):
 * each instruction makes an image on top of the previous one (an intermediate,
 * untagged image whose parent is the previous step's), which is also the build
 * cache: a step is a cache hit when a child of the current image was made with
 * the same container config (for RUN the command line and build args, for
 * COPY/ADD the content hash of the sources, for metadata steps the
 * instruction), exactly the rule of Docker's `imageCache.GetCache`.
 *
 * Where the work happens:
 * - RUN: in a real container of the engine (ContainerService: the build's
 *   network mode, resolv.conf and hosts as any container), output streamed;
 *   its writable layer becomes the step's layer, then the container goes.
 * - COPY, ADD, WORKDIR: in a snapshot of the current image mounted under the
 *   builder's own directory, its upper directory becomes the layer.
 * - Metadata steps: a new config only, with an empty-layer history entry.
 *
 * Ownership: the builder owns `<dataRoot>/build` (mount points, downloads),
 * `<dataRoot>/build-contexts` (recent contexts, context.ts) and the containers
 * and snapshots it makes; each step releases what it made, also
 * on failure or cancel. After a crash, `recover()` unmounts and deletes what is
 * left in its directory and `removeLeftoverContainers()` removes build
 * containers; the snapshotter's own start-up sweep removes orphan snapshots.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { lstat, mkdir, readdir, realpath, rm, utimes } from "node:fs/promises";
import { join, posix } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StringDecoder } from "node:string_decoder";
import type { Logger } from "pino";
import { diffUpper } from "../archive/upper-diff.ts";
import { upperToLayerTar } from "../archive/layer-tar.ts";
import type { ContainerService } from "../containers/container-service.ts";
import { canceled, EngineError, invalidArgument, isEngineError, notFound } from "../errors.ts";
import type { ContainerConfig, HistoryEntry, ImageConfig } from "../images/image-config.ts";
import type { ImageService, ImageServiceDeps } from "../images/image-service.ts";
import type { ImageLayerRecord } from "../images/image-store.ts";
import type { ProgressEvent } from "../images/progress.ts";
import type { Puller } from "../images/pull.ts";
import { detectCompression } from "../layers/decompress.ts";
import { extractLayer } from "../layers/extract.ts";
import { decompressStream } from "../layers/decompress.ts";
import { awaitedLater, bestEffort } from "../../../shared/best-effort.ts";
import { isErrno } from "../fs-util.ts";
import { familiarString, parseNormalizedReference, withDefaultTag } from "../../../shared/reference.ts";
import { formatPlatform, normalizePlatform, platformFromNode } from "../registry/platform.ts";
import { mkdirInRoot } from "../runtime/mkdir-in-root.ts";
import { resolveUser } from "../runtime/user.ts";
import { mountAll, unmountAll, isMounted } from "../snapshots/mount.ts";
import type { Snapshotter } from "../snapshots/snapshotter.ts";
import { teeStream } from "../streams.ts";
import { ContextCache } from "./context.ts";
import { copyInto, findSources, hashSources, isDirInRoot, type CopyOwner, type SourceItem } from "./copy.ts";
import { parseDockerfile, parseError, parseTrigger, type DockerfileInstruction, type ParsedDockerfile } from "./dockerfile.ts";
import { processWord, processWords } from "./shell-lex.ts";
import { BuildUploads } from "./uploads.ts";

export interface BuildOptions {
  /** The context tar (plain or compressed). */
  context: Readable;
  dockerfile?: string;
  /** The Dockerfile's text, given beside the context instead of inside it (the console's editor); named "Dockerfile" in errors. */
  dockerfileText?: string;
  tags: string[];
  buildArgs: Record<string, string | null>;
  target?: string;
  noCache: boolean;
  pull: boolean;
  labels: Record<string, string>;
  networkMode: string;
  extraHosts: string[];
  shmSize: number;
  /** Remove intermediate containers after a successful step (Docker's default). */
  rm: boolean;
  /** Remove them also after a failed one. */
  forceRm: boolean;
  cacheFrom: string[];
  platform?: string;
  signal?: AbortSignal;
}

/** Where the build reports: the Docker API door turns these into its JSON stream. */
export interface BuildOutput {
  /** Text for the user ("Step 1/3 : FROM busybox\n", RUN output). */
  stream(text: string): void;
  /** Pull progress of a base image. */
  progress(e: ProgressEvent): void;
  /** The image ID of a finished stage (Docker's `aux` message). */
  aux(imageId: string): void;
}

export interface BuildResult {
  imageId: string;
  tags: string[];
}

export interface BuilderDeps {
  images: ImageService;
  containers: ContainerService;
  /** The image concern's stores: a step's layer is written into them and read back. */
  imageStores: Pick<ImageServiceDeps, "store" | "content" | "layers">;
  /** Where a COPY/ADD step's private snapshot of the stage's image is made. */
  snapshots: Snapshotter;
  puller: Puller;
  /** `<dataRoot>/build`: the builder's private directory. */
  root: string;
  /** `<dataRoot>/build-contexts`: recent builds' unpacked contexts (context.ts ContextCache). */
  contextsRoot: string;
  logger: Logger;
}

/** Labels every build container carries, so a crashed build's containers are found and removed. */
export const BUILD_CONTAINER_LABEL = "io.berth.build-step";
/** Files the runtime bind-mounts into a RUN container: not part of the step's layer. */
const BIND_TARGETS = ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];
const DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DEFAULT_SHELL = ["/bin/sh", "-c"];
/** Build args every build knows without an ARG (moby's builtinAllowedBuildArgs); never in history. */
const PROXY_ARGS = new Set([
  "HTTP_PROXY",
  "http_proxy",
  "HTTPS_PROXY",
  "https_proxy",
  "FTP_PROXY",
  "ftp_proxy",
  "NO_PROXY",
  "no_proxy",
  "ALL_PROXY",
  "all_proxy",
]);
const MAX_REDIRECTS = 10;

interface Stage {
  index: number;
  name?: string;
  imageId?: string;
  /** The current image's config document (its history, rootfs, os…). */
  image: ImageConfig;
  layers: ImageLayerRecord[];
  runConfig: ContainerConfig;
  /** ARGs declared in this stage, with their value. */
  args: Map<string, string | undefined>;
  cmdSet: boolean;
}

interface BuildRun {
  opts: BuildOptions;
  out: BuildOutput;
  dir: string;
  contextDir: string;
  escape: string;
  metaArgs: Map<string, string | undefined>;
  stages: Map<string, Stage>;
  usedArgs: Set<string>;
  /** --cache-from images found locally (IDs). */
  cacheSources: string[];
  signal: AbortSignal;
}

/** The largest build context a node takes in pieces (BuildUploads): the console's upload limit. */
export const MAX_CONTEXT_UPLOAD_BYTES = 64 * 1024 * 1024;

export class Builder {
  private readonly contexts: ContextCache;
  /** Contexts sent in pieces over the console link, under `<root>/uploads` (emptied by `recover()`). */
  readonly uploads: BuildUploads;

  constructor(private readonly deps: BuilderDeps) {
    this.contexts = new ContextCache(deps.contextsRoot, deps.logger);
    this.uploads = new BuildUploads(join(deps.root, "uploads"), MAX_CONTEXT_UPLOAD_BYTES);
  }

  /** Start-up, before the container service adopts snapshots: unmounts and deletes what a crash left. */
  async recover(): Promise<void> {
    await this.contexts.reset();
    await mkdir(this.deps.root, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.deps.root)) {
      const dir = join(this.deps.root, name);
      let subs: string[] = [];
      try {
        subs = await readdir(dir);
      } catch (e) {
        if (!isErrno(e, "ENOTDIR")) throw e; // a stray file: removed below
      }
      for (const sub of subs) {
        const p = join(dir, sub);
        if (await isMounted(p))
          await unmountAll(p, { detach: true }).catch((err: unknown) => this.deps.logger.warn({ err, path: p }, "could not unmount what a crashed build left"));
      }
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Start-up, after the container service: build containers of a build the agent did not finish. */
  async removeLeftoverContainers(): Promise<void> {
    for (const c of this.deps.containers.list()) {
      if (!c.options.labels[BUILD_CONTAINER_LABEL]) continue;
      await this.deps.containers
        .remove(c.id, { force: true })
        .catch((err: unknown) => this.deps.logger.warn({ err, id: c.id }, "could not remove a build container"));
    }
  }

  async build(opts: BuildOptions, out: BuildOutput): Promise<BuildResult> {
    const tags = opts.tags.map((t) => {
      const ref = parseNormalizedReference(t);
      if (ref.digest) throw invalidArgument(`invalid reference format: ${t}: a build cannot be tagged with a digest`);
      return withDefaultTag(ref);
    });
    checkPlatform(opts.platform);
    const dir = join(this.deps.root, randomBytes(8).toString("hex"));
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const ac = new AbortController();
    const onAbort = () => ac.abort(opts.signal?.reason);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    let releaseContext: (() => void) | undefined;
    try {
      const { ctx, release } = await this.contexts.acquire(opts.context, opts.dockerfile ?? "", ac.signal, opts.dockerfileText);
      releaseContext = release;
      const contextDir = ctx.dir;
      const parsed = parseDockerfile(ctx.dockerfile, ctx.dockerfileName);
      const run: BuildRun = {
        opts,
        out,
        dir,
        contextDir,
        escape: parsed.escape,
        metaArgs: new Map(),
        stages: new Map(),
        usedArgs: new Set(),
        cacheSources: this.cacheSources(opts.cacheFrom, out),
        signal: ac.signal,
      };
      const imageId = await this.runDockerfile(run, parsed);
      const unused = Object.keys(opts.buildArgs)
        .filter((k) => !run.usedArgs.has(k) && !PROXY_ARGS.has(k))
        .sort();
      if (unused.length) out.stream(`[Warning] One or more build-args [${unused.join(" ")}] were not consumed\n`);
      out.stream(`Successfully built ${imageId.slice(7, 19)}\n`);
      for (const ref of tags) {
        await this.deps.images.tag(imageId, familiarString(ref));
        out.stream(`Successfully tagged ${familiarString(ref)}\n`);
      }
      return { imageId, tags: tags.map(familiarString) };
    } finally {
      releaseContext?.();
      opts.signal?.removeEventListener("abort", onAbort);
      await rm(dir, { recursive: true, force: true }).catch((err: unknown) => this.deps.logger.warn({ err, dir }, "could not remove a build's directory"));
    }
  }

  /** --cache-from names resolved to local images; those not found are skipped with a note, as Docker does. */
  private cacheSources(names: string[], out: BuildOutput): string[] {
    const ids: string[] = [];
    for (const name of names) {
      try {
        ids.push(this.deps.images.resolve(name).id);
      } catch (e) {
        if (!isEngineError(e, "NotFound")) throw e;
        out.stream(`[Warning] cache-from image ${name} not found locally: not used\n`);
      }
    }
    return ids;
  }

  private async runDockerfile(run: BuildRun, parsed: ParsedDockerfile): Promise<string> {
    let stages = parsed.stages;
    if (run.opts.target) {
      const ix = stages.findIndex((s) => stageName(s.from, run) === run.opts.target!.toLowerCase());
      if (ix < 0) throw invalidArgument(`failed to reach build target ${run.opts.target} in Dockerfile`);
      stages = stages.slice(0, ix + 1);
    }
    const labelKeys = Object.keys(run.opts.labels).sort();
    const labelStep: DockerfileInstruction | undefined = labelKeys.length
      ? {
          line: 0,
          keyword: "LABEL",
          original: "LABEL " + labelKeys.map((k) => `${JSON.stringify(k)}=${JSON.stringify(run.opts.labels[k])}`).join(" "),
          flags: new Map(),
          args: "",
          properties: labelKeys.map((k) => ({ name: k, raw: JSON.stringify(run.opts.labels[k]) })),
        }
      : undefined;
    const total = parsed.metaArgs.length + stages.reduce((n, s) => n + 1 + s.commands.length, 0) + (labelStep ? 1 : 0);
    let step = 0;
    const printStep = (ins: DockerfileInstruction) => run.out.stream(`Step ${++step}/${total} : ${ins.original}\n`);

    for (const ins of parsed.metaArgs) {
      printStep(ins);
      for (const p of ins.properties ?? []) {
        const given = run.opts.buildArgs[p.name];
        const dflt = p.raw === null ? undefined : processWord(p.raw, run.metaArgs, run.escape);
        run.metaArgs.set(p.name, given !== undefined && given !== null ? given : dflt);
        if (p.name in run.opts.buildArgs) run.usedArgs.add(p.name);
      }
    }
    let last: Stage | undefined;
    for (const [index, s] of stages.entries()) {
      this.checkCanceled(run);
      printStep(s.from);
      const stage = await this.beginStage(run, s.from, index);
      run.out.stream(` ---> ${shortId(stage.imageId)}\n`);
      const commands = index === stages.length - 1 && labelStep ? [...s.commands, labelStep] : s.commands;
      for (const ins of commands) {
        this.checkCanceled(run);
        printStep(ins);
        await this.dispatch(run, stage, ins);
        run.out.stream(` ---> ${shortId(stage.imageId)}\n`);
      }
      if (!stage.imageId) await this.commitConfig(run, stage, "", true);
      run.out.aux(stage.imageId!);
      run.stages.set(String(index), stage);
      if (stage.name) run.stages.set(stage.name, stage);
      last = stage;
    }
    if (!last?.imageId) throw invalidArgument("No image was generated. Is your Dockerfile empty?");
    return last.imageId;
  }

  private checkCanceled(run: BuildRun): void {
    if (run.signal.aborted) {
      run.out.stream("Build cancelled\n");
      throw canceled("Build cancelled");
    }
  }

  // --- FROM --------------------------------------------------------------------

  private async beginStage(run: BuildRun, from: DockerfileInstruction, index: number): Promise<Stage> {
    const words = processWords(from.args, run.metaArgs, run.escape);
    if (words.length !== 1 && !(words.length === 3 && words[1]!.toLowerCase() === "as")) {
      throw parseError(from.line, `FROM requires either one or three arguments`);
    }
    const platform = from.flags.get("platform");
    if (platform) checkPlatform(processWord(platform, run.metaArgs, run.escape));
    const name = words[2]?.toLowerCase();
    if (name !== undefined && !/^[a-z][a-z0-9-_.]*$/.test(name))
      throw parseError(from.line, `invalid name for build stage: "${words[2]}", name can't start with a number or contain symbols`);
    if (name !== undefined && run.stages.has(name)) throw parseError(from.line, `duplicate name ${name}`);
    const base = words[0]!;
    const stage: Stage = { index, name, image: emptyImage(), layers: [], runConfig: {}, args: new Map(), cmdSet: false };
    if (base.toLowerCase() !== "scratch") {
      const fromStage = run.stages.get(base.toLowerCase());
      const id = fromStage?.imageId ?? (await this.baseImage(run, base));
      const record = this.deps.images.resolve(id);
      stage.imageId = record.id;
      stage.image = await this.deps.images.config(record.id);
      stage.layers = record.layers;
      stage.runConfig = structuredClone(stage.image.config ?? {});
    }
    const env = stage.runConfig.Env ?? [];
    if (!env.some((e) => e.startsWith("PATH="))) stage.runConfig.Env = [...env, DEFAULT_PATH];
    stage.runConfig.Image = stage.imageId ?? "";
    const triggers = stage.runConfig.OnBuild ?? [];
    if (triggers.length > 0) {
      run.out.stream(`# Executing ${triggers.length} build trigger${triggers.length > 1 ? "s" : ""}\n`);
      stage.runConfig.OnBuild = null;
      for (const t of triggers) await this.dispatch(run, stage, parseTrigger(t, from.line));
    }
    return stage;
  }

  private async baseImage(run: BuildRun, name: string): Promise<string> {
    let found: string | undefined;
    if (!run.opts.pull) {
      try {
        found = this.deps.images.resolve(name).id;
      } catch (e) {
        if (!isEngineError(e, "NotFound")) throw e;
      }
    }
    if (found) return found;
    const ref = withDefaultTag(parseNormalizedReference(name));
    const pulled = await this.deps.puller.pull(familiarString(ref), { onProgress: (e) => run.out.progress(e), signal: run.signal });
    return pulled.id;
  }

  // --- dispatch ------------------------------------------------------------------

  private env(run: BuildRun, stage: Stage): Map<string, string> {
    const m = new Map<string, string>();
    for (const [k, v] of stage.args) if (v !== undefined) m.set(k, v);
    for (const e of stage.runConfig.Env ?? []) {
      const i = e.indexOf("=");
      if (i > 0) m.set(e.slice(0, i), e.slice(i + 1));
    }
    for (const k of PROXY_ARGS) {
      const v = run.opts.buildArgs[k];
      if (typeof v === "string" && !m.has(k)) m.set(k, v);
    }
    return m;
  }

  private async dispatch(run: BuildRun, stage: Stage, ins: DockerfileInstruction): Promise<void> {
    try {
      await this.dispatchOne(run, stage, ins);
    } catch (e) {
      // Docker's "COPY failed: …" form for what a step found wrong (not for parse errors or a failed RUN).
      if (
        e instanceof EngineError &&
        ins.line > 0 &&
        (e.kind === "InvalidArgument" || e.kind === "NotFound") &&
        !e.message.startsWith("dockerfile parse error") &&
        !e.message.startsWith("The command")
      ) {
        throw new EngineError(e.kind, `${ins.keyword} failed: ${e.message}`, { cause: e });
      }
      throw e;
    }
  }

  private async dispatchOne(run: BuildRun, stage: Stage, ins: DockerfileInstruction): Promise<void> {
    const env = this.env(run, stage);
    const word = (w: string) => processWord(w, env, run.escape);
    const rc = stage.runConfig;
    switch (ins.keyword) {
      case "ENV": {
        const pairs: string[] = [];
        for (const p of ins.properties ?? []) {
          const value = word(p.raw ?? "");
          env.set(p.name, value);
          // As Docker: a variable set again keeps its place in the list.
          const list = [...(rc.Env ?? [])];
          const at = list.findIndex((e) => e.startsWith(p.name + "="));
          if (at >= 0) list[at] = `${p.name}=${value}`;
          else list.push(`${p.name}=${value}`);
          rc.Env = list;
          pairs.push(`${p.name}=${value}`);
        }
        return this.commitConfig(run, stage, "ENV " + pairs.join(" "));
      }
      case "LABEL": {
        const pairs: string[] = [];
        rc.Labels = { ...(rc.Labels ?? {}) };
        for (const p of ins.properties ?? []) {
          const key = word(p.name);
          const value = word(p.raw ?? "");
          rc.Labels[key] = value;
          pairs.push(`${key}=${value}`);
        }
        return this.commitConfig(run, stage, "LABEL " + pairs.join(" "));
      }
      case "MAINTAINER": {
        stage.image = { ...stage.image, author: word(ins.args) };
        return this.commitConfig(run, stage, "MAINTAINER " + word(ins.args));
      }
      case "ARG": {
        const parts: string[] = [];
        for (const p of ins.properties ?? []) {
          const given = run.opts.buildArgs[p.name];
          const meta = run.metaArgs.get(p.name);
          const dflt = p.raw === null ? meta : word(p.raw);
          stage.args.set(p.name, given !== undefined && given !== null ? given : dflt);
          if (p.name in run.opts.buildArgs) run.usedArgs.add(p.name);
          parts.push(p.raw === null ? p.name : `${p.name}=${dflt ?? ""}`);
        }
        return this.commitConfig(run, stage, "ARG " + parts.join(" "));
      }
      case "EXPOSE": {
        const ports = processWords(ins.args, env, run.escape);
        rc.ExposedPorts = { ...(rc.ExposedPorts ?? {}) };
        for (const p of ports) {
          const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
          if (!m) throw invalidArgument(`invalid containerPort: ${p}`);
          const lo = Number(m[1]);
          const hi = m[2] ? Number(m[2]) : lo;
          for (let port = lo; port <= hi; port++) rc.ExposedPorts[`${port}/${(m[3] ?? "tcp").toLowerCase()}`] = {};
        }
        return this.commitConfig(run, stage, "EXPOSE " + [...ports].sort().join(" "));
      }
      case "USER": {
        rc.User = word(ins.args);
        return this.commitConfig(run, stage, "USER " + rc.User);
      }
      case "VOLUME": {
        const vols = ins.json ?? processWords(ins.args, env, run.escape);
        rc.Volumes = { ...(rc.Volumes ?? {}) };
        for (const v of vols) {
          if (v.trim() === "") throw invalidArgument("VOLUME specified can not be an empty string");
          rc.Volumes[ins.json ? word(v) : v] = {};
        }
        return this.commitConfig(run, stage, `VOLUME [${vols.join(" ")}]`);
      }
      case "STOPSIGNAL": {
        const sig = word(ins.args);
        if (!/^(SIG[A-Z0-9+-]+|\d+|[A-Z]+[0-9]*)$/.test(sig)) throw invalidArgument(`Invalid signal: ${sig}`);
        rc.StopSignal = sig;
        return this.commitConfig(run, stage, "STOPSIGNAL " + sig);
      }
      case "SHELL": {
        rc.Shell = ins.json!;
        return this.commitConfig(run, stage, `SHELL ${goQuote(rc.Shell)}`);
      }
      case "CMD": {
        rc.Cmd = ins.json ?? [...(rc.Shell ?? DEFAULT_SHELL), ins.args];
        stage.cmdSet = true;
        return this.commitConfig(run, stage, `CMD ${goQuote(rc.Cmd)}`);
      }
      case "ENTRYPOINT": {
        rc.Entrypoint = ins.json ?? (ins.args === "" ? null : [...(rc.Shell ?? DEFAULT_SHELL), ins.args]);
        if (!stage.cmdSet) rc.Cmd = null;
        return this.commitConfig(run, stage, `ENTRYPOINT ${goQuote(rc.Entrypoint ?? [])}`);
      }
      case "ONBUILD": {
        const trigger = ins.args;
        rc.OnBuild = [...(rc.OnBuild ?? []), trigger];
        return this.commitConfig(run, stage, "ONBUILD " + trigger);
      }
      case "HEALTHCHECK":
        return this.healthcheck(run, stage, ins);
      case "WORKDIR":
        return this.workdir(run, stage, word(ins.args));
      case "RUN":
        return this.runStep(run, stage, ins);
      case "COPY":
      case "ADD":
        return this.copyStep(run, stage, ins, env);
      default:
        throw parseError(ins.line, `unknown instruction: ${ins.keyword}`);
    }
  }

  private async healthcheck(run: BuildRun, stage: Stage, ins: DockerfileInstruction): Promise<void> {
    const words = ins.args.split(/\s+/);
    const sub = words[0]?.toUpperCase();
    if (sub === "NONE") {
      if (words.length > 1) throw parseError(ins.line, "HEALTHCHECK NONE takes no arguments");
      stage.runConfig.Healthcheck = { Test: ["NONE"] };
    } else if (sub === "CMD") {
      const rest = ins.args.slice(words[0]!.length).trim();
      let test: string[];
      try {
        const v: unknown = rest.startsWith("[") ? JSON.parse(rest) : undefined;
        test = Array.isArray(v) ? ["CMD", ...(v as string[])] : ["CMD-SHELL", rest];
      } catch {
        test = ["CMD-SHELL", rest];
      }
      const hc: Record<string, unknown> = { Test: test };
      for (const [flag, key] of [
        ["interval", "Interval"],
        ["timeout", "Timeout"],
        ["start-period", "StartPeriod"],
        ["start-interval", "StartInterval"],
      ] as const) {
        const v = ins.flags.get(flag);
        if (v) hc[key] = durationNs(v, flag);
      }
      const retries = ins.flags.get("retries");
      if (retries) {
        const n = Number(retries);
        if (!Number.isInteger(n) || n < 0) throw invalidArgument(`--retries cannot be negative (${retries})`);
        hc.Retries = n;
      }
      stage.runConfig.Healthcheck = hc;
    } else {
      throw parseError(ins.line, `Unknown type "${words[0]}" in HEALTHCHECK (try CMD)`);
    }
    const hc = stage.runConfig.Healthcheck as { Test: string[]; Interval?: number; Timeout?: number; StartPeriod?: number; Retries?: number };
    const d = (ns?: number) => `"${ns ? `${ns / 1e9}s` : "0s"}"`;
    await this.commitConfig(
      run,
      stage,
      `HEALTHCHECK &{${goQuote(hc.Test)} ${d(hc.Interval)} ${d(hc.Timeout)} ${d(hc.StartPeriod)} '\\x${(hc.Retries ?? 0).toString(16).padStart(2, "0")}'}`,
    );
  }

  // --- commits ---------------------------------------------------------------------

  /**
   * The container config a step is cached under. Docker writes the comment as two words for
   * metadata steps (`withCmdComment`: "#(nop) ", "ENV A=1") and as one for the steps with a
   * layer (`withCmdCommentString`: "#(nop) COPY …"), hence one or two spaces in `docker history`.
   */
  private commentConfig(stage: Stage, comment: string, oneWord = false): ContainerConfig {
    const shell = stage.runConfig.Shell ?? DEFAULT_SHELL;
    return { ...structuredClone(stage.runConfig), Cmd: oneWord ? [...shell, `#(nop) ${comment}`] : [...shell, "#(nop) ", comment] };
  }

  /** A metadata-only step: a new config, no layer. Cache: a child of the current image made the same way. */
  private async commitConfig(run: BuildRun, stage: Stage, comment: string, quiet = false): Promise<void> {
    const probe = this.commentConfig(stage, comment);
    if (!quiet && (await this.useCache(run, stage, probe))) return;
    await this.commitImage(stage, probe, undefined, "");
  }

  /**
   * Docker's cache probe (image/cache): a child image of the current one whose container config
   * equals `probe`. With --cache-from, only images of those sources count: a local child that is
   * one of their ancestors, or a step of a source image whose history and layers so far are the
   * current image's (a pulled or loaded image has no parent chain): that step is restored as an
   * image on top of the current one.
   */
  private async useCache(run: BuildRun, stage: Stage, probe: ContainerConfig): Promise<boolean> {
    if (run.opts.noCache) return false;
    const { store } = this.deps.imageStores;
    const key = cacheKey(probe);
    const parent = stage.imageId ?? "";
    const candidates = store
      .images()
      .filter((img) => (img.parent ?? "") === parent && img.id !== parent)
      .sort((a, b) => b.created.localeCompare(a.created));
    for (const img of candidates) {
      const config = await this.deps.images.config(img.id).catch(bestEffort(this.deps.logger, `read the config of ${img.id} for the build cache`)); // a miss, then
      if (!config?.container_config || cacheKey(config.container_config as ContainerConfig) !== key) continue;
      if (run.cacheSources.length > 0 && !run.cacheSources.some((src) => this.isAncestorOrSelf(img.id, src))) continue;
      return this.cacheHit(run, stage, img.id);
    }
    const createdBy = (probe.Cmd ?? []).join(" ");
    const history = stage.image.history ?? [];
    const diffIds = stage.image.rootfs?.diff_ids ?? [];
    for (const srcId of run.cacheSources) {
      const record = store.get(srcId);
      const src = await this.deps.images.config(srcId).catch(bestEffort(this.deps.logger, `read the config of cache source ${srcId}`));
      if (!record || !src) continue;
      const srcHistory = src.history ?? [];
      const srcDiffs = src.rootfs?.diff_ids ?? [];
      const entry = srcHistory[history.length];
      if (!entry || entry.created_by !== createdBy) continue;
      if (!history.every((h, i) => srcHistory[i]?.created_by === h.created_by) || !diffIds.every((d, i) => srcDiffs[i] === d)) continue;
      const layer = entry.empty_layer ? undefined : record.layers[diffIds.length];
      if (!entry.empty_layer && !layer) continue;
      if (srcHistory.length === history.length + 1) {
        // The source's last step: the source itself is the result, as in Docker, now a child of the current image.
        const bytes = await this.deps.imageStores.content.readBytes(srcId, 8 * 1024 * 1024);
        await this.deps.images.registerImage({ configBytes: bytes, layers: record.layers, ...(stage.imageId ? { parent: stage.imageId } : {}) }, []);
        return this.cacheHit(run, stage, srcId);
      }
      const now = entry.created ?? new Date().toISOString();
      const doc = {
        architecture: src.architecture ?? nodeArch(),
        config: orderedConfig(stage.runConfig, stage.imageId),
        container_config: orderedConfig(probe, stage.imageId),
        created: now,
        docker_version: "20.10.24+berth",
        history: [...history, entry],
        os: src.os ?? "linux",
        rootfs: { type: "layers", diff_ids: [...diffIds, ...(layer ? [layer.diffId] : [])] },
      };
      const layers = layer ? [...stage.layers, layer] : stage.layers;
      const { id } = await this.deps.images.registerImage(
        { configBytes: Buffer.from(JSON.stringify(doc)), layers, ...(stage.imageId ? { parent: stage.imageId } : {}) },
        [],
      );
      // Docker keeps to the source it started with, so that steps never mix two images' layers.
      run.cacheSources = [srcId];
      return this.cacheHit(run, stage, id);
    }
    return false;
  }

  private async cacheHit(run: BuildRun, stage: Stage, id: string): Promise<true> {
    run.out.stream(" ---> Using cache\n");
    const record = this.deps.images.resolve(id);
    stage.imageId = id;
    stage.image = await this.deps.images.config(id);
    stage.layers = record.layers;
    // The stage's own config already holds what the step set (as Docker's builder keeps its own).
    stage.runConfig.Image = id;
    return true;
  }

  private isAncestorOrSelf(id: string, of: string): boolean {
    const { store } = this.deps.imageStores;
    for (let cur: string | undefined = of, n = 0; cur && n < 10_000; cur = store.get(cur)?.parent, n++) if (cur === id) return true;
    return false;
  }

  /** Writes the step's image (with `layer` on top when the step changed files) and makes it the stage's current image. */
  private async commitImage(stage: Stage, containerConfig: ContainerConfig, layer: ImageLayerRecord | undefined, container: string): Promise<void> {
    const now = new Date().toISOString();
    const createdBy = (containerConfig.Cmd ?? []).join(" ");
    const history: HistoryEntry[] = [...(stage.image.history ?? []), { created: now, created_by: createdBy, ...(layer ? {} : { empty_layer: true }) }];
    const config = orderedConfig(stage.runConfig, stage.imageId);
    const doc = {
      architecture: stage.image.architecture ?? nodeArch(),
      ...(stage.image.author ? { author: stage.image.author } : {}),
      config,
      container,
      container_config: orderedConfig(containerConfig, stage.imageId),
      created: now,
      docker_version: "20.10.24+berth",
      history,
      os: stage.image.os ?? "linux",
      rootfs: { type: "layers", diff_ids: [...(stage.image.rootfs?.diff_ids ?? []), ...(layer ? [layer.diffId] : [])] },
    };
    const layers = layer ? [...stage.layers, layer] : stage.layers;
    const { id } = await this.deps.images.registerImage(
      { configBytes: Buffer.from(JSON.stringify(doc)), layers, ...(stage.imageId ? { parent: stage.imageId } : {}) },
      [],
    );
    stage.imageId = id;
    stage.image = await this.deps.images.config(id);
    stage.layers = layers;
    stage.runConfig.Image = id;
  }

  /** The changes in a snapshot's upper directory as a layer on the stage's chain, or undefined when nothing changed. */
  private async layerFromUpper(stage: Stage, upper: string): Promise<ImageLayerRecord | undefined> {
    const { layers, content } = this.deps.imageStores;
    const parentChain = stage.layers[stage.layers.length - 1]?.chainId;
    const lowers: string[] = [];
    if (parentChain) {
      const { cwd, lowers: rel } = await layers.lowerDirs(parentChain);
      for (const l of rel) lowers.push(await realpath(join(cwd, l)));
    }
    const changes = await diffUpper(upper, lowers, { exclude: BIND_TARGETS });
    if (changes.length === 0) return undefined;
    const [toStore, toUnpack] = teeStream(upperToLayerTar(upper, { exclude: BIND_TARGETS }));
    const [blob, layer] = await Promise.all([content.writeStream(toStore), layers.unpack({ parent: parentChain }, toUnpack)]);
    return {
      diffId: blob.digest,
      chainId: layer.chainId,
      size: layer.size,
      tarSize: blob.size,
      blob: { mediaType: "application/vnd.docker.image.rootfs.diff.tar", digest: blob.digest, size: blob.size },
    };
  }

  /** Runs `fn` on a private snapshot of the stage's current image, mounted; the snapshot and mount go afterwards. */
  private async withSnapshot<T>(run: BuildRun, chainId: string | undefined, fn: (rootfs: string, upper: string) => Promise<T>): Promise<T> {
    const snapshots = this.deps.snapshots;
    const key = randomBytes(32).toString("hex");
    const mnt = join(run.dir, `mnt-${key.slice(0, 12)}`);
    await mkdir(mnt);
    const mounts = await snapshots.prepare(key, chainId);
    try {
      await mountAll(mounts, mnt);
      try {
        return await fn(mnt, await snapshots.upperDir(key));
      } finally {
        await unmountAll(mnt, { detach: true });
      }
    } finally {
      await snapshots.remove(key).catch((err: unknown) => this.deps.logger.warn({ err, key }, "could not remove a build snapshot"));
      await rm(mnt, { recursive: true, force: true });
    }
  }

  // --- WORKDIR -----------------------------------------------------------------------

  private async workdir(run: BuildRun, stage: Stage, path: string): Promise<void> {
    const dir = posix.isAbsolute(path) ? posix.normalize(path) : posix.join(stage.runConfig.WorkingDir || "/", path);
    stage.runConfig.WorkingDir = dir;
    const probe = this.commentConfig(stage, "WORKDIR " + dir, true);
    if (await this.useCache(run, stage, probe)) return;
    const chain = stage.layers[stage.layers.length - 1]?.chainId;
    const layer = await this.withSnapshot(run, chain, async (rootfs, upper) => {
      await mkdirInRoot(rootfs, dir);
      return this.layerFromUpper(stage, upper);
    });
    await this.commitImage(stage, probe, layer, "");
  }

  // --- RUN ---------------------------------------------------------------------------

  private async runStep(run: BuildRun, stage: Stage, ins: DockerfileInstruction): Promise<void> {
    const rc = stage.runConfig;
    const cmd = ins.json ?? [...(rc.Shell ?? DEFAULT_SHELL), ins.args];
    // Build args the stage declared reach the command's environment, and its cache key (moby's prependEnvOnCmd).
    const argEnv: string[] = [];
    const envNames = new Set((rc.Env ?? []).map((e) => e.slice(0, e.indexOf("="))));
    for (const [k, v] of [...stage.args].sort(([a], [b]) => a.localeCompare(b))) {
      if (v === undefined || envNames.has(k)) continue;
      argEnv.push(`${k}=${v}`);
    }
    const proxyEnv: string[] = [];
    for (const k of PROXY_ARGS) {
      const v = run.opts.buildArgs[k];
      if (typeof v === "string" && !stage.args.has(k)) proxyEnv.push(`${k}=${v}`);
    }
    const saveCmd = argEnv.length ? [`|${argEnv.length}`, ...argEnv, ...cmd] : cmd;
    const probe: ContainerConfig = { ...structuredClone(rc), Cmd: saveCmd };
    if (await this.useCache(run, stage, probe)) return;
    if (!stage.imageId) await this.commitImage(stage, this.commentConfig(stage, ""), undefined, "");

    const containers = this.deps.containers;
    const record = await containers.create({
      image: stage.imageId!,
      cmd,
      entrypoint: "",
      env: [...argEnv, ...proxyEnv],
      user: rc.User || undefined,
      workingDir: rc.WorkingDir || undefined,
      networkMode: run.opts.networkMode || "bridge",
      extraHosts: run.opts.extraHosts,
      shmSize: run.opts.shmSize,
      labels: { [BUILD_CONTAINER_LABEL]: "1" },
    });
    const id = record.id;
    let removed = false;
    const removeContainer = async () => {
      if (removed) return;
      removed = true;
      await containers.remove(id, { force: true }).catch((err: unknown) => this.deps.logger.warn({ err, id }, "could not remove a build container"));
    };
    let ok = false;
    try {
      run.out.stream(` ---> Running in ${id.slice(0, 12)}\n`);
      // Awaited only after the start: a start that fails or a cancel that removes the container
      // first rejects them meanwhile, which must not go unhandled (and end the agent).
      const exited = awaitedLater(containers.wait(id, "next-exit"));
      const attaching = awaitedLater(containers.attach(id, { stdin: false, stdout: true, stderr: true }));
      const onAbort = () => void containers.kill(id, "SIGKILL").catch(bestEffort(this.deps.logger, `kill build container ${id}`)); // it may have exited already
      run.signal.addEventListener("abort", onAbort, { once: true });
      try {
        // Canceled while the container was made: the listener above never fires for it.
        if (run.signal.aborted) throw canceled("Build cancelled");
        await containers.start(id);
        // Canceled while it started: a kill then may have found nothing running yet.
        if (run.signal.aborted) onAbort();
        const session = await attaching;
        const decoders = { stdout: new StringDecoder("utf8"), stderr: new StringDecoder("utf8") };
        for await (const chunk of session.output as AsyncIterable<{ stream: "stdout" | "stderr"; data: Buffer }>) {
          const text = decoders[chunk.stream].write(chunk.data);
          if (text) run.out.stream(text);
        }
        const { statusCode } = await exited;
        if (run.signal.aborted) throw canceled("Build cancelled");
        if (statusCode !== 0) {
          throw Object.assign(new EngineError("InvalidArgument", `The command '${cmd.join(" ")}' returned a non-zero code: ${statusCode}`), {
            exitCode: statusCode,
          });
        }
      } finally {
        run.signal.removeEventListener("abort", onAbort);
      }
      const layer = await this.layerFromUpper(stage, await containers.upperDir(id));
      await this.commitImage(stage, probe, layer, id);
      ok = true;
    } finally {
      if (!ok ? run.opts.rm || run.opts.forceRm : run.opts.rm) {
        if (ok) run.out.stream(`Removing intermediate container ${id.slice(0, 12)}\n`);
        await removeContainer();
      }
    }
  }

  // --- COPY / ADD ---------------------------------------------------------------------

  private async copyStep(run: BuildRun, stage: Stage, ins: DockerfileInstruction, env: Map<string, string>): Promise<void> {
    const isAdd = ins.keyword === "ADD";
    const words = ins.json ?? processWords(ins.args, env, run.escape);
    if (words.length < 2)
      throw invalidArgument(`${ins.keyword} requires at least two arguments, but only one was provided. Destination could not be determined`);
    const srcs = words.slice(0, -1);
    let dest = words[words.length - 1]!;
    const from = ins.flags.get("from");
    const chown = ins.flags.get("chown");
    const chmodFlag = ins.flags.get("chmod");
    let mode: number | undefined;
    if (chmodFlag) {
      if (!/^[0-7]{3,4}$/.test(chmodFlag)) throw invalidArgument(`invalid chmod parameter: ${chmodFlag}`);
      mode = parseInt(chmodFlag, 8);
    }
    const endsWithSlash = dest.endsWith("/") || dest.endsWith("/.") || dest === ".";
    if (!posix.isAbsolute(dest)) dest = posix.join(stage.runConfig.WorkingDir || "/", dest) + (endsWithSlash ? "/" : "");

    const withSource = async <T>(fn: (root: string, what: "build context" | "stage") => Promise<T>): Promise<T> => {
      if (!from) return fn(run.contextDir, "build context");
      const name = processWord(from, env, run.escape).toLowerCase();
      const src = run.stages.get(name);
      const imageId = src?.imageId ?? (await this.baseImage(run, processWord(from, env, run.escape)));
      const record = this.deps.images.resolve(imageId);
      return this.withSnapshot(run, record.layers[record.layers.length - 1]?.chainId, (rootfs) => fn(rootfs, "stage"));
    };

    await withSource(async (srcRoot, what) => {
      const items: Array<SourceItem | { url: string }> = [];
      for (const s of srcs) {
        if (isAdd && /^https?:\/\//i.test(s) && !from) {
          items.push({ url: s });
          continue;
        }
        if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s) && !/^https?:/i.test(s)) throw invalidArgument(`source can't be a URL for ${ins.keyword}: ${s}`);
        const found = await findSources(srcRoot, s, what);
        if (found.length === 0 && /[*?[]/.test(s)) continue;
        items.push(...found);
      }
      if (items.length === 0) throw invalidArgument("no source files were specified");
      if (items.length > 1 && !dest.endsWith("/"))
        throw invalidArgument(`When using ${ins.keyword} with more than one source file, the destination must be a directory and end with a /`);

      // Downloads first: their content is part of the cache key.
      const downloads = new Map<string, SourceItem>();
      for (const item of items) {
        if (!("url" in item)) continue;
        const file = join(run.dir, `download-${randomBytes(6).toString("hex")}`);
        await download(item.url, file, run.signal);
        downloads.set(item.url, { hostPath: file, treePath: "/" + urlFileName(item.url), stat: await lstat(file), wildcard: false });
      }
      const local = items.map((i) => ("url" in i ? downloads.get(i.url)! : i));
      const hash = await hashSources(local);
      const kind = local.length > 1 ? "multi" : local[0]!.stat.isDirectory() ? "dir" : "file";
      // Docker's comment, its missing space after the --chown value included (moby's copy.go).
      const chownComment = chown ? `--chown=${processWord(chown, env, run.escape)}` : "";
      const probe = this.commentConfig(stage, `${ins.keyword} ${chownComment}${kind}:${hash} in ${dest} `, true);
      if (await this.useCache(run, stage, probe)) return;
      const chain = stage.layers[stage.layers.length - 1]?.chainId;
      const layer = await this.withSnapshot(run, chain, async (rootfs, upper) => {
        const owner: CopyOwner = chown ? await resolveUser(rootfs, processWord(chown, env, run.escape)) : { uid: 0, gid: 0 };
        const destIsDir = dest.endsWith("/") || (await isDirInRoot(rootfs, dest));
        for (const [i, item] of local.entries()) {
          const isUrl = "url" in items[i]!;
          if (isAdd && !isUrl && item.stat.isFile() && (await isArchive(item.hostPath))) {
            await this.extractArchive(run, item.hostPath, rootfs, dest);
            continue;
          }
          const target = item.stat.isDirectory() ? dest : destIsDir ? posix.join(dest, posix.basename(item.treePath)) : dest;
          await copyInto(rootfs, item.hostPath, target, { owner, ...(mode !== undefined ? { mode } : isUrl ? { mode: 0o600 } : {}) });
        }
        return this.layerFromUpper(stage, upper);
      });
      await this.commitImage(stage, probe, layer, "");
    });
  }

  /** ADD of a local archive: unpacked with the layer extractor's checks into a private directory, then copied in. */
  private async extractArchive(run: BuildRun, archive: string, rootfs: string, dest: string): Promise<void> {
    const tmp = join(run.dir, `archive-${randomBytes(6).toString("hex")}`);
    await mkdir(tmp);
    try {
      const { createReadStream } = await import("node:fs");
      await extractLayer(decompressStream(createReadStream(archive)), tmp, { signal: run.signal }).catch((e: unknown) => {
        throw e instanceof EngineError ? new EngineError(e.kind, `extracting ${posix.basename(archive)}: ${e.message}`, { cause: e }) : e;
      });
      await copyInto(rootfs, tmp, dest.endsWith("/") ? dest : dest + "/", {});
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
}

// --- helpers ---------------------------------------------------------------------------

function stageName(from: DockerfileInstruction, run: { metaArgs: Map<string, string | undefined>; escape: string }): string | undefined {
  const words = processWords(from.args, run.metaArgs, run.escape);
  return words[2]?.toLowerCase();
}

function shortId(id: string | undefined): string {
  return id ? id.slice(7, 19) : "";
}

function emptyImage(): ImageConfig {
  return { architecture: nodeArch(), os: "linux", rootfs: { type: "layers", diff_ids: [] }, history: [] };
}

function nodeArch(): string {
  return platformFromNode().architecture;
}

function checkPlatform(p: string | undefined): void {
  if (!p) return;
  const [os, arch, variant] = p.split("/");
  const want = normalizePlatform(platformFromNode());
  let given;
  try {
    given = normalizePlatform({ os: os ?? "", architecture: arch ?? want.architecture, ...(variant ? { variant } : {}) });
  } catch {
    throw invalidArgument(`invalid platform: ${p}`);
  }
  if (given.os !== want.os || given.architecture !== want.architecture || (given.variant && given.variant !== want.variant)) {
    throw invalidArgument(`the build platform "${p}" is not supported: this node builds for ${formatPlatform(want)} only`);
  }
}

/** Go's %q of a string slice, as Docker writes CMD/ENTRYPOINT/SHELL in history: ["a" "b"]. */
function goQuote(list: readonly string[]): string {
  return `[${list.map((s) => JSON.stringify(s)).join(" ")}]`;
}

function durationNs(v: string, flag: string): number {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  const unit: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  let consumed = 0;
  for (const m of v.matchAll(re)) {
    total += Number(m[1]) * unit[m[2]!]!;
    consumed += m[0].length;
  }
  if (consumed !== v.length || consumed === 0) throw invalidArgument(`time: invalid duration "${v}" for --${flag}`);
  return Math.round(total);
}

/** The fields of a container config the build cache compares (moby's image/cache compare()). */
function cacheKey(c: ContainerConfig): string {
  const pick = {
    Cmd: c.Cmd ?? null,
    Env: c.Env ?? null,
    Entrypoint: c.Entrypoint ?? null,
    Labels: sortObject(c.Labels ?? {}),
    ExposedPorts: Object.keys(c.ExposedPorts ?? {}).sort(),
    Volumes: Object.keys(c.Volumes ?? {}).sort(),
    WorkingDir: c.WorkingDir ?? "",
    User: c.User ?? "",
    OnBuild: c.OnBuild ?? null,
    Shell: c.Shell ?? null,
    StopSignal: c.StopSignal ?? "",
    Healthcheck: c.Healthcheck ?? null,
  };
  return JSON.stringify(pick);
}

function sortObject(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

/** A container config in the shape and key order Docker writes into an image config. */
function orderedConfig(c: ContainerConfig, parentId: string | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {
    Hostname: "",
    Domainname: "",
    User: c.User ?? "",
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
  };
  if (c.ExposedPorts && Object.keys(c.ExposedPorts).length) out.ExposedPorts = c.ExposedPorts;
  Object.assign(out, { Tty: false, OpenStdin: false, StdinOnce: false, Env: c.Env ?? null, Cmd: c.Cmd ?? null });
  if (c.Healthcheck) out.Healthcheck = c.Healthcheck;
  if (c.ArgsEscaped) out.ArgsEscaped = true;
  Object.assign(out, {
    Image: parentId ?? "",
    Volumes: c.Volumes && Object.keys(c.Volumes).length ? c.Volumes : null,
    WorkingDir: c.WorkingDir ?? "",
    Entrypoint: c.Entrypoint ?? null,
    OnBuild: c.OnBuild && c.OnBuild.length ? c.OnBuild : null,
    Labels: c.Labels && Object.keys(c.Labels).length ? c.Labels : null,
  });
  if (c.StopSignal) out.StopSignal = c.StopSignal;
  if (c.Shell) out.Shell = c.Shell;
  return out;
}

async function isArchive(file: string): Promise<boolean> {
  const { open } = await import("node:fs/promises");
  const fh = await open(file, "r");
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    if (bytesRead >= 6 && detectCompression(head) !== "none") return true;
    return bytesRead >= 262 && head.subarray(257, 262).toString("latin1") === "ustar";
  } finally {
    await fh.close();
  }
}

function urlFileName(url: string): string {
  const name = posix.basename(new URL(url).pathname);
  return name && name !== "/" ? name : "__unnamed__";
}

/**
 * ADD URL: downloads over http(s) only, following redirects by hand so that one to
 * another scheme (file:, ftp:) is refused rather than followed.
 */
async function download(url: string, file: string, signal: AbortSignal): Promise<void> {
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const u = new URL(current);
    if (u.protocol !== "http:" && u.protocol !== "https:")
      throw invalidArgument(`ADD ${url}: refusing to follow a redirect to ${u.protocol} (only http and https)`);
    let res: Response;
    try {
      res = await fetch(u, { redirect: "manual", signal });
    } catch (e) {
      throw invalidArgument(`ADD ${url}: ${(e as Error).message}`, e);
    }
    if (res.status >= 300 && res.status < 400 && res.headers.get("location")) {
      current = new URL(res.headers.get("location")!, u).toString();
      await res.body?.cancel();
      continue;
    }
    if (!res.ok || !res.body) throw notFound(`ADD ${url}: server answered ${res.status} ${res.statusText}`);
    await pipeline(Readable.fromWeb(res.body as import("node:stream/web").ReadableStream), createWriteStream(file, { mode: 0o600 }));
    const modified = res.headers.get("last-modified");
    if (modified && !Number.isNaN(Date.parse(modified))) await utimes(file, new Date(modified), new Date(modified));
    return;
  }
  throw invalidArgument(`ADD ${url}: too many redirects`);
}
