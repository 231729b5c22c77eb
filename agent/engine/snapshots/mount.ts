/**
 * Mounting `Mount[]` (snapshotter.ts) on the host. Node has no mount(2), so
 * this runs util-linux `mount`/`umount`, each from the mount's `cwd` so that
 * overlay's relative lower dirs resolve (the kernel resolves them against the
 * mounting process's working directory, as Docker's overlay2 does by chdir).
 *
 * `mount` is given the options as one `-o` string, which util-linux 2.38 passes
 * to mount(2) unchanged: the kernel reads at most one page (4096 bytes) of it,
 * which is why the snapshotter keeps overlay's options short.
 *
 * Targets are not resolved securely: mount only targets the caller controls
 * (a container's rootfs directory), never a path inside a container's
 * filesystem (the runtime does those, inside the container's mount namespace).
 */
import { readFile, realpath } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import { runTool, toolDetail } from "../child-process.ts";
import { EngineError, invalidArgument, unavailable } from "../errors.ts";
import type { Mount } from "./snapshotter.ts";

const MOUNT = "/bin/mount";
const UMOUNT = "/bin/umount";
/** Mounts stacked on one target that unmountAll will take off before it gives up. */
const MAX_STACK = 64;

/**
 * Mounts each mount in order on `target` (or `target/<mount.target>`).
 * All or nothing: if one fails, those already made are unmounted again.
 * @throws InvalidArgument for a mount target that leaves `target`;
 *   Unavailable if mount(8) fails (its message included).
 */
export async function mountAll(mounts: Mount[], target: string): Promise<void> {
  const root = resolve(target);
  const done: string[] = [];
  try {
    for (const m of mounts) {
      if (m.target !== undefined && (isAbsolute(m.target) || m.target.split("/").includes(".."))) {
        throw invalidArgument(`mount target ${JSON.stringify(m.target)} must be a relative path inside ${root}`);
      }
      const where = m.target ? join(root, m.target) : root;
      await mountOne(m, where);
      done.push(where);
    }
  } catch (e) {
    // A mount the rollback cannot take off is detached (released once no longer busy); one
    // that even survives that is named in the error, as a leak the caller must hear of.
    const left: string[] = [];
    for (const where of done.reverse()) {
      try {
        await run(UMOUNT, [where], `unmount ${where}`);
      } catch {
        try {
          await run(UMOUNT, ["-l", where], `unmount ${where}`);
        } catch (u) {
          left.push((u as Error).message);
        }
      }
    }
    if (left.length === 0) throw e;
    const kind = e instanceof EngineError ? e.kind : "Unavailable";
    throw new EngineError(kind, `${(e as Error).message}; and the mounts made before it stay: ${left.join("; ")}`, { cause: e });
  }
}

/**
 * Unmounts everything mounted on `target` (several mounts may be stacked there),
 * until it is no longer a mount point. No error if nothing is mounted or the
 * target does not exist. Mounts below `target` (e.g. `target/proc`) are not
 * touched: with a busy submount the unmount fails.
 * @param opts.detach lazy unmount (MNT_DETACH): the mount disappears from the
 *   tree now and is released when it is no longer busy.
 * @throws Unavailable if umount(8) fails (e.g. busy), with its message.
 */
export async function unmountAll(target: string, opts?: { detach?: boolean }): Promise<void> {
  for (let i = 0; i < MAX_STACK; i++) {
    if (!(await isMounted(target))) return;
    const where = await realpath(resolve(target));
    await run(UMOUNT, opts?.detach ? ["-l", where] : [where], `unmount ${where}`);
  }
  if (await isMounted(target)) throw unavailable(`${target}: still mounted after ${MAX_STACK} unmounts`);
}

/** Whether `target` (symlinks resolved) is a mount point in this process's mount namespace. */
export async function isMounted(target: string): Promise<boolean> {
  let real: string;
  try {
    real = await realpath(resolve(target));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT" || (e as NodeJS.ErrnoException).code === "ENOTDIR") return false;
    throw e;
  }
  return (await mountInfo()).some((m) => m.mountPoint === real);
}

/** One line of /proc/self/mountinfo (proc(5)). */
export interface MountInfoEntry {
  id: number;
  parentId: number;
  /** Path inside the mounted filesystem that is the root of this mount. */
  root: string;
  mountPoint: string;
  mountOptions: string[];
  fsType: string;
  source: string;
  /** Per-superblock options, e.g. overlay's `lowerdir=…` as given to mount. */
  superOptions: string[];
}

/** The mount table of this process's mount namespace, octal escapes decoded. */
export async function mountInfo(): Promise<MountInfoEntry[]> {
  const text = await readFile("/proc/self/mountinfo", "utf8");
  const out: MountInfoEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const pre = line.slice(0, sep).split(" ");
    const post = line.slice(sep + 3).split(" ");
    out.push({
      id: Number(pre[0]),
      parentId: Number(pre[1]),
      root: unescape(pre[3] ?? ""),
      mountPoint: unescape(pre[4] ?? ""),
      mountOptions: (pre[5] ?? "").split(","),
      fsType: post[0] ?? "",
      source: unescape(post[1] ?? ""),
      superOptions: (post[2] ?? "").split(",").map(unescape),
    });
  }
  return out;
}

function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

async function mountOne(m: Mount, where: string): Promise<void> {
  for (const o of m.options) {
    if (o.includes(",")) throw invalidArgument(`mount option ${JSON.stringify(o)} contains a comma`);
  }
  const bind = m.type === "bind" || m.options.includes("bind") || m.options.includes("rbind");
  const options = m.type === "bind" && !m.options.includes("bind") && !m.options.includes("rbind") ? ["bind", ...m.options] : m.options;
  const args = [...(bind ? [] : ["-t", m.type]), ...(options.length ? ["-o", options.join(",")] : []), "--", m.source, where];
  await run(MOUNT, args, `mount ${m.type} ${m.source} on ${where}`, m.cwd);
}

async function run(cmd: string, args: string[], what: string, cwd?: string): Promise<void> {
  let r;
  try {
    r = await runTool(cmd, args, { cwd });
  } catch (e) {
    throw unavailable(`${what}: ${(e as Error).message}`, e);
  }
  if (r.exitCode !== 0) throw unavailable(`${what}: ${toolDetail(r) || `exit code ${r.exitCode}`}`);
}
