/**
 * The build context: the tar the client sends (plain or compressed), unpacked
 * with the layer extractor's safety rules (layers/extract.ts: no entry lands
 * outside the directory, no `../`, no device nodes), then trimmed by the
 * context's `.dockerignore` with Docker's matching rules (@balena/dockerignore).
 * As Docker's daemon does, the Dockerfile and `.dockerignore` are read first
 * and stay out of the context when `.dockerignore` names them.
 */
import dockerignore from "@balena/dockerignore";
import { lstat, readdir, readFile, rm, rmdir } from "node:fs/promises";
import { join, posix } from "node:path";
import { pipeline, Transform, type Readable } from "node:stream";
import { invalidArgument, notFound } from "../errors.ts";
import { extractLayer } from "../layers/extract.ts";
import { decompressStream } from "../layers/decompress.ts";
import { secureJoin } from "../runtime/secure-join.ts";

const MAX_DOCKERFILE = 8 << 20;

export interface BuildContext {
  dir: string;
  dockerfile: string;
  dockerfileName: string;
}

/**
 * Unpacks `tar` into `dir` (an empty directory the caller owns and removes) and reads the Dockerfile.
 * @throws InvalidArgument for an unsafe or malformed tar, NotFound when the Dockerfile is missing.
 */
export async function unpackContext(tar: Readable, dir: string, dockerfileParam: string, signal?: AbortSignal): Promise<BuildContext> {
  // pipeline (callback form) hands the input's and the decompressor's errors on to the padded stream.
  const padded = pipeline(decompressStream(tar), endOfArchive(), () => undefined);
  await extractLayer(padded, dir, { signal }).catch((e: unknown) => {
    throw e instanceof Error ? invalidArgument(`invalid build context: ${e.message}`, e) : e;
  });
  const name = dockerfileParam || "Dockerfile";
  let dockerfile = await readInside(dir, name);
  let dockerfileName = name;
  if (dockerfile === undefined && !dockerfileParam) {
    dockerfile = await readInside(dir, "dockerfile");
    dockerfileName = "dockerfile";
  }
  if (dockerfile === undefined) throw notFound(`Cannot locate specified Dockerfile: ${name}`);
  const ignoreText = await readInside(dir, ".dockerignore");
  if (ignoreText !== undefined) {
    const patterns = ignoreText.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
    await applyIgnore(dir, patterns);
  }
  return { dir, dockerfile, dockerfileName };
}

async function readInside(dir: string, name: string): Promise<string | undefined> {
  const p = await secureJoin(dir, name);
  const st = await lstat(p).catch(() => undefined);
  if (!st?.isFile()) return undefined;
  if (st.size > MAX_DOCKERFILE) throw invalidArgument(`${name} is larger than ${MAX_DOCKERFILE} bytes`);
  return readFile(p, "utf8");
}

/** Removes what `.dockerignore` excludes; a directory is entered only when an exception (`!`) may re-include part of it. */
async function applyIgnore(dir: string, patterns: string[]): Promise<void> {
  const ig = dockerignore({ ignorecase: false }).add(patterns);
  const hasExceptions = patterns.some((p) => p.startsWith("!"));
  const visit = async (rel: string): Promise<void> => {
    for (const name of await readdir(join(dir, rel))) {
      const r = rel ? posix.join(rel, name) : name;
      const host = join(dir, r);
      const st = await lstat(host);
      const ignored = ig.ignores(r);
      if (st.isDirectory()) {
        if (ignored && !hasExceptions) {
          await rm(host, { recursive: true, force: true });
          continue;
        }
        await visit(r);
        if (ignored) await rmdir(host).catch(() => undefined); // kept only when something inside was re-included
        continue;
      }
      if (ignored) await rm(host, { force: true });
    }
  };
  await visit("");
}

/**
 * The docker CLI sends a context whose Dockerfile came from outside it (`-f`) without the
 * last entry's padding and the end-of-archive blocks (its tar rewriting stops writing
 * there); Docker's reader takes that. Padding to a block and two zero blocks are added
 * after the stream's end: after a complete archive they are ignored.
 */
function endOfArchive(): Transform {
  let length = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      length += chunk.length;
      cb(null, chunk);
    },
    flush(cb) {
      cb(null, Buffer.alloc((512 - (length % 512)) % 512 + 1024));
    },
  });
}
