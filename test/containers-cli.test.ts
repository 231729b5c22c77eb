// The container chapters of the seeds through the real docker CLI against a real agent:
// run, ps, logs, exec, commit, history, diff, stop/start/restart, rm, published ports,
// limits, volumes and networks.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { docker, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";
import { sleep } from "./helpers/wait.ts";

const execFileP = promisify(execFile);

async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

describe("containers through the docker CLI", () => {
  let agent: AgentHandle;
  let work: string;

  let suite: BusyboxAgent | undefined;
  before(async () => void ({ agent, work } = suite = await startBusyboxAgent("containers")));
  after(() => suite?.stop());

  test("docker run -it busybox sh gives a working interactive shell (and exec -it too)", async () => {
    // script(1) gives the docker CLI a real terminal, as a person at a shell has.
    const session = async (command: string, lines: string[]) => {
      const child = spawn("script", ["-qfec", command, "/dev/null"], {
        env: { ...process.env, DOCKER_HOST: agent.dockerHost, DOCKER_CONFIG: agent.dockerConfig, TERM: "xterm" },
      });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
      for (const line of lines) {
        for (let i = 0; i < 100 && !out.includes("# "); i++) await sleep(50);
        child.stdin.write(line + "\r");
        await sleep(300);
      }
      const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      const code = await exited;
      clearTimeout(timer);
      return { code, out };
    };
    const run = await session("docker run -it --rm --name tty1 busybox sh", ["echo inside-$((6*7)); tty", "exit 4"]);
    assert.equal(run.code, 4, run.out);
    assert.match(run.out, /inside-42\r\n\/dev\/pts\/0/);
    await dockerOk(agent, ["run", "-d", "--name", "tty2", "busybox", "sleep", "60"]);
    const exec = await session("docker exec -it tty2 sh", ["echo exec-$((2+3)); tty", "exit 2"]);
    assert.equal(exec.code, 2, exec.out);
    assert.match(exec.out, /exec-5\r\n\/dev\/pts\/\d+/);
    await dockerOk(agent, ["rm", "-f", "tty2"]);
  });

  test("docker run prints the command's output and returns its exit code", async () => {
    const out = await docker(agent, ["run", "--rm", "busybox", "sh", "-c", "echo hello from berth; echo to stderr >&2; exit 3"]);
    assert.equal(out.code, 3, out.stderr);
    assert.equal(out.stdout, "hello from berth\n");
    assert.equal(out.stderr, "to stderr\n");
    const ps = await dockerOk(agent, ["ps", "-a", "-q"]);
    assert.equal(ps.trim(), "", "--rm removed the container");
  });

  test("run -itd, ps, exec, change files, commit -m -a, run the new image, history and diff", async () => {
    const id = (await dockerOk(agent, ["run", "-itd", "--name", "seed1", "busybox", "sh"])).trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    const ps = await dockerOk(agent, ["ps"]);
    assert.match(ps, /CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES/);
    assert.match(ps, new RegExp(`${id.slice(0, 12)}\\s+busybox\\s+"sh"\\s+.*Up .*seed1`));
    await dockerOk(agent, ["exec", "seed1", "sh", "-c", "mkdir -p /opt/tools && echo net-tools > /opt/tools/installed && rm /etc/group"]);
    const diff = await dockerOk(agent, ["diff", "seed1"]);
    assert.match(diff, /^A \/opt\/tools\/installed$/m);
    assert.match(diff, /^D \/etc\/group$/m);
    assert.match(diff, /^C \/etc$/m);
    const newId = (await dockerOk(agent, ["commit", "-m", "install net-tools", "-a", "evobot", "seed1", "centos_with_net"])).trim();
    assert.match(newId, /^sha256:[0-9a-f]{64}$/);
    const history = await dockerOk(agent, ["history", "--format", "{{.CreatedBy}}|{{.Comment}}", "centos_with_net"]);
    assert.match(history.split("\n")[0]!, /^sh\|install net-tools$/);
    const author = await dockerOk(agent, ["image", "inspect", "--format", "{{.Author}}", "centos_with_net"]);
    assert.equal(author.trim(), "evobot");
    const fromNew = await dockerOk(agent, ["run", "--rm", "centos_with_net", "cat", "/opt/tools/installed"]);
    assert.equal(fromNew, "net-tools\n");
    const gone = await docker(agent, ["run", "--rm", "centos_with_net", "ls", "/etc/group"]);
    assert.notEqual(gone.code, 0, "the deletion was committed as a whiteout");
    await dockerOk(agent, ["rm", "-f", "seed1"]);
  });

  test("logs, logs --tail and -t, logs -f follows until the container exits", async () => {
    await dockerOk(agent, ["run", "-d", "--name", "logger", "busybox", "sh", "-c", "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done"]);
    const follow = await dockerOk(agent, ["logs", "-f", "logger"]);
    assert.equal(follow, "line 1\nline 2\nline 3\nline 4\nline 5\n");
    const tail = await dockerOk(agent, ["logs", "--tail", "2", "logger"]);
    assert.equal(tail, "line 4\nline 5\n");
    const ts = await dockerOk(agent, ["logs", "-t", "--tail", "1", "logger"]);
    assert.match(ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line 5\n$/);
    const exited = await dockerOk(agent, ["ps", "-a", "--filter", "status=exited", "--format", "{{.Names}} {{.Status}}"]);
    assert.match(exited, /logger Exited \(0\)/);
    await dockerOk(agent, ["rm", "logger"]);
  });

  test("stop sends SIGTERM then SIGKILL after the timeout; start and restart; states in ps", async () => {
    await dockerOk(agent, ["run", "-d", "--name", "sleeper", "busybox", "sleep", "300"]);
    const t0 = Date.now();
    await dockerOk(agent, ["stop", "-t", "1", "sleeper"]);
    const took = Date.now() - t0;
    assert.ok(took >= 900 && took < 8000, `stop took ${took} ms`);
    let state = await dockerOk(agent, ["inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "sleeper"]);
    assert.equal(state.trim(), "exited 137");
    await dockerOk(agent, ["start", "sleeper"]);
    state = await dockerOk(agent, ["inspect", "--format", "{{.State.Status}}", "sleeper"]);
    assert.equal(state.trim(), "running");
    await dockerOk(agent, ["pause", "sleeper"]);
    assert.match(await dockerOk(agent, ["ps", "--format", "{{.Names}} {{.Status}}"]), /sleeper Up .* \(Paused\)/);
    await dockerOk(agent, ["unpause", "sleeper"]);
    const pidBefore = (await dockerOk(agent, ["inspect", "--format", "{{.State.Pid}}", "sleeper"])).trim();
    await dockerOk(agent, ["restart", "-t", "0", "sleeper"]);
    const pidAfter = (await dockerOk(agent, ["inspect", "--format", "{{.State.Pid}}", "sleeper"])).trim();
    assert.notEqual(pidAfter, pidBefore);
    const rmRunning = await docker(agent, ["rm", "sleeper"]);
    assert.notEqual(rmRunning.code, 0);
    assert.match(rmRunning.stderr, /You cannot remove a running container [0-9a-f]{64}\. Stop the container before attempting removal or force remove/);
    await dockerOk(agent, ["kill", "sleeper"]);
    assert.equal((await dockerOk(agent, ["inspect", "--format", "{{.State.Status}}", "sleeper"])).trim(), "exited");
    await dockerOk(agent, ["rm", "sleeper"]);
  });

  test("the seeds' shell idioms: docker rm $(docker ps -aq) and the status=exited filter", async () => {
    for (const n of ["idiom1", "idiom2"]) await dockerOk(agent, ["run", "--name", n, "busybox", "true"]);
    await dockerOk(agent, ["run", "-d", "--name", "idiom3", "busybox", "sleep", "60"]);
    const exited = (await dockerOk(agent, ["container", "ls", "-f", "status=exited", "-q"])).trim().split("\n");
    assert.equal(exited.length, 2);
    await dockerOk(agent, ["rm", ...exited]);
    const rest = (await dockerOk(agent, ["ps", "-aq"])).trim().split("\n").filter(Boolean);
    assert.equal(rest.length, 1, await dockerOk(agent, ["ps", "-a"]));
    await dockerOk(agent, ["rm", "-f", ...rest]);
    assert.equal((await dockerOk(agent, ["ps", "-aq"])).trim(), "");
  });

  test("a busybox httpd published with -p is fetched from the host", async () => {
    const port = await freePort();
    await writeFile(join(work, "index.html"), "hello from a container\n");
    await dockerOk(agent, ["run", "-d", "--name", "web", "-p", `${port}:80`, "-v", `${work}:/www:ro`, "busybox", "httpd", "-f", "-p", "80", "-h", "/www"]);
    let body = "";
    for (let i = 0; i < 50 && !body; i++) {
      body = await fetch(`http://127.0.0.1:${port}/index.html`).then(
        (r) => r.text(),
        () => "",
      );
      if (!body) await sleep(100);
    }
    assert.equal(body, "hello from a container\n");
    const portOut = await dockerOk(agent, ["port", "web"]);
    assert.match(portOut, new RegExp(`80/tcp -> 0\\.0\\.0\\.0:${port}`));
    const busy = await docker(agent, ["run", "-d", "--name", "web2", "-p", `${port}:80`, "busybox", "httpd", "-f"]);
    assert.notEqual(busy.code, 0);
    assert.match(busy.stderr, /port is already allocated|address already in use/);
    await docker(agent, ["rm", "-f", "web2"]);
    await dockerOk(agent, ["rm", "-f", "web"]);
    const after = await fetch(`http://127.0.0.1:${port}/`).then(
      () => "reachable",
      () => "refused",
    );
    assert.equal(after, "refused");
  });

  test("named volumes keep data across containers; volume ls/inspect/rm", async () => {
    await dockerOk(agent, ["volume", "create", "data1"]);
    await dockerOk(agent, ["run", "--rm", "-v", "data1:/data", "busybox", "sh", "-c", "echo persisted > /data/file"]);
    assert.equal(await dockerOk(agent, ["run", "--rm", "-v", "data1:/data", "busybox", "cat", "/data/file"]), "persisted\n");
    assert.match(await dockerOk(agent, ["volume", "ls"]), /local\s+data1/);
    const mp = (await dockerOk(agent, ["volume", "inspect", "--format", "{{.Mountpoint}}", "data1"])).trim();
    assert.equal(await readFile(join(mp, "file"), "utf8"), "persisted\n");
    await dockerOk(agent, ["volume", "rm", "data1"]);
  });

  test("user-defined networks: containers reach each other by name", async () => {
    await dockerOk(agent, ["network", "create", "appnet"]);
    await dockerOk(agent, ["run", "-d", "--name", "srv", "--network", "appnet", "busybox", "httpd", "-f", "-p", "8080", "-h", "/etc"]);
    const out = await dockerOk(agent, ["run", "--rm", "--network", "appnet", "busybox", "wget", "-q", "-O", "-", "http://srv:8080/hostname"]);
    assert.ok(out.length > 0);
    const none = await dockerOk(agent, ["run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"]);
    assert.doesNotMatch(none, /eth0/);
    await dockerOk(agent, ["rm", "-f", "srv"]);
    await dockerOk(agent, ["network", "rm", "appnet"]);
  });

  test("limits: a process over --memory is OOM-killed and inspect says so; --pids-limit stops a fork bomb", async () => {
    const oom = await docker(agent, [
      "run",
      "--name",
      "oom",
      "--memory",
      "16m",
      "--memory-swap",
      "16m",
      "busybox",
      "sh",
      "-c",
      "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
    ]);
    assert.equal(oom.code, 137);
    assert.equal((await dockerOk(agent, ["inspect", "--format", "{{.State.OOMKilled}}", "oom"])).trim(), "true");
    await dockerOk(agent, ["rm", "oom"]);
    const pids = await docker(agent, ["run", "--rm", "--pids-limit", "10", "busybox", "sh", "-c", "for i in $(seq 1 30); do sleep 5 & done; wait"]);
    assert.match(pids.stderr, /can't fork|Resource temporarily unavailable/);
    const badMem = await docker(agent, ["run", "--rm", "--memory", "1k", "busybox", "true"]);
    assert.notEqual(badMem.code, 0);
    assert.match(badMem.stderr, /Minimum memory limit allowed is 6MB/);
  });

  test("bad input: exec into a stopped container, unknown signal, a name already taken", async () => {
    await dockerOk(agent, ["create", "--name", "stopped", "busybox", "true"]);
    const ex = await docker(agent, ["exec", "stopped", "true"]);
    assert.notEqual(ex.code, 0);
    assert.match(ex.stderr, /is not running/);
    const taken = await docker(agent, ["create", "--name", "stopped", "busybox", "true"]);
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, /The container name "\/stopped" is already in use/);
    await dockerOk(agent, ["start", "stopped"]);
    await dockerOk(agent, ["run", "-d", "--name", "sig", "busybox", "sleep", "60"]);
    const sig = await docker(agent, ["kill", "-s", "SIGNOPE", "sig"]);
    assert.notEqual(sig.code, 0);
    assert.match(sig.stderr, /Invalid signal: SIGNOPE/);
    await dockerOk(agent, ["rm", "-f", "sig", "stopped"]);
  });

  test("containers keep running across a SIGKILL of the agent, and are adopted again", async () => {
    await dockerOk(agent, ["run", "-d", "--name", "survivor", "busybox", "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]);
    const pid = (await dockerOk(agent, ["inspect", "--format", "{{.State.Pid}}", "survivor"])).trim();
    await agent.kill();
    await sleep(500);
    await execFileP("kill", ["-0", pid]);
    await agent.restart();
    assert.equal((await dockerOk(agent, ["inspect", "--format", "{{.State.Status}} {{.State.Pid}}", "survivor"])).trim(), `running ${pid}`);
    const logs = await dockerOk(agent, ["logs", "--tail", "1", "survivor"]);
    assert.match(logs, /^tick \d+\n$/);
    assert.equal(await dockerOk(agent, ["exec", "survivor", "echo", "still here"]), "still here\n");
    await dockerOk(agent, ["stop", "-t", "1", "survivor"]);
    await dockerOk(agent, ["rm", "survivor"]);
  });
});
