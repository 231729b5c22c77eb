import { randomBytes } from "node:crypto";
import { conflict, EngineError, invalidArgument, notFound } from "../errors.ts";
import type { ExecSession } from "../monitor/monitor.ts";
import { killProcessTree } from "../monitor/process-tree.ts";
import { RuncError } from "../runtime/runc.ts";
import { buildRuntimeSpec, type SpecProcess } from "../runtime/spec.ts";
import { resolveUser } from "../runtime/user.ts";
import { bestEffort } from "../../../shared/best-effort.ts";
import type { ContainerRecord } from "./container-record.ts";
import type { ContainerCore } from "./container-core.ts";
import { monitorPaths, runOptions } from "./run-options.ts";

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

/**
 * Processes run in running containers (`docker exec`, health probes): their instances, start,
 * end, and the kill of what a departed client ran. Docker keeps exec instances in memory only;
 * so does this, until their container is removed.
 */
export class ContainerExecs {
  private readonly execs = new Map<string, ExecInstance>();

  constructor(private readonly core: ContainerCore) {}

  createExec(idOrName: string, config: ExecConfig): ExecInstance {
    const record = this.core.get(idOrName);
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
      this.core.deps.logger.debug({ exec: id, pid: exec.pid }, "killed an exec process whose client left");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ESRCH")
        this.core.deps.logger.warn({ err: e, exec: id, pid: exec.pid }, "could not kill an exec process whose client left");
    }
  }

  /**
   * Ends a running exec and everything it started (SIGKILL to its process tree): a console
   * terminal that closes must not leave its commands running. An ended exec is left alone.
   */
  async killExecTree(id: string): Promise<void> {
    const exec = this.execs.get(id);
    if (!exec?.running || exec.pid <= 0) return;
    await killProcessTree(exec.pid);
    this.core.deps.logger.debug({ exec: id, pid: exec.pid }, "killed an exec's process tree whose client left");
  }

  /** The IDs of the container's exec instances (inspect's ExecIDs). */
  execIds(containerId: string): string[] {
    return [...this.execs.values()].filter((e) => e.containerId === containerId).map((e) => e.id);
  }

  getExec(id: string): ExecInstance {
    const e = this.execs.get(id);
    if (!e) throw notFound(`No such exec instance: ${id}`);
    return e;
  }

  async startExec(execId: string, opts: { detach?: boolean } = {}): Promise<ExecSession> {
    const exec = this.getExec(execId);
    if (exec.running || exec.exitCode !== null) throw conflict(`Error: Exec command ${execId} has already run`);
    const record = this.core.deps.store.get(exec.containerId);
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
    const session = await this.core.deps.monitor.exec(record.id, monitorPaths(this.core.paths(record.id)), process, {
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
    this.core.emitEvent("exec_start", record, { execID: exec.id });
    return session;
  }

  /** The process of an exec in a running container: its user, environment and working directory as Docker resolves them. */
  private async execProcess(record: ContainerRecord, config: ExecConfig): Promise<SpecProcess> {
    const p = this.core.paths(record.id);
    const image =
      (await this.core.deps.images.config(record.imageId).catch(bestEffort(this.core.deps.logger, `read the config of image ${record.imageId}`)))?.config ?? {};
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
      cgroupsPath: `${this.core.deps.cgroupParent}/${record.id}`,
      host: this.core.deps.specHost,
    });
    return spec.process;
  }

  /** A health probe's exec: the container's user and environment, output attached, no stdin. */
  async probeExec(id: string, cmd: string[]): Promise<ExecSession> {
    const record = this.core.deps.store.get(id);
    if (record?.state.status === "paused") throw conflict(`Container ${id} is paused, unpause the container before exec`);
    if (!record || record.state.status !== "running") throw conflict(`Container ${id} is not running`);
    const process = await this.execProcess(record, { cmd, tty: false, attachStdin: false, env: [] });
    return this.core.deps.monitor.exec(record.id, monitorPaths(this.core.paths(record.id)), process, { tty: false, stdin: false });
  }

  /** The container is gone: so are its exec instances. */
  forget(containerId: string): void {
    for (const [execId, e] of this.execs) if (e.containerId === containerId) this.execs.delete(execId);
  }
}
