import assert from "node:assert/strict";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import * as tarStream from "tar-stream";
import { rootfsTar } from "./rootfs-tar.ts";
import { setUpScenario } from "./testing-overlay.ts";

test("rootfsTar: every file of the merged view, no whiteouts; exclude", async (t) => {
  const s = await setUpScenario(t);
  const expected: string[] = [];
  const visit = async (rel: string) => {
    for (const name of await readdir(rel ? join(s.merged, rel) : s.merged)) {
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(join(s.merged, r));
      expected.push(st.isDirectory() ? `${r}/` : r);
      if (st.isDirectory()) await visit(r);
    }
  };
  await visit("");

  const list = async (exclude?: string[]) => {
    const ex = tarStream.extract();
    const headers: tarStream.Header[] = [];
    rootfsTar(s.merged, exclude ? { exclude } : undefined).pipe(ex);
    for await (const e of ex) {
      headers.push(e.header);
      e.resume();
    }
    return headers;
  };
  const hs = await list();
  assert.deepEqual(hs.map((h) => h.name).sort(), expected.sort());
  assert.ok(!hs.some((h) => h.name.includes(".wh.")));
  assert.equal(hs.find((h) => h.name === "newlink")?.type, "link");
  assert.equal(hs.find((h) => h.name === "keep/y2")?.type, "file", "a hard link whose partner was deleted is a file");
  const excluded = await list(["/etc/motd", "/var"]);
  assert.deepEqual(excluded.map((h) => h.name).sort(), expected.filter((n) => n !== "etc/motd" && !n.startsWith("var/")).sort());
});
