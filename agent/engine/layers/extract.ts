/**
 * Safe unpacking of one layer tar (already decompressed) into a directory, in
 * overlayfs form.
 *
 * Security: nothing is ever written outside `dir`, whatever the tar says.
 * - Entry names are cleaned lexically (leading "/" and "." components dropped,
 *   "a/../b" folded); a name that climbs above the root is refused.
 * - No parent component may be a symlink (checked with lstat; the directory is
 *   private to the extraction, so nothing else changes it meanwhile). Entries are
 *   created exclusively (regular files with O_CREAT|O_EXCL|O_NOFOLLOW, mkdir,
 *   symlink, link: all fail on an existing name without following it); when the
 *   name is taken, whatever is there is removed (never followed) and the entry
 *   created again.
 * - Hard-link targets are cleaned the same way and must already exist in this
 *   layer, reached without symlinks.
 * - Device nodes are never created from the tar: block devices and character
 *   devices other than 0/0 (the overlay whiteout form) are refused, as are entry
 *   types other than file, hard link, symlink, directory and FIFO.
 *
 * Overlay form: `.wh.NAME` becomes a 0/0 character device at NAME (mknod), and
 * `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory (setfattr);
 * other `.wh..wh.*` (aufs metadata) entries are skipped. Whiteouts, opaque
 * markers and extended attributes are applied after the last entry (so
 * capabilities survive the chown, and directory mtimes are set last).
 *
 * Threads: the writer uses synchronous file-system calls (no event-loop round trip
 * per file), so it runs in a worker thread of unpack-pool.ts: `extractLayer` sends
 * the tar there; `extractTarHere` is what the worker runs. Fewer calls per file:
 * a file or directory gets its final mode at creation when the umask and a setgid
 * parent leave it whole and it has no setuid/setgid/sticky bit, and is chowned only
 * when the tar names another owner than the creating (root) user's.
 *
 * On any error the directory is left half-written: the caller removes it.
 * External tools: /usr/bin/mknod and /usr/bin/mkfifo (coreutils), setfattr
 * (Debian package `attr`).
 */
import {
  chmodSync,
  closeSync,
  constants as fsc,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lutimesSync,
  mkdirSync,
  openSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { lstat } from "node:fs/promises";
import { join } from "node:path";
import { Transform, type Readable, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as tarStream from "tar-stream";
import { canceled, dataLoss, EngineError, invalidArgument, unavailable } from "../errors.ts";
import { runTool, toolDetail } from "../child-process.ts";
import { cleanRelativePath, isErrno, lstatOr } from "../fs-util.ts";
import { unpackPool } from "./unpack-pool.ts";

/** This thread's umask (a worker may read it, not set it): what mkdir and open take away from a mode. */
const UMASK = process.umask();

export interface ExtractResult {
  /** Total bytes of regular files written (hard links not counted twice). */
  size: number;
}

/**
 * Unpacks `tar` (uncompressed) into `dir` (which must exist and should be empty), in a
 * worker thread of the shared pool. The stream is consumed to its end or destroyed on error.
 * @throws InvalidArgument for a malformed or unsafe tar (the message names the entry),
 *   DataLoss for a truncated one, Canceled if `signal` fires, Unavailable if a
 *   needed tool (setfattr, mknod, mkfifo) is missing, Internal if the worker died.
 */
export async function extractLayer(tar: Readable, dir: string, opts?: { signal?: AbortSignal }): Promise<ExtractResult> {
  let st;
  try {
    st = await lstat(dir);
  } catch (e) {
    tar.destroy();
    throw e;
  }
  if (!st.isDirectory()) {
    tar.destroy();
    throw invalidArgument(`extraction target ${dir} is not a directory`);
  }
  const { size } = await unpackPool().run(tar, { dir, compressed: false }, opts?.signal);
  return { size };
}

/**
 * extractLayer's work, on this thread, with synchronous file-system calls: only for a
 * worker thread (unpack-worker.ts). `observe` sees every byte of the tar, in order.
 */
export async function extractTarHere(tar: Readable, dir: string, opts?: { signal?: AbortSignal; observe?: (chunk: Buffer) => void }): Promise<ExtractResult> {
  const signal = opts?.signal;
  if (signal?.aborted) {
    tar.destroy();
    throw canceled("layer extraction canceled", signal.reason);
  }

  const scanner = new TarScanner(opts?.observe);
  const ex = tarStream.extract();
  const x = new Extractor(dir);
  let feedError: unknown;
  const feeding = pipeline(tar, scanner, ex, signal ? { signal } : {}).catch((e: unknown) => {
    feedError = e;
  });
  let current: string | undefined;
  try {
    for await (const entry of ex) {
      if (signal?.aborted) throw signal.reason;
      const scanned = scanner.takeEntry();
      const data = entry as unknown as AsyncIterable<Buffer>; // streamx's types omit its async iterator
      current = entry.header.name;
      await x.entry(entry.header, data, scanned);
      for await (const _ of data) void _; // whatever the handler did not read
      current = undefined;
    }
    await feeding;
    if (feedError !== undefined) throw feedError;
    if (scanner.zeroBlocks === 0) throw dataLoss("layer tar is truncated: it has no end-of-archive marker");
    if (signal?.aborted) throw signal.reason;
    await x.finish();
    return { size: x.size };
  } catch (e) {
    if (e instanceof EngineError) {
      ex.destroy();
      tar.destroy();
      throw e;
    }
    // A failing input also breaks the entry being read: report the input's error, not the symptom.
    ex.destroy();
    tar.destroy();
    await feeding;
    const cause = feedError !== undefined && !isPrematureClose(feedError) ? feedError : e;
    throw mapError(cause, signal, cause === e ? current : undefined);
  }
}

function isPrematureClose(e: unknown): boolean {
  return (e as { code?: string } | undefined)?.code === "ERR_STREAM_PREMATURE_CLOSE";
}

function mapError(e: unknown, signal: AbortSignal | undefined, entry: string | undefined): EngineError {
  if (e instanceof EngineError) return e;
  if (signal?.aborted || (e instanceof Error && e.name === "AbortError")) return canceled("layer extraction canceled", e);
  const msg = e instanceof Error ? e.message : String(e);
  if (/Unexpected end of data/.test(msg)) return dataLoss("layer tar is truncated: unexpected end of data", e);
  if (/Invalid tar header|Header exceeds max size|Invalid header/.test(msg)) return invalidArgument(`invalid layer tar: ${msg}`, e);
  return new EngineError("Internal", entry === undefined ? `extracting layer: ${msg}` : `extracting layer tar entry ${entry}: ${msg}`, { cause: e });
}

// ---------------------------------------------------------------------------
// Raw scanner: runs in front of tar-stream, following the same block structure,
// to keep PAX records as raw bytes (tar-stream decodes them as UTF-8, which
// mangles binary xattrs such as security.capability) and to see the
// end-of-archive marker. It mirrors tar-stream's rules for entry sizes so that
// its n-th entry is tar-stream's n-th entry.

interface ScannedEntry {
  /** SCHILY.xattr.* records of this entry, raw values. */
  xattrs: Map<string, Buffer>;
  /** The entry follows the end-of-archive marker: ignored, as tar(1) and Go's archive/tar do. */
  afterEnd: boolean;
}

const BLOCK = 512;
const MAX_META = 4 * 1024 * 1024;

class TarScanner extends Transform {
  zeroBlocks = 0;
  private ended = false;
  private readonly queue: ScannedEntry[] = [];
  private header = Buffer.alloc(BLOCK);
  private headerFill = 0;
  private skip = 0; // data bytes (and padding) to pass over
  private meta: { kind: "pax" | "global" | "other"; need: number; pad: number; chunks: Buffer[]; got: number } | undefined;
  private localPax: Map<string, Buffer> | undefined;
  private globalPax: Map<string, Buffer> | undefined;

  constructor(private readonly observe?: (chunk: Buffer) => void) {
    super();
  }

  takeEntry(): ScannedEntry {
    return this.queue.shift() ?? { xattrs: new Map(), afterEnd: false };
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.observe?.(chunk);
      this.scan(chunk);
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb(null, chunk);
  }

  private scan(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, chunk.length - off);
        this.skip -= n;
        off += n;
        continue;
      }
      if (this.meta) {
        const m = this.meta;
        const n = Math.min(m.need - m.got, chunk.length - off);
        m.chunks.push(chunk.subarray(off, off + n));
        m.got += n;
        off += n;
        if (m.got === m.need) {
          this.meta = undefined;
          this.skip = m.pad;
          if (m.kind !== "other") {
            const records = parsePax(Buffer.concat(m.chunks));
            if (m.kind === "pax") this.localPax = records;
            else this.globalPax = records;
          }
        }
        continue;
      }
      const n = Math.min(BLOCK - this.headerFill, chunk.length - off);
      chunk.copy(this.header, this.headerFill, off, off + n);
      this.headerFill += n;
      off += n;
      if (this.headerFill === BLOCK) {
        this.headerFill = 0;
        this.onHeader(this.header);
      }
    }
  }

  private onHeader(b: Buffer): void {
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += b[i]!;
    if (sum === 0) {
      this.zeroBlocks++;
      if (this.zeroBlocks >= 2) this.ended = true;
      return;
    }
    if (this.zeroBlocks > 0 && !this.ended) throw invalidArgument("invalid layer tar: a header follows a single zero block");
    let typeflag = b[156] === 0 ? 0 : b[156]! - 48;
    const size = decodeNumber(b, 124, 12);
    if (size === null || !(size >= 0)) throw invalidArgument("invalid layer tar: bad size field in a header");
    if (typeflag === 72 || typeflag === 55 || typeflag === 27 || typeflag === 28 || typeflag === 30) {
      if (size > MAX_META) throw invalidArgument("invalid layer tar: Header exceeds max size");
      const kind = typeflag === 72 ? "pax" : typeflag === 55 ? "global" : "other";
      const pad = overflow(size);
      if (size === 0) this.skip = pad;
      else this.meta = { kind, need: size, pad, chunks: [], got: 0 };
      if (size === 0 && kind !== "other") {
        if (kind === "pax") this.localPax = new Map();
        else this.globalPax = new Map();
      }
      return;
    }
    const nameEnd = b.indexOf(0, 0);
    const name = b.subarray(0, nameEnd < 0 || nameEnd > 100 ? 100 : nameEnd);
    if (typeflag === 0 && name.length > 0 && name[name.length - 1] === 0x2f) typeflag = 5;

    let effective = size;
    const xattrs = new Map<string, Buffer>();
    if (this.localPax) {
      const merged = new Map([...(this.globalPax ?? []), ...this.localPax]);
      const paxSize = merged.get("size")?.toString("utf8");
      if (paxSize) effective = parseInt(paxSize, 10);
      for (const [k, v] of merged) if (k.startsWith("SCHILY.xattr.")) xattrs.set(k.slice("SCHILY.xattr.".length), v);
      this.localPax = undefined;
    } else if (this.globalPax) {
      for (const [k, v] of this.globalPax) if (k.startsWith("SCHILY.xattr.")) xattrs.set(k.slice("SCHILY.xattr.".length), v);
    }
    if (!(effective >= 0)) throw invalidArgument("invalid layer tar: bad size in a PAX header");
    this.queue.push({ xattrs, afterEnd: this.ended });
    // tar-stream (like old tars) reads no data for directories, whatever the size field says.
    if (typeflag !== 5 && effective > 0) this.skip = effective + overflow(effective);
  }
}

function overflow(size: number): number {
  const r = size % BLOCK;
  return r === 0 ? 0 : BLOCK - r;
}

/** Octal or base-256 numeric field, as tar-stream reads it. */
function decodeNumber(b: Buffer, off: number, len: number): number | null {
  const f = b.subarray(off, off + len);
  if (f[0]! & 0x80) {
    if (f[0] !== 0x80) return null; // negative
    let v = 0;
    for (let i = 1; i < f.length; i++) v = v * 256 + f[i]!;
    return v;
  }
  let s = 0;
  while (s < f.length && f[s] === 32) s++;
  let e = f.indexOf(32, s);
  if (e < 0) e = f.length;
  while (s < e && f[s] === 0) s++;
  if (s === e) return 0;
  return parseInt(f.subarray(s, e).toString("latin1"), 8);
}

function parsePax(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) break;
    const len = parseInt(buf.subarray(off, sp).toString("latin1"), 10);
    if (!len || len <= sp - off || off + len > buf.length) break;
    const rec = buf.subarray(sp + 1, off + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq < 0) break;
    out.set(rec.subarray(0, eq).toString("utf8"), Buffer.from(rec.subarray(eq + 1)));
    off += len;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Names

/** "a/b/c" → "a", "a/b": the directories an entry needs, outermost first. */
function* parentPaths(rel: string): Generator<string> {
  for (let i = rel.indexOf("/"); i >= 0; i = rel.indexOf("/", i + 1)) yield rel.slice(0, i);
}

/** A tar name as a path relative to the layer root ("" is the root); undefined if it climbs above the root or holds a NUL. */
export function cleanEntryName(raw: string): string | undefined {
  return raw.includes("\0") ? undefined : cleanRelativePath(raw);
}

const WH = ".wh.";
const WH_META = ".wh..wh.";
const WH_OPAQUE = ".wh..wh..opq";

function parentOf(rel: string): string {
  const i = rel.lastIndexOf("/");
  return i < 0 ? "" : rel.slice(0, i);
}

function baseOf(rel: string): string {
  return rel.slice(rel.lastIndexOf("/") + 1);
}

function under(rel: string, prefix: string): boolean {
  return prefix === "" || rel === prefix || rel.startsWith(prefix + "/");
}

/** Extended attributes taken from the tar; overlay's own are never (they would change how layers merge). */
function xattrAllowed(name: string): boolean {
  if (name === "security.capability") return true;
  if (name.startsWith("user.")) return !name.startsWith("user.overlay.");
  if (name.startsWith("trusted.")) return !name.startsWith("trusted.overlay.");
  return false;
}

// ---------------------------------------------------------------------------
// The extraction state machine

interface Owner {
  uid: number;
  gid: number;
}

class Extractor {
  size = 0;
  private readonly root: string;
  /** Relative paths known to be real directories (not symlinks). The root is implied. */
  private readonly dirs = new Set<string>();
  /** Setgid directories: what is created in them takes their group, so chown is not skipped there. */
  private readonly sgidDirs = new Set<string>();
  private readonly whiteouts = new Map<string, Owner>();
  private readonly opaque = new Set<string>();
  private readonly xattrs = new Map<string, Map<string, Buffer>>();
  private readonly dirTimes = new Map<string, Date>();
  private readonly skipped: string[] = [];
  /** Who owns what this thread creates: chown is skipped when the tar asks for exactly that. */
  private readonly uid = process.geteuid?.() ?? -1;
  private readonly gid = process.getegid?.() ?? -1;

  constructor(root: string) {
    this.root = root;
  }

  private abs(rel: string): string {
    return rel === "" ? this.root : join(this.root, rel);
  }

  async entry(h: tarStream.Header, data: AsyncIterable<Buffer>, scanned: ScannedEntry): Promise<void> {
    if (scanned.afterEnd) return;
    const name = h.name;
    const rel = cleanEntryName(name);
    if (rel === undefined) throw invalidArgument(`layer tar entry escapes the layer root: ${name}`);
    if (this.skipped.length && this.skipped.some((p) => under(rel, p))) return;
    const base = baseOf(rel);
    const type = h.type;
    if (rel !== "" && base.startsWith(WH)) {
      if (base === WH_OPAQUE) return this.markOpaque(rel, name);
      if (base.startsWith(WH_META)) {
        if (type === "directory") this.skipped.push(rel);
        return;
      }
      return this.whiteout(`${parentOf(rel) ? parentOf(rel) + "/" : ""}${base.slice(WH.length)}`, name, h, base.length === WH.length);
    }
    if (rel === "" && type !== "directory") throw invalidArgument(`layer tar entry ${name} names the layer root but is a ${type ?? "entry of unknown type"}`);
    switch (type) {
      case "directory":
        this.directory(rel, name, h);
        break;
      case "file":
      case "contiguous-file":
        await this.file(rel, name, h, data);
        break;
      case "symlink":
        this.symlink(rel, name, h);
        break;
      case "link":
        this.hardlink(rel, name, h);
        return; // a hard link shares its target's inode: no metadata, no xattrs of its own
      case "fifo":
        await this.fifo(rel, name, h);
        break;
      case "character-device":
        if ((h.devmajor ?? 0) === 0 && (h.devminor ?? 0) === 0) {
          this.whiteout(rel, name, h, false);
          break;
        }
        throw invalidArgument(`layer tar entry ${name} is a character device (${h.devmajor}/${h.devminor}); device nodes are not allowed in layers`);
      case "block-device":
        throw invalidArgument(`layer tar entry ${name} is a block device (${h.devmajor}/${h.devminor}); device nodes are not allowed in layers`);
      default:
        throw invalidArgument(`layer tar entry ${name} has an unsupported type (${type ?? "unknown type flag"})`);
    }
    this.queueXattrs(rel, scanned.xattrs);
  }

  /** Creates missing parent directories of `rel`; refuses symlinks and non-directories on the way. */
  private ensureParents(rel: string, name: string): void {
    for (const cur of parentPaths(rel)) {
      if (this.dirs.has(cur)) continue;
      const abs = this.abs(cur);
      const st = lstatOr(abs);
      if (!st) {
        mkdirSync(abs, { mode: 0o755 });
        // A setgid parent hands down its setgid bit; the umask may take bits away.
        if (UMASK & 0o755 || this.sgidDirs.has(parentOf(cur))) chmodSync(abs, 0o755);
        this.whiteouts.delete(cur);
      } else if (st.isSymbolicLink()) {
        throw invalidArgument(`layer tar entry ${name} would be written through a symlink: ${cur}`);
      } else if (!st.isDirectory()) {
        throw invalidArgument(`layer tar entry ${name} needs ${cur} to be a directory, but it is not`);
      }
      this.dirs.add(cur);
    }
  }

  /** Like ensureParents, creating nothing: false if a parent is missing. */
  private parentsAreDirs(rel: string, name: string, what: string): boolean {
    for (const cur of parentPaths(rel)) {
      if (this.dirs.has(cur)) continue;
      const st = lstatOr(this.abs(cur));
      if (!st) return false;
      if (st.isSymbolicLink()) throw invalidArgument(`layer tar entry ${name}: ${what} is reached through a symlink: ${cur}`);
      if (!st.isDirectory()) return false;
      this.dirs.add(cur);
    }
    return true;
  }

  /**
   * Forgets what a new entry at `rel` replaces. The name itself is cleared only when
   * creating it fails with EEXIST (`clear`): most names are new, and an lstat per entry
   * first would be wasted.
   */
  private replacing(rel: string): void {
    this.whiteouts.delete(rel);
    this.xattrs.delete(rel);
  }

  /**
   * Clears the final name: whatever is there is removed (a directory too,
   * unless `keepDir`), never followed. Returns whether a directory was kept.
   */
  private clear(rel: string, keepDir: boolean): boolean {
    const abs = this.abs(rel);
    this.replacing(rel);
    const st = lstatOr(abs);
    if (!st) return false; // nothing is remembered about a path that does not exist
    if (st.isDirectory()) {
      if (keepDir) return true;
      rmSync(abs, { recursive: true, force: true });
      this.forgetTree(rel);
    } else {
      unlinkSync(abs);
    }
    return false;
  }

  /** Runs `create`; if the name is taken, clears it (see `clear`) and runs it again. */
  private createAt(rel: string, create: () => void): void {
    this.replacing(rel);
    try {
      create();
    } catch (e) {
      if (!isErrno(e, "EEXIST")) throw e;
      this.clear(rel, false);
      create();
    }
  }

  /** Drops everything remembered about a removed directory `rel` and below it (rare: not on the hot path). */
  private forgetTree(rel: string): void {
    for (const set of [this.dirs, this.opaque, this.sgidDirs]) for (const k of set) if (under(k, rel)) set.delete(k);
    for (const map of [this.whiteouts, this.xattrs, this.dirTimes]) for (const k of map.keys()) if (under(k, rel)) map.delete(k);
  }

  /**
   * Owner of something just created at `rel`: chown only when the tar asks for another owner
   * than the creator's, or when a setgid parent directory handed down its group.
   */
  private chownNew(abs: string, rel: string, uid: number, gid: number, fd: number | false): void {
    if (uid === this.uid && gid === this.gid && !this.sgidDirs.has(parentOf(rel))) return;
    if (fd === false) lchownSync(abs, uid, gid);
    else fchownSync(fd, uid, gid);
  }

  private directory(rel: string, name: string, h: tarStream.Header): void {
    const abs = this.abs(rel);
    const mode = modeOf(h, 0o755);
    // As for files: the final mode at mkdir when nothing (umask, setgid parent, special bits) changes it.
    const exact = rel !== "" && (mode & 0o7000) === 0 && (mode & UMASK) === 0 && !this.sgidDirs.has(parentOf(rel));
    let created = false;
    if (rel !== "") {
      this.ensureParents(rel, name);
      this.replacing(rel);
      const make = () => {
        mkdirSync(abs, { mode: exact ? mode : 0o700 });
        created = true;
      };
      try {
        make();
      } catch (e) {
        if (!isErrno(e, "EEXIST")) throw e;
        if (!this.clear(rel, true)) make();
      }
      this.dirs.add(rel);
    }
    const uid = h.uid ?? 0;
    const gid = h.gid ?? 0;
    if (created) this.chownNew(abs, rel, uid, gid, false);
    else lchownSync(abs, uid, gid);
    if (!(created && exact)) chmodSync(abs, mode); // after chown, which clears setgid
    if (mode & 0o2000) this.sgidDirs.add(rel);
    else this.sgidDirs.delete(rel);
    this.dirTimes.set(rel, mtimeOf(h));
  }

  private async file(rel: string, name: string, h: tarStream.Header, data: AsyncIterable<Buffer>): Promise<void> {
    this.ensureParents(rel, name);
    const abs = this.abs(rel);
    const mode = modeOf(h, 0o644);
    // Created with its final mode when the umask leaves it whole and no setuid/setgid/sticky
    // bit is asked for (those need the chmod after the chown, which clears them).
    const exact = (mode & 0o7000) === 0 && (mode & UMASK) === 0;
    let fd = -1;
    this.createAt(rel, () => {
      fd = openSync(abs, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, exact ? mode : 0o600);
    });
    try {
      for await (const chunk of data) {
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
        this.size += chunk.length;
      }
      this.chownNew(abs, rel, h.uid ?? 0, h.gid ?? 0, fd);
      if (!exact) fchmodSync(fd, mode); // after chown, which clears setuid/setgid
      const t = mtimeOf(h);
      futimesSync(fd, t, t);
    } finally {
      closeSync(fd);
    }
  }

  private symlink(rel: string, name: string, h: tarStream.Header): void {
    const target = h.linkname ?? "";
    if (target === "") throw invalidArgument(`layer tar entry ${name} is a symlink with an empty target`);
    this.ensureParents(rel, name);
    const abs = this.abs(rel);
    this.createAt(rel, () => symlinkSync(target, abs)); // the target text is kept as is; it is resolved inside the container
    this.chownNew(abs, rel, h.uid ?? 0, h.gid ?? 0, false);
    const t = mtimeOf(h);
    lutimesSync(abs, t, t);
  }

  private hardlink(rel: string, name: string, h: tarStream.Header): void {
    const rawTarget = h.linkname ?? "";
    const target = cleanEntryName(rawTarget);
    if (target === undefined) throw invalidArgument(`layer tar entry ${name}: hardlink target ${rawTarget} escapes the layer root`);
    if (target === "") throw invalidArgument(`layer tar entry ${name} is a hardlink to the layer root`);
    if (target === rel) throw invalidArgument(`layer tar entry ${name} is a hardlink to itself`);
    const missing = () => invalidArgument(`layer tar entry ${name}: hardlink target ${rawTarget} does not exist in the layer`);
    if (!this.parentsAreDirs(target, name, `hardlink target ${rawTarget}`)) throw missing();
    const st = lstatOr(this.abs(target));
    if (!st) throw missing();
    if (st.isDirectory()) throw invalidArgument(`layer tar entry ${name}: hardlink target ${rawTarget} is a directory`);
    this.ensureParents(rel, name);
    this.createAt(rel, () => linkSync(this.abs(target), this.abs(rel))); // link(2) does not follow a symlink target
  }

  private async fifo(rel: string, name: string, h: tarStream.Header): Promise<void> {
    this.ensureParents(rel, name);
    this.clear(rel, false);
    const abs = this.abs(rel);
    await run("/usr/bin/mkfifo", ["-m", "600", "--", abs], "coreutils");
    lchownSync(abs, h.uid ?? 0, h.gid ?? 0);
    chmodSync(abs, modeOf(h, 0o644));
    const t = mtimeOf(h);
    lutimesSync(abs, t, t);
  }

  private whiteout(rel: string, name: string, h: tarStream.Header, empty: boolean): void {
    if (empty || rel === "") throw invalidArgument(`layer tar entry ${name} is a whiteout without a name`);
    this.ensureParents(rel, name);
    this.clear(rel, false);
    this.whiteouts.set(rel, { uid: h.uid ?? 0, gid: h.gid ?? 0 }); // created in finish()
  }

  private markOpaque(rel: string, name: string): void {
    this.ensureParents(rel, name);
    this.opaque.add(parentOf(rel));
  }

  private queueXattrs(rel: string, found: Map<string, Buffer>): void {
    for (const [k, v] of found) {
      if (!xattrAllowed(k)) continue;
      let m = this.xattrs.get(rel);
      if (!m) this.xattrs.set(rel, (m = new Map()));
      m.set(k, v);
    }
  }

  /** Applies what was deferred: whiteouts, opaque markers, xattrs, then directory times. */
  async finish(): Promise<void> {
    const check = (rel: string, what: string) => {
      if (!this.parentsAreDirs(rel, rel, what)) throw new EngineError("Internal", `layer extraction lost the parent directory of ${rel}`);
    };

    await forEachLimit([...this.whiteouts], 16, async ([rel, owner]) => {
      check(rel, "whiteout");
      const abs = this.abs(rel);
      await run("/usr/bin/mknod", ["-m", "000", "--", abs, "c", "0", "0"], "coreutils");
      lchownSync(abs, owner.uid, owner.gid);
    });

    const opaque = [...this.opaque];
    for (const rel of opaque) {
      check(rel, "opaque directory");
      const st = lstatOr(this.abs(rel));
      if (!st?.isDirectory()) throw new EngineError("Internal", `opaque marker for ${rel || "/"} has no directory`);
    }
    await setXattr(
      "trusted.overlay.opaque",
      Buffer.from("y"),
      opaque.map((r) => this.abs(r)),
      "an opaque directory marker (.wh..wh..opq)",
    );

    // Group identical (name, value) pairs so one setfattr call covers many paths.
    const groups = new Map<string, { name: string; value: Buffer; paths: string[] }>();
    for (const [rel, attrs] of this.xattrs) {
      check(rel, "xattr");
      for (const [k, v] of attrs) {
        const key = `${k}\0${v.toString("hex")}`;
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { name: k, value: v, paths: [] }));
        g.paths.push(this.abs(rel));
      }
    }
    for (const g of groups.values()) await setXattr(g.name, g.value, g.paths, "an extended attribute from the tar");

    const dirs = [...this.dirTimes].sort((a, b) => depth(b[0]) - depth(a[0]));
    for (const [rel, t] of dirs) lutimesSync(this.abs(rel), t, t);
  }
}

function depth(rel: string): number {
  if (rel === "") return 0;
  let n = 1;
  for (const c of rel) if (c === "/") n++;
  return n;
}

function modeOf(h: tarStream.Header, dflt: number): number {
  return (h.mode ?? dflt) & 0o7777;
}

function mtimeOf(h: tarStream.Header): Date {
  const t = h.mtime;
  return t instanceof Date && !Number.isNaN(t.getTime()) ? t : new Date(0);
}

async function forEachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (failed === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
}

async function setXattr(name: string, value: Buffer, paths: string[], what: string): Promise<void> {
  // -h: never follow a symlink; the value is passed hex-encoded so binary values survive.
  for (let i = 0; i < paths.length; i += 100) {
    const batch = paths.slice(i, i + 100);
    try {
      await run("setfattr", ["-h", "-n", name, "-v", `0x${value.toString("hex")}`, "--", ...batch], "attr");
    } catch (e) {
      if (e instanceof EngineError && e.kind === "Unavailable") throw e;
      throw invalidArgument(`cannot set ${name} (${what}) on ${batch.join(", ")}: ${(e as Error).message}`, e);
    }
  }
}

async function run(cmd: string, args: string[], debianPackage: string): Promise<void> {
  let r;
  try {
    r = await runTool(cmd, args);
  } catch (e) {
    if (isErrno(e, "ENOENT")) throw unavailable(`${cmd} is not installed (Debian package ${debianPackage}); it is needed to unpack layers`, e);
    throw e;
  }
  if (r.exitCode !== 0) throw new Error(toolDetail(r) || `${cmd} failed with exit code ${r.exitCode}`);
}
