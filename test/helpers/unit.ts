/**
 * For tests of the installer: the installed agent started as its systemd unit says, for
 * hosts where systemd is not PID 1 (these test machines).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { removeContainersAndNetwork } from "./agent.ts";
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

/** Every path under `dir`, relative, sorted: what a run left behind. */
export async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      out.push(r);
      if (e.isDirectory()) await walk(join(d, e.name), r);
    }
  };
  await walk(dir, "");
  return out.sort();
}

/**
 * Stops agents started from an installed unit and removes what they made on this machine:
 * containers, the bridge and its iptables chains, and mounts under the test's work dir.
 */
export async function cleanUpInstalledAgents(opts: { agents: UnitProcess[]; prefix?: string; bridge: string; work: string }): Promise<void> {
  for (const a of opts.agents) {
    a.child.kill("SIGKILL");
    await a.stop().catch(() => undefined);
  }
  if (!opts.prefix) return;
  await removeContainersAndNetwork(join(opts.prefix, "run/berth/runc"), opts.bridge, opts.bridge.toUpperCase());
  const mounts = (await readFile("/proc/self/mountinfo", "utf8")).split("\n").map((l) => l.split(" ")[4] ?? "");
  for (const m of mounts.filter((m) => m.startsWith(opts.work + "/")).sort((a, b) => b.length - a.length))
    await promisify(execFile)("umount", ["-l", m]).catch(() => undefined);
}
