/**
 * For tests of the installer: the installed agent started as its systemd unit says, for
 * hosts where systemd is not PID 1 (these test machines).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { serviceCommand } from "../../server/installer/unit.ts";

export interface UnitProcess {
  child: ChildProcess;
  /** The command that was started (the unit's ExecStart). */
  argv: string[];
  logs(): string;
  /** SIGTERM to the main process only, as systemd does with KillMode=process; waits for it to exit. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

/** Starts the service the way systemd would: the unit's ExecStart with its Environment=. */
export async function startFromUnit(unitPath: string): Promise<UnitProcess> {
  const { argv, env } = serviceCommand(await readFile(unitPath, "utf8"));
  const [program, ...args] = argv;
  if (!program) throw new Error(`${unitPath}: empty ExecStart`);
  // systemd gives a service a minimal environment, not the test runner's.
  const serviceEnv = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ...env } as unknown as NodeJS.ProcessEnv;
  const child = spawn(program, args, { env: serviceEnv, stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  child.once("exit", () => live.delete(child));
  let output = "";
  const keep = (d: Buffer) => {
    output += d.toString();
    if (output.length > 1 << 20) output = output.slice(-(1 << 19));
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  return {
    child,
    argv,
    logs: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      });
    },
  };
}
