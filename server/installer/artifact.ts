/** The agent artifact made by `npm run build:agent` (scripts/build-agent.mjs): dist/berth-agent.tar.gz. */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { extract } from "tar-stream";

/**
 * Where the console finds the artifact it ships: BERTH_AGENT_ARTIFACT, else dist/berth-agent.tar.gz
 * of the working directory (the repository root, where `npm run build:agent` writes it).
 */
export function defaultArtifactPath(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  return resolve(cwd, env.BERTH_AGENT_ARTIFACT || "dist/berth-agent.tar.gz");
}

export interface AgentArtifact {
  path: string;
  version: string;
  sha256: string;
  bytes: number;
}

const REQUIRED = ["berth-agent/VERSION", "berth-agent/berth-agent", "berth-agent/berth-agent.mjs", "berth-agent/berth-agent.service"];

export class ArtifactError extends Error {
  override name = "ArtifactError";
}

/**
 * Reads the version of an artifact tarball and checks it has what the installer relies on.
 * @throws ArtifactError naming what is missing (and how to build it).
 */
export async function readArtifact(path: string): Promise<AgentArtifact> {
  const hash = createHash("sha256");
  let bytes = 0;
  let version: string | undefined;
  const seen = new Set<string>();
  const ex = extract();
  ex.on("entry", (header, stream, next) => {
    const name = header.name.replace(/^\.\//, "").replace(/\/$/, "");
    seen.add(name);
    if (name === "berth-agent/VERSION") {
      const chunks: Buffer[] = [];
      stream.on("data", (c: unknown) => void chunks.push(c as Buffer));
      stream.on("end", () => {
        version = Buffer.concat(chunks).toString("utf8").trim();
        next();
      });
    } else {
      stream.on("end", () => next());
      stream.resume();
    }
  });
  const file = createReadStream(path);
  file.on("data", (c) => {
    hash.update(c as Buffer);
    bytes += (c as Buffer).length;
  });
  try {
    await pipeline(file, createGunzip(), ex);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new ArtifactError(`the agent artifact ${path} does not exist: build it with \`npm run build:agent\``, { cause: e });
    throw new ArtifactError(`the agent artifact ${path} is not a readable .tar.gz: ${(e as Error).message}`, { cause: e });
  }
  const missing = REQUIRED.filter((r) => !seen.has(r));
  if (missing.length) throw new ArtifactError(`the agent artifact ${path} lacks ${missing.join(", ")}: rebuild it with \`npm run build:agent\``);
  if (!version || !/^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/.test(version))
    throw new ArtifactError(`the agent artifact ${path} has an invalid VERSION ${JSON.stringify(version)}`);
  return { path, version, sha256: hash.digest("hex"), bytes };
}
