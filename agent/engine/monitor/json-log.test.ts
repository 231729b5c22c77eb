import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm, writeFile, appendFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { JsonLogMirror, jsonLogLimits } from "./json-log.ts";

test("log options: Docker's sizes, max-file needs max-size, local's defaults", () => {
  assert.deepEqual(jsonLogLimits("json-file", {}), { maxSize: 0, maxFile: 1 });
  assert.deepEqual(jsonLogLimits("json-file", { "max-size": "10k", "max-file": "3" }), { maxSize: 10240, maxFile: 3 });
  assert.deepEqual(jsonLogLimits("json-file", { "max-size": "1.5m" }), { maxSize: 1572864, maxFile: 1 });
  assert.deepEqual(jsonLogLimits("local", {}), { maxSize: 20 * 1024 * 1024, maxFile: 5 });
  assert.throws(() => jsonLogLimits("json-file", { "max-file": "3" }), /max-file can only be used with max-size/);
  assert.throws(() => jsonLogLimits("json-file", { "max-size": "1k", "max-file": "0" }), /max-file cannot be less than 1/);
  assert.throws(() => jsonLogLimits("json-file", { "max-size": "big" }), /invalid size: 'big'/);
});

test("the mirror: partial records joined, rotation, a restart continues where the last one stopped", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "json-log-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const src = join(dir, "container.log");
  const dst = join(dir, "c-json.log");
  await writeFile(src, "2024-05-01T10:00:00.000000001Z stdout P hel\n2024-05-01T10:00:00.5Z stderr F err\n");
  const m = new JsonLogMirror(src, dst, { maxSize: 100, maxFile: 2 });
  await m.sync();
  assert.equal(await readFile(dst, "utf8"), '{"log":"err\\n","stream":"stderr","time":"2024-05-01T10:00:00.500000000Z"}\n');
  await appendFile(src, "2024-05-01T10:00:01Z stdout F lo\n");
  await m.sync();
  const lines = (await readFile(dst, "utf8"))
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { log: string; time: string });
  assert.deepEqual(lines[1], { log: "hello\n", stream: "stdout", time: "2024-05-01T10:00:00.000000001Z" });
  await m.close();
  // Another mirror (an agent restart) goes on from the saved place, and rotates past 100 bytes.
  await appendFile(src, "2024-05-01T10:00:02Z stdout F again\n");
  const again = new JsonLogMirror(src, dst, { maxSize: 100, maxFile: 2 });
  await again.sync(true);
  assert.deepEqual((await readdir(dir)).sort(), ["c-json.log", "c-json.log.1", "c-json.log.pos", "container.log"]);
  const all: string[] = [];
  for await (const e of again.read()) all.push(e.data.toString());
  assert.deepEqual(all, ["err\n", "hello\n", "again\n"]);
  const tail: string[] = [];
  for await (const e of again.read({ tail: 1 })) tail.push(e.data.toString());
  assert.deepEqual(tail, ["again\n"]);
  await again.close();
});
