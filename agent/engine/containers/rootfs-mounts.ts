/**
 * The one owner of each container's root filesystem mount on the host
 * (`<container dir>/rootfs`). Several users may need it at once: the running
 * container itself, and operations on a stopped one (`docker cp`, `export`)
 * that may overlap each other or a start. Each user holds it under a name; the
 * first holder mounts it, the last release unmounts it, so an operation never
 * loses the mount under another (a `docker cp` ending while the container
 * starts, or two copies from a stopped container).
 */
import { KeyedQueue } from "../keyed-queue.ts";
import { mkdir } from "node:fs/promises";
import { isMounted, mountAll, unmountAll } from "../snapshots/mount.ts";
import type { Mount } from "../snapshots/snapshotter.ts";

/** The holder name of a running container (taken at start, released at its exit). */
export const RUNNING = "running";

export class RootfsMounts {
  private readonly holders = new Map<string, Set<string>>();
  /** Per container: mount and unmount decisions in order. */
  private readonly queue = new KeyedQueue();

  /**
   * @param mounts the snapshot's mounts of a container (snapshotter.mounts).
   */
  constructor(private readonly mounts: (id: string) => Promise<Mount[]>) {}

  /** Takes the mount of `id` at `rootfs` for `holder`, mounting it if no one holds it. */
  acquire(id: string, rootfs: string, holder: string): Promise<void> {
    return this.serial(id, async () => {
      const set = this.holders.get(id) ?? new Set();
      if (!(await isMounted(rootfs))) {
        await mkdir(rootfs, { recursive: true });
        await mountAll(await this.mounts(id), rootfs);
      }
      set.add(holder);
      this.holders.set(id, set);
    });
  }

  /** Records that `holder` has the mount already (a running container adopted after an agent restart). */
  adopt(id: string, holder: string): void {
    const set = this.holders.get(id) ?? new Set();
    set.add(holder);
    this.holders.set(id, set);
  }

  /** Drops `holder`; the last one out unmounts. Unknown holders are ignored (releasing twice is harmless). */
  release(id: string, rootfs: string, holder: string): Promise<void> {
    return this.serial(id, async () => {
      const set = this.holders.get(id);
      set?.delete(holder);
      if (set && set.size > 0) return;
      this.holders.delete(id);
      await unmountAll(rootfs, { detach: true });
    });
  }

  /** Unmounts whatever holders remain (the container is being removed). */
  releaseAll(id: string, rootfs: string): Promise<void> {
    return this.serial(id, async () => {
      this.holders.delete(id);
      await unmountAll(rootfs, { detach: true });
    });
  }

  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.queue.run(id, fn);
  }
}
