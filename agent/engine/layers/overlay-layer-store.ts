/**
 * LayerStore for overlayfs, laid out like Docker's overlay2 driver:
 *
 *   ROOT/<chain hex>/diff/        the layer's own files, whiteouts in overlay form
 *   ROOT/<chain hex>/link         its short id (26 characters)
 *   ROOT/<chain hex>/meta.json    { chainId, diffId, parent?, size }
 *   ROOT/l/<short id>             symlink → ../<chain hex>/diff
 *   ROOT/tmp/                     unpacks in progress and removals under way
 *
 * A layer directory appears only by rename of a complete temporary directory
 * (content flushed with syncfs first, unless `durable: false`), and disappears
 * by rename into ROOT/tmp before it is deleted; so after a crash only ROOT/tmp
 * and dangling short links need cleaning (`removeStale`).
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readFile, readlink, rename, rm, stat, symlink, unlink } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { parseDigest } from "../content/store.ts";
import { runTool, toolDetail } from "../child-process.ts";
import { canceled, conflict, dataLoss, EngineError, notFound } from "../errors.ts";
import { chainIdOf } from "./chain-id.ts";
import { decompressStream } from "./decompress.ts";
import type { LayerInfo, LayerStore, LowerDirs, UnpackParams } from "./layer-store.ts";
import { unpackPool, type UnpackPool } from "./unpack-pool.ts";
import { fsyncDir, isErrno, lstatIfAny, pathExists, readdirOrEmpty, writeNewFileSynced } from "../fs-util.ts";
import { pino, type Logger } from "pino";
import { bestEffort } from "../../../shared/best-effort.ts";
import { ScratchDir } from "../scratch-dir.ts";

const HEX64 = /^[0-9a-f]{64}$/;
const LINK_RE = /^[A-Z0-9]{26}$/;
const MAX_CHAIN = 1000;

interface Meta {
  chainId: string;
  diffId: string;
  parent?: string;
  size: number;
}

export interface OverlayLayerStoreOptions {
  /** Flush a layer's files to disk (syncfs) before it gets its final name. Default true. */
  durable?: boolean;
  logger?: Logger;
  /** Worker threads that unpack (default: the process's shared pool). */
  pool?: UnpackPool;
}

export class OverlayLayerStore implements LayerStore {
  readonly root: string;
  private readonly durable: boolean;
  private readonly linkDir: string;
  private readonly tmpDir: string;
  /** Temporary directories of this process's unpacks: removeStale keeps them. */
  private readonly scratch: ScratchDir;
  /** Parents of unpacks in progress, with counts: remove() refuses them. */
  private readonly pinned = new Map<string, number>();
  private readonly log: Logger;
  private readonly pool: UnpackPool;

  constructor(root: string, opts?: OverlayLayerStoreOptions) {
    this.root = root;
    this.durable = opts?.durable ?? true;
    this.linkDir = join(root, "l");
    this.tmpDir = join(root, "tmp");
    this.log = opts?.logger ?? pino({ enabled: false });
    this.pool = opts?.pool ?? unpackPool();
    this.scratch = new ScratchDir(this.tmpDir, this.log);
  }

  private layerDir(chainId: string): string {
    return join(this.root, parseDigest(chainId).hex);
  }

  async get(chainId: string): Promise<LayerInfo | undefined> {
    const dir = this.layerDir(chainId);
    let meta: Meta;
    let link: string;
    try {
      meta = JSON.parse(await readFile(join(dir, "meta.json"), "utf8")) as Meta;
      link = (await readFile(join(dir, "link"), "utf8")).trim();
    } catch (e) {
      if (isErrno(e, "ENOENT")) return undefined;
      throw e;
    }
    if (meta.chainId !== chainId || !LINK_RE.test(link)) {
      throw dataLoss(`layer ${chainId} has inconsistent metadata in ${dir}`);
    }
    return {
      chainId,
      diffId: meta.diffId,
      ...(meta.parent ? { parent: meta.parent } : {}),
      size: meta.size,
      diffDir: join(dir, "diff"),
      link,
    };
  }

  async list(): Promise<LayerInfo[]> {
    const out: LayerInfo[] = [];
    for (const name of await readdirOrEmpty(this.root)) {
      if (!HEX64.test(name)) continue;
      const info = await this.get(`sha256:${name}`);
      if (info) out.push(info);
    }
    return out;
  }

  async unpack(params: UnpackParams, tar: Readable, signal?: AbortSignal): Promise<LayerInfo> {
    const { parent, expectedDiffId, compressed = false } = params;
    const onTarSize = params.onTarSize ?? (() => undefined);
    try {
      if (expectedDiffId !== undefined) parseDigest(expectedDiffId);
      if (parent !== undefined) parseDigest(parent);
      signal?.throwIfAborted();
    } catch (e) {
      tar.destroy();
      throw mapAbort(e, signal);
    }
    this.pin(parent);
    try {
      if (expectedDiffId !== undefined) {
        const existing = await this.get(chainOf(parent, expectedDiffId));
        if (existing) {
          onTarSize(await drainVerify(compressed ? decompressStream(tar) : tar, expectedDiffId, signal));
          return existing;
        }
      }
      return await this.unpackNew(parent, expectedDiffId, compressed, tar, signal, onTarSize);
    } catch (e) {
      tar.destroy(); // the stream is ours: a failure before it was read must still release it (an open file)
      throw e;
    } finally {
      this.unpin(parent);
    }
  }

  private async unpackNew(
    parent: string | undefined,
    expectedDiffId: string | undefined,
    compressed: boolean,
    tar: Readable,
    signal: AbortSignal | undefined,
    onTarSize: (bytes: number) => void,
  ): Promise<LayerInfo> {
    await mkdir(this.tmpDir, { recursive: true });
    await mkdir(this.linkDir, { recursive: true });
    const tmpName = `unpack-${randomBytes(8).toString("hex")}`;
    const tmp = this.scratch.hold(tmpName);
    let linkPath: string | undefined;
    try {
      await mkdir(join(tmp, "diff"), { recursive: true, mode: 0o700 });
      // Decompressed, hashed and written in a worker thread; settles once the worker stopped writing.
      const { size, diffId, tarSize } = await this.pool.run(tar, { dir: join(tmp, "diff"), compressed }, signal);
      onTarSize(tarSize);
      if (expectedDiffId !== undefined && diffId !== expectedDiffId) {
        throw dataLoss(`layer diff ID mismatch: expected ${expectedDiffId} got ${diffId}`);
      }
      const chainId = chainOf(parent, diffId);
      const finalDir = this.layerDir(chainId);
      const existing = await this.get(chainId);
      if (existing) return existing;

      const link = newLink();
      const meta: Meta = { chainId, diffId, ...(parent ? { parent } : {}), size };
      await writeNewFileSynced(join(tmp, "link"), link);
      await writeNewFileSynced(join(tmp, "meta.json"), JSON.stringify(meta, null, 2) + "\n");
      if (this.durable) await syncfs(tmp);
      // The short link first (dangling until the rename): a crash leaves at worst a dangling link.
      linkPath = join(this.linkDir, link);
      await symlink(join("..", parseDigest(chainId).hex, "diff"), linkPath);
      try {
        await rename(tmp, finalDir);
      } catch (e) {
        if (!isErrno(e, "ENOTEMPTY") && !isErrno(e, "EEXIST")) throw e;
        // Unpacked concurrently by someone else: theirs wins.
        const theirs = await this.get(chainId);
        if (!theirs) throw e;
        return theirs;
      }
      linkPath = undefined;
      if (this.durable) await fsyncDir(this.root);
      return { chainId, diffId, ...(parent ? { parent } : {}), size, diffDir: join(finalDir, "diff"), link };
    } catch (e) {
      throw mapAbort(e, signal);
    } finally {
      if (linkPath) await unlink(linkPath).catch(bestEffort(this.log, `remove the link ${linkPath}`)); // else the sweep does
      await rm(tmp, { recursive: true, force: true });
      this.scratch.release(tmpName);
    }
  }

  warm(): void {
    this.pool.warm();
  }

  async remove(chainId: string): Promise<void> {
    const dir = this.layerDir(chainId);
    const info = await this.get(chainId);
    if (!info) {
      if (await pathExists(dir)) await this.scratch.trash(dir, `remove-${parseDigest(chainId).hex.slice(0, 12)}`); // a half-made directory
      return;
    }
    if ((this.pinned.get(chainId) ?? 0) > 0) throw conflict(`layer ${chainId} cannot be removed: a layer is being unpacked on top of it`);
    const child = (await this.list()).find((l) => l.parent === chainId);
    if (child) throw conflict(`layer ${chainId} cannot be removed: it is the parent of layer ${child.chainId}`);
    const moved = await this.scratch.trash(dir, `remove-${parseDigest(chainId).hex.slice(0, 12)}`);
    if (!moved) return; // removed concurrently
    await unlink(join(this.linkDir, info.link)).catch((e: unknown) => {
      if (!isErrno(e, "ENOENT")) throw e;
    });
  }

  async lowerDirs(chainId: string): Promise<LowerDirs> {
    const lowers: string[] = [];
    let cur: string | undefined = chainId;
    while (cur !== undefined) {
      if (lowers.length >= MAX_CHAIN) throw new EngineError("Internal", `layer chain of ${chainId} is longer than ${MAX_CHAIN} (a cycle?)`);
      const info: LayerInfo | undefined = await this.get(cur);
      if (!info) throw notFound(cur === chainId ? `layer ${chainId} not found` : `layer ${cur} (below ${chainId}) not found`);
      await this.ensureLink(info);
      lowers.push(join("l", info.link));
      cur = info.parent;
    }
    return { cwd: this.root, lowers };
  }

  /** Re-creates a short link lost by a crash. */
  private async ensureLink(info: LayerInfo): Promise<void> {
    const p = join(this.linkDir, info.link);
    const want = join("..", parseDigest(info.chainId).hex, "diff");
    try {
      if ((await readlink(p)) === want) return;
      await unlink(p);
    } catch (e) {
      if (!isErrno(e, "ENOENT") && !isErrno(e, "EINVAL")) throw e;
      if (isErrno(e, "EINVAL")) await rm(p, { recursive: true, force: true });
    }
    await mkdir(this.linkDir, { recursive: true });
    await symlink(want, p).catch((e: unknown) => {
      if (!isErrno(e, "EEXIST")) throw e;
    });
  }

  async removeStale(): Promise<number> {
    let n = 0;
    n += await this.scratch.sweep();
    for (const name of await readdirOrEmpty(this.root)) {
      if (!HEX64.test(name)) continue;
      if (!(await pathExists(join(this.root, name, "meta.json")))) {
        await rm(join(this.root, name), { recursive: true, force: true });
        n++;
      }
    }
    for (const name of await readdirOrEmpty(this.linkDir)) {
      const p = join(this.linkDir, name);
      const st = await lstatIfAny(p);
      if (!st) continue;
      if (
        st.isSymbolicLink() &&
        (await stat(p).then(
          () => true,
          () => false,
        ))
      )
        continue; // resolves: a live layer
      await rm(p, { recursive: true, force: true });
      n++;
    }
    return n;
  }

  private pin(chainId: string | undefined): void {
    if (chainId !== undefined) this.pinned.set(chainId, (this.pinned.get(chainId) ?? 0) + 1);
  }

  private unpin(chainId: string | undefined): void {
    if (chainId === undefined) return;
    const n = (this.pinned.get(chainId) ?? 1) - 1;
    if (n <= 0) this.pinned.delete(chainId);
    else this.pinned.set(chainId, n);
  }
}

function chainOf(parent: string | undefined, diffId: string): string {
  if (parent === undefined) return chainIdOf([diffId]);
  parseDigest(parent);
  parseDigest(diffId);
  return `sha256:${createHash("sha256").update(`${parent} ${diffId}`).digest("hex")}`;
}

/** Consumes a tar whose layer already exists, still checking its diff ID. */
async function drainVerify(tar: Readable, expectedDiffId: string, signal: AbortSignal | undefined): Promise<number> {
  const hash = createHash("sha256");
  let n = 0;
  try {
    for await (const chunk of tar as AsyncIterable<Buffer>) {
      if (signal?.aborted) throw signal.reason;
      hash.update(chunk);
      n += chunk.length;
    }
  } catch (e) {
    tar.destroy();
    throw mapAbort(e, signal);
  }
  const got = `sha256:${hash.digest("hex")}`;
  if (got !== expectedDiffId) throw dataLoss(`layer diff ID mismatch: expected ${expectedDiffId} got ${got}`);
  return n;
}

function mapAbort(e: unknown, signal: AbortSignal | undefined): unknown {
  if (e instanceof EngineError) return e;
  if (signal?.aborted || (e instanceof Error && e.name === "AbortError")) return canceled("layer unpack canceled", e);
  return e;
}

const LINK_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/** A 26-character random id in base32 letters, like Docker overlay2's short links. */
function newLink(): string {
  const bytes = randomBytes(26);
  let s = "";
  for (const b of bytes) s += LINK_ALPHABET[b & 31];
  return s;
}

/** Flushes the filesystem holding `path` (coreutils `sync -f`, i.e. syncfs(2)). */
async function syncfs(path: string): Promise<void> {
  const r = await runTool("sync", ["-f", path]);
  if (r.exitCode !== 0) throw new Error(`sync -f ${path}: ${toolDetail(r) || `exit code ${r.exitCode}`}`);
}
