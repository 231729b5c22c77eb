/**
 * The per-container monitor: the process that holds a container's stdio while
 * it runs, so that the container never depends on the agent process. The agent
 * may be SIGKILLed, upgraded and restarted; meanwhile the monitor keeps reading
 * the container's output into its log file, keeps its stdin and terminal open,
 * and records how it ended (exit code, OOM kill). A new agent finds all of it
 * again from the files named here and can attach, exec, read logs, stop and
 * remove the container.
 *
 * The implementation is conmon (conmon.ts, Debian's `conmon`, the monitor of
 * podman and CRI-O): one conmon process per container, and one per exec session
 * while it runs. The monitor talks to runc itself for `create` and `exec`; the
 * caller keeps using runc directly (runtime/runc.ts, same `--root`) for `state`,
 * `kill`, `pause`, `resume` and `delete`.
 *
 * Files: the caller owns two directories per container and gives them in
 * `MonitorPaths`:
 * - `stateDir`: the monitor keeps its pid files, exit and OOM records, runc's
 *   log and exec sessions inside (a stable place that survives agent restarts;
 *   tmpfs is fine: a host reboot ends the monitors too);
 * - `bundle`: holds config.json, the rootfs already mounted at its `root.path`.
 *   conmon puts its attach socket and control fifos there (`attach`, `ctl`,
 *   `winsz`).
 * The log file (`logPath`) is written by the monitor and read with `readLogs()`
 * (k8s-log.ts); it stays the caller's to delete.
 *
 * Call order for one run of a container:
 *   create → [attach] → start → … → (the process exits, or the caller runs
 *   `runc kill`) → waitExit / exitStatus → `runc delete` (caller) → cleanup
 * A stopped container is started again with a new `create` on the same paths:
 * it replaces the previous run's exit record. `attach` before `start` sees all
 * output (as `docker start -a`). `exec` needs the container running.
 *
 * Errors are EngineErrors: NotFound (no such monitor files, e.g. attach to a
 * container that was never created), Conflict (attach, exec or resize while the
 * container is not running), InvalidArgument (runc refused the process, e.g. an
 * executable that does not exist), Unavailable (the monitor died without
 * recording an exit), Internal (anything else, with conmon's or runc's message).
 */
import type { Readable, Writable } from "node:stream";
import type { SpecProcess } from "../runtime/spec.ts";

/** Reading the log file the monitor writes (k8s-file format): see k8s-log.ts. */
export { readLogs, type LogEntry, type ReadLogsOptions } from "./k8s-log.ts";

export interface MonitorPaths {
  /** Per-container directory owned by the caller; the monitor keeps pid files, exit dir, persist dir and exec sessions inside. */
  stateDir: string;
  /** Holds config.json; the rootfs is already mounted at the config's `root.path`. */
  bundle: string;
  /** The container's log file (k8s-file format, see k8s-log.ts). */
  logPath: string;
}

export interface CreateOptions extends MonitorPaths {
  /** The container ID (64 hex characters for Berth; used as runc's ID). */
  id: string;
  /** The container name (for conmon's own log messages). */
  name: string;
  /** `-t`: the process runs on a terminal (config.json's `process.terminal` must be true too). */
  tty: boolean;
  /** `-i`: keep the container's stdin open for attached clients. */
  stdin: boolean;
  /**
   * Docker's StdinOnce (`docker run -i` attached): the container's stdin is
   * closed when the first attached client disconnects or ends its stdin.
   * Default false: stdin stays open across attach sessions (`docker run -d -i`).
   * Caveat (conmon): with `stdinOnce` any attach session ending, even one that
   * only reads output, closes the container's stdin.
   */
  stdinOnce?: boolean;
  /** Bytes; when the log file would grow past it, the monitor starts it afresh (the old content is dropped). Default: unlimited. */
  logMaxSize?: number;
}

export interface ExitStatus {
  /** The process's exit code, or 128+n when killed by signal n (137 for SIGKILL). */
  exitCode: number;
  /** The kernel's OOM killer acted in the container's memory cgroup. */
  oomKilled: boolean;
  /** ISO 8601 time the monitor recorded the exit. */
  finishedAt: string;
}

/** One chunk of a container's or exec session's output. */
export interface OutputChunk {
  stream: "stdout" | "stderr";
  data: Buffer;
}

/**
 * A live connection to a container's (or exec session's) stdio. The caller must
 * `close()` it (or read `output` to its end). Output is not throttled: a
 * consumer that stops reading makes the session fail (error on `output`) once
 * more than a few MiB are waiting, rather than let memory grow or the container
 * block.
 */
export interface StdioSession {
  /** Bytes written here reach the process's stdin (or terminal); `end()` closes stdin when the monitor was told to (see `stdinOnce`). Absent unless asked for. */
  stdin?: Writable;
  /** objectMode stream of `OutputChunk`; ends when the process's output ends (it exited) or the session is closed. With a TTY everything is "stdout". */
  output: Readable;
  /** Sets the terminal's size (TTY only). @throws Conflict once the process has ended */
  resize(cols: number, rows: number): Promise<void>;
  /** Disconnects; the process keeps running. */
  close(): void;
}

export interface ExecSession extends StdioSession {
  /** Host PID of the exec'd process. */
  pid: number;
  /** Resolves with the process's exit code (128+n for signal n) once it ended. */
  wait(): Promise<number>;
}

export interface ExecOptions {
  tty: boolean;
  /** Attach stdin (`docker exec -i`); `stdin.end()` closes the process's stdin. */
  stdin: boolean;
  /** Start the process and return at once with nothing attached (`docker exec -d`); `wait()` still works. */
  detach?: boolean;
}

export interface ContainerMonitor {
  /**
   * Starts the monitor, which runs `runc create`: the container exists in the
   * "created" state, its process waiting for `start`. Replaces an earlier run's
   * exit record in the same `stateDir`.
   * @returns the container's init PID and the monitor's PID.
   * @throws InvalidArgument with runc's message when the process cannot run
   *   (e.g. `exec: "nosuchcmd": executable file not found in $PATH`),
   *   AlreadyExists if runc has a container of that ID, Internal otherwise.
   *   On failure nothing of the container is left in runc.
   */
  create(opts: CreateOptions): Promise<{ pid: number; monitorPid: number }>;
  /**
   * `runc start`, then makes sure the process was executed: runc 1.1 reports an
   * execve failure (a script's missing interpreter, a binary of another
   * architecture) only on the container's stderr, after `runc start` succeeded.
   * @throws InvalidArgument with runc's message (e.g. `exec /app.sh: no such file or directory`);
   *   NotFound, Conflict (not in the created state), Internal from runc.
   */
  start(id: string, paths: MonitorPaths): Promise<void>;
  /**
   * Connects to the container's stdio. Works from `create` until the process
   * exits, also from an agent started after the container.
   * @throws Conflict if the container is not running (no monitor listening)
   */
  attach(paths: MonitorPaths, opts: { stdin: boolean; stdout: boolean; stderr: boolean }): Promise<StdioSession>;
  /** How the last run ended, from the monitor's records; undefined while it runs (or never ran). */
  exitStatus(paths: MonitorPaths): Promise<ExitStatus | undefined>;
  /**
   * Waits until the container's process has ended and returns `exitStatus`.
   * @throws Canceled when `signal` aborts; Unavailable if the monitor died without recording an exit.
   */
  waitExit(paths: MonitorPaths, signal?: AbortSignal): Promise<ExitStatus>;
  /** Whether the container's monitor process is alive (its pid file names a live conmon of this container). */
  monitorAlive(paths: MonitorPaths): Promise<boolean>;
  /**
   * Runs `process` in the running container under its own monitor.
   * @throws Conflict if the container is not running (or paused), InvalidArgument
   *   if runc refuses the process (executable not found…), Internal otherwise.
   */
  exec(id: string, paths: MonitorPaths, process: SpecProcess, opts: ExecOptions): Promise<ExecSession>;
  /**
   * Removes the monitor's files of a container that is gone from runc (after
   * `runc delete`): pid files, exit records, exec sessions, and the attach
   * socket and fifos in the bundle. Stops a monitor that is somehow still alive.
   * Does not remove `logPath`, `stateDir` itself or the bundle.
   */
  cleanup(paths: MonitorPaths): Promise<void>;
}
