// The json-file log driver in Docker's on-disk format (issue 12): the file inspect names as
// LogPath holds {"log","stream","time"} lines a JSON tool reads; `--log-opt max-size/max-file`
// rotate it into `.1`, `.2`… and `docker logs` (--tail, --since, -f) reads across the files;
// `local` keeps working; unknown options are refused at create with Docker's words.
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { docker, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";
import { poll } from "./helpers/wait.ts";

const uniq = (prefix: string) => `${prefix}-${randomBytes(3).toString("hex")}`;
const RFC3339_NANO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

interface JsonLine {
  log: string;
  stream: string;
  time: string;
}

async function jsonLines(path: string): Promise<JsonLine[]> {
  const text = await readFile(path, "utf8");
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as JsonLine);
}

describe("json-file log driver: Docker's file format and rotation", () => {
  let bb: BusyboxAgent;
  let agent: AgentHandle;
  const removeAfter = (t: TestContext, ...names: string[]) => t.after(async () => void (await docker(agent, ["rm", "-f", ...names])));
  const inspect = async (name: string, format: string) => (await dockerOk(agent, ["inspect", "--format", format, name])).trim();

  before(async () => {
    bb = await startBusyboxAgent("json-log");
    agent = bb.agent;
  });
  after(async () => {
    await bb?.stop();
  });

  test("LogPath is <id>-json.log holding one JSON object per line: log, stream, time", async (t) => {
    const c = uniq("jlog");
    removeAfter(t, c);
    await dockerOk(agent, ["run", "--name", c, "busybox", "sh", "-c", "echo hello; echo oops >&2; printf 'no newline'"]);
    const id = await inspect(c, "{{.Id}}");
    const path = await inspect(c, "{{.LogPath}}");
    assert.ok(path.endsWith(`/${id}-json.log`), path);
    assert.equal(await inspect(c, "{{.HostConfig.LogConfig.Type}}"), "json-file");
    const lines = await poll(async () => {
      const l = existsSync(path) ? await jsonLines(path) : [];
      return l.length >= 3 ? l : undefined;
    }, 5000);
    assert.ok(lines, "three lines in the file");
    assert.deepEqual(
      lines.map((l) => ({ log: l.log, stream: l.stream })),
      [
        { log: "hello\n", stream: "stdout" },
        { log: "oops\n", stream: "stderr" },
        { log: "no newline", stream: "stdout" },
      ],
    );
    for (const l of lines) assert.match(l.time, RFC3339_NANO);
    assert.equal(await dockerOk(agent, ["logs", c]), "hello\nno newline");
  });

  test("max-size/max-file rotate into .1 and .2; docker logs, --tail and --since read across the files", async (t) => {
    const c = uniq("jrot");
    removeAfter(t, c);
    await dockerOk(agent, [
      "run",
      "--name",
      c,
      "--log-opt",
      "max-size=1k",
      "--log-opt",
      "max-file=3",
      "busybox",
      "sh",
      "-c",
      "i=1; while [ $i -le 300 ]; do echo line-$i; i=$((i+1)); [ $((i % 50)) = 0 ] && sleep 0.2; done; true",
    ]);
    // Reading catches the file up with the container's last lines.
    const logsOut = await dockerOk(agent, ["logs", c]);
    const path = await inspect(c, "{{.LogPath}}");
    assert.ok(existsSync(`${path}.1`) && existsSync(`${path}.2`), "two rotated files");
    assert.ok(!existsSync(`${path}.3`), "max-file=3 keeps three files");
    for (const f of [`${path}.2`, `${path}.1`]) assert.ok((await stat(f)).size <= 1024 + 64, `${f} is about max-size`);
    const all = [...(await jsonLines(`${path}.2`)), ...(await jsonLines(`${path}.1`)), ...(await jsonLines(path))];
    const expected = all.map((l) => l.log).join("");
    assert.match(expected, /line-300\n$/);
    const first = Number(/^line-(\d+)/.exec(all[0]!.log)![1]);
    assert.ok(first > 1, "the oldest lines were rotated away");
    // The kept lines are consecutive: nothing lost between files.
    assert.deepEqual(
      all.map((l) => l.log),
      Array.from({ length: 300 - first + 1 }, (_, i) => `line-${first + i}\n`),
    );
    assert.equal(logsOut, expected);
    const live = await jsonLines(path);
    const tail = live.length + 5; // reaches into .1
    assert.equal(
      await dockerOk(agent, ["logs", "--tail", String(tail), c]),
      all
        .slice(-tail)
        .map((l) => l.log)
        .join(""),
    );
    // --since a time in .1: Docker's cut is by time, so lines sharing that time come too.
    const older = await jsonLines(`${path}.1`);
    const since = older[Math.floor(older.length / 2)]!.time;
    const sinceOut = await dockerOk(agent, ["logs", "--since", since, c]);
    const sinceNs = (time: string) => BigInt(Date.parse(time.slice(0, 19) + "Z")) * 1_000_000n + BigInt((/\.(\d+)Z$/.exec(time)?.[1] ?? "0").padEnd(9, "0"));
    assert.equal(
      sinceOut,
      all
        .filter((l) => sinceNs(l.time) >= sinceNs(since))
        .map((l) => l.log)
        .join(""),
    );
  });

  test("docker logs -f follows a running container from its json file on", async (t) => {
    const c = uniq("jfollow");
    removeAfter(t, c);
    await dockerOk(agent, [
      "run",
      "-d",
      "--name",
      c,
      "--log-opt",
      "max-size=100",
      "--log-opt",
      "max-file=2",
      "busybox",
      "sh",
      "-c",
      "echo first; sleep 2; echo second; echo third",
    ]);
    const out = await dockerOk(agent, ["logs", "-f", c], { timeoutMs: 20_000 });
    assert.equal(out, "first\nsecond\nthird\n");
  });

  test("local keeps working (no LogPath, as Docker); unknown and malformed options are refused at create", async (t) => {
    const c = uniq("jlocal");
    removeAfter(t, c);
    await dockerOk(agent, ["run", "--name", c, "--log-driver", "local", "busybox", "echo", "local-line"]);
    assert.equal(await dockerOk(agent, ["logs", c]), "local-line\n");
    assert.equal(await inspect(c, "{{.LogPath}}"), "");
    const unknown = await docker(agent, ["create", "--log-opt", "x=1", "busybox"]);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /unknown log opt 'x' for json-file log driver/);
    const zero = await docker(agent, ["create", "--log-opt", "max-size=1k", "--log-opt", "max-file=0", "busybox"]);
    assert.notEqual(zero.code, 0);
    assert.match(zero.stderr, /max-file cannot be less than 1/);
    const size = await docker(agent, ["create", "--log-opt", "max-size=lots", "busybox"]);
    assert.notEqual(size.code, 0);
    assert.match(size.stderr, /invalid size: 'lots'/);
  });
});
