import { settled } from "../../shared/best-effort.ts";

/**
 * Work serialised per key (a container's ID): each task starts once every earlier task of
 * its key has settled, whatever their outcome; tasks of different keys run side by side.
 * A task's failure reaches only its own caller. Keys with nothing queued hold no memory.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const next = (this.tails.get(key) ?? Promise.resolve()).then(task);
    const tail = settled(next);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}
