/**
 * Unpacking a tar into a directory of a container's filesystem (`docker cp` into a
 * container, Docker's `PUT /containers/{id}/archive`), running or not.
 *
 * Unlike a layer (layers/extract.ts, which unpacks into a private directory), the
 * destination here belongs to the container, whose processes may change it while the
 * tar is unpacked: swap a directory for a symlink to `/` between a check and a write
 * (the CVE-2018-15664 class). So nothing is done by path from the destination down:
 * every directory is opened with O_DIRECTORY|O_NOFOLLOW relative to its parent's open
 * descriptor (`/proc/<pid>/fd/N/NAME`, one component at a time), and every entry is
 * made in such a descriptor with calls that never follow a final symlink (O_NOFOLLOW,
 * O_EXCL, lchown, lutimes, unlink, rmdir, symlink, link). A symlink met on the way is
 * refused, never followed.
 *
 * Docker's rules (pkg/archive Unpack): names are cleaned and may not climb out of the
 * destination; a relative symlink whose target climbs out of it is refused; whatever
 * exists at an entry's name is replaced, except that a directory entry over a
 * directory merges (with `noOverwriteDirNonDir`, a directory and a non-directory never
 * replace each other); owners come from the tar unless `owner` is given (`copyUIDGID`).
 * Device nodes are refused (they would give the container access to host devices).
 * Extended attributes are not applied.
 */
import { settled } from "../../../shared/best-effort.ts";
import { execFile } from "node:child_process";
import { constants as fsc, type Stats } from "node:fs";
import { link, lchown, lstat, lutimes, mkdir, open, readdir, rmdir, symlink, unlink, type FileHandle } from "node:fs/promises";
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import * as tarStream from "tar-stream";
import { EngineError, invalidArgument, notFound } from "../errors.ts";
import { cleanEntryName } from "../layers/extract.ts";
import { cleanRelativePath } from "../fs-util.ts";
import { atFdForChild, DIR_FLAGS, isErrno } from "./tree-walk.ts";

export interface CopyExtractOptions {
  /** Docker's `noOverwriteDirNonDir`: a directory never replaces a non-directory, nor the reverse. */
  noOverwriteDirNonDir: boolean;
  /** Owner of everything unpacked (Docker's `copyUIDGID` with a container user); default the tar's. */
  owner?: { uid: number; gid: number };
  /** How names are shown in errors: the destination's path in the container. */
  destination: string;
}

/**
 * Unpacks `tar` (uncompressed) into the directory open as `root`. The stream is
 * consumed, or destroyed on error. Entries unpacked before an error stay.
 * @throws InvalidArgument for an entry that escapes the destination, goes through a
 *   symlink, or would replace what `noOverwriteDirNonDir` protects; a malformed tar.
 */
export async function extractCopy(tar: Readable, root: FileHandle, opts: CopyExtractOptions): Promise<void> {
  const ex = tarStream.extract();
  let feedError: unknown;
  const feeding = pipeline(tar, ex).catch((e: unknown) => {
    feedError = e;
  });
  const x = new CopyExtractor(root, opts);
  try {
    for await (const entry of ex) {
      const data = entry as unknown as AsyncIterable<Buffer>; // streamx's types omit its async iterator
      await x.entry(entry.header, data);
      for await (const _ of data) void _;
    }
    await feeding;
    if (feedError !== undefined) throw feedError;
    await x.finish();
  } catch (e) {
    ex.destroy();
    tar.destroy();
    await feeding;
    if (e instanceof EngineError) throw e;
    const cause = feedError ?? e;
    const msg = cause instanceof Error ? cause.message : String(cause);
    if (/Invalid tar header|Unexpected end of data|Header exceeds/.test(msg)) throw invalidArgument(`invalid tar archive: ${msg}`, cause);
    throw new EngineError("Internal", `extracting into ${opts.destination}: ${msg}`, { cause });
  } finally {
    await x.close();
  }
}

class CopyExtractor {
  /** Open directories by path relative to the destination ("" is the destination). */
  private readonly dirs = new Map<string, FileHandle>();
  private readonly dirTimes = new Map<string, Date>();

  constructor(
    root: FileHandle,
    private readonly opts: CopyExtractOptions,
  ) {
    this.dirs.set("", root);
  }

  private shown(rel: string): string {
    return posix.join(this.opts.destination, rel);
  }

  async entry(h: tarStream.Header, data: AsyncIterable<Buffer>): Promise<void> {
    const rel = cleanEntryName(h.name);
    if (rel === undefined) throw invalidArgument(`${JSON.stringify(h.name)} is outside of ${JSON.stringify(this.opts.destination)}`);
    if (rel === "") return; // the destination itself: Docker leaves it as it is
    const type = h.type;
    const parentRel = posix.dirname(rel) === "." ? "" : posix.dirname(rel);
    const base = posix.basename(rel);
    const parent = await this.dir(parentRel, true);
    const at = atFdForChild(parent.fd, base);
    const owner = this.opts.owner ?? { uid: h.uid ?? 0, gid: h.gid ?? 0 };
    const mode = (h.mode ?? 0o644) & 0o7777;
    const mtime = h.mtime instanceof Date && !Number.isNaN(h.mtime.getTime()) ? h.mtime : new Date();

    const existing = await lstatOr(at);
    if (existing) {
      const isDir = existing.isDirectory();
      if (this.opts.noOverwriteDirNonDir && isDir && type !== "directory") {
        throw invalidArgument(`cannot overwrite directory ${JSON.stringify(this.shown(rel))} with non-directory ${JSON.stringify(h.name)}`);
      }
      if (this.opts.noOverwriteDirNonDir && !isDir && type === "directory") {
        throw invalidArgument(`cannot overwrite non-directory ${JSON.stringify(this.shown(rel))} with directory ${JSON.stringify(h.name)}`);
      }
      if (!(isDir && type === "directory")) await this.remove(parent, base, rel, existing);
    }

    switch (type) {
      case "directory": {
        if (!existing?.isDirectory()) await mkdir(at, { mode: 0o700 });
        const fh = await this.dir(rel, false);
        await fh.chown(owner.uid, owner.gid);
        await fh.chmod(mode); // after chown, which clears setuid/setgid
        this.dirTimes.set(rel, mtime);
        return;
      }
      case "file":
      case "contiguous-file": {
        const fh = await open(at, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
        try {
          for await (const chunk of data) {
            let off = 0;
            while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
          }
          await fh.chown(owner.uid, owner.gid);
          await fh.chmod(mode);
          await fh.utimes(mtime, mtime);
        } finally {
          await fh.close();
        }
        return;
      }
      case "symlink": {
        const target = h.linkname ?? "";
        if (target === "") throw invalidArgument(`invalid symlink ${JSON.stringify(h.name)}: empty target`);
        // Docker's check: a relative target may not lead out of the destination.
        if (!target.startsWith("/") && cleanRelativePath(posix.join(parentRel, target)) === undefined) {
          throw invalidArgument(`invalid symlink ${JSON.stringify(this.shown(rel))} -> ${JSON.stringify(target)}`);
        }
        await symlink(target, at);
        await lchown(at, owner.uid, owner.gid);
        await lutimes(at, mtime, mtime);
        return;
      }
      case "link": {
        const targetRel = cleanEntryName(h.linkname ?? "");
        if (targetRel === undefined || targetRel === "")
          throw invalidArgument(`invalid hardlink ${JSON.stringify(h.name)} -> ${JSON.stringify(h.linkname)}: outside of the destination`);
        const tparent = await this.dir(posix.dirname(targetRel) === "." ? "" : posix.dirname(targetRel), false);
        await link(atFdForChild(tparent.fd, posix.basename(targetRel)), at); // link(2) does not follow a symlink target
        return;
      }
      case "fifo":
        await run("/usr/bin/mkfifo", ["-m", mode.toString(8), "--", at]);
        await lchown(at, owner.uid, owner.gid);
        await lutimes(at, mtime, mtime);
        return;
      case "character-device":
      case "block-device":
        throw invalidArgument(`${JSON.stringify(h.name)} is a device node: device nodes are not copied into containers`);
      default:
        throw invalidArgument(`${JSON.stringify(h.name)}: unhandled tar entry type ${type ?? "unknown"}`);
    }
  }

  /**
   * The directory `rel` below the destination, opened without following any symlink
   * (missing ones made, mode 0755, when `create`).
   */
  private async dir(rel: string, create: boolean): Promise<FileHandle> {
    const known = this.dirs.get(rel);
    if (known) return known;
    const parentRel = posix.dirname(rel) === "." ? "" : posix.dirname(rel);
    const parent = await this.dir(parentRel, create);
    const at = atFdForChild(parent.fd, posix.basename(rel));
    let fh: FileHandle;
    try {
      fh = await open(at, DIR_FLAGS);
    } catch (e) {
      if (isErrno(e, "ENOENT") && create) {
        await mkdir(at, { mode: 0o755 }).catch((err: unknown) => {
          if (!isErrno(err, "EEXIST")) throw err;
        });
        return this.dir(rel, false);
      }
      if (isErrno(e, "ENOENT")) throw notFound(`${this.shown(rel)}: no such directory`);
      if (isErrno(e, "ELOOP") || isErrno(e, "ENOTDIR")) {
        // O_DIRECTORY|O_NOFOLLOW on a symlink fails with either.
        const link = (await lstatOr(at))?.isSymbolicLink();
        throw invalidArgument(`cannot extract into ${this.shown(rel)}: ${link ? "it is a symbolic link, which is not followed" : "not a directory"}`);
      }
      throw e;
    }
    this.dirs.set(rel, fh);
    return fh;
  }

  /** Removes whatever is at `base` in `parent` (a whole tree for a directory), following no symlink. */
  private async remove(parent: FileHandle, base: string, rel: string, st: Stats): Promise<void> {
    if (!st.isDirectory()) {
      await unlink(atFdForChild(parent.fd, base));
      return;
    }
    for (const [k, fh] of this.dirs) {
      if (k === rel || k.startsWith(rel + "/")) {
        this.dirs.delete(k);
        this.dirTimes.delete(k);
        await fh.close();
      }
    }
    await removeTreeAt(parent, base);
  }

  /** Directory times last: writing into a directory changes its mtime. */
  async finish(): Promise<void> {
    for (const [rel, t] of [...this.dirTimes].sort((a, b) => b[0].length - a[0].length)) {
      const fh = this.dirs.get(rel);
      if (fh) await fh.utimes(t, t);
    }
  }

  async close(): Promise<void> {
    // Closing a directory descriptor changes nothing on disk; what failed before is already the caller's error.
    for (const [rel, fh] of this.dirs) if (rel !== "") await settled(fh.close());
    this.dirs.clear();
  }
}

/** rm -r of `name` inside the directory `parent`, through descriptors only. */
async function removeTreeAt(parent: FileHandle, name: string): Promise<void> {
  let dir: FileHandle;
  try {
    dir = await open(atFdForChild(parent.fd, name), DIR_FLAGS);
  } catch (e) {
    if (isErrno(e, "ENOTDIR") || isErrno(e, "ELOOP")) return unlink(atFdForChild(parent.fd, name));
    if (isErrno(e, "ENOENT")) return;
    throw e;
  }
  try {
    for (const child of await readdir(atFdForChild(dir.fd))) {
      const st = await lstatOr(atFdForChild(dir.fd, child));
      if (!st) continue;
      if (st.isDirectory()) await removeTreeAt(dir, child);
      else await unlink(atFdForChild(dir.fd, child));
    }
  } finally {
    await dir.close();
  }
  await rmdir(atFdForChild(parent.fd, name));
}

async function lstatOr(p: string): Promise<Stats | undefined> {
  try {
    return await lstat(p);
  } catch (e) {
    if (isErrno(e, "ENOENT")) return undefined;
    throw e;
  }
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { encoding: "utf8" }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      reject(new EngineError("Internal", `${cmd}: ${stderr.trim() || err.message}`, { cause: err }));
    });
  });
}
