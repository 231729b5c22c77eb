/**
 * berth-agent-teardown: runs ON THE NODE (bundled into the agent artifact by
 * scripts/build-agent.mjs), for "Remove node … and its data". With the agent stopped, it
 * removes what the agent made on the host: its containers (runc kill + delete, after which
 * their conmon monitors exit), their networking (veths, namespaces, bridges, iptables
 * chains: the agent's own teardown), the mounts under its data and exec roots, and then
 * those two directories.
 *
 *   node berth-agent-teardown.mjs --config /etc/berth/agent.json
 *
 * Prints one line per thing removed; exits non-zero (with the reason on stderr) when
 * something could not be removed, after trying everything else.
 */
import { execFile } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { chainPrefixOf, ConfigError, loadAgentConfig } from "./config.ts";
import { removeNetworking } from "./engine/network/teardown.ts";

const execFileP = promisify(execFile);

async function main(): Promise<number> {
  let config;
  try {
    config = loadAgentConfig(process.argv.slice(2));
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`berth-agent-teardown: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (config === "help") {
    process.stdout.write("Usage: berth-agent-teardown --config FILE   (removes the agent's containers, networking and data)\n");
    return 0;
  }
  const failures: string[] = [];
  const attempt = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      failures.push(`${what}: ${(e as Error).message}`);
    }
  };

  const runcRoot = join(config.execRoot, "runc");
  await attempt("containers", async () => {
    // A failure here (runc missing) must not pass for "no containers" (runc lists a missing root as empty).
    const list = await execFileP("runc", ["--root", runcRoot, "list", "-q"]);
    for (const id of list.stdout.split("\n").filter(Boolean)) {
      try {
        await execFileP("runc", ["--root", runcRoot, "kill", "--all", id, "KILL"]);
      } catch {
        // a stopped container refuses the kill; delete --force below is the step whose failure counts
      }
      await execFileP("runc", ["--root", runcRoot, "delete", "--force", id]);
      process.stdout.write(`removed container ${id}\n`);
    }
  });
  await attempt("networking", async () => {
    await removeNetworking({
      stateDir: join(config.dataRoot, "network"),
      netnsDir: join(config.execRoot, "netns"),
      bridgeName: config.bridge,
      chainPrefix: chainPrefixOf(config.bridge),
    });
    process.stdout.write(`removed bridge ${config.bridge} and chains ${chainPrefixOf(config.bridge)}-*\n`);
  });
  await attempt("mounts", async () => {
    const lines = (await readFile("/proc/self/mountinfo", "utf8")).split("\n");
    const under = (m: string) => [config.dataRoot, config.execRoot].some((r) => m.startsWith(r + "/"));
    const mounts = lines.map((l) => (l.split(" ")[4] ?? "").replace(/\\040/g, " ")).filter(under);
    for (const m of mounts.sort((a, b) => b.length - a.length)) {
      await execFileP("umount", ["-l", m]);
      process.stdout.write(`unmounted ${m}\n`);
    }
  });
  for (const dir of [config.dataRoot, config.execRoot]) {
    await attempt(dir, async () => {
      await rm(dir, { recursive: true, force: true });
      process.stdout.write(`removed ${dir}\n`);
    });
  }
  for (const f of failures) process.stderr.write(`berth-agent-teardown: ${f}\n`);
  return failures.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`berth-agent-teardown: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  },
);
