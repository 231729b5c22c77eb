import { randomBytes } from "node:crypto";
import { mkdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { bestEffort, type DebugLog } from "../../shared/best-effort.ts";
import { fsyncDir, isErrno, readdirOrEmpty } from "./fs-util.ts";

/**
 * A store's private temporary folder: work in progress is built here and renamed
 * into place, and removals are renamed here first so an entry vanishes atomically.
 * Names in use by this process are held, so the start-up sweep never deletes them.
 */
export class ScratchDir {
  private readonly busy = new Set<string>();

  constructor(
    readonly path: string,
    private readonly log: DebugLog,
  ) {}

  hold(name: string): string {
    this.busy.add(name);
    return join(this.path, name);
  }

  release(name: string): void {
    this.busy.delete(name);
  }

  /**
   * Renames `dir` in here, then deletes it. With `syncParent`, the rename is made
   * durable first. @returns false when `dir` did not exist.
   */
  async trash(dir: string, prefix: string, opts: { syncParent?: string } = {}): Promise<boolean> {
    await mkdir(this.path, { recursive: true });
    const name = `${prefix}-${randomBytes(6).toString("hex")}`;
    const dest = this.hold(name);
    try {
      try {
        await rename(dir, dest);
      } catch (e) {
        if (isErrno(e, "ENOENT")) return false;
        throw e;
      }
      // Not durable only means a crash may bring the entry back, to be removed again.
      if (opts.syncParent) await fsyncDir(opts.syncParent).catch(bestEffort(this.log, `flush ${opts.syncParent} after moving ${dir} away`));
      await rm(dest, { recursive: true, force: true });
      return true;
    } finally {
      this.release(name);
    }
  }

  /** Deletes what crashed work left behind (entries not held). @returns how many. */
  async sweep(): Promise<number> {
    let n = 0;
    for (const name of await readdirOrEmpty(this.path)) {
      if (this.busy.has(name)) continue;
      await rm(join(this.path, name), { recursive: true, force: true });
      n++;
    }
    return n;
  }
}
