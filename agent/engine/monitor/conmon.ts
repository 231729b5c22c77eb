/**
 * `ContainerMonitor` (monitor.ts) on conmon 2.1 (Debian `conmon`), driven the
 * way podman drives it (libpod `oci_conmon_common.go`, `oci_conmon_exec_common.go`).
 *
 * Launch: `conmon --api-version 1 -c ID -u ID -r RUNC -b BUNDLE -p PIDFILE
 * -n NAME --exit-dir DIR -l k8s-file:LOG [--log-size-max N] --persist-dir DIR
 * --full-attach --socket-dir-path DIR --conmon-pidfile FILE [-t | -i
 * [--leave-stdin-open]] --runtime-arg --root=RUNCROOT --runtime-arg
 * --log-format=json --runtime-arg --log=RUNCLOG`, with three descriptors:
 * - fd 3, `_OCI_SYNCPIPE`: conmon answers JSON lines `{"data": N, "message": …}`:
 *   the container's PID, or N < 0 and runc's error. For an exec a second line
 *   carries the exit code.
 * - fd 4, `_OCI_STARTPIPE`: conmon waits for one byte before it forks (time to
 *   move it into a cgroup); for an exec with `--exec-attach` a second byte lets
 *   runc exec run once the caller is attached, so no output is missed.
 * - fd 5, `_OCI_ATTACHPIPE` (exec only): conmon says `{"data": 0}` when its
 *   attach socket listens.
 * The launched process forks the real monitor (new session, reparented to
 * init) and exits: nothing ties the monitor to the agent any more. The monitor
 * runs `runc create` (or `runc exec -d`), reaps the container's process as a
 * subreaper, and at its end writes PERSIST/exit and EXITDIR/ID (the exit
 * code, 128+n for a signal) and, on an OOM event of the container's memory
 * cgroup, PERSIST/oom (cgroup v1: memory.oom_control eventfd; v2: memory.events).
 *
 * Files in `stateDir`:
 *   conmon.pid   the monitor's PID          pidfile     the container's init PID
 *   exits/ID     exit code (watched)        persist/    exit, oom (and conmon's cwd)
 *   runc.log     runc's JSON log (errors)   exec/SID/   one directory per exec session:
 *                                                      process.json, pid, conmon.pid,
 *                                                      exits/, persist/, attach, ctl, winsz
 * and in the bundle: `attach` (removed by conmon at its end), `ctl`, `winsz`.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, constants as fsConstants, existsSync, mkdirSync, openSync, readSync, watch, writeFileSync, type FSWatcher } from "node:fs";
import { access, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { Socket } from "node:net";
import { basename, join } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import type { Logger } from "pino";
import { bestEffort, settled, type DebugLog } from "../../../shared/best-effort.ts";
import { guardChild } from "../child-process.ts";
import { canceled, conflict, EngineError, invalidArgument, isEngineError, unavailable, type EngineErrorKind } from "../errors.ts";
import { Runc, RuncError } from "../runtime/runc.ts";
import type { SpecProcess } from "../runtime/spec.ts";
import { connectSeqpacket, resizeLine, stdioSession, writeCtl } from "./attach.ts";
import { readLogs } from "./k8s-log.ts";
import type { ContainerMonitor, CreateOptions, ExecOptions, ExecSession, ExitStatus, MonitorPaths, StdioSession } from "./monitor.ts";

export interface ConmonMonitorOptions {
  /** The conmon executable (default /usr/bin/conmon). */
  conmon?: string;
  /** The runc executable conmon runs (default /usr/sbin/runc). */
  runc?: string;
  /** runc's state directory (`--root`), the same the caller's `Runc` uses. */
  runcRoot: string;
  logger?: Logger;
  /**
   * A cgroup path (e.g. "/berth/conmon") the monitors are moved into before
   * they fork, in the hierarchies a service manager tracks processes by
   * (cgroup v2, and v1's name=systemd): stopping the agent's service then does
   * not kill the monitors. Absent: monitors stay in the agent's cgroups (run
   * the agent's unit with KillMode=process then).
   */
  monitorCgroup?: string;
  /** How long to wait for conmon's answers (default 60 s). */
  timeoutMs?: number;
}

/** One answer of conmon on the sync or attach pipe. */
interface SyncMessage {
  data: number;
  message?: string;
}

const CGROUP_ROOT = "/sys/fs/cgroup";
const ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

export class ConmonMonitor implements ContainerMonitor {
  private readonly conmon: string;
  private readonly runcPath: string;
  private readonly runcRoot: string;
  private readonly runc: Runc;
  private readonly logger?: Logger;
  /** The logger, or a silent one: for failures that change nothing (bestEffort). */
  private readonly log: DebugLog;
  private readonly monitorCgroup?: string;
  private readonly timeoutMs: number;

  constructor(opts: ConmonMonitorOptions) {
    this.conmon = opts.conmon ?? "/usr/bin/conmon";
    this.runcPath = opts.runc ?? "/usr/sbin/runc";
    this.runcRoot = opts.runcRoot;
    this.runc = new Runc({ root: opts.runcRoot, binary: this.runcPath });
    this.logger = opts.logger;
    this.log = opts.logger ?? { debug: () => undefined };
    this.monitorCgroup = opts.monitorCgroup;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
  }

  async create(opts: CreateOptions): Promise<{ pid: number; monitorPid: number }> {
    checkId(opts.id);
    for (const [what, p] of [
      ["log path", opts.logPath],
      ["bundle", opts.bundle],
      ["state directory", opts.stateDir],
    ] as const) {
      // conmon splits `-l DRIVER:PATH` at colons and passes paths on to runc flags.
      if (p.includes(":") || p.includes("\n") || !p.startsWith("/")) throw invalidArgument(`${what} ${JSON.stringify(p)} must be an absolute path without ':'`);
    }
    if (opts.logMaxSize !== undefined && (!Number.isSafeInteger(opts.logMaxSize) || opts.logMaxSize < 0))
      throw invalidArgument(`invalid log size limit ${opts.logMaxSize}`);
    const f = files(opts);
    await mkdir(f.exitDir, { recursive: true });
    await mkdir(f.persistDir, { recursive: true });
    // A new run: the previous run's records must not describe it.
    await Promise.all([f.exitFile, f.oomFile, join(f.exitDir, opts.id), f.runcLog, f.pidFile, f.conmonPid].map((p) => rm(p, { force: true })));

    const args = [
      "--api-version",
      "1",
      "-c",
      opts.id,
      "-u",
      opts.id,
      "-r",
      this.runcPath,
      "-b",
      opts.bundle,
      "-p",
      f.pidFile,
      "-n",
      opts.name || opts.id,
      "--exit-dir",
      f.exitDir,
      "-l",
      `k8s-file:${opts.logPath}`,
      ...(opts.logMaxSize ? ["--log-size-max", String(opts.logMaxSize)] : []),
      "--persist-dir",
      f.persistDir,
      "--full-attach",
      "--socket-dir-path",
      opts.stateDir,
      "--conmon-pidfile",
      f.conmonPid,
      ...this.runtimeArgs(f.runcLog),
    ];
    if (opts.tty) args.push("-t");
    else if (opts.stdin) args.push("-i", ...(opts.stdinOnce ? [] : ["--leave-stdin-open"]));

    const launch = this.launch(args, f.persistDir, false);
    try {
      launch.start();
      const reply = await launch.reply(this.timeoutMs);
      if (reply.data < 0) {
        await this.runc
          .delete(opts.id, { force: true })
          .catch((err: unknown) => this.logger?.warn({ err, id: opts.id }, "could not delete the runc container of a failed create"));
        throw await runtimeError("create", opts.id, reply, f.runcLog);
      }
      const monitorPid = await readPid(f.conmonPid);
      if (monitorPid === undefined) throw new EngineError("Internal", `conmon did not write its pid file ${f.conmonPid}`);
      this.logger?.debug({ id: opts.id, pid: reply.data, monitorPid }, "container created under conmon");
      return { pid: reply.data, monitorPid };
    } finally {
      launch.close();
    }
  }

  async start(id: string, paths: MonitorPaths): Promise<void> {
    checkId(id);
    await this.runc.start(id);
    await this.checkExecuted(id, paths);
  }

  /**
   * runc 1.1 resolves the command at create, but execve(2) itself fails only
   * after `runc start` returned success (a script's missing interpreter, a
   * binary for another architecture): `runc init` then writes
   * `exec ARG0: REASON` to the container's stderr and exits 1. Watch the init
   * process until it is no longer `runc init` (it ran the command: the usual
   * case, a millisecond or two) or it is gone; then look for that message.
   * @throws InvalidArgument with runc's message
   */
  private async checkExecuted(id: string, paths: MonitorPaths): Promise<void> {
    const pid = await readPid(files(paths).pidFile);
    if (pid === undefined) return;
    const deadline = Date.now() + 2000;
    for (;;) {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
      if (cmdline === "") break; // gone (or a zombie)
      const argv = cmdline.split("\0");
      if (!(argv[1] === "init" && basename(argv[0] ?? "") === "runc")) return; // exec'd
      if (Date.now() > deadline) return;
      await delay(1);
    }
    const status = await this.waitExit(paths, AbortSignal.timeout(2000)).catch(bestEffort(this.log, `wait for ${id} to show whether its command ran`));
    if (!status || status.exitCode !== 1) return;
    const spec = JSON.parse(await readFile(join(paths.bundle, "config.json"), "utf8").catch(() => "{}")) as { process?: { args?: string[] } };
    const arg0 = spec.process?.args?.[0];
    if (!arg0) return;
    let message: string | undefined;
    for await (const e of readLogs(paths.logPath, { tail: 10 })) {
      const line = e.data.toString("utf8").trim();
      if (e.stream === "stderr" && line.startsWith(`exec ${arg0}: `)) message = line;
    }
    if (message) throw new RuncError("InvalidArgument", "start", `runc start ${id}: ${message}`, message, 1);
  }

  async attach(paths: MonitorPaths, opts: { stdin: boolean; stdout: boolean; stderr: boolean }): Promise<StdioSession> {
    const sock = await connectSeqpacket(join(paths.bundle, "attach"), "container");
    const session = stdioSession(sock, { ...opts, ctlPath: join(paths.bundle, "ctl"), what: "container" });
    const persistDir = files(paths).persistDir;
    return {
      ...session,
      // conmon records the exit, then lingers a moment with its ctl fifo still open: a resize
      // then must not look like it reached a terminal that is gone.
      resize: async (cols, rows) => {
        if (await readExitStatus(persistDir)) throw conflict("container is not running");
        return session.resize(cols, rows);
      },
    };
  }

  async exitStatus(paths: MonitorPaths): Promise<ExitStatus | undefined> {
    return readExitStatus(files(paths).persistDir);
  }

  async waitExit(paths: MonitorPaths, signal?: AbortSignal): Promise<ExitStatus> {
    const f = files(paths);
    return waitForExit({ watchDir: f.exitDir, persistDir: f.persistDir, pidFile: f.conmonPid, fifo: join(paths.bundle, "winsz"), signal, what: "container" });
  }

  async monitorAlive(paths: MonitorPaths): Promise<boolean> {
    const f = files(paths);
    const pid = await readPid(f.conmonPid);
    return pid !== undefined && (await isMonitorProcess(pid, f.persistDir));
  }

  async exec(id: string, paths: MonitorPaths, execProcess: SpecProcess, opts: ExecOptions): Promise<ExecSession> {
    checkId(id);
    await this.checkRunning(id);
    const sid = randomBytes(6).toString("hex");
    const dir = join(files(paths).execDir, sid);
    const ef = {
      dir,
      spec: join(dir, "process.json"),
      pidFile: join(dir, "pid"),
      conmonPid: join(dir, "conmon.pid"),
      exitDir: join(dir, "exits"),
      persistDir: join(dir, "persist"),
      runcLog: join(dir, "runc.log"),
    };
    const attached = !opts.detach;
    let session: StdioSession | undefined;
    let launch: Launch | undefined;
    try {
      await mkdir(ef.exitDir, { recursive: true });
      await mkdir(ef.persistDir, { recursive: true });
      await writeFile(ef.spec, JSON.stringify({ ...execProcess, terminal: opts.tty }));
      const args = [
        "--api-version",
        "1",
        "-c",
        id,
        "-u",
        sid,
        "-r",
        this.runcPath,
        "-b",
        dir,
        "-p",
        ef.pidFile,
        "-n",
        id,
        "--exit-dir",
        ef.exitDir,
        "-l",
        "none",
        "--persist-dir",
        ef.persistDir,
        "--full-attach",
        "--socket-dir-path",
        dir,
        "--conmon-pidfile",
        ef.conmonPid,
        ...this.runtimeArgs(ef.runcLog),
        ...(opts.tty ? ["-t"] : []),
        ...(opts.stdin && attached ? ["-i"] : []),
        "-e",
        "--exec-attach",
        "--exec-process-spec",
        ef.spec,
      ];
      launch = this.launch(args, ef.persistDir, true);
      launch.start();
      // conmon's attach socket listens now; runc exec waits for the second start byte.
      const ready = await launch.attachReady(this.timeoutMs);
      if (ready.data < 0) throw await runtimeError("exec", id, ready, ef.runcLog);
      if (attached) {
        const sock = await connectSeqpacket(join(dir, "attach"), "exec session");
        session = stdioSession(sock, { stdin: opts.stdin, stdout: true, stderr: true, ctlPath: join(dir, "ctl"), what: "exec session" });
      }
      launch.start();
      const reply = await launch.reply(this.timeoutMs);
      if (reply.data < 0) throw await runtimeError("exec", id, reply, ef.runcLog);
      const pid = reply.data;
      const l = launch;
      // The second answer is the exit code; the exit file is the fallback (detached, or the pipe broke).
      // Attached: read at once (the pipe is open anyway); detached: only when someone waits.
      const waitExitCode = async () => {
        try {
          const end = attached ? await l.reply(0).catch(bestEffort(this.log, `read the exit code of an exec in ${id} from conmon`)) : undefined; // else the exit file
          if (end && end.data >= 0) return end.data;
          const st = await waitForExit({
            watchDir: ef.exitDir,
            fifo: join(dir, "winsz"),
            persistDir: ef.persistDir,
            pidFile: ef.conmonPid,
            what: "exec session",
          });
          return st.exitCode;
        } finally {
          l.close();
          await rm(dir, { recursive: true, force: true }).catch(bestEffort(this.log, `remove the exec directory ${dir}`));
        }
      };
      let exitCode: Promise<number> | undefined;
      const wait = () => (exitCode ??= waitExitCode());
      if (attached)
        void settled(wait()); // its failure goes to whoever calls wait()
      else l.close();
      const s = session ?? detachedSession(join(dir, "ctl"));
      return { ...s, pid, wait };
    } catch (e) {
      session?.close();
      launch?.close();
      await rm(dir, { recursive: true, force: true }).catch(bestEffort(this.log, `remove the exec directory ${dir}`));
      throw e;
    }
  }

  async cleanup(paths: MonitorPaths): Promise<void> {
    const f = files(paths);
    const monitors: [string, string][] = [[f.conmonPid, f.persistDir]];
    for (const sid of await readdir(f.execDir).catch(() => [] as string[])) {
      monitors.push([join(f.execDir, sid, "conmon.pid"), join(f.execDir, sid, "persist")]);
    }
    for (const [pidFile, persistDir] of monitors) {
      const pid = await readPid(pidFile);
      if (pid !== undefined) await stopMonitor(pid, persistDir, this.logger);
    }
    await Promise.all(
      [f.conmonPid, f.pidFile, f.exitDir, f.persistDir, f.runcLog, f.execDir, ...["attach", "ctl", "winsz"].map((n) => join(paths.bundle, n))].map((p) =>
        rm(p, { recursive: true, force: true }),
      ),
    );
  }

  private runtimeArgs(runcLog: string): string[] {
    return ["--runtime-arg", `--root=${this.runcRoot}`, "--runtime-arg", "--log-format=json", "--runtime-arg", `--log=${runcLog}`];
  }

  /** Docker's refusals for exec into a container that does not run. */
  private async checkRunning(id: string): Promise<void> {
    let status: string;
    try {
      status = (await this.runc.state(id)).status;
    } catch (e) {
      if (isEngineError(e, "NotFound")) throw conflict(`Container ${id} is not running`, e);
      throw e;
    }
    if (status === "paused") throw conflict(`Container ${id} is paused, unpause the container before exec`);
    if (status !== "running") throw conflict(`Container ${id} is not running`);
  }

  /** Spawns conmon with the sync and start pipes (and the attach pipe for exec). */
  private launch(args: string[], cwd: string, withAttachPipe: boolean): Launch {
    // (A cast: Next.js's types, in the same program, make NODE_ENV a required key of ProcessEnv.)
    const env = {
      PATH: process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      _OCI_SYNCPIPE: "3",
      _OCI_STARTPIPE: "4",
      ...(withAttachPipe ? { _OCI_ATTACHPIPE: "5" } : {}),
    } as unknown as NodeJS.ProcessEnv;
    const stdio = ["ignore", "ignore", "pipe", "pipe", "pipe", ...(withAttachPipe ? ["pipe"] : [])] as ("ignore" | "pipe")[];
    this.logger?.debug({ args }, "starting conmon");
    const child = spawn(this.conmon, args, { cwd, env, stdio, detached: true });
    const launch = new Launch(child, this.conmon);
    if (this.monitorCgroup && child.pid !== undefined) moveToCgroup(child.pid, this.monitorCgroup, this.logger);
    return launch;
  }
}

/** A launched conmon: its pipes, and the first process's end. */
class Launch {
  private readonly sync: JsonLines;
  private readonly attach?: JsonLines;
  private readonly startPipe: NodeJS.WritableStream & { destroy(): void };
  private stderr = "";
  private readonly exited: Promise<number | null>;

  constructor(
    private readonly child: ChildProcess,
    private readonly binary: string,
  ) {
    const [, , err, sync, start] = child.stdio;
    const attach = (child.stdio as unknown as (Readable | null | undefined)[])[5];
    this.sync = new JsonLines(sync as Readable);
    this.attach = attach ? new JsonLines(attach as Readable) : undefined;
    this.startPipe = start as unknown as NodeJS.WritableStream & { destroy(): void };
    err?.on("data", (b: Buffer) => {
      if (this.stderr.length < 8192) this.stderr += b.toString("utf8");
    });
    this.exited = new Promise((resolve) => {
      // Also the pipes: conmon may be gone already (EPIPE on the start pipe); its answer, or its absence, tells.
      guardChild(child, (e) => {
        this.stderr += `${e.message}\n`;
        resolve(null);
      });
      child.once("exit", (code) => resolve(code));
    });
    child.unref();
  }

  /** Lets conmon go on (one byte on the start pipe). */
  start(): void {
    this.startPipe.write(Buffer.from([0]));
  }

  /** The next answer on the sync pipe. `timeoutMs` 0: no time limit. @throws Internal if conmon ended without one */
  async reply(timeoutMs: number): Promise<SyncMessage> {
    return this.answer(this.sync, timeoutMs, "sync");
  }

  /** conmon's "attach socket ready" (exec). */
  async attachReady(timeoutMs: number): Promise<SyncMessage> {
    if (!this.attach) throw new EngineError("Internal", "no attach pipe");
    return this.answer(this.attach, timeoutMs, "attach");
  }

  private async answer(lines: JsonLines, timeoutMs: number, what: string): Promise<SyncMessage> {
    const m = await lines.next(timeoutMs);
    if (m) return m;
    const code = await Promise.race([this.exited, delay(1000).then(() => undefined)]);
    const detail = this.stderr.trim() || (code ? `exit code ${code}` : "no message");
    if (m === null) throw new EngineError("Internal", `${basename(this.binary)} did not answer on its ${what} pipe within ${timeoutMs} ms (${detail})`);
    throw new EngineError("Internal", `${basename(this.binary)} failed: ${detail}`);
  }

  /** Releases the agent's ends of the pipes (the monitor keeps running). Idempotent. */
  close(): void {
    this.startPipe.destroy();
    this.sync.close();
    this.attach?.close();
    (this.child.stdio[2] as Readable | null)?.destroy();
  }
}

/** Newline-separated JSON answers read from a pipe. */
class JsonLines {
  private buf = "";
  private readonly queue: SyncMessage[] = [];
  private waiter: ((m: SyncMessage | undefined) => void) | undefined;
  private ended = false;

  constructor(private readonly stream: Readable) {
    stream.on("data", (b: Buffer) => {
      this.buf += b.toString("utf8");
      for (let nl = this.buf.indexOf("\n"); nl >= 0; nl = this.buf.indexOf("\n")) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (line) this.push(parseSyncLine(line));
      }
    });
    const end = () => {
      if (this.buf.trim()) this.push(parseSyncLine(this.buf.trim()));
      this.buf = "";
      this.ended = true;
      this.waiter?.(undefined);
    };
    stream.on("end", end);
    stream.on("close", end);
    stream.on("error", end);
  }

  private push(m: SyncMessage): void {
    if (this.waiter) this.waiter(m);
    else this.queue.push(m);
  }

  /** The next message; undefined at the end of the pipe; null on timeout. */
  next(timeoutMs: number): Promise<SyncMessage | undefined | null> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = timeoutMs > 0 ? setTimeout(() => finish(null), timeoutMs) : undefined;
      const finish = (m: SyncMessage | undefined | null) => {
        if (timer) clearTimeout(timer);
        this.waiter = undefined;
        resolve(m);
      };
      this.waiter = finish;
    });
  }

  close(): void {
    this.stream.destroy();
  }
}

function parseSyncLine(line: string): SyncMessage {
  try {
    const v = JSON.parse(line) as { data?: unknown; message?: unknown };
    if (typeof v.data === "number") return { data: v.data, ...(typeof v.message === "string" ? { message: v.message } : {}) };
  } catch {
    // fall through
  }
  return { data: -1, message: line };
}

/** The failure of `runc create`/`exec` under conmon, with runc's own message (from its JSON log, else conmon's relay). */
async function runtimeError(command: "create" | "exec", id: string, reply: SyncMessage, runcLog: string): Promise<RuncError> {
  const log = await readFile(runcLog, "utf8").catch(() => "");
  let logged: string | undefined;
  for (const line of log.split("\n")) {
    try {
      const e = JSON.parse(line) as { level?: string; msg?: string };
      if ((e.level === "error" || e.level === "fatal") && e.msg) logged = e.msg;
    } catch {
      // not JSON
    }
  }
  const message = (logged ?? reply.message ?? `runc ${command} failed`).trim();
  return new RuncError(kindOf(message), command, message, log.trim() || (reply.message ?? "").trim(), null);
}

function kindOf(msg: string): EngineErrorKind {
  if (
    /exec: "[^"]*": |executable file not found|permission denied|not a directory|no such file or directory/.test(msg) &&
    /exec|start container process/.test(msg)
  )
    return "InvalidArgument";
  if (/container with id exists|already exists/.test(msg)) return "AlreadyExists";
  if (/does not exist/.test(msg)) return "NotFound";
  if (/not running|stopped container|is paused|container is stopped|has stopped/.test(msg)) return "Conflict";
  return "Internal";
}

interface Files {
  conmonPid: string;
  pidFile: string;
  exitDir: string;
  persistDir: string;
  exitFile: string;
  oomFile: string;
  runcLog: string;
  execDir: string;
}

function files(paths: MonitorPaths): Files {
  const d = paths.stateDir;
  const persistDir = join(d, "persist");
  return {
    conmonPid: join(d, "conmon.pid"),
    pidFile: join(d, "pidfile"),
    exitDir: join(d, "exits"),
    persistDir,
    exitFile: join(persistDir, "exit"),
    oomFile: join(persistDir, "oom"),
    runcLog: join(d, "runc.log"),
    execDir: join(d, "exec"),
  };
}

function checkId(id: string): void {
  if (typeof id !== "string" || !ID_RE.test(id)) throw invalidArgument(`invalid container id ${JSON.stringify(id)}`);
}

async function readExitStatus(persistDir: string): Promise<ExitStatus | undefined> {
  const exitFile = join(persistDir, "exit");
  let text: string;
  let mtime: Date;
  try {
    [text, mtime] = await Promise.all([readFile(exitFile, "utf8"), stat(exitFile).then((s) => s.mtime)]);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  const exitCode = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(exitCode)) return undefined; // not written completely (conmon renames it into place, so this is rare)
  const oomKilled = await access(join(persistDir, "oom")).then(
    () => true,
    () => false,
  );
  return { exitCode, oomKilled, finishedAt: mtime.toISOString() };
}

/**
 * How the agent learns that a monitor ended (it recorded the exit and quit, or it was
 * killed, -9 included), with nothing on a timer and nothing done per idle container.
 *
 * conmon double-forks, so the agent is not its parent (no 'exit' event, no SIGCHLD); Node
 * has no pidfd; /proc cannot be watched with inotify; and the agent may be a new process
 * adopting monitors an earlier one started. But conmon opens a dummy writer on the `winsz`
 * fifo it makes beside its attach socket (O_CLOEXEC, so runc and the container never hold
 * it) and keeps it for its whole life. A reader the agent opens there gets POLLHUP the
 * moment that descriptor closes, at the monitor's end, even while its reaper is slow to
 * reap it (a zombie holds no descriptors): one non-blocking descriptor in the agent's epoll
 * set per watched monitor, shared by every wait on it, found again by path after an agent
 * restart. Nothing writes to `winsz` (resizes go to `ctl`), so the reader takes nothing
 * from conmon; a stray byte is read and dropped.
 *
 * Where the fifo cannot be opened (gone from the bundle), a shared 250 ms poll over those
 * monitors only: a signal-0 probe per tick and a look at /proc every fourth tick (a zombie,
 * a PID taken by another process).
 */
class MonitorWatch {
  static readonly TICK_MS = 250;
  private static readonly VERIFY_EVERY = 4;
  /** By fifo path: one reader and its waiters. */
  private readonly fifos = new Map<string, { socket: Socket; waiters: Set<() => void> }>();
  private readonly polled = new Set<{ pid: number; persistDir: string; gone: () => void }>();
  private timer: NodeJS.Timeout | undefined;
  private ticks = 0;

  /**
   * Calls `gone` once, when the monitor `pid` (holding the fifo `fifo`) is no longer alive;
   * at once (on the next turn) if it is gone already.
   * @returns the unwatch function, and whether the fifo is watched (else the monitor is polled)
   */
  add(m: { pid: number; persistDir: string; fifo: string }, gone: () => void): { unwatch: () => void; byFifo: boolean } {
    let fired = false;
    const once = () => {
      if (fired) return;
      fired = true;
      gone();
    };
    const shared = this.fifos.get(m.fifo) ?? this.openFifo(m.fifo);
    if (shared) {
      shared.waiters.add(once);
      const unwatch = () => {
        shared.waiters.delete(once);
        if (shared.waiters.size === 0 && this.fifos.get(m.fifo) === shared) {
          this.fifos.delete(m.fifo);
          shared.socket.destroy();
        }
      };
      return { unwatch, byFifo: true };
    }
    const entry = { pid: m.pid, persistDir: m.persistDir, gone: once };
    this.polled.add(entry);
    // Kept referenced, as a wait is: it ends when nothing is polled (waits end or are aborted).
    this.timer ??= setInterval(() => this.tick(), MonitorWatch.TICK_MS);
    const unwatch = () => {
      this.polled.delete(entry);
      this.stopIfIdle();
    };
    return { unwatch, byFifo: false };
  }

  /** A reader on the monitor's fifo, or undefined if there is none to open. */
  private openFifo(path: string): { socket: Socket; waiters: Set<() => void> } | undefined {
    let fd: number;
    try {
      fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    } catch {
      return undefined;
    }
    // A reader opened while no writer holds the fifo never gets POLLHUP; read(2) tells the
    // two cases apart without a race: 0 (EOF) is no writer, so the monitor is gone already.
    let writer = true;
    try {
      writer = readSync(fd, Buffer.alloc(64)) > 0;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EAGAIN") {
        closeSync(fd);
        return undefined;
      }
    }
    const socket = new Socket({ fd, readable: true, writable: false });
    const entry = { socket, waiters: new Set<() => void>() };
    const fire = () => {
      if (this.fifos.get(path) === entry) this.fifos.delete(path);
      socket.destroy();
      for (const w of [...entry.waiters]) w();
      entry.waiters.clear();
    };
    socket.on("data", () => undefined);
    socket.once("end", fire);
    socket.once("close", fire);
    socket.on("error", fire);
    if (writer) this.fifos.set(path, entry);
    else setImmediate(fire);
    return entry;
  }

  private tick(): void {
    const verify = ++this.ticks % MonitorWatch.VERIFY_EVERY === 0;
    for (const e of [...this.polled]) {
      try {
        process.kill(e.pid, 0);
      } catch (err) {
        // EPERM: a process of another user holds the PID now, so the monitor is gone too.
        if ((err as NodeJS.ErrnoException).code === "ESRCH" || (err as NodeJS.ErrnoException).code === "EPERM") this.firePolled(e);
        continue;
      }
      if (verify) void isMonitorProcess(e.pid, e.persistDir).then((alive) => alive || this.firePolled(e));
    }
    this.stopIfIdle();
  }

  private firePolled(e: { gone: () => void }): void {
    this.polled.delete(e as { pid: number; persistDir: string; gone: () => void });
    e.gone();
  }

  private stopIfIdle(): void {
    if (this.polled.size > 0 || !this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

const monitorWatch = new MonitorWatch();

/**
 * Waits for PERSIST/exit: woken by the shared MonitorWatch when the monitor ends (conmon
 * records the exit, then quits) and, for a polled monitor, by an inotify watch on the
 * exit directory, where conmon writes as the process ends.
 * @throws Unavailable when the monitor is gone and recorded no exit status
 */
async function waitForExit(o: {
  watchDir: string;
  persistDir: string;
  pidFile: string;
  fifo: string;
  signal?: AbortSignal;
  what: string;
}): Promise<ExitStatus> {
  if (o.signal?.aborted) throw canceled(`waiting for the ${o.what} canceled`);
  let wake: (() => void) | undefined;
  let pending = false;
  const poke = () => {
    if (wake) wake();
    else pending = true;
  };
  let watcher: FSWatcher | undefined;
  let monitorGone = false;
  let unwatch: (() => void) | undefined;
  const onAbort = () => poke();
  o.signal?.addEventListener("abort", onAbort);
  try {
    const pid = await readPid(o.pidFile);
    if (pid === undefined || !(await isMonitorProcess(pid, o.persistDir))) monitorGone = true;
    else {
      const w = monitorWatch.add({ pid, persistDir: o.persistDir, fifo: o.fifo }, () => {
        monitorGone = true;
        poke();
      });
      unwatch = w.unwatch;
      if (!w.byFifo) {
        try {
          watcher = watch(o.watchDir, { persistent: false }, poke);
          watcher.on("error", () => undefined); // the poll still wakes us
        } catch {
          watcher = undefined; // the poll still wakes us
        }
      }
    }
    for (;;) {
      // Read before deciding: a monitor records its exit, then ends.
      const gone = monitorGone;
      const s = await readExitStatus(o.persistDir);
      if (s) return s;
      if (o.signal?.aborted) throw canceled(`waiting for the ${o.what} canceled`);
      if (gone) throw unavailable(`the ${o.what}'s monitor died and recorded no exit status`);
      if (pending) {
        pending = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        wake = () => {
          wake = undefined;
          resolve();
        };
      });
    }
  } finally {
    unwatch?.();
    watcher?.close();
    o.signal?.removeEventListener("abort", onAbort);
  }
}

async function readPid(file: string): Promise<number | undefined> {
  const text = await readFile(file, "utf8").catch(() => "");
  const pid = Number.parseInt(text.trim(), 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** Whether `pid` is a live (not zombie) conmon whose command line names `persistDir` (guards against PID reuse). */
async function isMonitorProcess(pid: number, persistDir: string): Promise<boolean> {
  try {
    const [statText, cmdline] = await Promise.all([readFile(`/proc/${pid}/stat`, "utf8"), readFile(`/proc/${pid}/cmdline`, "utf8")]);
    const state = statText.slice(statText.lastIndexOf(")") + 2, statText.lastIndexOf(")") + 3);
    if (state === "Z" || state === "X") return false;
    const argv = cmdline.split("\0");
    return basename(argv[0] ?? "") === "conmon" && argv.includes(persistDir);
  } catch {
    return false;
  }
}

/** SIGTERM (conmon forwards it to the container), then SIGKILL; only a verified monitor. */
async function stopMonitor(pid: number, persistDir: string, logger?: Logger): Promise<void> {
  for (const [sig, waitMs] of [
    ["SIGTERM", 2000],
    ["SIGKILL", 2000],
  ] as const) {
    if (!(await isMonitorProcess(pid, persistDir))) return;
    logger?.warn({ pid, signal: sig }, "stopping a container monitor that outlived its container");
    try {
      process.kill(pid, sig);
    } catch {
      return;
    }
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline) {
      if (!(await isMonitorProcess(pid, persistDir))) return;
      await delay(20);
    }
  }
}

/** Moves a process into `path` of the hierarchies service managers track processes by. Failures are logged, not fatal. */
function moveToCgroup(pid: number, path: string, logger?: Logger): void {
  const rel = path.replace(/^\/+/, "");
  const roots = [CGROUP_ROOT, join(CGROUP_ROOT, "unified"), join(CGROUP_ROOT, "systemd")];
  for (const root of roots) {
    try {
      // cgroup v2 at the root has cgroup.controllers; v1's name=systemd and the hybrid unified tree have cgroup.procs.
      const isV2Root = root === CGROUP_ROOT;
      const probe = join(root, isV2Root ? "cgroup.controllers" : "cgroup.procs");
      if (!existsSync(probe)) continue;
      const dir = join(root, rel);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "cgroup.procs"), String(pid));
    } catch (e) {
      logger?.warn({ pid, cgroup: join(root, rel), err: e }, "could not move conmon into its cgroup");
    }
  }
}

/** A detached exec session: no output; resizing still reaches its terminal. */
function detachedSession(ctlPath: string): StdioSession {
  const output = new PassThrough({ objectMode: true });
  output.end();
  return { output, resize: (cols, rows) => writeCtl(ctlPath, resizeLine(cols, rows), "exec session"), close: () => undefined };
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
