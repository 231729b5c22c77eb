import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import pino from "pino";
import { type ContainerRecord, StateStore } from "./state.ts";

test("records round-trip; temporary files of a crash are deleted, unreadable records set aside", async (t) => {
  let dir = "";
  t.after(() => (dir ? rm(dir, { recursive: true, force: true }) : undefined));
  dir = await mkdtemp(join(tmpdir(), "berth-netstate-"));
  const store = new StateStore(dir, pino({ enabled: false }));
  await store.open();
  const c: ContainerRecord = {
    containerId: "a".repeat(64),
    name: "x",
    hostname: "x",
    mode: "bridge",
    netnsPath: "/run/x",
    hostsPath: "/h",
    resolvConfPath: "/r",
    ports: [],
    endpoints: [],
  };
  await store.saveContainer(c);
  await store.saveContainer({ ...c, name: "y" });
  await writeFile(join(dir, "containers", `.${"b".repeat(64)}.0000.tmp`), "{half");
  // writeFileAtomic's temporary name (fs-util.ts tempPrefixOf), left by a crash before its rename.
  await writeFile(join(dir, "containers", `.${"d".repeat(64)}.json.tmp-4242-0badf00d`), "{half");
  await writeFile(join(dir, "containers", `${"c".repeat(64)}.json`), "{half");
  const loaded = await store.loadContainers();
  assert.deepEqual(loaded, [{ ...c, name: "y" }]);
  assert.deepEqual((await readdir(join(dir, "containers"))).sort(), [`${"a".repeat(64)}.json`, `${"c".repeat(64)}.json.corrupt`]);
  await store.deleteContainer(c.containerId);
  await store.deleteContainer(c.containerId);
  assert.deepEqual(await store.loadContainers(), []);
});
