import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { guardChild, runTool, toolDetail } from "./child-process.ts";

test("a tool that exits without reading its stdin: its exit status, no EPIPE crash", async () => {
  // 8 MiB cannot fit in a pipe: the write fails with EPIPE once `true` has gone.
  const r = await runTool("true", [], { input: Buffer.alloc(8 * 1024 * 1024, 120) });
  assert.equal(r.exitCode, 0);
  const f = await runTool("sh", ["-c", "echo nope >&2; exit 3"], { input: Buffer.alloc(8 * 1024 * 1024) });
  assert.equal(f.exitCode, 3);
  assert.equal(toolDetail(f), "nope");
});

test("output is collected; a signal is reported as 128 + its number", async () => {
  const r = await runTool("sh", ["-c", "cat; kill -TERM $$"], { input: "hello" });
  assert.equal(r.stdout.toString(), "hello");
  assert.equal(r.signal, "SIGTERM");
  assert.equal(r.exitCode, 128 + 15);
});

test("a tool that is not installed rejects with ENOENT", async () => {
  await assert.rejects(runTool("/nonexistent/berth-tool", []), (e: NodeJS.ErrnoException) => e.code === "ENOENT");
});

test("aborting ends the tool and rejects with an AbortError", async () => {
  const ac = new AbortController();
  const running = runTool("sleep", ["30"], { signal: ac.signal });
  setTimeout(() => ac.abort(), 50);
  await assert.rejects(running, (e: Error) => e.name === "AbortError");
});

test("guardChild: a dead child's stdin refusing a write (EPIPE) does not crash the process", async () => {
  // Without the guard this is an unhandled 'error' event: the agent's crash of issue 11.
  const child = spawn("true", [], { stdio: ["pipe", "ignore", "ignore"] });
  const errors: Error[] = [];
  guardChild(child, (e) => errors.push(e));
  child.stdin!.end(Buffer.alloc(8 * 1024 * 1024));
  await new Promise((resolve) => child.once("close", resolve));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.deepEqual(errors, []); // the pipe's EPIPE is not the child's failure
});
