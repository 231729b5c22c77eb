import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { lstat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { test } from "node:test";
import * as tarStream from "tar-stream";
import { upperToLayerTar } from "./layer-tar.ts";
import { describeTree, setUpScenario } from "./testing-overlay.ts";

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function entries(tar: Buffer): Promise<tarStream.Header[]> {
  const ex = tarStream.extract();
  const out: tarStream.Header[] = [];
  const done = (async () => {
    for await (const e of ex) {
      out.push(e.header);
      e.resume();
    }
  })();
  ex.end(tar);
  await done;
  return out;
}

test("upperToLayerTar: the layer, unpacked on the image, reproduces the merged view; deterministic", async (t) => {
  const s = await setUpScenario(t);
  const tar = await collect(upperToLayerTar(s.upper));
  const again = await collect(upperToLayerTar(s.upper));
  const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
  assert.equal(sha(again), sha(tar), "same upper dir, same bytes");

  const hs = await entries(tar);
  const byName = new Map(hs.map((h) => [h.name, h]));
  const names = hs.map((h) => h.name);
  // Walk order, as Docker writes layers: by name within a directory (a whiteout where its name
  // would be), a directory before its contents, its opaque marker first.
  const key = (n: string) =>
    n
      .replace(/\/$/, "")
      .split("/")
      .map((c) => (c === ".wh..wh..opq" ? "" : c.replace(/^\.wh\./, "")));
  const walkOrder = (a: string, b: string) => {
    const [ka, kb] = [key(a), key(b)];
    for (let i = 0; i < Math.min(ka.length, kb.length); i++) {
      const c = Buffer.compare(Buffer.from(ka[i]!), Buffer.from(kb[i]!));
      if (c !== 0) return c;
    }
    return ka.length - kb.length;
  };
  assert.deepEqual(names, [...names].sort(walkOrder), "sorted");
  assert.equal(byName.get("etc/.wh.hostname")?.type, "file", "whiteout as .wh. file");
  assert.equal(byName.get("etc/.wh.hostname")?.size, 0);
  assert.equal(names.indexOf("var/cache/.wh..wh..opq"), names.indexOf("var/cache/") + 1, "opaque marker right after its directory");
  assert.equal(byName.get("newlink")?.type, "link");
  assert.equal(byName.get("newlink")?.linkname, "new.txt");
  assert.equal(byName.get("bin/su2")!.mode! & 0o7777, 0o4755);
  assert.equal(byName.get("srv/dir/f")?.uid, 1234);
  assert.equal(byName.get("motd-link")?.linkname, "etc/motd");
  assert.equal(byName.get("fifo1")?.type, "fifo");
  for (const h of hs) {
    assert.equal(h.uname, "", `${h.name}: no user name`);
    assert.ok(!/overlay/.test(JSON.stringify(h.pax ?? {})), `${h.name}: no overlay xattrs`);
  }

  // Committed as a new top layer and mounted read-only: exactly the container's view.
  const layer = await s.store.unpack({ parent: s.top.chainId }, Readable.from([tar]));
  const ro = await s.mountReadOnly([layer.diffDir, ...s.lowers]);
  assert.deepEqual(await describeTree(ro), await describeTree(s.merged));
  const [a, b] = await Promise.all([lstat(join(ro, "new.txt")), lstat(join(ro, "newlink"))]);
  assert.equal(a.ino, b.ino, "hard link kept");

  // Excluded mount points leave no trace, not even their otherwise unchanged parents.
  const excluded = await entries(await collect(upperToLayerTar(s.upper, { exclude: ["/home/u/mnt"] })));
  assert.deepEqual(
    excluded.map((h) => h.name),
    names.filter((n) => !n.startsWith("home/")),
  );
});
