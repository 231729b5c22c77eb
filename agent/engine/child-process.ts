/**
 * The one way the engine starts host tools (runc, mount, setfattr, ip, …). A child's pipes are
 * streams like any other: a tool that exits before reading its stdin makes the write fail with
 * EPIPE, and an 'error' event without a listener would take the whole agent down with it.
 */
import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { constants as osConstants } from "node:os";

export interface ToolResult {
  /** The exit status; 128 + signal number when a signal ended it (as a shell reports it). */
  exitCode: number;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: Buffer;
}

export interface ToolOptions {
  /** Written to the tool's stdin, which is then closed (stdin is /dev/null without it). */
  input?: string | Buffer;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Aborting sends SIGTERM; the promise then rejects with Node's AbortError. */
  signal?: AbortSignal;
  /** Replaces the default pipes (stdout and stderr are collected only where they are "pipe"). */
  stdio?: SpawnOptions["stdio"];
}

/**
 * Gives every pipe of `child` (and the child) an 'error' listener. A pipe's failure is not the
 * caller's news: a dead child's stdin refusing a write (EPIPE) or a read broken off say nothing
 * the exit status and the collected output do not already say. `onChildError` hears the child's
 * own failure (it could not be started, or the abort signal fired).
 */
export function guardChild(child: ChildProcess, onChildError: (err: Error) => void): ChildProcess {
  for (const s of child.stdio) s?.on("error", ignorePipeError);
  child.on("error", onChildError);
  return child;
}

function ignorePipeError(): void {
  // The child's exit (or its 'error') reports what went wrong; see guardChild.
}

/**
 * Runs `cmd args…` to its end and collects its output, whatever the exit status (the caller
 * decides what a failure means).
 * @throws the spawn error (`code` "ENOENT" when the tool is not installed) or an AbortError
 */
export function runTool(cmd: string, args: readonly string[], opts: ToolOptions = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const stdio = opts.stdio ?? [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"];
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { stdio, cwd: opts.cwd, env: opts.env, ...(opts.signal ? { signal: opts.signal, killSignal: "SIGTERM" as const } : {}) });
    } catch (e) {
      reject(e as Error); // spawn throws synchronously on bad arguments (a NUL byte in one)
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let settled = false;
    guardChild(child, (e) => {
      if (settled) return;
      settled = true;
      reject(e);
    });
    child.stdout?.on("data", (b: Buffer) => out.push(b));
    child.stderr?.on("data", (b: Buffer) => err.push(b));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    child.on("close", (code, signal) => {
      if (settled) return;
      settled = true;
      const exitCode = code ?? (signal ? 128 + (osConstants.signals[signal] ?? 0) : 1);
      resolve({ exitCode, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err) });
    });
  });
}

/** The last lines of a tool's stderr (or stdout when stderr is empty), for an error message. */
export function toolDetail(r: ToolResult, lines = 5): string {
  const text = (r.stderr.length ? r.stderr : r.stdout).toString("utf8").trim();
  return text.split("\n").slice(-lines).join("; ");
}
