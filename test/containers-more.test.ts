// The rest of the Engine II container surface (issue 3) through the real docker CLI
// against a real agent: every `docker run` flag of the issue, the lifecycle commands
// beyond the seeds' walk-through (create/start -a -i, attach, wait, rename, top, stats,
// export, prune, ps flags and filters, logs --since, events), volumes and networks.
// test/containers-cli.test.ts covers the seeds; this file covers what it does not.
//
// Every test uses its own names (uniq()) and registers its cleanup before it creates
// anything, so a failing test leaves nothing behind for the next one.
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { hostname as hostHostname } from "node:os";
import { join } from "node:path";
import { freePort } from "./fixtures/registry.ts";
import { docker, dockerOk, type AgentHandle, runShellDetached, dockerBackground } from "./helpers/agent.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";
import { poll, sleep } from "./helpers/wait.ts";

const uniq = (prefix: string) => `${prefix}-${randomBytes(3).toString("hex")}`;

/** Polls `fn` until it returns a truthy value or `ms` pass; returns the last value. */

describe("containers through the docker CLI: run flags, commands, volumes and networks", () => {
  let agent: AgentHandle;
  let work: string;

  /** Registers the removal of containers (with their anonymous volumes) for the end of the test. */
  const removeAfter = (t: TestContext, ...names: string[]) => t.after(async () => void (await docker(agent, ["rm", "-fv", ...names])));
  const inspect = async (name: string, format: string) => (await dockerOk(agent, ["inspect", "--format", format, name])).trim();
  const waitStatus = (name: string, status: string, ms = 10_000) =>
    poll(async () => (await docker(agent, ["inspect", "--format", "{{.State.Status}}", name])).stdout.trim() === status, ms);

  let suite: BusyboxAgent | undefined;
  before(async () => void ({ agent, work } = suite = await startBusyboxAgent("containers-more")));
  after(() => suite?.stop());

  // ─── run flags ───────────────────────────────────────────────────────────

  test("run -e and --env-file: values, comments skipped, a bare name taken from the client's environment, -e wins", async () => {
    const envFile = join(work, "env.list");
    await writeFile(envFile, "A=1\n# a comment\nB=two words\nFROM_CLIENT\nX=from-file\n");
    const out = await docker(agent, ["run", "--rm", "--env-file", envFile, "-e", "X=from-flag", "-e", "Y=", "busybox", "env"], {
      env: { FROM_CLIENT: "client-value" },
    });
    assert.equal(out.code, 0, out.stderr);
    const env = out.stdout.split("\n");
    assert.ok(env.includes("A=1"), out.stdout);
    assert.ok(env.includes("B=two words"), out.stdout);
    assert.ok(env.includes("FROM_CLIENT=client-value"), out.stdout);
    assert.ok(env.includes("X=from-flag"), out.stdout);
    assert.ok(!env.includes("X=from-file"), out.stdout);
    assert.ok(env.includes("Y="), out.stdout);
    assert.ok(
      env.some((e) => e.startsWith("PATH=/usr/local/sbin:")),
      out.stdout,
    );
    assert.ok(!env.some((e) => e.startsWith("#")), out.stdout);
  });

  test("run -w: the working directory, created when missing", async () => {
    assert.equal(
      await dockerOk(agent, ["run", "--rm", "-w", "/new/deep/dir", "busybox", "sh", "-c", "pwd; test -d /new/deep/dir && echo isdir"]),
      "/new/deep/dir\nisdir\n",
    );
    assert.equal(await dockerOk(agent, ["run", "--rm", "-w", "/etc", "busybox", "pwd"]), "/etc\n");
    const rel = await docker(agent, ["run", "--rm", "-w", "relative", "busybox", "pwd"]);
    assert.notEqual(rel.code, 0);
    assert.match(rel.stderr, /the working directory 'relative' is invalid, it needs to be an absolute path/);
  });

  test("run -u: a user name and a uid:gid, checked with id (the primary group among the supplementary ones, as Docker since 20.10.18)", async () => {
    assert.equal(await dockerOk(agent, ["run", "--rm", "-u", "nobody", "busybox", "id"]), "uid=65534(nobody) gid=65534(nobody) groups=65534(nobody)\n");
    assert.equal(await dockerOk(agent, ["run", "--rm", "-u", "1234:5678", "busybox", "id"]), "uid=1234 gid=5678 groups=5678\n");
    assert.equal(
      await dockerOk(agent, ["run", "--rm", "-u", "nobody", "-w", "/made/for/nobody", "busybox", "sh", "-c", "id -u; pwd"]),
      "65534\n/made/for/nobody\n",
    );
    const unknown = await docker(agent, ["run", "--rm", "-u", "no-such-user", "busybox", "id"]);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /unable to find user no-such-user: no matching entries in passwd file/);
  });

  test("run --hostname sets the hostname; by default it is the short container ID", async (t) => {
    const named = uniq("hostn");
    const dflt = uniq("hostd");
    removeAfter(t, named, dflt);
    const out = await dockerOk(agent, ["run", "--name", named, "--hostname", "myhost", "busybox", "sh", "-c", "hostname; cat /etc/hostname; echo $HOSTNAME"]);
    assert.equal(out, "myhost\nmyhost\nmyhost\n");
    assert.equal(await inspect(named, "{{.Config.Hostname}}"), "myhost");
    const id = (
      await dockerOk(agent, ["run", "-d", "--name", dflt, "busybox", "sh", "-c", 'hostname; cat /etc/hostname; grep -c "$(hostname)" /etc/hosts'])
    ).trim();
    assert.equal((await dockerOk(agent, ["wait", dflt])).trim(), "0");
    assert.equal(await dockerOk(agent, ["logs", dflt]), `${id.slice(0, 12)}\n${id.slice(0, 12)}\n1\n`);
    assert.equal(await inspect(dflt, "{{.Config.Hostname}}"), id.slice(0, 12));
  });

  test('run --entrypoint: overrides the image\'s, and "" clears it', async (t) => {
    const src = uniq("epsrc");
    const image = uniq("epimg");
    removeAfter(t, src);
    t.after(async () => void (await docker(agent, ["rmi", "-f", image])));
    await dockerOk(agent, ["create", "--name", src, "busybox", "true"]);
    await dockerOk(agent, ["commit", "-c", 'ENTRYPOINT ["echo", "from-entrypoint"]', "-c", 'CMD ["from-cmd"]', src, image]);
    assert.equal(await dockerOk(agent, ["run", "--rm", image]), "from-entrypoint from-cmd\n");
    assert.equal(await dockerOk(agent, ["run", "--rm", image, "arg"]), "from-entrypoint arg\n");
    // An explicit entrypoint drops the image's Cmd.
    assert.equal(await dockerOk(agent, ["run", "--rm", "--entrypoint", "echo", image]), "\n");
    assert.equal(await dockerOk(agent, ["run", "--rm", "--entrypoint", "echo", image, "hi", "there"]), "hi there\n");
    assert.equal(await dockerOk(agent, ["run", "--rm", "--entrypoint", "", image, "echo", "cleared"]), "cleared\n");
    const none = await docker(agent, ["run", "--rm", "--entrypoint", "", image]);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /No command specified/);
    const c = uniq("epinsp");
    removeAfter(t, c);
    await dockerOk(agent, ["create", "--name", c, "--entrypoint", "ls", image, "-l", "/"]);
    assert.equal(await inspect(c, "{{.Path}} {{json .Args}} {{json .Config.Entrypoint}} {{json .Config.Cmd}}"), 'ls ["-l","/"] ["ls"] ["-l","/"]');
  });

  test("run --label, and ps --filter label= with and without a value", async (t) => {
    const a = uniq("laba");
    const b = uniq("labb");
    removeAfter(t, a, b);
    await dockerOk(agent, ["run", "-d", "--name", a, "--label", "team=blue", "--label", "solo", "busybox", "sleep", "60"]);
    await dockerOk(agent, ["run", "-d", "--name", b, "--label", "team=red", "busybox", "sleep", "60"]);
    const names = async (...filters: string[]) =>
      (await dockerOk(agent, ["ps", ...filters.flatMap((f) => ["--filter", f]), "--format", "{{.Names}}"])).trim().split("\n").filter(Boolean).sort();
    assert.deepEqual(await names("label=team=blue"), [a]);
    assert.deepEqual(await names("label=team"), [a, b].sort());
    assert.deepEqual(await names("label=solo"), [a]);
    assert.deepEqual(await names("label=team=green"), []);
    assert.deepEqual(await names("label=team", "label=solo"), [a]);
    assert.equal(await inspect(a, '{{index .Config.Labels "team"}}'), "blue");
    assert.equal((await dockerOk(agent, ["ps", "--filter", `name=${a}`, "--format", '{{.Label "team"}}'])).trim(), "blue");
  });

  test("run -P publishes the image's EXPOSE on free host ports; docker port shows them", async (t) => {
    const src = uniq("exsrc");
    const image = uniq("exposed");
    const web = uniq("pweb");
    removeAfter(t, src, web);
    t.after(async () => void (await docker(agent, ["rmi", "-f", image])));
    await dockerOk(agent, ["create", "--name", src, "busybox", "true"]);
    await dockerOk(agent, ["commit", "-c", "EXPOSE 8080", src, image]);
    assert.equal(await dockerOk(agent, ["image", "inspect", "--format", "{{json .Config.ExposedPorts}}", image]), '{"8080/tcp":{}}\n');
    await dockerOk(agent, ["run", "-d", "-P", "--name", web, image, "httpd", "-f", "-p", "8080", "-h", "/etc"]);
    const port = await dockerOk(agent, ["port", web]);
    const m = /^8080\/tcp -> 0\.0\.0\.0:(\d+)$/m.exec(port);
    assert.ok(m, port);
    const hostPort = Number(m[1]);
    assert.ok(hostPort >= 1024, port);
    assert.equal((await dockerOk(agent, ["port", web, "8080"])).trim().split("\n")[0], `0.0.0.0:${hostPort}`);
    assert.match(await dockerOk(agent, ["ps", "--filter", `name=${web}`, "--format", "{{.Ports}}"]), new RegExp(`0\\.0\\.0\\.0:${hostPort}->8080/tcp`));
    const body = await poll(() =>
      fetch(`http://127.0.0.1:${hostPort}/passwd`).then(
        (r) => r.text(),
        () => "",
      ),
    );
    assert.match(body, /^root:/);
    assert.equal(await inspect(web, "{{json .NetworkSettings.Ports}}"), `{"8080/tcp":[{"HostIp":"0.0.0.0","HostPort":"${hostPort}"}]}`);
  });

  test("run -p 127.0.0.1:PORT:80 is reachable on 127.0.0.1 only, not from another network namespace", async (t) => {
    const web = uniq("loweb");
    removeAfter(t, web);
    const port = await freePort();
    await dockerOk(agent, ["run", "-d", "--name", web, "-p", `127.0.0.1:${port}:80`, "busybox", "httpd", "-f", "-p", "80", "-h", "/etc"]);
    assert.equal((await dockerOk(agent, ["port", web])).trim(), `80/tcp -> 127.0.0.1:${port}`);
    const body = await poll(() =>
      fetch(`http://127.0.0.1:${port}/passwd`).then(
        (r) => r.text(),
        () => "",
      ),
    );
    assert.match(body, /^root:/);
    // Another container reaches the host through the bridge's gateway: the port is not there.
    const gateway = (await dockerOk(agent, ["network", "inspect", "--format", "{{range .IPAM.Config}}{{.Gateway}}{{end}}", "bridge"])).trim();
    assert.match(gateway, /^\d+\.\d+\.\d+\.\d+$/);
    const other = await docker(agent, ["run", "--rm", "busybox", "wget", "-T", "2", "-q", "-O", "-", `http://${gateway}:${port}/passwd`]);
    assert.notEqual(other.code, 0, `reachable from another namespace: ${other.stdout}`);
    // The container's own address is reachable from the host as usual.
    const ip = await inspect(web, "{{.NetworkSettings.IPAddress}}");
    assert.match(await fetch(`http://${ip}:80/passwd`).then((r) => r.text()), /^root:/);
  });

  test("run -p PORT:9999/udp forwards datagrams to the container", async (t) => {
    const udp = uniq("udp");
    removeAfter(t, udp);
    const port = await freePort();
    // busybox's nc has no -u here: the server is the host's perl, run from the host's /usr mounted read-only.
    const server =
      '$|=1; my $s = IO::Socket::INET->new(LocalPort => 9999, Proto => "udp") or die "socket: $!"; print "listening\\n"; while (1) { $s->recv(my $d, 1000); print "got: $d"; }';
    await dockerOk(agent, [
      "run",
      "-d",
      "--name",
      udp,
      "-p",
      `${port}:9999/udp`,
      "-v",
      "/usr:/usr:ro",
      "-v",
      "/usr/lib:/lib:ro",
      "-v",
      "/usr/lib64:/lib64:ro",
      "busybox",
      "/usr/bin/perl",
      "-MIO::Socket::INET",
      "-e",
      server,
    ]);
    assert.equal((await dockerOk(agent, ["port", udp])).trim(), `9999/udp -> 0.0.0.0:${port}`);
    assert.ok(await poll(async () => (await dockerOk(agent, ["logs", udp])).includes("listening")), await dockerOk(agent, ["logs", udp]));
    const send = (msg: string) =>
      new Promise<void>((resolve, reject) => {
        const s = createSocket("udp4");
        s.send(msg, port, "127.0.0.1", (err) => {
          s.close();
          if (err) reject(err);
          else resolve();
        });
      });
    const got = await poll(
      async () => {
        await send("hello over udp\n");
        return (await dockerOk(agent, ["logs", udp])).includes("got: hello over udp");
      },
      10_000,
      300,
    );
    assert.ok(got, await dockerOk(agent, ["logs", udp]));
    assert.match(await dockerOk(agent, ["ps", "--filter", `name=${udp}`, "--format", "{{.Ports}}"]), new RegExp(`0\\.0\\.0\\.0:${port}->9999/udp`));
  });

  test("--restart on-failure:2: a container exiting 1 is restarted twice, then stays exited", async (t) => {
    const c = uniq("onfail");
    removeAfter(t, c);
    await dockerOk(agent, ["run", "-d", "--name", c, "--restart", "on-failure:2", "busybox", "sh", "-c", "echo run; exit 1"]);
    assert.ok(
      await poll(async () => (await inspect(c, "{{.State.Status}} {{.RestartCount}}")) === "exited 2", 15_000),
      await inspect(c, "{{.State.Status}} {{.RestartCount}}"),
    );
    await sleep(1500);
    assert.equal(await inspect(c, "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}"), "exited 2 1");
    assert.equal(await dockerOk(agent, ["logs", c]), "run\nrun\nrun\n");
    assert.equal(await inspect(c, "{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}"), "on-failure 2");
    // Success is not a failure: no restart.
    const ok = uniq("onfailok");
    removeAfter(t, ok);
    await dockerOk(agent, ["run", "-d", "--name", ok, "--restart", "on-failure:2", "busybox", "true"]);
    await waitStatus(ok, "exited");
    await sleep(1000);
    assert.equal(await inspect(ok, "{{.State.Status}} {{.RestartCount}}"), "exited 0");
  });

  test("--restart always keeps restarting with back-off; docker stop stops it for good", async (t) => {
    const c = uniq("always");
    removeAfter(t, c);
    await dockerOk(agent, ["run", "-d", "--name", c, "--restart", "always", "busybox", "sh", "-c", "echo run; exit 1"]);
    const runs = () => dockerOk(agent, ["logs", "-t", c]).then((l) => l.trim().split("\n"));
    assert.ok(await poll(async () => (await runs()).length >= 6, 25_000), await inspect(c, "{{.RestartCount}}"));
    assert.ok(Number(await inspect(c, "{{.RestartCount}}")) >= 5);
    // Back-off: 100, 200, 400, 800, 1600 ms… Each gap is that pause plus the time a start takes, which
    // varies with the machine's load, so the check is on the fifth pause alone and on growth against the
    // shortest gap, not on a strict order of every gap.
    const times = (await runs()).slice(0, 6).map((l) => Date.parse(l.split(" ")[0]!));
    const gaps = times.slice(1).map((x, i) => x - times[i]!);
    const last = gaps[gaps.length - 1]!;
    assert.ok(last >= 1600 && last > Math.min(...gaps) * 2, `gaps between runs do not grow: ${gaps.join(", ")} ms`);
    assert.match(await dockerOk(agent, ["ps", "-a", "--filter", `name=${c}`, "--format", "{{.Status}}"]), /^(Restarting \(1\) .* ago|Up .*)\n$/);
    await dockerOk(agent, ["stop", "-t", "1", c]);
    const stoppedAt = await inspect(c, "{{.State.Status}} {{.RestartCount}}");
    assert.match(stoppedAt, /^exited \d+$/);
    await sleep(4000);
    assert.equal(await inspect(c, "{{.State.Status}} {{.RestartCount}}"), stoppedAt, "the container came back after docker stop");
    assert.match(await dockerOk(agent, ["ps", "-a", "--filter", `name=${c}`, "--format", "{{.Status}}"]), /^Exited \(1\) /);
  });

  test("--restart unless-stopped and no: a stopped unless-stopped container stays stopped; no never restarts", async (t) => {
    const us = uniq("unless");
    const no = uniq("norestart");
    removeAfter(t, us, no);
    await dockerOk(agent, ["run", "-d", "--name", us, "--restart", "unless-stopped", "busybox", "sh", "-c", "sleep 1; exit 3"]);
    assert.ok(await poll(async () => Number(await inspect(us, "{{.RestartCount}}")) >= 1, 15_000));
    await dockerOk(agent, ["run", "-d", "--name", no, "--restart", "no", "busybox", "sh", "-c", "exit 1"]);
    await waitStatus(no, "exited");
    await dockerOk(agent, ["stop", "-t", "0", us]);
    const count = await inspect(us, "{{.RestartCount}}");
    await sleep(2500);
    assert.equal(await inspect(us, "{{.State.Status}} {{.RestartCount}}"), `exited ${count}`);
    assert.equal(await inspect(no, "{{.State.Status}} {{.RestartCount}} {{.HostConfig.RestartPolicy.Name}}"), "exited 0 no");
  });

  test("--memory, --cpus, --pids-limit are in inspect .HostConfig and the cgroups; --cpus 0.5 holds a busy loop to at most half a core", async (t) => {
    const c = uniq("limits");
    removeAfter(t, c);
    const id = (
      await dockerOk(agent, ["run", "-d", "--name", c, "--memory", "64m", "--cpus", "0.5", "--pids-limit", "50", "busybox", "sh", "-c", "while :; do :; done"])
    ).trim();
    assert.equal(await inspect(c, "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}"), "67108864 500000000 50");
    const cg = (controller: string, file: string) => readFile(`/sys/fs/cgroup/${controller}/berth/${id}/${file}`, "utf8").then((s) => s.trim());
    assert.equal(await cg("memory", "memory.limit_in_bytes"), "67108864");
    // Without --memory-swap, swap up to the memory limit again (Docker's default), and inspect says so.
    assert.equal(await cg("memory", "memory.memsw.limit_in_bytes"), "134217728");
    assert.equal(await inspect(c, "{{.HostConfig.MemorySwap}}"), "134217728");
    assert.equal(await cg("cpu", "cpu.cfs_quota_us"), "50000");
    assert.equal(await cg("cpu", "cpu.cfs_period_us"), "100000");
    assert.equal(await cg("pids", "pids.max"), "50");
    await sleep(500);
    const usage = async () => Number(await cg("cpuacct", "cpuacct.usage"));
    const u0 = await usage();
    const t0 = process.hrtime.bigint();
    await sleep(2000);
    const u1 = await usage();
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const perSecond = (u1 - u0) / 1e9 / seconds;
    // The quota is a ceiling: on a busy machine the loop may get less than half a core, never more.
    // (A lower bound would measure the machine's load, not Berth.)
    assert.ok(perSecond > 0 && perSecond <= 0.65, `the busy loop used ${perSecond.toFixed(3)} s of CPU per second`);
    const throttled = Number(/nr_throttled (\d+)/.exec(await cg("cpu", "cpu.stat"))?.[1]);
    assert.ok(perSecond < 0.45 || throttled > 0, `the loop got ${perSecond.toFixed(3)} s/s yet was never throttled`);
  });

  test("--network none has only lo; --network host shares the host's interfaces and hostname", async (t) => {
    const none = uniq("netnone");
    removeAfter(t, none);
    await dockerOk(agent, ["run", "-d", "--name", none, "--network", "none", "busybox", "sleep", "60"]);
    const links = await dockerOk(agent, ["exec", none, "ip", "-o", "link"]);
    assert.deepEqual(
      links
        .trim()
        .split("\n")
        .map((l) => l.split(":")[1]!.trim()),
      ["lo"],
    );
    assert.equal(await inspect(none, "{{.HostConfig.NetworkMode}} [{{.NetworkSettings.IPAddress}}]"), "none []");
    const hostLinks = await dockerOk(agent, ["run", "--rm", "--network", "host", "busybox", "ip", "-o", "link"]);
    const bridge = agent.process.spawnargs[agent.process.spawnargs.indexOf("--bridge") + 1]!;
    assert.match(hostLinks, new RegExp(`: ${bridge}: `), "the agent's bridge is visible from the host's namespace");
    assert.equal(await dockerOk(agent, ["run", "--rm", "--network", "host", "busybox", "hostname"]), `${hostHostname()}\n`);
    const port = await freePort();
    const web = uniq("nethost");
    removeAfter(t, web);
    await dockerOk(agent, ["run", "-d", "--name", web, "--network", "host", "busybox", "httpd", "-f", "-p", `127.0.0.1:${port}`, "-h", "/etc"]);
    const body = await poll(() =>
      fetch(`http://127.0.0.1:${port}/passwd`).then(
        (r) => r.text(),
        () => "",
      ),
    );
    assert.match(body, /^root:/);
  });

  // ─── commands ────────────────────────────────────────────────────────────

  test("create, then start -a prints the output and returns the exit code", async (t) => {
    const c = uniq("createa");
    removeAfter(t, c);
    await dockerOk(agent, ["create", "--name", c, "busybox", "sh", "-c", "echo to-out; echo to-err >&2; exit 5"]);
    assert.equal(await inspect(c, "{{.State.Status}}"), "created");
    const r = await docker(agent, ["start", "-a", c]);
    assert.equal(r.code, 5, r.stderr);
    assert.equal(r.stdout, "to-out\n");
    assert.equal(r.stderr, "to-err\n");
    assert.equal(await inspect(c, "{{.State.Status}} {{.State.ExitCode}}"), "exited 5");
  });

  test("start -ai feeds stdin to a create -i container", async (t) => {
    const c = uniq("startai");
    removeAfter(t, c);
    await dockerOk(agent, ["create", "-i", "--name", c, "busybox", "sh", "-c", "cat; echo done"]);
    const r = await docker(agent, ["start", "-ai", c], { input: "hi\nthere\n" });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "hi\nthere\ndone\n");
    assert.equal(await inspect(c, "{{.State.Status}} {{.State.ExitCode}}"), "exited 0");
  });

  test("attach to a running container prints its output and returns its exit code", async (t) => {
    const c = uniq("attach");
    removeAfter(t, c);
    await runShellDetached(
      agent,
      c,
      "echo before-attach; while [ ! -f /go ]; do sleep 0.1; done; for i in 1 2 3; do echo tick $i; done; echo oops >&2; exit 3",
    );
    const att = dockerBackground(agent, ["attach", "--sig-proxy=false", c]);
    t.after(() => att.kill());
    await sleep(1000);
    await dockerOk(agent, ["exec", c, "touch", "/go"]);
    const timer = setTimeout(() => void att.kill(), 15_000);
    const code = await att.exited;
    clearTimeout(timer);
    assert.equal(code, 3, att.stderr);
    assert.equal(att.stdout, "tick 1\ntick 2\ntick 3\n", "attach shows new output only");
    assert.equal(att.stderr, "oops\n");
  });

  test("wait returns the exit code; rename renames (and refuses a taken name)", async (t) => {
    const c = uniq("waiter");
    const renamed = uniq("renamed");
    const other = uniq("other");
    removeAfter(t, c, renamed, other);
    await dockerOk(agent, ["run", "-d", "--name", c, "busybox", "sh", "-c", "sleep 1; exit 7"]);
    assert.equal(await dockerOk(agent, ["wait", c]), "7\n");
    assert.equal(await dockerOk(agent, ["wait", c]), "7\n", "wait on an exited container answers at once");
    await dockerOk(agent, ["rename", c, renamed]);
    assert.equal((await dockerOk(agent, ["ps", "-a", "--filter", `name=${renamed}`, "--format", "{{.Names}}"])).trim(), renamed);
    const old = await docker(agent, ["inspect", c]);
    assert.notEqual(old.code, 0);
    assert.match(old.stderr, /No such (container|object)/);
    await dockerOk(agent, ["create", "--name", other, "busybox", "true"]);
    const taken = await docker(agent, ["rename", renamed, other]);
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, new RegExp(`The container name "/${other}" is already in use`));
  });

  test("top lists the container's processes, also with ps options", async (t) => {
    const c = uniq("top");
    removeAfter(t, c);
    await dockerOk(agent, ["run", "-d", "--name", c, "busybox", "sh", "-c", "sleep 301 & sleep 302 & wait"]);
    const pid = await inspect(c, "{{.State.Pid}}");
    const top = (await poll(async () => {
      const o = await dockerOk(agent, ["top", c]);
      return o.includes("sleep 301") && o.includes("sleep 302") ? o : "";
    }))!;
    const [header, ...rows] = top.trim().split("\n");
    assert.match(header!, /^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD$/);
    assert.equal(rows.length, 3, top);
    assert.ok(
      rows.some((r) => r.split(/\s+/)[1] === pid && /sh -c sleep 301 & sleep 302 & wait$/.test(r)),
      top,
    );
    const custom = await dockerOk(agent, ["top", c, "-o", "pid,comm"]);
    assert.match(custom, /^PID\s+COMMAND\n/);
    assert.equal(custom.trim().split("\n").length, 4, custom);
    const stopped = uniq("topstopped");
    removeAfter(t, stopped);
    await dockerOk(agent, ["create", "--name", stopped, "busybox", "true"]);
    const r = await docker(agent, ["top", stopped]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /is not running/);
  });

  test("stats --no-stream has a row with the --memory limit; streaming stats refreshes", async (t) => {
    const c = uniq("stats");
    removeAfter(t, c);
    const id = (await dockerOk(agent, ["run", "-d", "--name", c, "--memory", "64m", "busybox", "sleep", "300"])).trim();
    const once = await dockerOk(agent, ["stats", "--no-stream", c]);
    const [header, row, ...more] = once.trim().split("\n");
    assert.match(header!, /^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+NET I\/O\s+BLOCK I\/O\s+PIDS$/);
    assert.equal(more.length, 0, once);
    assert.match(row!, new RegExp(`^${id.slice(0, 12)}\\s+${c}\\s+\\d+\\.\\d+%\\s+[\\d.]+[KMG]?i?B / 64MiB\\s+\\d+\\.\\d+%\\s+.*\\s1$`), once);
    const all = await dockerOk(agent, ["stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}"]);
    assert.match(all, new RegExp(`^${c} [\\d.]+[KMG]?i?B / 64MiB$`, "m"));
    const streaming = dockerBackground(agent, ["stats", c]);
    t.after(() => streaming.kill());
    await sleep(2500);
    await streaming.kill();
    const rows = streaming.stdout.split("\n").filter((l) => l.includes(c) && l.includes("/ 64MiB"));
    assert.ok(rows.length >= 2, `streaming stats printed ${rows.length} rows:\n${streaming.stdout}\n${streaming.stderr}`);
  });

  test("export writes the container's filesystem as a tar", async (t) => {
    const c = uniq("export");
    removeAfter(t, c);
    await dockerOk(agent, ["run", "-d", "--name", c, "busybox", "sh", "-c", "echo exported > /root/written.txt; sleep 300"]);
    await poll(async () => (await docker(agent, ["exec", c, "cat", "/root/written.txt"])).stdout === "exported\n");
    const tarPath = join(work, `${c}.tar`);
    await dockerOk(agent, ["export", "-o", tarPath, c]);
    const list = await new Promise<string>((resolve, reject) => {
      const tar = spawn("tar", ["-tf", tarPath]);
      let out = "";
      tar.stdout.on("data", (d: Buffer) => (out += d.toString()));
      tar.once("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`tar exited ${code}`))));
    });
    const entries = list.split("\n").map((e) => e.replace(/^\.?\//, ""));
    assert.ok(entries.includes("bin/busybox"), list.slice(0, 500));
    assert.ok(entries.includes("root/written.txt"), list.slice(0, 500));
    const stored = list.split("\n").find((e) => e.replace(/^\.?\//, "") === "root/written.txt")!;
    const content = await new Promise<string>((resolve) => {
      const tar = spawn("tar", ["-xOf", tarPath, stored]);
      let out = "";
      tar.stdout.on("data", (d: Buffer) => (out += d.toString()));
      tar.once("close", () => resolve(out));
    });
    assert.equal(content, "exported\n");
    // Also to stdout, from a stopped container.
    await dockerOk(agent, ["stop", "-t", "0", c]);
    const r = await new Promise<number>((resolve) => {
      const child = spawn("sh", ["-c", `docker export ${c} | tar -t | grep -c -e '^\\(\\./\\)\\?root/written.txt$' -e '^\\(\\./\\)\\?bin/busybox$'`], {
        env: { ...process.env, DOCKER_HOST: agent.dockerHost, DOCKER_CONFIG: agent.dockerConfig },
      });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.once("close", () => resolve(Number(out.trim())));
    });
    assert.equal(r, 2);
  });

  test("container prune -f removes stopped containers and keeps running ones", async (t) => {
    const exited = uniq("pruneexited");
    const created = uniq("prunecreated");
    const running = uniq("prunerunning");
    removeAfter(t, exited, created, running);
    const exitedId = (await dockerOk(agent, ["run", "-d", "--name", exited, "busybox", "true"])).trim();
    const createdId = (await dockerOk(agent, ["create", "--name", created, "busybox", "true"])).trim();
    await dockerOk(agent, ["run", "-d", "--name", running, "busybox", "sleep", "300"]);
    await waitStatus(exited, "exited");
    const out = await dockerOk(agent, ["container", "prune", "-f"]);
    assert.match(out, /^Deleted Containers:\n/);
    assert.ok(out.includes(exitedId) && out.includes(createdId), out);
    assert.match(out, /Total reclaimed space: /);
    const left = (await dockerOk(agent, ["ps", "-a", "--format", "{{.Names}}"])).split("\n");
    assert.ok(left.includes(running));
    assert.ok(!left.includes(exited) && !left.includes(created));
  });

  test("ps -a -q -l -n 2 -s --format", async (t) => {
    const names = [uniq("psa"), uniq("psb"), uniq("psc")];
    removeAfter(t, ...names);
    const ids: string[] = [];
    ids.push(
      (
        await dockerOk(agent, ["run", "-d", "--name", names[0]!, "busybox", "sh", "-c", "dd if=/dev/zero of=/big bs=1024 count=1024 2>/dev/null; sleep 300"])
      ).trim(),
    );
    await sleep(1100); // creation times one second apart: ps sorts by them
    ids.push((await dockerOk(agent, ["create", "--name", names[1]!, "busybox", "true"])).trim());
    await sleep(1100);
    await dockerOk(agent, ["run", "--name", names[2]!, "busybox", "true"]);
    ids.push(await inspect(names[2]!, "{{.Id}}"));
    const short = ids.map((i) => i.slice(0, 12));
    const qa = (await dockerOk(agent, ["ps", "-a", "-q"])).trim().split("\n");
    for (const s of short) assert.ok(qa.includes(s), `ps -a -q lacks ${s}`);
    assert.ok(!(await dockerOk(agent, ["ps", "-q"])).includes(short[1]!), "ps without -a lists only running containers");
    assert.equal((await dockerOk(agent, ["ps", "-q", "-l"])).trim(), short[2]);
    assert.equal(await dockerOk(agent, ["ps", "-n", "2", "--format", "{{.Names}}"]), `${names[2]}\n${names[1]}\n`);
    assert.equal((await dockerOk(agent, ["ps", "-a", "-q", "--no-trunc", "-l"])).trim(), ids[2]);
    const sized = await dockerOk(agent, ["ps", "-a", "-s", "--filter", `name=${names[0]}`, "--format", "{{.Names}}|{{.Size}}"]);
    assert.match(sized, new RegExp(`^${names[0]}\\|1\\.0\\dMB \\(virtual [\\d.]+MB\\)\\n$`));
    const table = await dockerOk(agent, ["ps", "-s", "--filter", `name=${names[0]}`]);
    assert.match(table.split("\n")[0]!, /NAMES\s+SIZE$/);
    const custom = await dockerOk(agent, ["ps", "-a", "--filter", `name=${names[2]}`, "--format", "{{.ID}} {{.Image}} {{.Command}} {{.Status}} {{.Names}}"]);
    assert.match(custom, new RegExp(`^${short[2]} busybox "true" Exited \\(0\\) .* ago ${names[2]}\\n$`));
    const json = JSON.parse((await dockerOk(agent, ["ps", "-a", "--filter", `name=${names[1]}`, "--format", "json"])).trim()) as {
      Names: string;
      State: string;
      ID: string;
    };
    assert.deepEqual([json.Names, json.State, json.ID], [names[1], "created", short[1]]);
  });

  test("ps --filter status=, name=, ancestor= and label=", async (t) => {
    const tag = randomBytes(3).toString("hex");
    const n = {
      created: `flt-created-${tag}`,
      running: `flt-running-${tag}`,
      paused: `flt-paused-${tag}`,
      exited: `flt-exited-${tag}`,
      child: `flt-child-${tag}`,
    };
    const childImage = `fltchild-${tag}`;
    removeAfter(t, ...Object.values(n));
    t.after(async () => void (await docker(agent, ["rmi", "-f", childImage])));
    await dockerOk(agent, ["create", "--name", n.created, "--label", "tier=db", "busybox", "true"]);
    await dockerOk(agent, ["run", "-d", "--name", n.running, "--label", "tier=web", "busybox", "sleep", "300"]);
    await dockerOk(agent, ["run", "-d", "--name", n.paused, "busybox", "sleep", "300"]);
    await dockerOk(agent, ["pause", n.paused]);
    assert.equal((await docker(agent, ["run", "--name", n.exited, "--label", "tier=web", "busybox", "sh", "-c", "exit 2"])).code, 2);
    await dockerOk(agent, ["commit", n.created, childImage]);
    await dockerOk(agent, ["run", "-d", "--name", n.child, childImage, "sleep", "300"]);
    // Several name= filters are alternatives (as in Docker): this test's containers are picked out afterwards.
    const ps = async (...filters: string[]) =>
      (await dockerOk(agent, ["ps", "-a", ...filters.flatMap((f) => ["--filter", f]), "--format", "{{.Names}}"]))
        .trim()
        .split("\n")
        .filter((x) => x.endsWith(tag))
        .sort();
    assert.deepEqual(await ps("status=created"), [n.created]);
    assert.deepEqual(await ps("status=running"), [n.child, n.running].sort());
    assert.deepEqual(await ps("status=paused"), [n.paused]);
    assert.deepEqual(await ps("status=exited"), [n.exited]);
    assert.deepEqual(await ps("status=exited", "status=created"), [n.created, n.exited].sort());
    assert.deepEqual(await ps("name=flt-r"), [n.running]);
    assert.deepEqual(await ps(`name=^/?flt-(paused|exited)-${tag}$`), [n.exited, n.paused].sort());
    assert.deepEqual(await ps(`name=${n.paused}`, `name=${n.exited}`), [n.exited, n.paused].sort());
    assert.deepEqual(await ps(`name=${tag}`, "status=running", "status=paused"), [n.child, n.paused, n.running].sort());
    assert.deepEqual(await ps(`ancestor=${childImage}`), [n.child]);
    // Docker's ancestor filter also matches containers of images built on the given one.
    assert.deepEqual(await ps("ancestor=busybox"), Object.values(n).sort());
    assert.deepEqual(await ps("label=tier=web"), [n.exited, n.running].sort());
    assert.deepEqual(await ps("label=tier=web", "status=running"), [n.running]);
    assert.deepEqual(await ps("label=tier"), [n.created, n.exited, n.running].sort());
    const bad = await docker(agent, ["ps", "--filter", "status=sleeping"]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid filter 'status=sleeping'/);
    await dockerOk(agent, ["unpause", n.paused]);
  });

  test("logs --since keeps the lines written after the given time", async (t) => {
    const c = uniq("since");
    removeAfter(t, c);
    await dockerOk(agent, ["run", "-d", "--name", c, "busybox", "sh", "-c", "echo early; while [ ! -f /go ]; do sleep 0.05; done; echo late; sleep 300"]);
    assert.ok(await poll(async () => (await dockerOk(agent, ["logs", c])) === "early\n"));
    await sleep(300);
    const middle = Date.now() / 1000;
    await sleep(300);
    await dockerOk(agent, ["exec", c, "touch", "/go"]);
    assert.ok(await poll(async () => (await dockerOk(agent, ["logs", c])) === "early\nlate\n"));
    assert.equal(await dockerOk(agent, ["logs", "--since", middle.toFixed(3), c]), "late\n");
    assert.equal(await dockerOk(agent, ["logs", "--since", new Date(middle * 1000).toISOString(), c]), "late\n");
    assert.equal(await dockerOk(agent, ["logs", "--since", (middle - 600).toFixed(0), c]), "early\nlate\n");
    assert.equal(await dockerOk(agent, ["logs", "--since", "10m", c]), "early\nlate\n");
    assert.equal(await dockerOk(agent, ["logs", "--since", (Date.now() / 1000 + 60).toFixed(0), c]), "");
  });

  test("events --filter container= shows create, start, die and stop", async (t) => {
    const c = uniq("events");
    removeAfter(t, c);
    const events = dockerBackground(agent, ["events", "--filter", `container=${c}`]);
    t.after(() => events.kill());
    await sleep(1000);
    const id = (await dockerOk(agent, ["run", "-d", "--name", c, "busybox", "sleep", "300"])).trim();
    await dockerOk(agent, ["stop", "-t", "1", c]);
    const seen = await poll(async () => /container stop /.test(events.stdout), 10_000);
    await events.kill();
    assert.ok(seen, events.stdout + events.stderr);
    const lines = events.stdout.trim().split("\n");
    const actions = lines.map((l) => /container (\w+) /.exec(l)?.[1]);
    for (const a of ["create", "start", "die", "stop"]) assert.ok(actions.includes(a), `no ${a} event in:\n${events.stdout}`);
    assert.ok(actions.indexOf("start") < actions.indexOf("die") && actions.indexOf("die") <= actions.lastIndexOf("stop"), events.stdout);
    for (const l of lines) assert.match(l, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z container \\w+ ${id} \\(.*name=${c}.*\\)$`));
    assert.match(
      lines.find((l) => l.includes(" die "))!,
      /exitCode=137/,
    );
  });

  test("volume prune removes unused anonymous volumes, -a also unused named ones, never volumes in use", async (t) => {
    const anon = uniq("vpanon");
    const user = uniq("vpuser");
    const named = uniq("vpnamed");
    const used = uniq("vpused");
    removeAfter(t, anon, user);
    t.after(async () => void (await docker(agent, ["volume", "rm", "-f", named, used])));
    const anonVolume = async () => (await dockerOk(agent, ["inspect", "--format", "{{range .Mounts}}{{.Name}}{{end}}", anon])).trim();
    await dockerOk(agent, ["volume", "create", named]);
    await dockerOk(agent, ["run", "--name", anon, "-v", "/data", "busybox", "true"]);
    await dockerOk(agent, ["run", "-d", "--name", user, "-v", `${used}:/data`, "busybox", "sleep", "300"]);
    const anonName = await anonVolume();
    assert.match(anonName, /^[0-9a-f]{64}$/);
    const vols = async () => (await dockerOk(agent, ["volume", "ls", "-q"])).trim().split("\n");
    // The stopped container still uses its anonymous volume.
    await dockerOk(agent, ["volume", "prune", "-f"]);
    assert.ok((await vols()).includes(anonName));
    await dockerOk(agent, ["rm", anon]);
    const pruned = await dockerOk(agent, ["volume", "prune", "-f"]);
    assert.match(pruned, new RegExp(`Deleted Volumes:\\n(.*\\n)*${anonName}\\n`));
    let left = await vols();
    assert.ok(!left.includes(anonName) && left.includes(named) && left.includes(used), left.join(" "));
    const all = await dockerOk(agent, ["volume", "prune", "-af"]);
    assert.ok(all.includes(named), all);
    left = await vols();
    assert.ok(!left.includes(named) && left.includes(used), left.join(" "));
  });

  test("network ls, inspect, connect and disconnect", async (t) => {
    const net = uniq("net");
    const c = uniq("netc");
    removeAfter(t, c);
    t.after(async () => void (await docker(agent, ["network", "rm", net])));
    const netId = (await dockerOk(agent, ["network", "create", net])).trim();
    const ls = await dockerOk(agent, ["network", "ls"]);
    assert.match(ls, /^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE$/m);
    for (const [name, driver] of [
      ["bridge", "bridge"],
      ["host", "host"],
      ["none", "null"],
      [net, "bridge"],
    ])
      assert.match(ls, new RegExp(`^[0-9a-f]{12}\\s+${name}\\s+${driver}\\s+local$`, "m"));
    assert.equal((await dockerOk(agent, ["network", "ls", "-q", "--filter", `name=${net}`])).trim(), netId.slice(0, 12));
    const info = JSON.parse(await dockerOk(agent, ["network", "inspect", net])) as Array<{
      Name: string;
      Id: string;
      Driver: string;
      IPAM: { Config: Array<{ Subnet: string; Gateway: string }> };
      Containers: Record<string, { Name: string; IPv4Address: string }>;
    }>;
    assert.equal(info[0]!.Name, net);
    assert.equal(info[0]!.Id, netId);
    assert.equal(info[0]!.Driver, "bridge");
    const { Subnet: subnet, Gateway: gateway } = info[0]!.IPAM.Config[0]!;
    assert.match(subnet, /^\d+\.\d+\.\d+\.0\/24$/);
    await dockerOk(agent, ["run", "-d", "--name", c, "busybox", "sleep", "300"]);
    const bridgeIp = await inspect(c, "{{.NetworkSettings.IPAddress}}");
    await dockerOk(agent, ["network", "connect", net, c]);
    const netIp = await inspect(c, `{{(index .NetworkSettings.Networks "${net}").IPAddress}}`);
    assert.equal(netIp.split(".").slice(0, 3).join("."), subnet.split(".").slice(0, 3).join("."));
    assert.match(await dockerOk(agent, ["exec", c, "ip", "-o", "-4", "addr"]), new RegExp(`eth1\\s+inet ${netIp.replace(/\./g, "\\.")}/24`));
    assert.equal((await dockerOk(agent, ["exec", c, "ping", "-c", "1", "-W", "2", gateway])).includes("1 packets received"), true);
    const members = JSON.parse(await dockerOk(agent, ["network", "inspect", "--format", "{{json .Containers}}", net])) as Record<
      string,
      { Name: string; IPv4Address: string }
    >;
    assert.deepEqual(
      Object.values(members).map((m) => [m.Name, m.IPv4Address]),
      [[c, `${netIp}/24`]],
    );
    const again = await docker(agent, ["network", "connect", net, c]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /already exists in network/);
    await dockerOk(agent, ["network", "disconnect", net, c]);
    assert.doesNotMatch(await dockerOk(agent, ["exec", c, "ip", "-o", "link"]), /eth1/);
    assert.equal(await inspect(c, "{{.NetworkSettings.IPAddress}}"), bridgeIp);
    assert.equal(await inspect(c, "{{len .NetworkSettings.Networks}}"), "1");
    assert.equal((await dockerOk(agent, ["network", "inspect", "--format", "{{len .Containers}}", net])).trim(), "0");
    const inUse = uniq("netuse");
    removeAfter(t, inUse);
    await dockerOk(agent, ["run", "-d", "--name", inUse, "--network", net, "busybox", "sleep", "300"]);
    const rmBusy = await docker(agent, ["network", "rm", net]);
    assert.notEqual(rmBusy.code, 0);
    assert.match(rmBusy.stderr, /has active endpoints/);
    await dockerOk(agent, ["rm", "-f", inUse]);
    await dockerOk(agent, ["network", "rm", net]);
    assert.ok(!(await dockerOk(agent, ["network", "ls", "--format", "{{.Name}}"])).split("\n").includes(net));
  });

  test("inspect: State.Status through created, running, paused, exited; IPAddress; Mounts", async (t) => {
    const c = uniq("states");
    const vol = uniq("statesvol");
    removeAfter(t, c);
    t.after(async () => void (await docker(agent, ["volume", "rm", "-f", vol])));
    const bind = await mkdtemp(join(work, "bind-"));
    await dockerOk(agent, ["create", "--name", c, "-v", `${vol}:/named`, "-v", `${bind}:/bound:ro`, "-v", "/anon", "busybox", "sleep", "300"]);
    const state = () => inspect(c, "{{.State.Status}} {{.State.Running}} {{.State.Paused}} [{{.NetworkSettings.IPAddress}}]");
    assert.equal(await state(), "created false false []");
    await dockerOk(agent, ["start", c]);
    const running = await state();
    assert.match(running, /^running true false \[\d+\.\d+\.\d+\.\d+\]$/);
    const ip = /\[(.*)\]/.exec(running)![1]!;
    assert.match(await dockerOk(agent, ["exec", c, "ip", "-o", "-4", "addr", "show", "eth0"]), new RegExp(`inet ${ip.replace(/\./g, "\\.")}/`));
    assert.notEqual(await inspect(c, "{{.State.Pid}}"), "0");
    await dockerOk(agent, ["pause", c]);
    assert.equal(await state(), `paused true true [${ip}]`);
    await dockerOk(agent, ["unpause", c]);
    await dockerOk(agent, ["stop", "-t", "0", c]);
    assert.equal(await state(), "exited false false []");
    assert.equal(await inspect(c, "{{.State.Pid}} {{.State.ExitCode}}"), "0 137");
    const mounts = JSON.parse(await inspect(c, "{{json .Mounts}}")) as Array<{ Type: string; Name?: string; Source: string; Destination: string; RW: boolean }>;
    const byDest = Object.fromEntries(mounts.map((m) => [m.Destination, m]));
    assert.deepEqual(Object.keys(byDest).sort(), ["/anon", "/bound", "/named"]);
    assert.equal(byDest["/named"]!.Type, "volume");
    assert.equal(byDest["/named"]!.Name, vol);
    assert.equal(byDest["/named"]!.Source, (await dockerOk(agent, ["volume", "inspect", "--format", "{{.Mountpoint}}", vol])).trim());
    assert.equal(byDest["/named"]!.RW, true);
    assert.deepEqual([byDest["/bound"]!.Type, byDest["/bound"]!.Source, byDest["/bound"]!.RW], ["bind", bind, false]);
    assert.equal(byDest["/anon"]!.Type, "volume");
    assert.match(byDest["/anon"]!.Name!, /^[0-9a-f]{64}$/);
  });

  test("rm -v removes the container's anonymous volumes, not its named ones", async (t) => {
    const c = uniq("rmv");
    const named = uniq("rmvnamed");
    removeAfter(t, c);
    t.after(async () => void (await docker(agent, ["volume", "rm", "-f", named])));
    await dockerOk(agent, ["run", "-d", "--name", c, "-v", "/anon", "-v", `${named}:/named`, "busybox", "sleep", "300"]);
    const anon = await inspect(c, '{{range .Mounts}}{{if eq .Destination "/anon"}}{{.Name}}{{end}}{{end}}');
    const anonDir = await inspect(c, '{{range .Mounts}}{{if eq .Destination "/anon"}}{{.Source}}{{end}}{{end}}');
    assert.ok(existsSync(anonDir));
    const before = (await dockerOk(agent, ["volume", "ls", "-q"])).split("\n");
    assert.ok(before.includes(anon) && before.includes(named));
    await dockerOk(agent, ["rm", "-f", "-v", c]);
    const after = (await dockerOk(agent, ["volume", "ls", "-q"])).split("\n");
    assert.ok(!after.includes(anon), "the anonymous volume is gone");
    assert.ok(after.includes(named), "the named volume is kept");
    assert.ok(!existsSync(anonDir));
  });

  test("a new named volume is first filled from the image's content at its path; a non-empty one is left alone", async (t) => {
    const vol = uniq("filled");
    t.after(async () => void (await docker(agent, ["volume", "rm", "-f", vol])));
    assert.equal(
      await dockerOk(agent, ["run", "--rm", "-v", `${vol}:/etc`, "busybox", "sh", "-c", "echo added > /etc/added; cat /etc/passwd | head -1"]),
      "root:x:0:0:root:/root:/bin/sh\n",
    );
    const mp = (await dockerOk(agent, ["volume", "inspect", "--format", "{{.Mountpoint}}", vol])).trim();
    const files = await readdir(mp);
    for (const f of ["passwd", "group", "added"]) assert.ok(files.includes(f), `${f} not in the volume: ${files.join(" ")}`);
    assert.equal(await readFile(join(mp, "passwd"), "utf8"), await dockerOk(agent, ["run", "--rm", "busybox", "cat", "/etc/passwd"]));
    // Not copied again: the change made in the volume stays, a deletion too.
    await rm(join(mp, "group"));
    assert.equal(
      await dockerOk(agent, [
        "run",
        "--rm",
        "-v",
        `${vol}:/etc`,
        "busybox",
        "sh",
        "-c",
        "cat /etc/added; test -e /etc/group && echo group-back || echo no-group",
      ]),
      "added\nno-group\n",
    );
  });

  test("bind mounts: read-write changes the host directory, :ro refuses writes", async (t) => {
    const dir = await mkdtemp(join(work, "bind-"));
    await writeFile(join(dir, "host.txt"), "from the host\n");
    assert.equal(
      await dockerOk(agent, ["run", "--rm", "-v", `${dir}:/b`, "busybox", "sh", "-c", "cat /b/host.txt; echo from-container > /b/c.txt"]),
      "from the host\n",
    );
    assert.equal(await readFile(join(dir, "c.txt"), "utf8"), "from-container\n");
    const ro = await docker(agent, ["run", "--rm", "-v", `${dir}:/b:ro`, "busybox", "sh", "-c", "cat /b/host.txt; echo nope > /b/host.txt"]);
    assert.notEqual(ro.code, 0);
    assert.equal(ro.stdout, "from the host\n");
    assert.match(ro.stderr, /Read-only file system/);
    assert.equal(await readFile(join(dir, "host.txt"), "utf8"), "from the host\n");
    const roFile = await docker(agent, ["run", "--rm", "-v", `${join(dir, "host.txt")}:/etc/motd:ro`, "busybox", "sh", "-c", "cat /etc/motd; rm /etc/motd"]);
    assert.notEqual(roFile.code, 0);
    assert.equal(roFile.stdout, "from the host\n");
  });

  test("restart policies across an agent restart: always comes back (even stopped by hand), unless-stopped only if not stopped", async (t) => {
    const c = uniq("survives");
    const alwaysStopped = uniq("alwaysstopped");
    const unlessStopped = uniq("unlessstopped");
    const unlessDied = uniq("unlessdied");
    removeAfter(t, c, alwaysStopped, unlessStopped, unlessDied);
    await dockerOk(agent, ["run", "-d", "--name", c, "--restart", "always", "busybox", "sleep", "300"]);
    await dockerOk(agent, ["run", "-d", "--name", alwaysStopped, "--restart", "always", "busybox", "sleep", "300"]);
    await dockerOk(agent, ["run", "-d", "--name", unlessStopped, "--restart", "unless-stopped", "busybox", "sleep", "300"]);
    await dockerOk(agent, ["run", "-d", "--name", unlessDied, "--restart", "unless-stopped", "busybox", "sleep", "300"]);
    await dockerOk(agent, ["stop", "-t", "0", alwaysStopped, unlessStopped]);
    const unlessPid = await inspect(unlessDied, "{{.State.Pid}}");
    const pid = await inspect(c, "{{.State.Pid}}");
    await agent.kill();
    // The container dies while the agent is away.
    process.kill(Number(pid), "SIGKILL");
    process.kill(Number(unlessPid), "SIGKILL");
    await sleep(500);
    await agent.restart();
    assert.ok(await poll(async () => (await inspect(c, "{{.State.Status}}")) === "running", 15_000), await inspect(c, "{{.State.Status}} {{.State.Error}}"));
    const now = await inspect(c, "{{.State.Pid}} {{.RestartCount}}");
    assert.notEqual(now.split(" ")[0], pid);
    assert.ok(Number(now.split(" ")[1]) >= 1, now);
    assert.equal(await dockerOk(agent, ["exec", c, "echo", "back"]), "back\n");
    assert.ok(
      await poll(async () => (await inspect(unlessDied, "{{.State.Status}}")) === "running", 15_000),
      "an unless-stopped container that died comes back",
    );
    // Docker's daemon start: `always` ignores a manual stop, `unless-stopped` honours it.
    assert.ok(
      await poll(async () => (await inspect(alwaysStopped, "{{.State.Status}}")) === "running", 15_000),
      "a stopped always container comes back after an agent restart",
    );
    assert.equal(await inspect(unlessStopped, "{{.State.Status}}"), "exited", "a stopped unless-stopped container stays stopped");
  });
});
