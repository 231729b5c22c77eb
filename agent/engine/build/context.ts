/**
 * The build context: the tar the client sends (plain or compressed), unpacked
 * with the layer extractor's safety rules (see extractContext: no entry lands
 * outside the directory, no `../`, no device nodes), then trimmed by the
 * context's `.dockerignore` with Docker's matching rules (@balena/dockerignore).
 * As Docker's daemon does, the Dockerfile and `.dockerignore` are read first
 * and stay out of the context when `.dockerignore` names them.
 */
import dockerignore from "@balena/dockerignore";
import {
  constants as fsc,
  chmodSync,
  closeSync,
  fchmodSync,
  futimesSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from "node:fs";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { lstat, mkdir, readdir, readFile, rm, rmdir } from "node:fs/promises";
import { pipeline as pipelineAsync } from "node:stream/promises";
import * as tarStream from "tar-stream";
import { join, posix } from "node:path";
import { pipeline, Transform, type Readable } from "node:stream";
import { canceled, EngineError, invalidArgument, notFound } from "../errors.ts";
import { cleanEntryName } from "../layers/extract.ts";
import { decompressStream } from "../layers/decompress.ts";
import { secureJoin } from "../runtime/secure-join.ts";
import { isErrno, lstatIfAny, lstatOr } from "../fs-util.ts";
import { bestEffort, settled, type DebugLog } from "../../../shared/best-effort.ts";

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
export async function unpackContext(
  tar: Readable,
  dir: string,
  dockerfileParam: string,
  signal?: AbortSignal,
  inlineDockerfile?: string,
): Promise<BuildContext> {
  // pipeline (callback form) hands the input's and the decompressor's errors on to the padded stream.
  const padded = pipeline(decompressStream(tar), endOfArchive(), () => undefined);
  await extractContext(padded, dir, signal);
  const ignoreText = await readInside(dir, ".dockerignore");
  if (inlineDockerfile !== undefined) {
    // A Dockerfile given beside the context (the console's editor) wins over one inside it, as `-f` does.
    if (ignoreText !== undefined) await applyIgnore(dir, ignorePatterns(ignoreText));
    return { dir, dockerfile: inlineDockerfile, dockerfileName: "Dockerfile" };
  }
  const name = dockerfileParam || "Dockerfile";
  let dockerfile = await readInside(dir, name);
  let dockerfileName = name;
  if (dockerfile === undefined && !dockerfileParam) {
    dockerfile = await readInside(dir, "dockerfile");
    dockerfileName = "dockerfile";
  }
  if (dockerfile === undefined) throw notFound(`Cannot locate specified Dockerfile: ${name}`);
  if (ignoreText !== undefined) await applyIgnore(dir, ignorePatterns(ignoreText));
  return { dir, dockerfile, dockerfileName };
}

const ignorePatterns = (text: string): string[] =>
  text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));

/**
 * The context tar into `dir`, with the layer extractor's safety rules (layers/extract.ts) but
 * not its layer semantics: a context is plain files (`.wh.` names are files, owners and
 * extended attributes do not matter: COPY sets its own). Names are cleaned and may not climb
 * out; no entry is written through a symlink (parents are checked, the final name is removed,
 * never followed; files are created O_EXCL|O_NOFOLLOW); hard links point inside, not through
 * symlinks; devices are refused, FIFOs and sockets skipped.
 *
 * The file system calls are synchronous: a context is many small files in a directory private
 * to this build, where each asynchronous call would cost a thread-pool round trip (the build
 * of a 200-file context spent most of an unchanged rebuild here). Entries arrive one by one
 * from the stream, so the event loop is given back between them.
 */
async function extractContext(tar: Readable, dir: string, signal?: AbortSignal): Promise<void> {
  const ex = tarStream.extract();
  // Settles on every way the extraction stream can end: finished, failed, or destroyed below.
  const feeding = new Promise<void>((resolve, reject) => {
    tar.once("error", reject);
    ex.once("error", reject);
    ex.once("finish", resolve);
    ex.once("close", resolve);
  });
  tar.pipe(ex);
  const symlinks = new Set<string>();
  const dirs = new Set<string>([""]);
  const dirTimes: Array<[string, Date]> = [];
  const ensureParents = (rel: string, name: string) => {
    const parts = rel.split("/");
    let cur = "";
    for (const part of parts.slice(0, -1)) {
      cur = cur ? `${cur}/${part}` : part;
      if (dirs.has(cur)) continue;
      if (symlinks.has(cur)) throw invalidArgument(`build context entry ${name} would be written through a symlink: ${cur}`);
      const st = lstatOr(join(dir, cur));
      if (!st) mkdirSync(join(dir, cur), { mode: 0o755 });
      else if (!st.isDirectory()) throw invalidArgument(`build context entry ${name} needs ${cur} to be a directory, but it is not`);
      dirs.add(cur);
    }
  };
  const clear = (rel: string, keepDir: boolean): boolean => {
    const abs = join(dir, rel);
    const st = lstatOr(abs);
    if (!st) return false;
    if (st.isDirectory()) {
      if (keepDir) return true;
      rmSync(abs, { recursive: true, force: true });
      for (const d of [...dirs]) if (d === rel || d.startsWith(rel + "/")) dirs.delete(d);
      for (const l of [...symlinks]) if (l.startsWith(rel + "/")) symlinks.delete(l);
    } else {
      unlinkSync(abs);
      symlinks.delete(rel);
    }
    return false;
  };
  try {
    for await (const entry of ex) {
      if (signal?.aborted) throw canceled("build canceled");
      const h = entry.header;
      const data = entry as unknown as AsyncIterable<Buffer>;
      const rel = cleanEntryName(h.name);
      if (rel === undefined) throw invalidArgument(`build context entry escapes the context: ${h.name}`);
      const abs = join(dir, rel);
      const mode = (h.mode ?? 0o644) & 0o7777;
      const mtime = h.mtime instanceof Date && !Number.isNaN(h.mtime.getTime()) ? h.mtime : new Date(0);
      if (rel === "") {
        for await (const _ of data) void _;
        continue;
      }
      ensureParents(rel, h.name);
      switch (h.type) {
        case "directory": {
          if (!clear(rel, true)) mkdirSync(abs, { mode: 0o700 });
          chmodSync(abs, mode);
          dirs.add(rel);
          dirTimes.push([rel, mtime]);
          break;
        }
        case "file":
        case "contiguous-file": {
          clear(rel, false);
          const fd = openSync(abs, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
          try {
            for await (const chunk of data) {
              let off = 0;
              while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
            }
            fchmodSync(fd, mode);
            futimesSync(fd, mtime, mtime);
          } finally {
            closeSync(fd);
          }
          break;
        }
        case "symlink": {
          clear(rel, false);
          symlinkSync(h.linkname ?? "", abs);
          lutimesSync(abs, mtime, mtime);
          symlinks.add(rel);
          break;
        }
        case "link": {
          const target = cleanEntryName(h.linkname ?? "");
          if (target === undefined || target === "") throw invalidArgument(`build context entry ${h.name} links outside the context: ${h.linkname}`);
          ensureParents(target, h.name);
          const st = lstatOr(join(dir, target));
          if (!st || st.isDirectory()) throw invalidArgument(`build context entry ${h.name} links to ${h.linkname}, which is not a file of the context`);
          clear(rel, false);
          linkSync(join(dir, target), abs);
          if (st.isSymbolicLink()) symlinks.add(rel);
          break;
        }
        case "character-device":
        case "block-device":
          throw invalidArgument(`build context entry ${h.name} is a device node; devices are not allowed in a build context`);
        default:
          break; // FIFOs and the like: not copied by COPY either
      }
      for await (const _ of data) void _;
    }
    await feeding;
  } catch (e) {
    tar.destroy();
    ex.destroy();
    await settled(feeding); // it fails of the destroys above; e is the error to report
    if (e instanceof EngineError) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    throw invalidArgument(`invalid build context: ${msg}`, e);
  }
  for (const [rel, t] of dirTimes.sort((a, b) => b[0].split("/").length - a[0].split("/").length)) utimesSync(join(dir, rel), t, t);
}

async function readInside(dir: string, name: string): Promise<string | undefined> {
  const p = await secureJoin(dir, name);
  const st = await lstatIfAny(p);
  if (!st?.isFile()) return undefined;
  if (st.size > MAX_DOCKERFILE) throw invalidArgument(`${name} is larger than ${MAX_DOCKERFILE} bytes`);
  return readFile(p, "utf8");
}

function keepIfNotEmpty(e: unknown): void {
  if (!isErrno(e, "ENOTEMPTY") && !isErrno(e, "EEXIST")) throw e;
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
        if (ignored) await rmdir(host).catch(keepIfNotEmpty); // kept only when something inside was re-included
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
      cb(null, Buffer.alloc(((512 - (length % 512)) % 512) + 1024));
    },
  });
}

/**
 * Unpacked contexts of recent builds, keyed by the sha256 of the context tar as sent (and the
 * Dockerfile name): an unchanged rebuild sends the very same bytes, and unpacking a context of
 * many small files costs more than the rest of a fully cached build. The tar is spooled to one
 * file while it is hashed; a known one reuses its directory, read-only to every build (COPY
 * only reads a context). At most `max` unused contexts are kept; the owner deletes the whole
 * directory at start-up.
 */
export class ContextCache {
  private readonly entries = new Map<string, { ctx: BuildContext; refs: number; used: number }>();
  private readonly pending = new Map<string, Promise<BuildContext>>();

  constructor(
    private readonly root: string,
    private readonly log: DebugLog,
    private readonly max = 4,
  ) {}

  async reset(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
    await mkdir(this.root, { recursive: true, mode: 0o700 });
  }

  /** The unpacked context of `tar`; call `release()` when the build is done with it. */
  async acquire(tar: Readable, dockerfileParam: string, signal?: AbortSignal, inlineDockerfile?: string): Promise<{ ctx: BuildContext; release(): void }> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    const spool = join(this.root, `spool-${randomBytes(8).toString("hex")}`);
    try {
      const hash = createHash("sha256");
      await pipelineAsync(
        tar,
        new Transform({
          transform(chunk: Buffer, _e, cb) {
            hash.update(chunk);
            cb(null, chunk);
          },
        }),
        createWriteStream(spool, { mode: 0o600 }),
        { signal },
      );
      const inline = inlineDockerfile === undefined ? "" : createHash("sha256").update(inlineDockerfile).digest("hex");
      const key = `${hash.digest("hex")}:${dockerfileParam}:${inline}`;
      let entry = this.entries.get(key);
      if (!entry) {
        let making = this.pending.get(key);
        if (!making) {
          const dir = join(this.root, `ctx-${randomBytes(8).toString("hex")}`);
          making = (async () => {
            await mkdir(dir, { mode: 0o700 });
            try {
              return await unpackContext(createReadStream(spool), dir, dockerfileParam, signal, inlineDockerfile);
            } catch (e) {
              await rm(dir, { recursive: true, force: true });
              throw e;
            }
          })();
          this.pending.set(key, making);
          making
            .then(
              (ctx) => this.entries.set(key, { ctx, refs: 0, used: Date.now() }),
              () => undefined,
            )
            .finally(() => this.pending.delete(key));
        }
        const ctx = await making;
        entry = this.entries.get(key) ?? { ctx, refs: 0, used: Date.now() };
        this.entries.set(key, entry);
      }
      const e = entry;
      e.refs++;
      e.used = Date.now();
      let released = false;
      return {
        ctx: e.ctx,
        release: () => {
          if (released) return;
          released = true;
          e.refs--;
          void this.evict();
        },
      };
    } finally {
      await rm(spool, { force: true });
    }
  }

  private async evict(): Promise<void> {
    const idle = [...this.entries].filter(([, e]) => e.refs === 0).sort((a, b) => b[1].used - a[1].used);
    for (const [key, e] of idle.slice(this.max)) {
      this.entries.delete(key);
      await rm(e.ctx.dir, { recursive: true, force: true }).catch(bestEffort(this.log, `remove the build context ${e.ctx.dir}`)); // reset() at start removes it then
    }
  }
}
