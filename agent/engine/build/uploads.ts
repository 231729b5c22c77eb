/**
 * Build contexts that arrive in pieces (the console's link sends an uploaded archive as
 * chunks, each a request of its own, so no message of the link grows past its limit and a
 * chunk sent again after a reconnect lands on the same bytes). Each upload is one file,
 * written at the offset each chunk names; the build that consumes it removes it.
 *
 * Ownership: this store owns its directory. An upload no build consumed (the console went
 * away mid-upload) is removed after `maxAgeMs`, and the directory is emptied at start-up.
 */
import { ifMissing, readdirOrEmpty } from "../fs-util.ts";
import { constants as fsc, createReadStream } from "node:fs";
import { mkdir, open, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { invalidArgument, notFound } from "../errors.ts";

const ID = /^[0-9a-f-]{36}$/i;

export class BuildUploads {
  constructor(
    private readonly root: string,
    private readonly maxBytes: number,
    private readonly maxAgeMs = 60 * 60_000,
  ) {}

  async reset(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
    await mkdir(this.root, { recursive: true, mode: 0o700 });
  }

  /** Writes `data` at `offset` of upload `id` (writing the same chunk twice changes nothing). @returns the file's size after it. */
  async write(id: string, offset: number, data: Buffer): Promise<number> {
    const file = this.file(id);
    if (offset + data.length > this.maxBytes) throw invalidArgument(`build context upload ${id} is larger than the node accepts (${this.maxBytes} bytes)`);
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await this.sweep();
    // Not O_APPEND: a chunk sent again lands at its own offset.
    const fh = await open(file, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
    try {
      let done = 0;
      while (done < data.length) done += (await fh.write(data, done, data.length - done, offset + done)).bytesWritten;
      return (await fh.stat()).size;
    } finally {
      await fh.close();
    }
  }

  /** The upload's bytes, checked to be complete: `size` as the sender counted them. */
  async open(id: string, size: number): Promise<Readable> {
    const file = this.file(id);
    const st = await stat(file).catch(ifMissing);
    if (!st) throw notFound(`build context upload ${id} is not on this node (the agent may have restarted since it was sent): start the build again`);
    if (st.size !== size) throw invalidArgument(`build context upload ${id} is incomplete: ${st.size} of ${size} bytes arrived`);
    return createReadStream(file);
  }

  async remove(id: string): Promise<void> {
    await rm(this.file(id), { force: true });
  }

  private file(id: string): string {
    if (!ID.test(id)) throw invalidArgument(`invalid build context upload id: ${id}`);
    return join(this.root, id.toLowerCase());
  }

  private async sweep(): Promise<void> {
    const horizon = Date.now() - this.maxAgeMs;
    for (const name of await readdirOrEmpty(this.root)) {
      const p = join(this.root, name);
      const st = await stat(p).catch(ifMissing);
      if (st && st.mtimeMs < horizon) await rm(p, { force: true });
    }
  }
}
