import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { promisify } from "node:util";
import { tempPrefixOf, writeFileAtomic } from "./fs-util.ts";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function scratch(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "berth-fs-util-"));
  dirs.push(d);
  return d;
}

test("writeFileAtomic creates and replaces a file with the mode asked, leaving no temporary file", async () => {
  const dir = await scratch();
  const file = join(dir, "state.json");
  await writeFileAtomic(file, '{"v":1}');
  assert.equal(await readFile(file, "utf8"), '{"v":1}');
  assert.equal((await stat(file)).mode & 0o777, 0o600, "0600 by default");
  await writeFileAtomic(file, Buffer.from('{"v":2}'), { mode: 0o644 });
  assert.equal(await readFile(file, "utf8"), '{"v":2}');
  assert.equal((await stat(file)).mode & 0o777, 0o644);
  assert.deepEqual(await readdir(dir), ["state.json"]);
});

test("concurrent writers: the file always holds one writer's whole content", async () => {
  const dir = await scratch();
  const file = join(dir, "f");
  const contents = Array.from({ length: 20 }, (_, i) => String(i).repeat(100_000 + i));
  const reads: string[] = [];
  let done = false;
  const reader = (async () => {
    while (!done) {
      try {
        reads.push(await readFile(file, "utf8"));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
      }
      await new Promise((r) => setImmediate(r));
    }
  })();
  await Promise.all(contents.map((c) => writeFileAtomic(file, c)));
  done = true;
  await reader;
  assert.ok(contents.includes(await readFile(file, "utf8")));
  for (const r of reads) assert.ok(contents.includes(r), `a reader saw a partial file of ${r.length} bytes`);
  assert.deepEqual(await readdir(dir), ["f"]);
});

test("a failed write leaves the old file and no temporary file, and names the cause", async () => {
  const dir = await scratch();
  const target = join(dir, "is-a-dir");
  await mkdir(target);
  await writeFile(join(target, "keep"), "x");
  await assert.rejects(writeFileAtomic(target, "new"), (e: NodeJS.ErrnoException) => e.code === "EISDIR");
  assert.deepEqual((await readdir(dir)).sort(), ["is-a-dir"]);
  assert.equal(await readFile(join(target, "keep"), "utf8"), "x");
  await assert.rejects(writeFileAtomic(join(dir, "missing", "f"), "x"), (e: NodeJS.ErrnoException) => e.code === "ENOENT");
});

test("writeFileAtomic fsyncs the file before the rename and the directory after it; durable:false skips both", async () => {
  const dir = await scratch();
  const file = join(dir, "synced.json");
  const script = `import { writeFileAtomic } from ${JSON.stringify(join(import.meta.dirname, "fs-util.ts"))};
await writeFileAtomic(process.argv[1], "a");
await writeFileAtomic(process.argv[1], "b", { durable: false });`;
  const { stderr } = await promisify(execFile)(
    "strace",
    [
      "-f",
      "-qq",
      "-e",
      "trace=openat,fsync,fdatasync,rename,renameat,renameat2",
      "-e",
      "signal=none",
      process.execPath,
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      script,
      file,
    ],
    { maxBuffer: 16 * 1024 * 1024 },
  );
  // strace prints to stderr; keep the calls on our directory, in order, as "call path".
  const calls: string[] = [];
  const fds = new Map<string, string>();
  for (const line of stderr.split("\n")) {
    const body = line.replace(/^\[pid\s+\d+\]\s*/, "");
    let m = /^openat\(AT_FDCWD, "([^"]+)".* = (\d+)$/.exec(body);
    if (m) {
      fds.set(m[2]!, m[1]!);
      continue;
    }
    m = /^(fsync|fdatasync)\((\d+)\)/.exec(body);
    if (m && fds.get(m[2]!)?.startsWith(dir)) calls.push(`${m[1]} ${fds.get(m[2]!)!.replace(dir, "DIR")}`);
    m = /^rename(?:at2?)?\((?:AT_FDCWD, )?"([^"]+)", (?:AT_FDCWD, )?"([^"]+)"/.exec(body);
    if (m && m[2]!.startsWith(dir)) calls.push(`rename ${m[2]!.replace(dir, "DIR")}`);
  }
  const tmp = `DIR/${tempPrefixOf(file)}`;
  const first = calls.slice(0, 3);
  assert.equal(first.length, 3, calls.join("\n"));
  assert.ok(first[0]!.startsWith(`fsync ${tmp}`), calls.join("\n"));
  assert.equal(first[1], "rename DIR/synced.json");
  assert.equal(first[2], "fsync DIR");
  assert.deepEqual(calls.slice(3), ["rename DIR/synced.json"], "durable:false renames without fsync");
  assert.equal(await readFile(file, "utf8"), "b");
});
