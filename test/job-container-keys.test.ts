// Which container a job step acts on, as the keys the console orders steps by: a step on
// a container by ID, by name or by ID prefix shares a key with every other step on it, and
// a Run under a name waits for a step on the container that holds the name.
import { test } from "node:test";
import assert from "node:assert/strict";
import { containerKeys } from "../server/jobs/job-service.ts";

const known = [
  { id: "aaaa1111bbbb2222", name: "web" },
  { id: "cccc3333dddd4444", name: "db" },
];
const shares = (a: string[], b: string[]) => a.some((k) => b.includes(k));

test("steps on one container share a key whichever way they name it", () => {
  const byId = containerKeys("n1", "container.restart", { id: "aaaa1111bbbb2222" }, known);
  const byName = containerKeys("n1", "container.pause", { id: "web" }, known);
  const byPrefix = containerKeys("n1", "container.stop", { id: "aaaa11" }, known);
  assert.ok(shares(byId, byName) && shares(byId, byPrefix));
  assert.ok(!shares(byId, containerKeys("n1", "container.pause", { id: "db" }, known)), "another container is not held up");
  assert.ok(!shares(byId, containerKeys("n2", "container.pause", { id: "web" }, known)), "the same name on another node is another container");
});

test("a Run under a name waits for steps on the container holding that name; image steps are in no line", () => {
  const remove = containerKeys("n1", "container.remove", { id: "aaaa1111bbbb2222", force: true }, known);
  const run = containerKeys("n1", "container.run", { name: "web", image: "busybox" }, known);
  assert.ok(shares(remove, run));
  assert.deepEqual(containerKeys("n1", "image.pull", { reference: "busybox" }, known), []);
  assert.deepEqual(containerKeys("n1", "container.run", { image: "busybox" }, known), [], "an unnamed Run cannot collide");
  assert.ok(containerKeys("n1", "container.kill", { id: "unknown" }, known).length === 1, "an unknown reference is its own key");
});
