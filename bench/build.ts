/**
 * `docker build` benchmark, side by side in one run, of a 10-step Dockerfile on a local
 * base image (the fixture busybox, pulled by each engine and tagged `bench-base`), with a
 * context of 200 small source files copied late (so that a changed file rebuilds only the
 * last steps). Every build uses `--network none` (the private dockerd has no bridge).
 *
 *   berth     the docker CLI 28 (/usr/local/bin/docker, classic builder: no buildx) against a
 *             Berth agent of the bench's own
 *   classic   the same CLI against Docker Engine 20.10 (test/helpers/dockerd.ts: own containerd,
 *             data root, sockets)
 *   buildkit  Debian's docker CLI 20.10 (/usr/bin/docker, which embeds BuildKit's client) with
 *             DOCKER_BUILDKIT=1 against the same dockerd
 *
 * Per round and engine, wall time of the client from spawn to exit:
 *   cold       `--no-cache` build
 *   unchanged  the same build again (every step from the cache)
 *   one file   after one source file changed (the late COPY and what follows rebuilt)
 * Engines take turns within a round. The median of N rounds is printed with the ratio to
 * Docker's classic builder and the targets (unchanged ≤ 0.5×, the others ≤ 0.8×).
 *
 * Usage: bench/build [--runs N] (default 3). Exits 1 if anything failed or a target was missed.
 * Everything it starts is removed at the end, on failure and on SIGINT/SIGTERM.
 */
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startRegistry } from "../test/fixtures/registry.ts";
import { pushFixtureImages } from "../test/fixtures/images.ts";
import { startDockerd } from "../test/helpers/dockerd.ts";
import { checkInterrupted, cliEnv, cpuCount, failure, gitRev, median, onCleanup, runMain, startBerth, table, timed } from "./lib.ts";

const TARGETS = { cold: 0.8, unchanged: 0.5, oneFile: 0.8 };
const CLI28 = "/usr/local/bin/docker";
const CLI20 = "/usr/bin/docker";
const SOURCE_FILES = 200;

const DOCKERFILE = `FROM bench-base
ENV APP=/app
WORKDIR /app
COPY deps.txt ./
RUN cp deps.txt deps.lock && mkdir -p lib && for i in $(seq 1 50); do echo $i > lib/f$i; done
ARG VERSION=1
LABEL version=$VERSION
COPY src/ ./src/
RUN cat src/*.txt | wc -c > /app/size
CMD ["cat", "/app/size"]
`;

type Engine = "berth" | "classic" | "buildkit";
type Phase = "cold" | "unchanged" | "oneFile";
const ENGINES: Engine[] = ["berth", "classic", "buildkit"];
const PHASES: Phase[] = ["cold", "unchanged", "oneFile"];

function log(s: string): void {
  process.stdout.write(s + "\n");
}

async function main(): Promise<number> {
  const runsArg = process.argv.indexOf("--runs");
  const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 3;
  if (!Number.isInteger(runs) || runs < 1) throw new Error("--runs takes a positive integer");

  const work = await mkdtemp(join(tmpdir(), "berth-bench-build-"));
  onCleanup(() => rm(work, { recursive: true, force: true }));
  const reg = await startRegistry({ auth: "none" });
  onCleanup(() => reg.stop());
  const fx = await pushFixtureImages(reg, { only: ["busybox"] });
  const agent = await startBerth();
  const dockerd = await startDockerd();
  onCleanup(() => dockerd.stop());

  const client = (engine: Engine) => ({
    cmd: engine === "buildkit" ? CLI20 : CLI28,
    env: { ...cliEnv(engine === "berth" ? agent : dockerd), ...(engine === "buildkit" ? { DOCKER_BUILDKIT: "1" } : { DOCKER_BUILDKIT: "0" }) },
  });
  const ok = async (engine: Engine, args: string[]) => {
    const c = client(engine);
    const r = await timed(c.cmd, args, c.env);
    if (r.code !== 0) throw new Error(failure(`${engine}: docker ${args.join(" ")}`, r));
    return r;
  };
  for (const engine of ["berth", "classic"] as const) {
    await ok(engine, ["pull", "-q", fx.busybox.ref]);
    await ok(engine, ["tag", fx.busybox.ref, "bench-base:latest"]);
  }

  const ctx = join(work, "ctx");
  await mkdir(join(ctx, "src"), { recursive: true });
  await writeFile(join(ctx, "Dockerfile"), DOCKERFILE);
  await writeFile(join(ctx, "deps.txt"), "left-pad 1.3.0\n");
  for (let i = 0; i < SOURCE_FILES; i++) await writeFile(join(ctx, "src", `f${i}.txt`), `source file ${i}\n`.repeat(20));

  const samples = new Map<string, number[]>();
  const add = (engine: Engine, phase: Phase, s: number) => {
    const k = `${engine}|${phase}`;
    samples.set(k, [...(samples.get(k) ?? []), s]);
  };
  let edit = 0;
  const build = async (engine: Engine, extra: string[]) => {
    const r = await ok(engine, ["build", "--network", "none", "-t", `bench-build-${engine}`, ...extra, ctx]);
    return r.seconds;
  };
  // One untimed warm-up each: the base image's layers read once, the daemons' caches primed.
  for (const engine of ENGINES) await build(engine, ["--no-cache"]);

  for (let round = 1; round <= runs; round++) {
    for (const engine of ENGINES) {
      checkInterrupted();
      const cold = await build(engine, ["--no-cache"]);
      const unchanged = await build(engine, []);
      await writeFile(join(ctx, "src", "f7.txt"), `edited ${++edit}\n`);
      const oneFile = await build(engine, []);
      add(engine, "cold", cold);
      add(engine, "unchanged", unchanged);
      add(engine, "oneFile", oneFile);
      log(`round ${round}/${runs} ${engine}: cold ${cold.toFixed(2)} s, unchanged ${unchanged.toFixed(2)} s, one file ${oneFile.toFixed(2)} s`);
    }
  }
  // The built images must answer the same.
  const outputs = new Set<string>();
  for (const engine of ["berth", "classic"] as const) outputs.add((await ok(engine, ["run", "--rm", "--network", "none", `bench-build-${engine}`])).stdout);
  if (outputs.size !== 1) throw new Error(`the images built differ: ${[...outputs].join(" / ")}`);

  log("");
  log(`bench/build — ${await gitRev()} — ${cpuCount()} CPUs — median of ${runs} rounds, seconds (ratio to Docker 20.10 classic)`);
  const rows: string[][] = [];
  let missed = 0;
  for (const phase of PHASES) {
    const m = (e: Engine) => median(samples.get(`${e}|${phase}`) ?? []);
    const ratio = m("berth") / m("classic");
    const target = TARGETS[phase];
    if (!(ratio <= target)) missed++;
    rows.push([
      phase === "oneFile" ? "one file changed" : phase,
      m("berth").toFixed(3),
      m("classic").toFixed(3),
      m("buildkit").toFixed(3),
      `${ratio.toFixed(2)}×`,
      `≤ ${target}× ${ratio <= target ? "met" : "MISSED"}`,
    ]);
  }
  for (const l of table(["build", "berth", "docker classic", "docker buildkit", "berth/classic", "target"], rows, [false, true, true, true, true, false]))
    log(l);
  return missed === 0 ? 0 : 1;
}

void runMain("bench/build", main);
