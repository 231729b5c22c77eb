/**
 * A thin driver of runc (Debian `runc`, 1.1.x): each method runs one runc
 * command with `--root <state dir>` and returns typed results. It knows nothing
 * of images, networks or monitors.
 *
 * Bundle layout (OCI runtime spec, "filesystem bundle"): a directory holding
 *
 *   BUNDLE/config.json   the runtime spec (spec.ts `buildRuntimeSpec`)
 *   BUNDLE/rootfs/       the root filesystem, when `root.path` is "rootfs"
 *                        (Berth mounts the container's snapshot there; an
 *                        absolute `root.path` elsewhere works too)
 *
 * runc keeps its own state of each container in `ROOT/<id>/state.json`; the
 * caller owns the bundle, and must `delete` a container before removing its
 * bundle or unmounting its rootfs.
 *
 * Call order: `create` (the init process waits) → `start` → … → `kill` →
 * `delete`; or `run` (create + start + wait + delete, foreground) for a short
 * job. Between: `state`, `ps`, `pause`/`resume` (freezer), `exec`, `stats`.
 *
 * Stdio: `create` and `exec --detach` hand the container the file descriptors
 * given in `stdio` (the monitor's pipes, a log file, "ignore"); with a TTY,
 * runc sends the terminal's master to `consoleSocket` instead. runc's own
 * messages go to a log file read back after the command, so they never mix
 * with the container's output.
 *
 * Errors: RuncError (an EngineError): NotFound ("container does not exist"),
 * AlreadyExists (id taken), Conflict (wrong state: "container not running",
 * "cannot delete container … that is not stopped"), InvalidArgument (unknown
 * signal, bad id), Internal (anything else), each with runc's message and stderr.
 */
import type { StdioNull, StdioPipe } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants as osConstants, tmpdir } from "node:os";
import { access, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Stream } from "node:stream";
import { runTool } from "../child-process.ts";
import { EngineError, invalidArgument, type EngineErrorKind } from "../errors.ts";
import type { SpecProcess } from "./spec.ts";

export type RuncStatus = "creating" | "created" | "running" | "paused" | "stopped";

/** `runc state` (the OCI runtime state), plus runc's extra fields. */
export interface RuncState {
  ociVersion: string;
  id: string;
  /** PID of the container's init process on the host (0 once stopped). */
  pid: number;
  status: RuncStatus;
  bundle: string;
  rootfs: string;
  /** ISO 8601 time of creation. */
  created: string;
  owner?: string;
  annotations?: Record<string, string>;
}

/** A container's stdio descriptor: a file descriptor, a stream with one, or /dev/null. */
export type RuncStdio = StdioNull | number | Stream;

export interface RuncCreateOptions {
  /** runc writes the init process's PID there. */
  pidFile?: string;
  /** AF_UNIX socket receiving the terminal's master fd (required when the spec's `process.terminal` is true). */
  consoleSocket?: string;
  /** `--no-pivot` (for a rootfs on a ramdisk). */
  noPivot?: boolean;
  /** The container's stdin, stdout, stderr; default all "ignore". */
  stdio?: [RuncStdio, RuncStdio, RuncStdio];
  signal?: AbortSignal;
}

export interface RuncRunOptions {
  /** Bytes written to the container's stdin (then closed); default: no stdin. */
  stdin?: string | Buffer;
  noPivot?: boolean;
  /** Aborting kills runc, which forwards the signal (SIGTERM) to the container. */
  signal?: AbortSignal;
}

export interface RuncExecOptions {
  /** Start the process and return its PID at once (`--detach`); output goes to `stdio`. */
  detach?: boolean;
  pidFile?: string;
  consoleSocket?: string;
  /** With `detach`: the process's stdio (default all "ignore"). */
  stdio?: [RuncStdio, RuncStdio, RuncStdio];
  /** Without `detach`: bytes written to the process's stdin (then closed). */
  stdin?: string | Buffer;
  signal?: AbortSignal;
}

/** A foreground process's end: its exit code (128+n when killed by signal n, as runc reports). */
export interface RuncProcessResult {
  exitCode: number;
  stdout: Buffer;
  stderr: Buffer;
}

export class RuncError extends EngineError {
  /** The runc command, e.g. "delete". */
  readonly command: string;
  readonly exitCode: number | null;
  /** runc's stderr and log output, verbatim. */
  readonly stderr: string;
  constructor(kind: EngineErrorKind, command: string, message: string, stderr: string, exitCode: number | null) {
    super(kind, message);
    this.command = command;
    this.stderr = stderr;
    this.exitCode = exitCode;
  }
}

const ID_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,1023}$/;

export class Runc {
  readonly root: string;
  readonly binary: string;

  /**
   * @param opts.root runc's state directory (`--root`), e.g. /run/berth/runc; created by runc.
   * @param opts.binary the runc executable (default "runc" from PATH).
   */
  constructor(opts: { root: string; binary?: string }) {
    this.root = opts.root;
    this.binary = opts.binary ?? "runc";
  }

  /** `runc create`: sets the container up; its process waits for `start`. @throws AlreadyExists, Internal */
  async create(id: string, bundle: string, opts?: RuncCreateOptions): Promise<void> {
    checkId(id);
    const args = ["create", "--bundle", bundle];
    if (opts?.pidFile) args.push("--pid-file", opts.pidFile);
    if (opts?.consoleSocket) args.push("--console-socket", opts.consoleSocket);
    if (opts?.noPivot) args.push("--no-pivot");
    args.push(id);
    const r = await this.call(args, { stdio: opts?.stdio ?? ["ignore", "ignore", "ignore"], signal: opts?.signal });
    this.check("create", id, r);
  }

  /** `runc start`: runs the created container's process. @throws NotFound, Conflict */
  async start(id: string): Promise<void> {
    checkId(id);
    this.check("start", id, await this.call(["start", id]));
  }

  /**
   * `runc run` in the foreground: create, start, wait for the process, delete.
   * The container's stdout and stderr are captured. `process.terminal` must be false.
   * @returns the process's end (a non-zero exit code is not an error).
   * @throws AlreadyExists, Internal if runc could not run the container (bad spec, exec failure).
   */
  async run(id: string, bundle: string, opts?: RuncRunOptions): Promise<RuncProcessResult> {
    checkId(id);
    const args = ["run", "--bundle", bundle, ...(opts?.noPivot ? ["--no-pivot"] : []), id];
    const r = await this.call(args, { capture: true, stdin: opts?.stdin, signal: opts?.signal });
    this.check("run", id, r, true);
    return { exitCode: r.exitCode ?? 128, stdout: r.stdout, stderr: r.stderr };
  }

  /**
   * `runc exec --process`: runs `process` in the running container.
   * Without `detach`, waits and returns its end with captured output;
   * with `detach`, returns when it started (the exit code is then 0).
   * @throws NotFound, Conflict (container not running), Internal (e.g. executable not found).
   */
  async exec(id: string, process: SpecProcess, opts?: RuncExecOptions): Promise<RuncProcessResult> {
    checkId(id);
    const dir = await mkdtemp(join(tmpdir(), "berth-runc-exec-"));
    try {
      const file = join(dir, "process.json");
      await writeFile(file, JSON.stringify(process));
      const args = ["exec", "--process", file];
      if (opts?.detach) args.push("--detach");
      if (opts?.pidFile) args.push("--pid-file", opts.pidFile);
      if (opts?.consoleSocket) args.push("--console-socket", opts.consoleSocket);
      args.push(id);
      const r = opts?.detach
        ? await this.call(args, { stdio: opts.stdio ?? ["ignore", "ignore", "ignore"], signal: opts.signal })
        : await this.call(args, { capture: true, stdin: opts?.stdin, signal: opts?.signal });
      this.check("exec", id, r, !opts?.detach);
      return { exitCode: opts?.detach ? 0 : (r.exitCode ?? 128), stdout: r.stdout, stderr: r.stderr };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * `runc kill`: sends `signal` (a name with or without SIG, or a number) to the
   * init process, or with `all` to every process of the container.
   * @throws InvalidArgument "Invalid signal: X"; NotFound; Conflict if not running.
   */
  async kill(id: string, signal: string | number = "SIGTERM", opts?: { all?: boolean }): Promise<void> {
    checkId(id);
    const sig = signalNumber(signal);
    this.check("kill", id, await this.call(["kill", ...(opts?.all ? ["--all"] : []), id, String(sig)]));
  }

  /** `runc delete`: removes a stopped (or, with `force`, any) container's state and cgroup. @throws NotFound, Conflict */
  async delete(id: string, opts?: { force?: boolean }): Promise<void> {
    checkId(id);
    this.check("delete", id, await this.call(["delete", ...(opts?.force ? ["--force"] : []), id]));
  }

  /**
   * Whether runc keeps state for `id` (its directory `ROOT/<id>`): without it `delete` has
   * nothing to do, and asking costs a lookup instead of a process.
   */
  async hasState(id: string): Promise<boolean> {
    checkId(id);
    return access(join(this.root, id)).then(
      () => true,
      () => false,
    );
  }

  /** `runc state`. @throws NotFound */
  async state(id: string): Promise<RuncState> {
    checkId(id);
    const r = await this.call(["state", id]);
    this.check("state", id, r);
    return JSON.parse(r.stdout.toString("utf8")) as RuncState;
  }

  /** `runc list`: every container under the root. */
  async list(): Promise<RuncState[]> {
    const r = await this.call(["list", "--format", "json"]);
    this.check("list", "", r);
    const parsed = JSON.parse(r.stdout.toString("utf8") || "null") as RuncState[] | null;
    return parsed ?? [];
  }

  /** `runc pause` (freezer). @throws NotFound, Conflict if not running */
  async pause(id: string): Promise<void> {
    checkId(id);
    this.check("pause", id, await this.call(["pause", id]));
  }

  /** `runc resume`. @throws NotFound, Conflict if not paused */
  async resume(id: string): Promise<void> {
    checkId(id);
    this.check("resume", id, await this.call(["resume", id]));
  }

  /** `runc ps`: host PIDs of the container's processes. @throws NotFound */
  async ps(id: string): Promise<number[]> {
    checkId(id);
    const r = await this.call(["ps", "--format", "json", id]);
    this.check("ps", id, r);
    return (JSON.parse(r.stdout.toString("utf8") || "null") as number[] | null) ?? [];
  }

  /**
   * `runc update --resources -`: new cgroup limits for a running (or paused) container.
   * @param resources the OCI `linux.resources` to apply (memory, cpu, pids; devices are not updated).
   * @throws NotFound, Internal (the kernel refused a value: runc's message)
   */
  async update(id: string, resources: Record<string, unknown>): Promise<void> {
    checkId(id);
    this.check("update", id, await this.call(["update", "--resources", "-", id], { capture: true, stdin: JSON.stringify(resources) }));
  }

  /** `runc events --stats`: one snapshot of the container's cgroup statistics (runc's `types.Stats`). @throws NotFound */
  async stats(id: string): Promise<Record<string, unknown>> {
    checkId(id);
    const r = await this.call(["events", "--stats", id]);
    this.check("events", id, r);
    const ev = JSON.parse(r.stdout.toString("utf8")) as { data?: Record<string, unknown> };
    return ev.data ?? {};
  }

  /** Throws a RuncError if runc failed. `foreground`: a non-zero exit is the process's own unless runc logged an error. */
  private check(command: string, id: string, r: CallResult, foreground = false): void {
    const logged = r.logErrors.at(-1);
    const failed = foreground ? logged !== undefined : r.exitCode !== 0 || logged !== undefined;
    if (!failed) return;
    const detail = logged ?? (r.stderr.toString("utf8").trim() || `exit code ${r.exitCode}`);
    const stderr = [r.log.trim(), foreground ? "" : r.stderr.toString("utf8").trim()].filter(Boolean).join("\n");
    throw new RuncError(kindOf(detail), command, `runc ${command}${id ? ` ${id}` : ""}: ${detail}`, stderr, r.exitCode);
  }

  private async call(args: string[], opts?: CallOptions): Promise<CallResult> {
    const logFile = join(tmpdir(), `berth-runc-${process.pid}-${randomBytes(6).toString("hex")}.log`);
    try {
      const full = ["--root", this.root, "--log", logFile, "--log-format", "json", ...args];
      const { exitCode, stdout, stderr } = await spawnCollect(this.binary, full, opts);
      const log = await readFile(logFile, "utf8").catch(() => "");
      const logErrors: string[] = [];
      for (const line of log.split("\n")) {
        if (!line.trim()) continue;
        try {
          const entry = JSON.parse(line) as { level?: string; msg?: string };
          if ((entry.level === "error" || entry.level === "fatal") && entry.msg) logErrors.push(entry.msg);
        } catch {
          // not JSON: runc's init writes plain text in rare failures; kept in `log`
        }
      }
      return { exitCode, stdout, stderr, log, logErrors };
    } finally {
      await rm(logFile, { force: true });
    }
  }
}

interface CallOptions {
  /** Pipe stdout and stderr and collect them (the container's output for run/exec). */
  capture?: boolean;
  stdin?: string | Buffer;
  stdio?: [RuncStdio, RuncStdio, RuncStdio];
  signal?: AbortSignal;
}

interface CallResult {
  exitCode: number | null;
  stdout: Buffer;
  stderr: Buffer;
  log: string;
  logErrors: string[];
}

async function spawnCollect(cmd: string, args: string[], opts?: CallOptions): Promise<{ exitCode: number | null; stdout: Buffer; stderr: Buffer }> {
  const stdin: StdioPipe | StdioNull = opts?.stdin !== undefined ? "pipe" : "ignore";
  const stdio = opts?.stdio ? opts.stdio : opts?.capture ? [stdin, "pipe", "pipe"] : ["ignore", "pipe", "pipe"];
  try {
    return await runTool(cmd, args, { stdio: stdio as never, input: stdio[0] === "pipe" ? opts?.stdin : undefined, signal: opts?.signal });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw new EngineError("Canceled", `runc ${args.find((a) => !a.startsWith("-"))} canceled`, { cause: e });
    throw e;
  }
}

function checkId(id: string): void {
  if (typeof id !== "string" || !ID_RE.test(id)) throw invalidArgument(`invalid container id ${JSON.stringify(id)}`);
}

/** "TERM", "SIGTERM", "sigterm", "15", 15 → 15. @throws InvalidArgument "Invalid signal: X" */
export function signalNumber(signal: string | number): number {
  const signals = osConstants.signals as Record<string, number>;
  if (typeof signal === "number" || /^[0-9]+$/.test(signal)) {
    const n = Number(signal);
    if (Number.isInteger(n) && n >= 1 && n <= 64) return n;
    throw invalidArgument(`Invalid signal: ${signal}`);
  }
  const upper = signal.toUpperCase();
  const name = upper.startsWith("SIG") ? upper : `SIG${upper}`;
  const n = signals[name];
  if (n !== undefined) return n;
  const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(name) ?? /^SIGRTMAX(?:-(\d+))?$/.exec(name);
  if (rt) {
    const off = Number(rt[1] ?? 0);
    const v = name.startsWith("SIGRTMIN") ? 34 + off : 64 - off;
    if (v >= 34 && v <= 64) return v;
  }
  throw invalidArgument(`Invalid signal: ${signal}`);
}

function kindOf(msg: string): EngineErrorKind {
  if (/does not exist/.test(msg)) return "NotFound";
  if (/container with id exists|already exists/.test(msg)) return "AlreadyExists";
  if (/not running|not stopped|not paused|is paused|has stopped|already running|stopped container|container is stopped/.test(msg)) return "Conflict";
  return "Internal";
}
