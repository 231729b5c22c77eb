/**
 * Runs the host tools networking is built from (`ip`, `iptables-restore`,
 * `unshare`, `nsenter`, `umount`) and collects their output. Every call is one
 * short-lived process; callers batch their work (`ip -batch -`,
 * `iptables-restore`) so that an attach costs a handful of processes.
 */
import { runTool } from "../child-process.ts";
import { unavailable } from "../errors.ts";

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `cmd args…`, feeding `input` on stdin, and resolves with its output
 * whatever the exit status (the caller decides what a failure means).
 * @throws Unavailable when the program cannot be started at all (not installed).
 */
export async function runRaw(cmd: string, args: string[], input?: string): Promise<RunResult> {
  try {
    const r = await runTool(cmd, args, { input });
    return { exitCode: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  } catch (e) {
    throw unavailable(`cannot run ${cmd}: ${(e as Error).message}`, e);
  }
}

/**
 * Like `runRaw` but a non-zero exit is an error naming the command and its stderr.
 * @throws Unavailable "ip -batch - failed (exit 1): RTNETLINK answers: File exists"
 */
export async function run(cmd: string, args: string[], input?: string): Promise<string> {
  const r = await runRaw(cmd, args, input);
  if (r.exitCode !== 0) {
    const what = [cmd, ...args].join(" ");
    const detail = (r.stderr || r.stdout).trim().split("\n").slice(-5).join("; ");
    throw unavailable(`${what} failed (exit ${r.exitCode}): ${detail}`);
  }
  return r.stdout;
}
