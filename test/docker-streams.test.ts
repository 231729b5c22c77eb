// Exec and attach streams as Docker frames them (issue 12), judged by real clients: dockerode
// (demuxStream on multiplexed frames, raw bytes for a TTY), the docker CLI against both the
// agent and Docker Engine 20.10 (exec -u, a missing binary, a user that does not exist), and
// raw hijacked sockets typing the detach keys.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createConnection } from "node:net";
import { PassThrough, type Duplex } from "node:stream";
import Docker from "dockerode";
import { pushFixtureImages } from "./fixtures/images.ts";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { docker, dockerOk, startAgent, type AgentHandle } from "./helpers/agent.ts";
import { dockerCli, dockerCliOk, startDockerd, type CliTarget, type DockerdHandle } from "./helpers/dockerd.ts";
import { poll, sleep } from "./helpers/wait.ts";

const uniq = (prefix: string) => `${prefix}-${randomBytes(3).toString("hex")}`;

/** What a demuxing client reads from a multiplexed stream, separated as dockerode separates it. */
async function demuxed(api: Docker, stream: NodeJS.ReadableStream): Promise<{ stdout: string; stderr: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let stdout = "";
  let stderr = "";
  out.on("data", (d: Buffer) => (stdout += d.toString()));
  err.on("data", (d: Buffer) => (stderr += d.toString()));
  api.modem.demuxStream(stream, out, err);
  await new Promise<void>((resolve, reject) => {
    stream.once("end", () => resolve());
    stream.once("close", () => resolve());
    stream.once("error", reject);
  });
  return { stdout, stderr };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  stream.on("data", (d: Buffer) => chunks.push(d));
  await new Promise<void>((resolve, reject) => {
    stream.once("end", () => resolve());
    stream.once("close", () => resolve());
    stream.once("error", reject);
  });
  return Buffer.concat(chunks);
}

/**
 * A hijacked connection on the agent's socket (what the CLI does): sends the request with
 * `Upgrade: tcp`, then gives the socket and what arrived so far.
 */
async function hijacked(socketPath: string, path: string, body?: unknown) {
  const sock = createConnection(socketPath);
  let received = Buffer.alloc(0);
  sock.on("data", (d: Buffer) => (received = Buffer.concat([received, d])));
  sock.on("error", () => undefined);
  const closed = new Promise<void>((r) => sock.once("close", () => r()));
  const text = body === undefined ? "" : JSON.stringify(body);
  sock.write(
    `POST ${path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  );
  await poll(async () => received.includes("\r\n\r\n"), 10_000);
  assert.match(received.toString(), /^HTTP\/1\.1 101 UPGRADED\r\n/);
  return {
    sock: sock as Duplex,
    closed,
    get text() {
      return received.toString();
    },
    isClosed: () => sock.destroyed || sock.readableEnded,
  };
}

/** Types keys one at a time, as a person at a keyboard does. */
async function type(sock: Duplex, keys: number[]): Promise<void> {
  for (const k of keys) {
    sock.write(Buffer.from([k]));
    await sleep(50);
  }
}

describe("exec and attach streams as Docker frames them", () => {
  let reg: RegistryFixture | undefined;
  let agent: AgentHandle;
  let dockerd: DockerdHandle | undefined;
  let api: Docker;
  let ref: string;
  let berth: CliTarget;

  after(async () => {
    await dockerd?.stop();
    await agent?.destroy();
    await reg?.stop();
  });

  before(async () => {
    reg = await startRegistry({ auth: "none" });
    ref = (await pushFixtureImages(reg, { only: ["busybox"] })).busybox.ref;
    agent = await startAgent({ insecureRegistries: [reg.host] });
    berth = { dockerHost: agent.dockerHost, dockerConfig: agent.dockerConfig, logs: agent.logs };
    await dockerOk(agent, ["pull", ref]);
    api = new Docker({ socketPath: agent.socket });
  });

  /** A running busybox container on the agent, removed at the end of the test. */
  async function running(t: { after: (fn: () => Promise<void>) => void }, args: string[] = [], cmd = ["sleep", "100000"]): Promise<string> {
    const name = uniq("streams");
    t.after(async () => void (await docker(agent, ["rm", "-f", name])));
    await dockerOk(agent, ["run", "-d", "--name", name, ...args, ref, ...cmd]);
    return name;
  }

  test("dockerode exec: stdout and stderr on their own stream ids, hijacked or not; a TTY exec gives raw bytes", async (t) => {
    const c = api.getContainer(await running(t));
    const cmd = ["sh", "-c", "echo out; echo err >&2; echo out2"];
    for (const hijack of [true, false]) {
      const exec = await c.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
      const stream = await exec.start({ hijack, stdin: false });
      if (!hijack)
        assert.equal((stream as unknown as { headers: Record<string, string> }).headers["content-type"], "application/vnd.docker.multiplexed-stream");
      assert.deepEqual(await demuxed(api, stream), { stdout: "out\nout2\n", stderr: "err\n" }, `hijack=${hijack}`);
      assert.equal((await exec.inspect()).ExitCode, 0);
    }
    for (const hijack of [true, false]) {
      const exec = await c.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: true });
      const stream = await exec.start({ hijack, stdin: false, Tty: true });
      if (!hijack) assert.equal((stream as unknown as { headers: Record<string, string> }).headers["content-type"], "application/vnd.docker.raw-stream");
      // The terminal's bytes, no frame header (a demuxer would read "o" = 111 as a stream id).
      assert.equal((await readAll(stream)).toString(), "out\r\nerr\r\nout2\r\n", `tty hijack=${hijack}`);
    }
    // As Docker: the framing follows the start request's Tty, so a TTY exec started without it comes framed as stdout.
    const exec = await c.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: true });
    assert.deepEqual(await demuxed(api, await exec.start({ hijack: true, stdin: false })), { stdout: "out\r\nerr\r\nout2\r\n", stderr: "" });
  });

  test("attach with logs=1 and stream=0 returns what the container wrote, at once, and ends", async (t) => {
    const plain = api.getContainer(await running(t, [], ["sh", "-c", "echo out1; echo err1 >&2; echo out2; sleep 100000"]));
    const tty = api.getContainer(await running(t, ["-t"], ["sh", "-c", "echo tout; sleep 100000"]));
    await poll(async () => (await docker(agent, ["logs", plain.id])).stdout.includes("out2"));
    await poll(async () => (await docker(agent, ["logs", tty.id])).stdout.includes("tout"));
    const started = Date.now();
    const both = await plain.attach({ stream: false, logs: true, stdout: true, stderr: true });
    assert.deepEqual(await demuxed(api, both), { stdout: "out1\nout2\n", stderr: "err1\n" });
    const onlyOut = await plain.attach({ stream: false, logs: true, stdout: true, stderr: false });
    assert.deepEqual(await demuxed(api, onlyOut), { stdout: "out1\nout2\n", stderr: "" });
    assert.equal((await readAll(await tty.attach({ stream: false, logs: true, stdout: true, stderr: true }))).toString(), "tout\r\n");
    // Neither logs nor stream: nothing, and the answer ends (Docker's defaults).
    assert.equal((await readAll(await plain.attach({ stdout: true, stderr: true }))).length, 0);
    assert.ok(Date.now() - started < 5000, "each attach without stream=1 ends at once");
    assert.equal((await plain.inspect()).State.Running, true);
  });

  test("attach stream=1: live output demuxed on its own streams, as the CLI and dockerode use it", async (t) => {
    const c = api.getContainer(await running(t, [], ["sh", "-c", "while true; do echo o; echo e >&2; sleep 0.2; done"]));
    const stream = await c.attach({ stream: true, stdout: true, stderr: true, hijack: true });
    const got = demuxed(api, stream);
    await sleep(1000);
    (stream as unknown as Duplex).destroy();
    const { stdout, stderr } = await got;
    assert.match(stdout, /^(o\n)+$/);
    assert.match(stderr, /^(e\n)+$/);
  });

  test("detach keys: ctrl-p ctrl-q (or the keys asked for) end only that connection; the container and the exec go on", async (t) => {
    const name = await running(t, ["-i", "-t"], ["sh"]);
    const id = (await dockerOk(agent, ["inspect", "-f", "{{.Id}}", name])).trim();

    const first = await hijacked(agent.socket, `/containers/${id}/attach?stream=1&stdin=1&stdout=1&stderr=1`);
    first.sock.write("echo typed-$((40+2))\n");
    await poll(async () => first.text.includes("typed-42"));
    await type(first.sock, [16, 17]);
    await Promise.race([first.closed, sleep(5000)]);
    assert.ok(first.isClosed(), "the detached connection ended");
    assert.equal((await dockerOk(agent, ["inspect", "-f", "{{.State.Status}}", name])).trim(), "running");

    // Other keys asked for: ctrl-p ctrl-q is ordinary input then, and ctrl-x,y detaches.
    const second = await hijacked(agent.socket, `/containers/${id}/attach?stream=1&stdin=1&stdout=1&stderr=1&detachKeys=ctrl-x,y`);
    await type(second.sock, [16, 17]);
    second.sock.write("echo still-$((1+1))\n");
    await poll(async () => second.text.includes("still-2"));
    assert.equal(second.isClosed(), false);
    await type(second.sock, [0x18, 0x79]);
    await Promise.race([second.closed, sleep(5000)]);
    assert.ok(second.isClosed(), "ctrl-x,y detached");
    assert.equal((await dockerOk(agent, ["inspect", "-f", "{{.State.Status}}", name])).trim(), "running");

    // A refused key form is Docker's 400 before anything is hijacked.
    const bad = await fetchStatus(agent.socket, `/containers/${id}/attach?stream=1&stdin=1&detachKeys=ctrl-1`);
    assert.equal(bad.status, 400);
    assert.match(bad.body, /Invalid detach keys \(ctrl-1\) provided/);

    // An exec with a TTY: DetachKeys from exec create; the process keeps running after the detach.
    const exec = await api.getContainer(id).exec({ Cmd: ["sh"], AttachStdin: true, AttachStdout: true, Tty: true, DetachKeys: "ctrl-a" });
    const ex = await hijacked(agent.socket, `/exec/${exec.id}/start`, { Detach: false, Tty: true });
    ex.sock.write("echo in-exec-$((2+3))\n");
    await poll(async () => ex.text.includes("in-exec-5"));
    await type(ex.sock, [1]);
    await Promise.race([ex.closed, sleep(5000)]);
    assert.ok(ex.isClosed(), "the exec's connection ended");
    // Long enough for a hang-up of its terminal to have ended it, had the detach closed it.
    await sleep(1500);
    const inspect = await exec.inspect();
    assert.equal(inspect.Running, true, "the detached exec's process still runs");
    assert.ok(inspect.Pid > 0);
    process.kill(inspect.Pid, "SIGKILL");
  });

  test("docker attach in a terminal: ctrl-p ctrl-q detaches and the container keeps running", async (t) => {
    const name = await running(t, ["-i", "-t"], ["sh"]);
    // script(1) gives the CLI a terminal; the keys are typed one by one after the attach is up.
    const child = spawn("script", ["-qec", `docker attach ${name}`, "/dev/null"], {
      env: { ...process.env, DOCKER_HOST: agent.dockerHost, DOCKER_CONFIG: agent.dockerConfig, DOCKER_CLI_HINTS: "false" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stdin.on("error", () => undefined);
    const exited = new Promise<number | null>((r) => child.once("close", (code) => r(code)));
    t.after(() => void child.kill("SIGKILL"));
    await sleep(1500);
    child.stdin.write("echo attached-$((6*7))\r");
    await poll(async () => out.includes("attached-42"), 10_000);
    for (const k of [16, 17]) {
      child.stdin.write(Buffer.from([k]));
      await sleep(200);
    }
    await Promise.race([exited, sleep(10_000)]);
    assert.notEqual(child.exitCode, null, "docker attach ended on the detach keys");
    assert.match(out, /read escape sequence/);
    assert.equal((await dockerOk(agent, ["inspect", "-f", "{{.State.Status}}", name])).trim(), "running");
  });

  describe("the same clients against the agent and against Docker Engine 20.10", () => {
    let engine: CliTarget;
    before(async () => {
      dockerd = await startDockerd();
      engine = dockerd;
      await dockerCliOk(engine, ["pull", ref]);
    });

    /** Runs the same commands on both daemons, in a container of each with the same /etc/passwd and /etc/group. */
    async function onBoth(
      t: { after: (fn: () => Promise<void>) => void },
      fn: (target: CliTarget, container: string) => Promise<unknown>,
      cmd = ["sleep", "100000"],
    ) {
      const results = [];
      for (const target of [berth, engine]) {
        const name = uniq("parity");
        t.after(async () => void (await dockerCli(target, ["rm", "-f", name])));
        await dockerCliOk(target, ["run", "-d", "--network", "none", "--name", name, ref, ...cmd]);
        // wheel lists root and app; app's own group lists nobody: primary and supplementary groups both show.
        await dockerCliOk(target, [
          "exec",
          name,
          "sh",
          "-c",
          "echo wheel:x:10:root,app >> /etc/group; echo app:x:1000: >> /etc/group; echo app:x:1000:1000::/:/bin/sh >> /etc/passwd",
        ]);
        results.push(await fn(target, name));
      }
      return { berth: results[0], docker: results[1] };
    }

    test("exec -u: a name, a uid, uid:gid, name:group — the same ids and groups as Docker", async (t) => {
      const r = await onBoth(t, async (target, c) => {
        const out: string[] = [];
        for (const u of ["root", "app", "1000", "1000:10", "app:wheel", "0:0", "nobody"])
          out.push(`${u}: ${await dockerCliOk(target, ["exec", "-u", u, c, "id"])}`);
        return out.join("");
      });
      assert.equal(r.berth, r.docker);
      assert.match(r.berth as string, /^root: uid=0\(root\) gid=0\(root\) groups=0\(root\),10\(wheel\)$/m);
    });

    test("exec of a missing or non-executable binary, or as an unknown user: Docker's message and the exec's exit code", async (t) => {
      const r = await onBoth(t, async (target, c) => {
        const run = async (args: string[]) => {
          const x = await dockerCli(target, args);
          return { code: x.code, stdout: x.stdout, stderr: x.stderr };
        };
        return {
          missing: await run(["exec", c, "nosuch"]),
          missingTty: await run(["exec", "-t", c, "nosuch"]),
          notExecutable: await run(["exec", c, "/etc/passwd"]),
          unknownUser: await run(["exec", "-u", "nosuchuser", c, "id"]),
          detached: await run(["exec", "-d", c, "nosuch"]),
        };
      });
      const b = r.berth as Record<string, { code: number; stdout: string; stderr: string }>;
      const d = r.docker as typeof b;
      assert.equal(
        b.missing!.stdout,
        'OCI runtime exec failed: exec failed: unable to start container process: exec: "nosuch": executable file not found in $PATH: unknown\r\n',
      );
      for (const k of Object.keys(d)) {
        assert.equal(b[k]!.stdout, d[k]!.stdout, `${k}: stdout`);
        assert.equal(b[k]!.stderr, d[k]!.stderr, `${k}: stderr`);
      }
      // Exit codes: 126 where Docker 20.10 gives 126; a command not found is 127 as in Docker
      // since 23.0 (20.10 said 126 for every exec that could not start).
      assert.equal(b.missing!.code, 127);
      assert.equal(b.missingTty!.code, 127);
      assert.equal(d.missing!.code, 126);
      for (const k of ["notExecutable", "unknownUser", "detached"]) assert.equal(b[k]!.code, d[k]!.code, `${k}: exit code`);
      assert.equal(b.notExecutable!.code, 126);
      assert.equal(b.detached!.code, 1);
    });

    test("dockerode reads the same from both: exec demuxed (only the streams attached), a TTY exec raw or framed by the start's Tty, attach logs without stream", async (t) => {
      const r = await onBoth(
        t,
        async (target, c) => {
          const client = new Docker({ socketPath: target === berth ? agent.socket : dockerd!.socket });
          const ctr = client.getContainer(c);
          await poll(async () => (await dockerCli(target, ["logs", c])).stderr.includes("err1"));
          const cmd = ["sh", "-c", "echo out; echo err >&2"];
          const plain = await ctr.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true });
          const plainOut = await demuxed(client, await plain.start({ hijack: true, stdin: false }));
          const tty = await ctr.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: true });
          const ttyOut = (await readAll(await tty.start({ hijack: true, stdin: false, Tty: true }))).toString();
          const mixed = await ctr.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: true });
          const mixedOut = await demuxed(client, await mixed.start({ hijack: true, stdin: false }));
          const stdoutOnly = await ctr.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: false });
          const stdoutOnlyOut = await demuxed(client, await stdoutOnly.start({ hijack: true, stdin: false }));
          const logs = await demuxed(client, await ctr.attach({ stream: false, logs: true, stdout: true, stderr: true }));
          const logsOut = await demuxed(client, await ctr.attach({ stream: false, logs: true, stdout: true, stderr: false }));
          // Neither logs nor stream asked for: an empty answer that ends.
          const neither = (await readAll(await ctr.attach({ stdout: true, stderr: true }))).toString();
          return { plainOut, ttyOut, mixedOut, stdoutOnlyOut, logs, logsOut, neither };
        },
        ["sh", "-c", "echo out1; echo err1 >&2; sleep 100000"],
      );
      assert.deepEqual(r.berth, r.docker);
      assert.deepEqual((r.berth as { logs: unknown }).logs, { stdout: "out1\n", stderr: "err1\n" });
      assert.deepEqual((r.berth as { stdoutOnlyOut: unknown }).stdoutOnlyOut, { stdout: "out\n", stderr: "" });
    });

    test("GET /exec/{id}/json of an exec that could not start: not running, its exit code set", async (t) => {
      const c = api.getContainer(await running(t));
      const exec = await c.exec({ Cmd: ["nosuch"], AttachStdout: true, AttachStderr: true });
      const out = await demuxed(api, await exec.start({ hijack: true, stdin: false }));
      assert.match(out.stdout, /executable file not found in \$PATH: unknown\r\n$/);
      const inspect = await exec.inspect();
      assert.equal(inspect.Running, false);
      assert.equal(inspect.ExitCode, 127);
    });
  });
});

/** A plain HTTP request on the agent's socket: status and body. */
async function fetchStatus(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  const sock = createConnection(socketPath);
  let text = "";
  sock.on("data", (d: Buffer) => (text += d.toString()));
  sock.write(`POST ${path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  await new Promise<void>((r) => sock.once("close", () => r()));
  return { status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1]), body: text.slice(text.indexOf("\r\n\r\n") + 4) };
}
