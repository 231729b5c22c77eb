/**
 * Cold pull times, side by side in one run, from a local anonymous registry
 * (CNCF distribution on 127.0.0.1, plain HTTP), of
 *   (a) the fixture busybox image (1 layer), and
 *   (b) the ~200 MB 5-layer image of buildLargeImageLayout(),
 * for:
 *   berth   a fresh agent (new data root) per run; `docker pull` through its socket
 *   berth-rmi  one agent for all runs, `docker rmi` before each run and its data root checked
 *           free of blobs and layers: cold data in a warm process, as dockerd is measured
 *   docker  Docker Engine 20.10 (test/helpers/dockerd.ts); `docker rmi` + `docker image prune -a -f` before each run
 *   podman  `podman pull --tls-verify=false` with private --root/--runroot; `podman rmi -a -f` before each run
 *   skopeo  `skopeo copy docker://… dir:TMP` into a fresh dir: download and verify only, the floor
 * Every run is checked cold (no image present before) and checked afterwards
 * (the image ID is the config digest). Tools take turns within each round.
 * Also Berth's peak RSS during the large pull: /proc/PID/status VmRSS sampled
 * every 20 ms, and VmHWM after the pull (the agent is fresh each run).
 *
 * The table has each median as a ratio to Docker's; targets (TARGETS) are shown as met
 * or MISSED and never fail the run.
 *
 * Usage: bench/pull [--runs N]   (default 5). Exits 1 if any pull failed.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startRegistry, registryFetch, type RegistryFixture } from "../test/fixtures/registry.ts";
import { buildLargeImageLayout, copyLayoutToRegistry, pushFixtureImages, MEDIA_TYPES, type FixtureImage } from "../test/fixtures/images.ts";
import { dockerCli, startDockerd, umountUnder, type CliTarget, type DockerdHandle } from "../test/helpers/dockerd.ts";
import { cpuCount, failure, gitRev, mb, median, onCleanup, pad, podmanFlags, privateEnv, runMain, startBerth, timed, type Agent } from "./lib.ts";

const RSS_SAMPLE_MS = 20;
/** Berth's median over Docker's, per image (issue 16), and the agent's memory. Shown met/missed; never fail the run. */
const TARGETS = { vsDocker: { busybox: 0.7, large: 0.5 }, vsSkopeo: 1.5, rssMB: 200 };

/** berth: a fresh agent per run; berth-rmi: one agent for all runs, `docker rmi` between them (like dockerd). */
type Tool = "berth" | "berth-rmi" | "docker" | "podman" | "skopeo";
const TOOLS: Tool[] = ["berth", "berth-rmi", "docker", "podman", "skopeo"];

interface BenchImage {
  key: "busybox" | "large";
  label: string;
  fx: FixtureImage;
}

interface Sample {
  seconds: number;
}

interface Cell {
  samples: Sample[];
  errors: string[];
}

/** Peak VmRSS (sampled) of a process while `work` runs, plus its VmHWM afterwards, in bytes. */
async function withRss<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peakRss: number; hwm: number }> {
  const field = (name: string): number => {
    try {
      const m = new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      return m?.[1] ? Number(m[1]) * 1024 : 0;
    } catch {
      return 0;
    }
  };
  let peakRss = field("VmRSS");
  const timer = setInterval(() => (peakRss = Math.max(peakRss, field("VmRSS"))), RSS_SAMPLE_MS);
  try {
    const result = await work();
    peakRss = Math.max(peakRss, field("VmRSS"));
    return { result, peakRss, hwm: field("VmHWM") };
  } finally {
    clearInterval(timer);
  }
}

// ---------------------------------------------------------------------------
// The runs

interface Context {
  dockerd: DockerdHandle;
  /** The long-lived agent of the berth-rmi rows. */
  agent: Agent;
  podmanBase: string[];
  podmanEnv: NodeJS.ProcessEnv;
  skopeoEnv: NodeJS.ProcessEnv;
  work: string;
  rss: number[];
  hwm: number[];
}

async function cli(target: CliTarget, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return dockerCli(target, args, { timeoutMs: 600_000 });
}

/** One cold pull with one tool; returns seconds or throws with what went wrong. */
async function coldPull(ctx: Context, tool: Tool, img: BenchImage): Promise<number> {
  const ref = img.fx.ref;
  const id = img.fx.configDigest;
  switch (tool) {
    case "berth": {
      const agent = await startBerth();
      try {
        const before = await cli(agent, ["images", "-qa"]);
        if (before.code !== 0 || before.stdout.trim() !== "") throw new Error(`fresh agent is not empty: ${before.stdout}${before.stderr}`);
        const env = { ...process.env, DOCKER_HOST: agent.dockerHost, DOCKER_CONFIG: agent.dockerConfig, DOCKER_CLI_HINTS: "false" };
        const { result: r, peakRss, hwm } = await withRss(agent.pid, () => timed("docker", ["pull", "-q", ref], env));
        if (r.code !== 0) throw new Error(failure("docker pull (berth)", r) + `\nagent log tail:\n${agent.logs().split("\n").slice(-5).join("\n")}`);
        const got = await cli(agent, ["image", "inspect", "--format", "{{.Id}}", ref]);
        if (got.stdout.trim() !== id) throw new Error(`berth: image ID ${got.stdout.trim()}${got.stderr}, want ${id}`);
        if (img.key === "large") {
          ctx.rss.push(peakRss);
          ctx.hwm.push(hwm);
        }
        return r.seconds;
      } finally {
        await agent.stop();
      }
    }
    case "berth-rmi": {
      const all = (await cli(ctx.agent, ["images", "-qa"])).stdout.split("\n").filter(Boolean);
      if (all.length) await cli(ctx.agent, ["rmi", "-f", ...new Set(all)]);
      const left = await cli(ctx.agent, ["images", "-qa"]);
      if (left.code !== 0 || left.stdout.trim() !== "") throw new Error(`berth still has images: ${left.stdout}${left.stderr}`);
      const files = await leftovers(ctx.agent.dataRoot);
      if (files.length) throw new Error(`berth's data root still holds blobs or layers after rmi: ${files.slice(0, 5).join(", ")}`);
      const env = { ...process.env, DOCKER_HOST: ctx.agent.dockerHost, DOCKER_CONFIG: ctx.agent.dockerConfig, DOCKER_CLI_HINTS: "false" };
      const r = await timed("docker", ["pull", "-q", ref], env);
      if (r.code !== 0) throw new Error(failure("docker pull (berth)", r) + `\nagent log tail:\n${ctx.agent.logs().split("\n").slice(-5).join("\n")}`);
      const got = await cli(ctx.agent, ["image", "inspect", "--format", "{{.Id}}", ref]);
      if (got.stdout.trim() !== id) throw new Error(`berth: image ID ${got.stdout.trim()}${got.stderr}, want ${id}`);
      return r.seconds;
    }
    case "docker": {
      await cli(ctx.dockerd, ["rmi", "-f", ref]);
      await cli(ctx.dockerd, ["image", "prune", "-a", "-f"]);
      const left = await cli(ctx.dockerd, ["images", "-qa"]);
      if (left.code !== 0 || left.stdout.trim() !== "") throw new Error(`dockerd still has images: ${left.stdout}${left.stderr}`);
      const env = { ...process.env, DOCKER_HOST: ctx.dockerd.dockerHost, DOCKER_CONFIG: ctx.dockerd.dockerConfig, DOCKER_CLI_HINTS: "false" };
      const r = await timed("docker", ["pull", "-q", ref], env);
      if (r.code !== 0) throw new Error(failure("docker pull (dockerd)", r));
      const got = await cli(ctx.dockerd, ["image", "inspect", "--format", "{{.Id}}", ref]);
      if (got.stdout.trim() !== id) throw new Error(`docker: image ID ${got.stdout.trim()}${got.stderr}, want ${id}`);
      return r.seconds;
    }
    case "podman": {
      const rmi = await timed("podman", [...ctx.podmanBase, "rmi", "-a", "-f"], ctx.podmanEnv);
      if (rmi.code !== 0) throw new Error(failure("podman rmi -a -f", rmi));
      const left = await timed("podman", [...ctx.podmanBase, "images", "-qa"], ctx.podmanEnv);
      if (left.code !== 0 || left.stdout.trim() !== "") throw new Error(`podman still has images: ${left.stdout}${left.stderr}`);
      const r = await timed("podman", [...ctx.podmanBase, "pull", "-q", "--tls-verify=false", ref], ctx.podmanEnv);
      if (r.code !== 0) throw new Error(failure("podman pull", r));
      if (r.stdout.trim() !== id.slice(7)) throw new Error(`podman: image ID ${r.stdout.trim()}, want ${id.slice(7)}`);
      return r.seconds;
    }
    case "skopeo": {
      const dir = join(ctx.work, `skopeo-${img.key}`);
      await rm(dir, { recursive: true, force: true });
      const r = await timed(
        "skopeo",
        ["copy", "--quiet", "--insecure-policy", "--src-tls-verify=false", "--src-no-creds", `docker://${ref}`, `dir:${dir}`],
        ctx.skopeoEnv,
      );
      if (r.code !== 0) throw new Error(failure("skopeo copy", r));
      const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as { config: { digest: string } };
      if (manifest.config.digest !== id) throw new Error(`skopeo: config ${manifest.config.digest}, want ${id}`);
      await rm(dir, { recursive: true, force: true });
      return r.seconds;
    }
  }
}

/** Files (not directories) under the agent's content and layer stores, and layer directories: what would make a pull warm. */
async function leftovers(dataRoot: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(p);
    }
  };
  await walk(join(dataRoot, "content"));
  await walk(join(dataRoot, "layers"));
  for (const e of await readdir(join(dataRoot, "layers"), { withFileTypes: true }).catch(() => []))
    if (e.isDirectory() && e.name !== "tmp" && e.name !== "l") out.push(join(dataRoot, "layers", e.name));
  return out;
}

// ---------------------------------------------------------------------------
// Report

async function imageSize(reg: RegistryFixture, fx: FixtureImage): Promise<{ bytes: number; layers: number }> {
  const res = await registryFetch(reg, `/v2/${fx.repository}/manifests/${fx.manifestDigest}`, {
    headers: { Accept: [MEDIA_TYPES.dockerManifest, MEDIA_TYPES.ociManifest].join(", ") },
  });
  const m = (await res.json()) as { layers: Array<{ size: number }> };
  return { bytes: m.layers.reduce((a, l) => a + l.size, 0), layers: m.layers.length };
}

async function main(): Promise<number> {
  const runsArg = process.argv.indexOf("--runs");
  const runs = runsArg > 0 ? Number(process.argv[runsArg + 1]) : 5;
  if (!Number.isInteger(runs) || runs < 1) throw new Error("--runs wants a positive integer");
  if (process.getuid?.() !== 0) throw new Error("bench/pull needs root (overlay mounts, dockerd)");
  for (const [bin, pkg] of [
    ["/usr/sbin/dockerd", "docker.io"],
    ["/usr/bin/podman", "podman"],
    ["/usr/bin/skopeo", "skopeo"],
    ["/usr/bin/umoci", "umoci"],
  ] as const)
    if (!existsSync(bin)) throw new Error(`${bin} is missing: apt-get install ${pkg}`);

  const work = await mkdtemp(join(tmpdir(), "berth-bench-pull-"));
  onCleanup(async () => {
    await umountUnder(work);
    await rm(work, { recursive: true, force: true });
  });

  process.stderr.write("setting up: registry, fixture images (the large layout is built once and cached), dockerd...\n");
  const reg = await startRegistry({ auth: "none" });
  onCleanup(() => reg.stop());
  const busybox = (await pushFixtureImages(reg, { only: ["busybox"] })).busybox;
  const large = await copyLayoutToRegistry(await buildLargeImageLayout(), reg, "bench/large:latest", { format: "v2s2" });
  const dockerd = await startDockerd();
  onCleanup(() => dockerd.stop());

  // An empty auth file of our own (podman insists that REGISTRY_AUTH_FILE exists).
  await writeFile(join(work, "no-auth.json"), '{"auths":{}}\n');
  const podmanDir = join(work, "podman");
  const podmanBase = podmanFlags(podmanDir);
  onCleanup(async () => {
    await timed("podman", [...podmanBase, "rmi", "-a", "-f"], privateEnv(work));
    await umountUnder(podmanDir);
  });

  const images: BenchImage[] = [];
  for (const [key, fx] of [
    ["busybox", busybox],
    ["large", large],
  ] as const) {
    const s = await imageSize(reg, fx);
    images.push({ key, fx, label: `${key} (${s.layers} layer${s.layers > 1 ? "s" : ""}, ${mb(s.bytes)} MB gz)` });
  }

  const agent = await startBerth();
  const ctx: Context = { dockerd, agent, podmanBase, podmanEnv: privateEnv(work), skopeoEnv: privateEnv(work), work, rss: [], hwm: [] };
  const cells = new Map<string, Cell>();
  const cell = (t: Tool, i: BenchImage) => {
    const k = `${t}|${i.key}`;
    let c = cells.get(k);
    if (!c) cells.set(k, (c = { samples: [], errors: [] }));
    return c;
  };

  for (const img of images) {
    for (let run = 1; run <= runs; run++) {
      for (const tool of TOOLS) {
        const c = cell(tool, img);
        try {
          const s = await coldPull(ctx, tool, img);
          c.samples.push({ seconds: s });
          process.stderr.write(`  ${img.key} run ${run}/${runs} ${tool}: ${s.toFixed(3)} s\n`);
        } catch (e) {
          c.errors.push((e as Error).message);
          process.stderr.write(`  ${img.key} run ${run}/${runs} ${tool}: FAILED ${(e as Error).message.split("\n")[0]}\n`);
        }
      }
    }
  }

  // The table.
  const versions = await Promise.all([
    timed("docker", ["version", "--format", "{{.Server.Version}}"], { ...process.env, DOCKER_HOST: dockerd.dockerHost, DOCKER_CONFIG: dockerd.dockerConfig }),
    timed("podman", ["--version"]),
    timed("skopeo", ["--version"]),
  ]);
  const out: string[] = [];
  out.push(`Cold pull from a local registry (127.0.0.1, plain HTTP), ${runs} runs each; ${process.version}, ${cpuCount()} CPUs`);
  out.push(`docker engine ${versions[0].stdout.trim()}, ${versions[1].stdout.trim()}, ${versions[2].stdout.trim()}, berth ${await gitRev()}`);
  out.push("");
  const medianOf = (t: Tool, img: BenchImage) => {
    const xs = cell(t, img).samples.map((s) => s.seconds);
    return xs.length ? median(xs) : undefined;
  };
  const w = [9, 34, 9, 7, 7, 9];
  out.push(
    [
      pad("tool", w[0]!),
      pad("image", w[1]!),
      pad("median s", w[2]!, true),
      pad("min s", w[3]!, true),
      pad("max s", w[4]!, true),
      pad("× docker", w[5]!, true),
    ].join(" | "),
  );
  out.push(w.map((n) => "-".repeat(n)).join("-|-"));
  for (const img of images) {
    const dockerMedian = medianOf("docker", img);
    for (const tool of TOOLS) {
      const c = cell(tool, img);
      const xs = c.samples.map((s) => s.seconds);
      const nums = xs.length ? [median(xs), Math.min(...xs), Math.max(...xs)].map((x) => x.toFixed(3)) : ["-", "-", "-"];
      const ratio = xs.length && dockerMedian ? `${(median(xs) / dockerMedian).toFixed(2)}×` : "-";
      let line = [
        pad(tool, w[0]!),
        pad(img.label, w[1]!),
        pad(nums[0]!, w[2]!, true),
        pad(nums[1]!, w[3]!, true),
        pad(nums[2]!, w[4]!, true),
        pad(ratio, w[5]!, true),
      ].join(" | ");
      if (c.errors.length) line += `   (${c.errors.length}/${runs} FAILED: ${c.errors[0]!.split("\n")[0]})`;
      out.push(line);
    }
  }
  out.push("");
  if (ctx.rss.length) {
    out.push(
      `Berth agent peak RSS during the large pull (VmRSS every ${RSS_SAMPLE_MS} ms): max ${mb(Math.max(...ctx.rss))} MB, median ${mb(median(ctx.rss))} MB; ` +
        `VmHWM after the pull: max ${mb(Math.max(...ctx.hwm))} MB — target < ${TARGETS.rssMB} MB: ${Math.max(...ctx.rss, ...ctx.hwm) < TARGETS.rssMB * 1024 * 1024 ? "met" : "MISSED"}`,
    );
  } else out.push("Berth agent peak RSS during the large pull: no successful run");
  const verdicts = (img: BenchImage, other: Tool, target: number) =>
    (
      [
        ["berth", "fresh agent"],
        ["berth-rmi", "one agent, rmi between"],
      ] as const
    )
      .map(([tool, what]) => {
        const b = medianOf(tool, img);
        const o = medianOf(other, img);
        return b === undefined || o === undefined ? `n/a (${what}: a pull failed)` : `${(b / o).toFixed(2)}× (${what}) ${b / o <= target ? "met" : "MISSED"}`;
      })
      .join(", ");
  for (const img of images)
    out.push(`Berth/Docker (${img.key}, medians): ${verdicts(img, "docker", TARGETS.vsDocker[img.key])} — target ≤ ${TARGETS.vsDocker[img.key]}×`);
  out.push(
    `Berth/skopeo (large, medians): ${verdicts(images[1]!, "skopeo", TARGETS.vsSkopeo)} — target ≤ ${TARGETS.vsSkopeo}× (skopeo only downloads and verifies)`,
  );
  process.stdout.write(out.join("\n") + "\n");

  const failed = [...cells.entries()].filter(([, c]) => c.errors.length > 0);
  for (const [k, c] of failed) process.stderr.write(`\n${k} failures:\n${c.errors.map((e) => `- ${e}`).join("\n")}\n`);
  return failed.length ? 1 : 0;
}

await runMain("bench/pull", main);
