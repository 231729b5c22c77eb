import { KeyedQueue } from "../keyed-queue.ts";
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { alreadyExists, conflict, invalidArgument, notFound } from "../errors.ts";
import { ContainerRecordSchema, type ContainerRecord } from "./container-record.ts";
import { writeFileAtomic } from "../fs-util.ts";

/**
 * Container records on disk: ROOT/<id>/container.json (replaced atomically), with the
 * container's working files (bundle, rootfs mount point, hosts, logs, monitor state)
 * beside it in the same directory. Names are unique; lookups take a full ID, a
 * unique ID prefix or a name (with or without the leading "/"), as Docker does.
 */
export class ContainerStore {
  private readonly records = new Map<string, ContainerRecord>();
  /** Per record: the save under way, which the next one waits for. */
  private readonly saving = new KeyedQueue();

  constructor(
    readonly root: string,
    private readonly logger?: Logger,
  ) {}

  dir(id: string): string {
    return join(this.root, id);
  }

  async load(): Promise<ContainerRecord[]> {
    await mkdir(this.root, { recursive: true });
    for (const id of await readdir(this.root)) {
      if (!/^[a-f0-9]{64}$/.test(id)) continue;
      try {
        const text = await readFile(join(this.root, id, "container.json"), "utf8");
        this.records.set(id, ContainerRecordSchema.parse(JSON.parse(text)));
      } catch (e) {
        // A directory without a complete record is a create that crashed before it finished.
        this.logger?.warn({ id, err: e }, "removing the leftovers of an unfinished container");
        await rm(join(this.root, id), { recursive: true, force: true });
      }
    }
    return [...this.records.values()];
  }

  list(): ContainerRecord[] {
    return [...this.records.values()];
  }

  get(id: string): ContainerRecord | undefined {
    return this.records.get(id);
  }

  /** @throws NotFound "No such container: X"; Conflict when an ID prefix is ambiguous */
  resolve(idOrName: string): ContainerRecord {
    if (!idOrName) throw invalidArgument("container name or ID must not be empty");
    const exact = this.records.get(idOrName);
    if (exact) return exact;
    const name = idOrName.replace(/^\//, "");
    for (const r of this.records.values()) if (r.name === name) return r;
    if (/^[a-f0-9]+$/.test(idOrName)) {
      const matches = [...this.records.values()].filter((r) => r.id.startsWith(idOrName));
      if (matches.length > 1) throw conflict(`multiple IDs found with provided prefix: ${idOrName}`);
      if (matches[0]) return matches[0];
    }
    throw notFound(`No such container: ${idOrName}`);
  }

  nameTaken(name: string, exceptId?: string): ContainerRecord | undefined {
    for (const r of this.records.values()) if (r.name === name && r.id !== exceptId) return r;
    return undefined;
  }

  /** Reserves a new record (its directory is created here). @throws AlreadyExists for a taken name */
  async add(record: ContainerRecord): Promise<void> {
    const other = this.nameTaken(record.name);
    if (other)
      throw alreadyExists(
        `Conflict. The container name "/${record.name}" is already in use by container "${other.id}". You have to remove (or rename) that container to be able to reuse that name.`,
      );
    this.records.set(record.id, record);
    await mkdir(this.dir(record.id), { recursive: true, mode: 0o700 });
    await this.save(record);
  }

  /**
   * Persists the record as it is now, atomically. Saves of one record run one after another:
   * two at once (a stop saving while a policy restart saves) could finish out of order.
   */
  save(record: ContainerRecord): Promise<void> {
    return this.saving.run(record.id, () => this.write(record));
  }

  private async write(record: ContainerRecord): Promise<void> {
    if (!this.records.has(record.id)) return; // removed meanwhile
    await writeFileAtomic(join(this.dir(record.id), "container.json"), JSON.stringify(record));
  }

  async delete(id: string): Promise<void> {
    this.records.delete(id);
    await rm(this.dir(id), { recursive: true, force: true });
  }
}
