// `docker build` through the real docker CLI 28 (classic builder, no buildx) against a real
// agent. The seeds' Dockerfiles use Docker Hub's ubuntu and centos: here the base is the
// fixture busybox (pulled through the agent's mirror as `busybox`), everything else as written.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { link, readdir, symlink, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { docker, dockerOk } from "./helpers/agent.ts";
import { writeTree, type Files } from "./helpers/files.ts";
import { until } from "./helpers/wait.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";
import { makeTar } from "../agent/engine/layers/testing-tar.ts";

const execFileP = promisify(execFile);

describe("docker build (classic builder) through the docker CLI", () => {
  let bb: BusyboxAgent;
  let n = 0;
  // No DOCKER_BUILDKIT: the CLI without buildx falls back to the classic builder, as for a user.
  const env = {};

  before(async () => {
    bb = await startBusyboxAgent("build");
  });
  after(async () => {
    await bb?.stop();
  });

  /** A fresh context directory with these files (string content, or a function that makes the entry). */
  const context = (files: Files): Promise<string> => writeTree(join(bb.work, `ctx-${++n}`), files);

  const build = (args: string[], opts: { input?: Buffer | string } = {}) => docker(bb.agent, ["build", ...args], { ...opts, env, timeoutMs: 180_000 });
  const run = (args: string[]) => dockerOk(bb.agent, ["run", "--rm", ...args]);

  /** What a user would find left of a build: containers, and the agent's own build directory. */
  async function leftovers(): Promise<{ containers: string; buildDirs: string[]; mounts: string[] }> {
    const containers = (await dockerOk(bb.agent, ["ps", "-aq"])).trim();
    const buildDirs = await readdir(join(bb.agent.dataRoot, "build")).catch(() => []);
    const mountinfo = (await execFileP("cat", ["/proc/self/mountinfo"])).stdout;
    const mounts = mountinfo.split("\n").filter((l) => l.includes(bb.agent.dataRoot));
    return { containers, buildDirs, mounts };
  }

  test("the seeds' hello-docker: build -t, image ls, run", async () => {
    const dir = await context({ Dockerfile: `FROM busybox\nCMD echo "hello docker!"\n` });
    const r = await build(["-t", "shuoliuchn/hello-docker", dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /DEPRECATED: The legacy builder is deprecated/);
    assert.match(r.stdout, /Step 1\/2 : FROM busybox\n ---> [0-9a-f]{12}\n/);
    assert.match(r.stdout, /Step 2\/2 : CMD echo "hello docker!"\n ---> Running in|Step 2\/2 : CMD echo "hello docker!"\n ---> [0-9a-f]{12}\n/);
    const id = /Successfully built ([0-9a-f]{12})/.exec(r.stdout)?.[1];
    assert.ok(id, r.stdout);
    assert.match(r.stdout, /Successfully tagged shuoliuchn\/hello-docker:latest\n/);
    const ls = await dockerOk(bb.agent, ["image", "ls", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert.deepEqual(ls.trim().split("\n").sort(), ["busybox:latest " + (await imageId("busybox")), `shuoliuchn/hello-docker:latest ${id}`].sort());
    assert.equal(await run(["shuoliuchn/hello-docker"]), "hello docker!\n");
    const cmd = await dockerOk(bb.agent, ["inspect", "--format", "{{json .Config.Cmd}}", "shuoliuchn/hello-docker"]);
    assert.equal(cmd.trim(), `["/bin/sh","-c","echo \\"hello docker!\\""]`);
    const hist = await dockerOk(bb.agent, ["history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}", "shuoliuchn/hello-docker"]);
    assert.equal(hist.split("\n")[0], `/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "echo \\"hello docker!\\""]|0B`);
  });

  async function imageId(name: string): Promise<string> {
    return (await dockerOk(bb.agent, ["image", "inspect", "--format", "{{.Id}}", name])).trim().slice(7, 19);
  }

  test("the seeds' RUN step: a layer from a real container, output streamed, and the cache on rebuild", async () => {
    const dir = await context({
      Dockerfile: `FROM busybox\nRUN echo installing && mkdir -p /opt/lrzsz && echo rz > /opt/lrzsz/bin\nCOPY hello.txt /opt/\nWORKDIR /opt/work\nCMD cat /opt/lrzsz/bin /opt/hello.txt\n`,
      "hello.txt": "hi from context\n",
    });
    const first = await build(["-t", "shuoliuchn/centos-lrzsz2", dir]);
    assert.equal(first.code, 0, first.stdout + first.stderr);
    assert.match(first.stdout, / ---> Running in [0-9a-f]{12}\ninstalling\nRemoving intermediate container [0-9a-f]{12}\n/);
    assert.equal(await run(["shuoliuchn/centos-lrzsz2"]), "rz\nhi from context\n");
    assert.equal(await run(["shuoliuchn/centos-lrzsz2", "pwd"]), "/opt/work\n");
    const again = await build(["-t", "shuoliuchn/centos-lrzsz2", dir]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout.match(/ ---> Using cache/g)?.length, 4, again.stdout);
    assert.doesNotMatch(again.stdout, /Running in/);
    assert.equal(/Successfully built (\w+)/.exec(again.stdout)?.[1], /Successfully built (\w+)/.exec(first.stdout)?.[1]);
    // A changed source file: the COPY and what follows are rebuilt, the RUN before stays cached.
    await writeFile(join(dir, "hello.txt"), "changed\n");
    const changed = await build(["-t", "shuoliuchn/centos-lrzsz2", dir]);
    assert.equal(changed.code, 0, changed.stderr);
    assert.equal(changed.stdout.match(/ ---> Using cache/g)?.length, 1, changed.stdout);
    assert.equal(await run(["shuoliuchn/centos-lrzsz2"]), "rz\nchanged\n");
    const hist = await dockerOk(bb.agent, ["history", "--no-trunc", "--format", "{{.CreatedBy}}", "shuoliuchn/centos-lrzsz2"]);
    const lines = hist.trim().split("\n");
    assert.equal(lines[0], `/bin/sh -c #(nop)  CMD ["/bin/sh" "-c" "cat /opt/lrzsz/bin /opt/hello.txt"]`);
    assert.equal(lines[1], `/bin/sh -c #(nop) WORKDIR /opt/work`);
    assert.match(lines[2]!, /^\/bin\/sh -c #\(nop\) COPY file:[0-9a-f]{64} in \/opt\/ $/);
    assert.equal(lines[3], `/bin/sh -c echo installing && mkdir -p /opt/lrzsz && echo rz > /opt/lrzsz/bin`);
    assert.deepEqual(await leftovers(), { containers: "", buildDirs: [], mounts: [] });
  });

  test("multi-stage, ARG before FROM, ARG/ENV expansion, --build-arg, --target, labels", async () => {
    const dir = await context({
      Dockerfile: [
        "ARG BASE=busybox",
        "FROM ${BASE} AS builder",
        "ARG GREETING=hello",
        'ENV TARGET_DIR=/out WHO="the world"',
        'RUN mkdir -p $TARGET_DIR && echo "$GREETING $WHO" > ${TARGET_DIR}/msg',
        "",
        "FROM busybox AS other",
        "RUN echo other > /other",
        "",
        "FROM scratch",
        "COPY --from=builder /out/msg /msg",
        "COPY --from=busybox /bin/busybox /bin/cat",
        "ENV DEST=${TARGET_DIR:-/unset}",
        "LABEL stage.dest=$DEST",
        'ENTRYPOINT ["/bin/cat"]',
        'CMD ["/msg"]',
      ].join("\n"),
    });
    const r = await build(["-t", "multi:1", "--build-arg", "GREETING=bonjour", "--build-arg", "UNUSED=1", "--label", "from.cli=yes", dir]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Step 1\/15 : ARG BASE=busybox\nStep 2\/15 : FROM \$\{BASE\} AS builder\n ---> [0-9a-f]{12}\n/);
    assert.match(r.stdout, /\[Warning\] One or more build-args \[UNUSED\] were not consumed/);
    assert.equal(await run(["multi:1"]), "bonjour the world\n");
    const config = JSON.parse(await dockerOk(bb.agent, ["inspect", "--format", "{{json .Config}}", "multi:1"])) as Record<string, unknown>;
    assert.deepEqual(config.Labels, { "stage.dest": "/unset", "from.cli": "yes" });
    assert.deepEqual(config.Env, ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "DEST=/unset"]);
    assert.deepEqual(config.Entrypoint, ["/bin/cat"]);
    const layers = (await dockerOk(bb.agent, ["inspect", "--format", "{{len .RootFS.Layers}}", "multi:1"])).trim();
    assert.equal(layers, "2");
    // --target stops at a stage: the `other` stage's file, and nothing of the last stage.
    const t = await build(["-t", "multi:other", "--target", "other", dir]);
    assert.equal(t.code, 0, t.stderr);
    assert.equal(await run(["multi:other", "cat", "/other"]), "other\n");
    const missing = await build(["--target", "nope", dir]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /failed to reach build target nope in Dockerfile/);
  });

  test(".dockerignore, COPY of directories, globs, symlinks and hard links, --chown and --chmod", async () => {
    const dir = await context({
      Dockerfile: [
        "FROM busybox",
        "COPY . /app/",
        "COPY *.txt /globbed/",
        "COPY --chown=nobody --chmod=640 data/ /owned/",
        "RUN ls -ln /owned | awk 'NR>1{print $1, $3, $4, $NF}' && readlink /app/data/link && stat -c %h /app/data/a /app/data/hard",
      ].join("\n"),
      ".dockerignore": "secret*\nbuild/\n!build/keep\n",
      "one.txt": "1",
      "two.txt": "2",
      "secret.key": "do not send",
      "build/junk": "x",
      "build/keep": "kept",
      "data/a": "a",
      "data/link": (p) => symlink("a", p),
      "data/hard": async (p) => link(join(p, "..", "a"), p),
    });
    const r = await build(["-t", "files:1", dir]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /-rw-r----- 65534 65534 a\n/);
    assert.match(r.stdout, /\na\n2\n2\n/);
    const listing = await run(["files:1", "sh", "-c", "cd /app && find . | sort && ls /globbed"]);
    assert.equal(
      listing,
      [
        ".",
        "./.dockerignore",
        "./Dockerfile",
        "./build",
        "./build/keep",
        "./data",
        "./data/a",
        "./data/hard",
        "./data/link",
        "./one.txt",
        "./two.txt",
        "one.txt",
        "two.txt",
        "",
      ].join("\n"),
    );
  });

  test("USER and WORKDIR: the directory is created, RUN runs as the user there", async () => {
    const dir = await context({ Dockerfile: "FROM busybox\nWORKDIR /srv/app\nUSER nobody\nWORKDIR sub\nRUN id -u && pwd\n" });
    // --pull: the base is pulled again (from the fixture registry, the agent's mirror) before the build.
    const r = await build(["--pull", "-t", "user:1", dir]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Step 1\/5 : FROM busybox\nlatest: Pulling from library\/busybox\n/);
    assert.match(r.stdout, /\n65534\n\/srv\/app\/sub\n/);
    assert.equal(await run(["user:1", "sh", "-c", "id -un; pwd"]), "nobody\n/srv/app/sub\n");
  });

  test("ONBUILD triggers run in the child build", async () => {
    const parent = await context({ Dockerfile: "FROM busybox\nONBUILD COPY marker /marker\nONBUILD RUN echo triggered > /triggered\n" });
    assert.equal((await build(["-t", "onbuild-parent", parent])).code, 0);
    const onb = JSON.parse(await dockerOk(bb.agent, ["inspect", "--format", "{{json .Config.OnBuild}}", "onbuild-parent"])) as string[];
    assert.deepEqual(onb, ["COPY marker /marker", "RUN echo triggered > /triggered"]);
    const child = await context({ Dockerfile: "FROM onbuild-parent\nCMD cat /marker /triggered\n", marker: "from child context\n" });
    const r = await build(["-t", "onbuild-child", child]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /# Executing 2 build triggers\n/);
    assert.equal(await run(["onbuild-child"]), "from child context\ntriggered\n");
    assert.equal((await dockerOk(bb.agent, ["inspect", "--format", "{{json .Config.OnBuild}}", "onbuild-child"])).trim(), "null");
  });

  test("a failing RUN: its exit code and output, and nothing left behind", async () => {
    const before = (await dockerOk(bb.agent, ["images", "-aq"])).trim().split("\n").length;
    const dir = await context({ Dockerfile: "FROM busybox\nRUN echo about to fail && touch /made && exit 3\nRUN echo never\n" });
    const r = await build(["-t", "fails:1", dir]);
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /about to fail\n/);
    assert.match(r.stderr, /The command '\/bin\/sh -c echo about to fail && touch \/made && exit 3' returned a non-zero code: 3/);
    assert.doesNotMatch(r.stdout, /never/);
    assert.deepEqual(await leftovers(), { containers: "", buildDirs: [], mounts: [] });
    assert.equal((await dockerOk(bb.agent, ["images", "-aq"])).trim().split("\n").length, before);
    assert.equal((await docker(bb.agent, ["image", "inspect", "fails:1"])).code, 1);
  });

  test("rmi of a built image removes its intermediate images; builder prune removes what a failed build left", async () => {
    const all = async () => (await dockerOk(bb.agent, ["images", "-aq"])).trim().split("\n").filter(Boolean).sort();
    const before = await all();
    const topLevel = async () => (await dockerOk(bb.agent, ["images", "-q"])).trim().split("\n").filter(Boolean).length;
    const topBefore = await topLevel();
    const ok = await build(["-t", "rmi:1", await context({ Dockerfile: "FROM busybox\nENV X=1\nRUN echo x > /x\nCMD cat /x\n" })]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((await all()).length, before.length + 3);
    assert.equal(await topLevel(), topBefore + 1, "intermediate images are listed only with -a");
    const rmi = await dockerOk(bb.agent, ["rmi", "rmi:1"]);
    // Three images (ENV, RUN, CMD steps) and the RUN step's layer, as Docker lists them.
    assert.equal(rmi.match(/^Deleted: sha256:/gm)?.length, 4, rmi);
    assert.deepEqual(await all(), before);

    const dangling = async () => (await dockerOk(bb.agent, ["images", "-q", "-f", "dangling=true"])).trim().split("\n").filter(Boolean);
    const danglingBefore = await dangling();
    const failed = await build([await context({ Dockerfile: "FROM busybox\nENV Y=1\nRUN exit 1\n" })]);
    assert.equal(failed.code, 1);
    assert.equal((await dangling()).length, danglingBefore.length + 1, "the failed build's ENV step is left as Docker leaves it");
    const prune = await dockerOk(bb.agent, ["builder", "prune", "-f"]);
    assert.match(prune, /Total reclaimed space:/);
    assert.deepEqual(await dangling(), []);
    const after = await all();
    assert.ok(
      after.every((id) => before.includes(id)),
      "nothing of the failed build is left",
    );
  });

  test("Dockerfile errors name the line", async () => {
    const dir = await context({ Dockerfile: "FROM busybox\nRUN true\nRUNN foo\n" });
    const r = await build([dir]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Error response from daemon: dockerfile parse error on line 3: unknown instruction: RUNN/);
    const flag = await build([await context({ Dockerfile: "FROM busybox\nCOPY --mount=x a b\n" })]);
    assert.match(flag.stderr, /dockerfile parse error on line 2: unknown flag: mount/);
    const empty = await build([await context({ Dockerfile: "\n" })]);
    assert.match(empty.stderr, /the Dockerfile \(Dockerfile\) cannot be empty/);
    const platform = await build(["--platform", "linux/s390x", await context({ Dockerfile: "FROM busybox\n" })]);
    assert.match(platform.stderr, /the build platform "linux\/s390x" is not supported: this node builds for linux\//);
  });

  test("escapes are refused: a symlink out of the context, COPY ../x, an ADD tar with ../, an ADD URL redirected to file:", async () => {
    const outside = join(bb.work, "outside-secret");
    await writeFile(outside, "host secret\n");
    const link = await context({ Dockerfile: "FROM busybox\nCOPY evil /stolen\n", evil: (p) => symlink(outside, p) });
    const r1 = await build(["-t", "escape:1", link]);
    assert.notEqual(r1.code, 0);
    assert.match(r1.stderr, /COPY failed: file not found in build context or excluded by \.dockerignore: stat evil: file does not exist/);
    const up = await context({ Dockerfile: "FROM busybox\nCOPY ../outside-secret /stolen\n" });
    const r2 = await build(["-t", "escape:2", up]);
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /COPY failed: file not found in build context/);
    const target = join(bb.work, "escaped-by-tar");
    const tar = makeTar([
      { name: "ok.txt", data: "ok" },
      { name: `../../../../../../../..${target}`, data: "pwned" },
    ]);
    const evilTar = await context({ Dockerfile: "FROM busybox\nADD evil.tar /x/\n", "evil.tar": async (p) => writeFile(p, tar) });
    const r3 = await build(["-t", "escape:3", evilTar]);
    assert.notEqual(r3.code, 0);
    assert.match(r3.stdout + r3.stderr, /ADD failed: extracting .*: .*(climbs|outside|unsafe|\.\.)/i);
    await assert.rejects(readdir(target));
    const server: Server = createServer((_req, res) => {
      res.writeHead(302, { Location: `file://${outside}` });
      res.end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const port = (server.address() as AddressInfo).port;
      const url = await context({ Dockerfile: `FROM busybox\nADD http://127.0.0.1:${port}/x /stolen\n` });
      const r4 = await build(["-t", "escape:4", url]);
      assert.notEqual(r4.code, 0);
      assert.match(r4.stdout + r4.stderr, /refusing to follow a redirect to file:/);
    } finally {
      server.close();
    }
    // A context tar crafted to climb out, or to write through a symlink of its own: refused before any step.
    const outsideDir = join(bb.work, "ctx-escape-target");
    for (const entries of [
      [
        { name: "Dockerfile", data: "FROM busybox\n" },
        { name: `../../../../../../../..${outsideDir}/x`, data: "pwned" },
      ],
      [
        { name: "Dockerfile", data: "FROM busybox\n" },
        { name: "up", type: "symlink" as const, linkname: outsideDir },
        { name: "up/x", data: "pwned" },
      ],
    ]) {
      const r = await build(["-"], { input: makeTar(entries) });
      assert.equal(r.code, 1);
      assert.match(r.stderr, /Error response from daemon: build context entry (escapes the context: \.\.\/|up\/x would be written through a symlink: up)/);
      await assert.rejects(readdir(outsideDir));
    }
    for (const t of ["escape:1", "escape:2", "escape:3", "escape:4"]) assert.equal((await docker(bb.agent, ["image", "inspect", t])).code, 1);
    assert.deepEqual(await leftovers(), { containers: "", buildDirs: [], mounts: [] });
  });

  test("contexts: a Dockerfile outside the context (-f), a gzip tar on stdin (-), -q prints only the ID", async () => {
    const dir = await context({ "app.txt": "app\n" });
    const outsideDir = await context({ "Dockerfile.special": "FROM busybox\nCOPY app.txt /\nCMD cat /app.txt\n" });
    const r = await build(["-t", "ctx:f", "-f", join(outsideDir, "Dockerfile.special"), dir]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(await run(["ctx:f"]), "app\n");
    const tgz = (await execFileP("tar", ["-czf", "-", "-C", dir, ".", "-C", outsideDir, "Dockerfile.special"], { encoding: "buffer", maxBuffer: 1 << 20 }))
      .stdout;
    const s = await build(["-t", "ctx:stdin", "-f", "Dockerfile.special", "-"], { input: tgz });
    assert.equal(s.code, 0, s.stdout + s.stderr);
    assert.equal(await run(["ctx:stdin"]), "app\n");
    const q = await build(["-q", "-t", "ctx:q", "-f", join(outsideDir, "Dockerfile.special"), dir]);
    assert.equal(q.code, 0, q.stderr);
    const id = (await dockerOk(bb.agent, ["image", "inspect", "--format", "{{.Id}}", "ctx:q"])).trim();
    assert.equal(q.stdout, `${id}\n`);
    const noFile = await build(["-f", "Nope", "-"], { input: tgz });
    assert.match(noFile.stderr, /Cannot locate specified Dockerfile: Nope/);
  });

  test("a client hanging up mid-RUN stops the build: no container, mount or build directory left", async () => {
    const dir = await context({ Dockerfile: "FROM busybox\nRUN echo started && sleep 300\n" });
    const child = spawn("docker", ["build", "-t", "hangup:1", dir], {
      env: { ...process.env, DOCKER_HOST: bb.agent.dockerHost, DOCKER_CONFIG: bb.agent.dockerConfig, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    try {
      await until("the RUN step started", () => out.includes("started\n"), 60_000);
      assert.equal((await dockerOk(bb.agent, ["ps", "-q"])).trim().split("\n").length, 1);
    } finally {
      child.kill("SIGKILL");
    }
    const left = await until(
      "the build cleaned up",
      async () => {
        const l = await leftovers();
        return l.containers === "" && l.buildDirs.length === 0 && l.mounts.length === 0 ? l : undefined;
      },
      30_000,
      bb.agent,
    );
    assert.deepEqual(left, { containers: "", buildDirs: [], mounts: [] });
    assert.equal((await docker(bb.agent, ["image", "inspect", "hangup:1"])).code, 1);
  });

  test("the agent killed mid-RUN: after its restart no build container, mount or half image is left", async () => {
    const imagesBefore = (await dockerOk(bb.agent, ["images", "-aq"])).trim();
    const dir = await context({ Dockerfile: "FROM busybox\nRUN echo running && sleep 300\n" });
    const child = spawn("docker", ["build", "-t", "killed:1", dir], {
      env: { ...process.env, DOCKER_HOST: bb.agent.dockerHost, DOCKER_CONFIG: bb.agent.dockerConfig, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    try {
      await until("the RUN step started", () => out.includes("running\n"), 60_000);
      await bb.agent.kill();
    } finally {
      child.kill("SIGKILL");
    }
    await bb.agent.restart();
    assert.deepEqual(await leftovers(), { containers: "", buildDirs: [], mounts: [] });
    assert.equal((await dockerOk(bb.agent, ["images", "-aq"])).trim(), imagesBefore);
    const snapshots = await readdir(join(bb.agent.dataRoot, "snapshots")).catch(() => []);
    assert.deepEqual(
      snapshots.filter((s) => /^[0-9a-f]{64}$/.test(s)),
      [],
    );
  });

  test("compose `build:` sections and the Python SDK's images.build, output streamed", async () => {
    const project = await context({
      "docker-compose.yml":
        "version: '3'\nservices:\n  web:\n    build:\n      context: ./app\n      args:\n        WHO: compose\n    image: compose-built:1\n",
      "app/Dockerfile": "FROM busybox\nARG WHO\nRUN echo building for $WHO\nCMD echo hello from $WHO-built\nENV WHO=$WHO\n",
    });
    const composeEnv = { ...process.env, DOCKER_HOST: bb.agent.dockerHost, DOCKER_CONFIG: bb.agent.dockerConfig, COMPOSE_DOCKER_CLI_BUILD: "0" };
    const built = await execFileP("docker-compose", ["--project-directory", project, "-f", join(project, "docker-compose.yml"), "build"], {
      env: composeEnv,
      cwd: project,
    });
    assert.match(built.stdout + built.stderr, /building for compose/);
    assert.match(built.stdout + built.stderr, /Successfully tagged compose-built:1/);
    assert.equal(await run(["compose-built:1"]), "hello from compose-built\n");

    const sdkDir = await context({ Dockerfile: "FROM busybox\nRUN echo step output from the sdk\nCMD echo sdk image runs\n" });
    const failing = await context({ Dockerfile: "FROM busybox\nRUN echo nope && exit 5\n" });
    const script = `
import docker, json, sys
client = docker.DockerClient(base_url=sys.argv[1])
image, logs = client.images.build(path=sys.argv[2], tag="sdk-built:1", rm=True)
print("STREAM " + json.dumps("".join(l.get("stream", "") for l in logs)))
print("RUN " + json.dumps(client.containers.run("sdk-built:1", remove=True).decode()))
try:
    client.images.build(path=sys.argv[3])
except docker.errors.BuildError as e:
    print("ERROR " + json.dumps(e.msg))
`;
    const { stdout } = await execFileP("python3", ["-c", script, bb.agent.dockerHost, sdkDir, failing]);
    const line = (tag: string) =>
      JSON.parse(
        stdout
          .split("\n")
          .find((l) => l.startsWith(tag + " "))!
          .slice(tag.length + 1),
      ) as string;
    assert.match(line("STREAM"), /Step 2\/3 : RUN echo step output from the sdk\n ---> Running in [0-9a-f]{12}\nstep output from the sdk\n/);
    assert.equal(line("RUN"), "sdk image runs\n");
    assert.equal(line("ERROR"), "The command '/bin/sh -c echo nope && exit 5' returned a non-zero code: 5");
  });

  test("--cache-from: an image without its build's intermediates (saved and loaded) serves as the cache", async () => {
    const dir = await context({ Dockerfile: "FROM busybox\nENV A=1\nRUN echo layer > /f\nCOPY x /x\nCMD cat /f /x\n", x: "copied\n" });
    const first = await build(["-t", "cf:1", dir]);
    assert.equal(first.code, 0, first.stderr);
    const tar = join(bb.work, "cf.tar");
    await dockerOk(bb.agent, ["save", "-o", tar, "cf:1"]);
    await dockerOk(bb.agent, ["rmi", "cf:1"]);
    await dockerOk(bb.agent, ["load", "-i", tar]);
    const id = await imageId("cf:1");
    // Without --cache-from nothing of the loaded image is a cache: its intermediates are gone.
    const without = await build(["-t", "cf:3", dir]);
    assert.match(without.stdout, /Running in/);
    // With it, only the source counts (not the intermediates just made): every step from cf:1.
    const cached = await build(["-t", "cf:2", "--cache-from", "cf:1", "--cache-from", "not-here:1", dir]);
    assert.equal(cached.code, 0, cached.stderr);
    assert.equal(cached.stdout.match(/ ---> Using cache/g)?.length, 4, cached.stdout);
    assert.doesNotMatch(cached.stdout, /Running in/);
    assert.match(cached.stdout, /cache-from image not-here:1 not found locally/);
    assert.match(cached.stdout, new RegExp(`Successfully built ${id}`));
    assert.equal(await run(["cf:2"]), "layer\ncopied\n");
  });

  test("ADD: a local tar archive is unpacked, a URL is downloaded (0600, named after the URL), SHELL applies to RUN", async () => {
    const archive = makeTar([
      { name: "pkg/", type: "directory" },
      { name: "pkg/bin.sh", data: "echo from archive\n", mode: 0o755, uid: 1000, gid: 1000 },
    ]);
    const server: Server = createServer((req, res) => {
      if (req.url === "/moved") {
        res.writeHead(301, { Location: "/files/notes.txt" });
        res.end();
        return;
      }
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("downloaded notes\n");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const port = (server.address() as AddressInfo).port;
      const dir = await context({
        Dockerfile: `FROM busybox\nADD pkg.tar.gz /opt/\nADD http://127.0.0.1:${port}/moved /downloads/\nSHELL ["/bin/sh", "-ec"]\nRUN sh /opt/pkg/bin.sh > /from-run\n`,
        "pkg.tar.gz": async (p) => writeFile(p, gzipSync(archive)),
      });
      const r = await build(["-t", "add:1", dir]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const out = await run(["add:1", "sh", "-c", "stat -c '%a %u:%g %n' /opt/pkg/bin.sh /downloads/moved; cat /downloads/moved /from-run"]);
      assert.equal(out, "755 1000:1000 /opt/pkg/bin.sh\n600 0:0 /downloads/moved\ndownloaded notes\nfrom archive\n");
    } finally {
      server.close();
    }
  });

  test("two builds of one context at once both succeed; --shm-size reaches RUN", async () => {
    const files: Record<string, string> = { Dockerfile: "FROM busybox\nCOPY . /ctx/\nRUN df -k /dev/shm | awk 'NR==2{print \"shm\", $2}'\n" };
    for (let i = 0; i < 50; i++) files[`f${i}.txt`] = `file ${i}\n`;
    const dir = await context(files);
    const [a, b] = await Promise.all([build(["--shm-size", "33554432", "-t", "twice:a", dir]), build(["--shm-size", "33554432", "-t", "twice:b", dir])]);
    assert.equal(a.code, 0, a.stdout + a.stderr);
    assert.equal(b.code, 0, b.stdout + b.stderr);
    assert.match(a.stdout + b.stdout, /\nshm 32768\n/);
    assert.equal(await run(["twice:b", "sh", "-c", "ls /ctx | wc -l"]), "51\n");
  });

  test("recent contexts are kept for unchanged rebuilds: at most four, no spooled tar left", async () => {
    const names = await readdir(join(bb.agent.dataRoot, "build-contexts"));
    assert.deepEqual(
      names.filter((n) => !n.startsWith("ctx-")),
      [],
    );
    assert.ok(names.length >= 1 && names.length <= 4, names.join(" "));
  });
});
