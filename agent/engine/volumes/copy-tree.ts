/**
 * Copies a directory tree into an existing directory, keeping what an image's
 * content needs: owners, modes (setuid included), times, portable extended
 * attributes (archive/xattrs.ts), symlinks as symlinks, hard links as hard
 * links, FIFOs. Sockets and device nodes are skipped (layers never hold devices).
 *
 * Neither side is ever followed through a symlink: the source is walked with
 * archive/tree-walk.ts, and every destination entry is created relative to its
 * parent's open descriptor, with O_EXCL|O_NOFOLLOW for files. So a tree that
 * changes meanwhile (another container writing into a shared volume) cannot
 * redirect a write to the host.
 *
 * External tools: mkfifo (coreutils), getfattr/setfattr (attr).
 */
import { constants as fsc, type BigIntStats } from "node:fs";
import { lchown, link, lutimes, mkdir, open, readlink, symlink, type FileHandle } from "node:fs/promises";
import { bestEffort, type DebugLog } from "../../../shared/best-effort.ts";
import { runTool, toolDetail } from "../child-process.ts";
import { EngineError, unavailable } from "../errors.ts";
import { atFd, atFdForChild, DIR_FLAGS, isErrno, walkTree } from "../archive/tree-walk.ts";
import { portableList, readTreeXattrs, writeXattrs, type Xattrs } from "../archive/xattrs.ts";

const CHUNK = 256 * 1024;

/**
 * Copies the contents of `src` into `dest` (which must exist), then gives
 * `dest` the owner and mode of `src`. Existing names in `dest` are an error (EEXIST).
 * @returns bytes of regular files copied.
 */
export async function copyTree(src: string, dest: string, log: DebugLog): Promise<number> {
  const xattrs = await readTreeXattrs(src);
  const destRoot = await open(dest, DIR_FLAGS);
  const dirs = new Map<string, FileHandle>([["", destRoot]]);
  const keptOpen = new Set<FileHandle>([destRoot]); // parents of hard link targets stay open until the end
  const linkTargets = new Map<string, { dir: FileHandle; name: string; sig: string }>();
  const pendingXattrs = new Map<string, Array<[string, Xattrs]>>(); // parent rel → (child path, attrs)
  let bytes = 0;

  const queueXattrs = (parentRel: string, parent: FileHandle, name: string, rel: string) => {
    const list = portableList(xattrs.get(rel));
    if (list.length === 0) return;
    let q = pendingXattrs.get(parentRel);
    if (!q) pendingXattrs.set(parentRel, (q = []));
    q.push([atFdForChild(parent.fd, name), new Map(list)]);
  };
  const flushXattrs = async (dirRel: string) => {
    const q = pendingXattrs.get(dirRel);
    if (!q) return;
    pendingXattrs.delete(dirRel);
    await writeXattrs(q);
  };

  try {
    for await (const e of walkTree(src, { leave: true })) {
      const st = e.st;
      if (e.rel === "") {
        if (e.leave) {
          await flushXattrs("");
          await destRoot.chown(Number(st.uid), Number(st.gid));
          await destRoot.chmod(Number(st.mode & 0o7777n));
        }
        continue;
      }
      const parentRel = parentOf(e.rel);
      const parent = dirs.get(parentRel);
      if (!parent) throw new EngineError("Internal", `copying ${e.rel}: its directory is not open`);
      const to = atFd(parent.fd, e.name);

      if (st.isDirectory()) {
        if (!e.leave) {
          await mkdir(to, { mode: 0o700 });
          dirs.set(e.rel, await open(to, DIR_FLAGS));
          continue;
        }
        const fh = dirs.get(e.rel)!;
        await flushXattrs(e.rel);
        await fh.chown(Number(st.uid), Number(st.gid));
        await fh.chmod(Number(st.mode & 0o7777n));
        await fh.utimes(seconds(st.atimeNs), seconds(st.mtimeNs));
        dirs.delete(e.rel);
        if (!keptOpen.has(fh)) await fh.close();
        queueXattrs(parentRel, parent, e.name, e.rel); // after the chown, which would clear a capability
        continue;
      }

      if (st.isFile()) {
        const key = st.nlink > 1n ? `${st.dev}:${st.ino}` : undefined;
        const sig = `${st.mode}:${st.uid}:${st.gid}:${st.size}:${st.mtimeNs}`;
        const first = key === undefined ? undefined : linkTargets.get(key);
        if (first && first.sig === sig) {
          await link(atFd(first.dir.fd, first.name), to);
          continue;
        }
        const copied = await copyFile(e.at, to);
        if (copied === undefined) continue; // vanished meanwhile
        bytes += copied;
        if (key !== undefined && !first) {
          linkTargets.set(key, { dir: parent, name: e.name, sig });
          keptOpen.add(parent);
        }
      } else if (st.isSymbolicLink()) {
        let target: string;
        try {
          target = await readlink(e.at);
        } catch (err) {
          if (isErrno(err, "ENOENT") || isErrno(err, "EINVAL")) continue;
          throw err;
        }
        await symlink(target, to);
        await lchown(to, Number(st.uid), Number(st.gid));
        await lutimes(to, seconds(st.atimeNs), seconds(st.mtimeNs));
      } else if (st.isFIFO()) {
        await mkfifo(atFdForChild(parent.fd, e.name), st);
        await lchown(to, Number(st.uid), Number(st.gid));
        await lutimes(to, seconds(st.atimeNs), seconds(st.mtimeNs));
      } else {
        continue; // sockets, devices
      }
      queueXattrs(parentRel, parent, e.name, e.rel);
    }
  } finally {
    for (const fh of new Set([...dirs.values(), ...keptOpen])) await fh.close().catch(bestEffort(log, "close a directory of the copy"));
  }
  return bytes;
}

/** Copies one regular file with its owner, mode and times; undefined if the source vanished. */
async function copyFile(from: string, to: string): Promise<number | undefined> {
  let src: FileHandle;
  try {
    src = await open(from, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    if (isErrno(e, "ENOENT") || isErrno(e, "ELOOP")) return undefined;
    throw e;
  }
  try {
    const st = await src.stat({ bigint: true });
    if (!st.isFile()) return undefined;
    const dst = await open(to, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    let total = 0;
    try {
      const buf = Buffer.allocUnsafe(CHUNK);
      for (;;) {
        const { bytesRead } = await src.read(buf, 0, CHUNK, total);
        if (bytesRead === 0) break;
        let off = 0;
        while (off < bytesRead) off += (await dst.write(buf, off, bytesRead - off)).bytesWritten;
        total += bytesRead;
      }
      await dst.chown(Number(st.uid), Number(st.gid));
      await dst.chmod(Number(st.mode & 0o7777n)); // after chown, which clears setuid/setgid
      await dst.utimes(seconds(st.atimeNs), seconds(st.mtimeNs));
    } finally {
      await dst.close();
    }
    return total;
  } finally {
    await src.close();
  }
}

async function mkfifo(path: string, st: BigIntStats): Promise<void> {
  let r;
  try {
    r = await runTool("/usr/bin/mkfifo", ["-m", (st.mode & 0o7777n).toString(8), "--", path]);
  } catch (e) {
    if (isErrno(e, "ENOENT")) throw unavailable("mkfifo is not installed (Debian package coreutils)", e);
    throw new EngineError("Internal", `mkfifo ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (r.exitCode !== 0) throw new EngineError("Internal", `mkfifo ${path}: ${toolDetail(r) || `exit code ${r.exitCode}`}`);
}

function seconds(ns: bigint): number {
  return Number(ns) / 1e9;
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf("/");
  return i < 0 ? "" : rel.slice(0, i);
}
