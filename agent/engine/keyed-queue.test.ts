import { test } from "node:test";
import assert from "node:assert/strict";
import { KeyedQueue } from "./keyed-queue.ts";

test("tasks of one key run one after another, a failure reaches only its caller, other keys do not wait", async () => {
  const q = new KeyedQueue();
  const order: string[] = [];
  let releaseA!: () => void;
  const a1 = q.run("a", () => new Promise<void>((r) => (releaseA = r)).then(() => order.push("a1")));
  const a2 = q.run("a", async () => {
    order.push("a2");
    throw new Error("a2 failed");
  });
  const a3 = q.run("a", async () => order.push("a3"));
  await q.run("b", async () => order.push("b1"));
  assert.deepEqual(order, ["b1"], "b ran while a1 was still under way");
  releaseA();
  await a1;
  await assert.rejects(a2, /a2 failed/);
  await a3;
  assert.deepEqual(order, ["b1", "a1", "a2", "a3"]);
});
