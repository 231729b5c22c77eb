/**
 * Host device nodes for the runtime spec's `linux.devices` (runc makes them in the
 * container's /dev): `--device` (moby `oci/devices_linux.go` devicesFromPath: a
 * node, or every node under a directory) and, for `--privileged`, all of the
 * host's (runc's `devices.HostDevices`).
 */
import { lstat, readdir, realpath, stat } from "node:fs/promises";
import { posix } from "node:path";
import { invalidArgument } from "../errors.ts";
import type { DeviceNode } from "./spec.ts";
import { ifMissing } from "../fs-util.ts";

/** `--device` as the Docker API sends it (HostConfig.Devices). */
export interface DeviceMapping {
  pathOnHost: string;
  /** Default: `pathOnHost`. */
  pathInContainer: string;
  /** Default "rwm". */
  cgroupPermissions: string;
}

/** Directories of /dev that hold no device a container should get (runc's list). */
const SKIP_DIRS = new Set(["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"]);

/** Checks a mapping's paths and mode (create time; the nodes are read at start). */
export function checkDeviceMapping(d: DeviceMapping): void {
  if (!posix.isAbsolute(d.pathOnHost) || d.pathOnHost.includes("\0"))
    throw invalidArgument(`invalid device path on host ${JSON.stringify(d.pathOnHost)}: it must be absolute`);
  if (!posix.isAbsolute(d.pathInContainer) || d.pathInContainer.includes("\0"))
    throw invalidArgument(`invalid device path in container ${JSON.stringify(d.pathInContainer)}: it must be absolute`);
  if (!/^(?!.*(.).*\1)[rwm]{1,3}$/.test(d.cgroupPermissions)) throw invalidArgument(`invalid device mode: ${d.cgroupPermissions}`);
}

/**
 * The device nodes of one `--device`: the node itself (a symlink is followed), or
 * every node below a directory, placed at the same relative path under `pathInContainer`.
 * @throws InvalidArgument with Docker's "error gathering device information while adding custom device" message
 */
export async function deviceNodes(d: DeviceMapping): Promise<DeviceNode[]> {
  checkDeviceMapping(d);
  const fail = (why: string) => invalidArgument(`error gathering device information while adding custom device ${JSON.stringify(d.pathOnHost)}: ${why}`);
  let resolved: string;
  try {
    resolved = await realpath(d.pathOnHost);
  } catch (e) {
    throw fail((e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file or directory" : (e as Error).message);
  }
  const node = await nodeAt(resolved, d.pathInContainer, d.cgroupPermissions);
  if (node) return [node];
  if (!(await stat(resolved)).isDirectory()) throw fail("not a device node");
  const out: DeviceNode[] = [];
  await walk(resolved, async (hostPath) => {
    const n = await nodeAt(hostPath, posix.join(d.pathInContainer, posix.relative(resolved, hostPath)), d.cgroupPermissions);
    if (n) out.push(n);
  });
  if (!out.length) throw fail("not a device node");
  return out;
}

/** Every device node of the host's /dev, at the same path, for a privileged container. */
export async function hostDevices(dev = "/dev"): Promise<DeviceNode[]> {
  const out: DeviceNode[] = [];
  await walk(dev, async (hostPath) => {
    if (hostPath === posix.join(dev, "console")) return;
    const n = await nodeAt(hostPath, hostPath, "rwm");
    if (n) out.push(n);
  });
  return out;
}

async function walk(dir: string, visit: (path: string) => Promise<void>): Promise<void> {
  const entries = (await readdir(dir, { withFileTypes: true }).catch(ifMissing)) ?? [];
  for (const e of entries) {
    const p = posix.join(dir, e.name);
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) await walk(p, visit);
    } else if (e.isCharacterDevice() || e.isBlockDevice()) {
      await visit(p);
    }
  }
}

/** The node at `hostPath` (not following a symlink), or undefined if it is no device. */
async function nodeAt(hostPath: string, path: string, access: string): Promise<DeviceNode | undefined> {
  const st = await lstat(hostPath, { bigint: true }).catch(ifMissing);
  if (!st || !(st.isCharacterDevice() || st.isBlockDevice())) return undefined;
  const rdev = st.rdev;
  // Linux's dev_t encoding (glibc gnu_dev_major/minor).
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  if (major === 0 && minor === 0) return undefined;
  return { path, type: st.isCharacterDevice() ? "c" : "b", major, minor, fileMode: Number(st.mode & 0o777n), uid: Number(st.uid), gid: Number(st.gid), access };
}
