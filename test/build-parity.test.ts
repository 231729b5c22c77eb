// The same Dockerfiles built by Berth's agent and by Docker Engine 20.10's classic builder,
// through the same docker CLI 28: `docker run` output, `docker inspect` Config and
// `docker history` must agree. The base is the fixture busybox (the seeds use Docker Hub's
// ubuntu and centos). Builds use `--network none` (the private dockerd has no bridge).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { link, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dockerCli, dockerCliOk, type CliTarget } from "./helpers/dockerd.ts";
import { startBerthAndDocker, type BerthAndDocker } from "./helpers/parity.ts";
import { writeTree, type Files } from "./helpers/files.ts";

const CASES: Array<{ name: string; files: Files; run?: string[] }> = [
  { name: "hello-docker", files: { Dockerfile: `FROM busybox\nCMD echo "hello docker!"\n` } },
  {
    name: "multi-stage-args",
    files: {
      Dockerfile: [
        "ARG BASE=busybox",
        "FROM ${BASE} AS builder",
        "ARG GREETING=hello",
        'ENV TARGET_DIR=/out WHO="the world"',
        'RUN mkdir -p $TARGET_DIR && echo "$GREETING $WHO" > ${TARGET_DIR}/msg',
        "FROM busybox",
        "COPY --from=builder /out/msg /msg",
        "ENV DEST=${TARGET_DIR:-/unset} PATH=/usr/local/bin:$PATH",
        "LABEL stage.dest=$DEST maintainer=berth",
        "EXPOSE 8080 53/udp",
        "VOLUME /data",
        "STOPSIGNAL SIGINT",
        "HEALTHCHECK --interval=5s --retries=2 CMD cat /msg",
        'ENTRYPOINT ["/bin/cat"]',
        'CMD ["/msg"]',
      ].join("\n"),
    },
  },
  {
    name: "files",
    files: {
      Dockerfile:
        "FROM busybox\nCOPY . /app/\nCOPY *.txt /globbed/\nCOPY --chown=nobody data/ /owned/\nCMD find /app /globbed /owned | sort; ls -ln /owned | awk 'NR>1{print $1, $2, $3, $4, $NF}'; readlink /app/data/link\n",
      ".dockerignore": "secret*\nbuild/\n!build/keep\n",
      "one.txt": "1",
      "two.txt": "2",
      "secret.key": "not sent",
      "build/junk": "x",
      "build/keep": "kept",
      "data/a": "a",
      "data/link": (p) => symlink("a", p),
      "data/hard": (p) => link(join(p, "..", "a"), p),
    },
  },
  {
    name: "user-workdir",
    files: {
      Dockerfile:
        "FROM busybox\nWORKDIR /srv/app\nUSER nobody\nWORKDIR sub\nRUN id -u > /tmp/uid\nCMD pwd; id -un; cat /tmp/uid; ls -ld /srv/app/sub | awk '{print $1, $3}'\n",
    },
  },
];

describe("docker build: Berth and Docker Engine 20.10 agree", () => {
  let pair: BerthAndDocker | undefined;
  let work: string | undefined;
  let berth: CliTarget;
  let engine: CliTarget;

  after(async () => {
    await pair?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-build-parity-"));
    // The agent reaches the fixture registry as its Docker Hub mirror, so `FROM busybox` works as written.
    pair = await startBerthAndDocker({ images: ["busybox"], agent: (reg) => ({ registryMirrors: [reg.url] }) });
    ({ berth, engine } = pair);
    await dockerCliOk(berth, ["pull", "busybox"]);
    await dockerCliOk(engine, ["pull", pair.fx.busybox.ref]);
    await dockerCliOk(engine, ["tag", pair.fx.busybox.ref, "busybox:latest"]);
  });

  const contextDir = (name: string, files: Files): Promise<string> => writeTree(join(work!, name), files);

  /** What the user compares: run output, Config (the parent image's ID aside), history (content hashes aside). */
  async function observe(target: CliTarget, tag: string, runArgs: string[]) {
    const run = await dockerCliOk(target, ["run", "--rm", "--network", "none", ...runArgs, tag]);
    const config = JSON.parse(await dockerCliOk(target, ["inspect", "--format", "{{json .Config}}", tag])) as Record<string, unknown>;
    delete config.Image;
    const history = (await dockerCliOk(target, ["history", "--no-trunc", "--format", "{{.CreatedBy}}\t{{.Size}}", tag]))
      .trim()
      .split("\n")
      .map((l) => {
        const [by, size] = l.split("\t");
        return `${by!.replace(/(file|dir|multi):[0-9a-f]{64}/, "$1:<hash>")} [${size === "0B" ? "empty" : "data"}]`;
      });
    return { run, config, history };
  }

  for (const c of CASES) {
    test(c.name, async () => {
      const dir = await contextDir(c.name, c.files);
      const tag = `parity/${c.name}:1`;
      const ours = await dockerCli(berth, ["build", "--network", "none", "-t", tag, dir]);
      assert.equal(ours.code, 0, ours.stdout + ours.stderr);
      const theirs = await dockerCli(engine, ["build", "--network", "none", "-t", tag, dir]);
      assert.equal(theirs.code, 0, theirs.stdout + theirs.stderr);
      const steps = (s: string) => s.split("\n").filter((l) => l.startsWith("Step ") || l.startsWith("Successfully tagged"));
      assert.deepEqual(steps(ours.stdout), steps(theirs.stdout));
      const a = await observe(berth, tag, c.run ?? []);
      const b = await observe(engine, tag, c.run ?? []);
      assert.equal(a.run, b.run);
      assert.deepEqual(a.config, b.config);
      assert.deepEqual(a.history, b.history);
    });
  }

  test("ONBUILD, then a failing RUN: same triggers, same error and exit code", async () => {
    const parent = await contextDir("onbuild-parent", { Dockerfile: "FROM busybox\nONBUILD COPY marker /marker\nONBUILD RUN echo triggered > /triggered\n" });
    const child = await contextDir("onbuild-child", { Dockerfile: "FROM parity/onbuild\nCMD cat /marker /triggered\n", marker: "child\n" });
    for (const t of [berth, engine]) {
      const p = await dockerCli(t, ["build", "--network", "none", "-t", "parity/onbuild", parent]);
      assert.equal(p.code, 0, p.stdout + p.stderr);
      const ch = await dockerCli(t, ["build", "--network", "none", "-t", "parity/onbuild-child", child]);
      assert.equal(ch.code, 0, ch.stdout + ch.stderr);
      assert.match(ch.stdout, /# Executing 2 build triggers\n/);
    }
    const a = await observe(berth, "parity/onbuild-child", []);
    const b = await observe(engine, "parity/onbuild-child", []);
    assert.equal(a.run, "child\ntriggered\n");
    assert.equal(a.run, b.run);
    assert.deepEqual(a.config, b.config);
    assert.deepEqual(a.history, b.history);

    const failing = await contextDir("failing", { Dockerfile: "FROM busybox\nRUN echo about to fail && exit 7\n" });
    const ours = await dockerCli(berth, ["build", "--network", "none", failing]);
    const theirs = await dockerCli(engine, ["build", "--network", "none", failing]);
    assert.equal(ours.code, 7);
    assert.equal(ours.code, theirs.code);
    const last = (s: string) => s.trim().split("\n").at(-1);
    assert.equal(last(ours.stderr), last(theirs.stderr));
    assert.match(ours.stdout, /about to fail\n/);
  });
});
