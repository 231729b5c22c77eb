/**
 * What Docker's default seccomp profile costs a container start: `run --rm busybox true`
 * with the profile and with `--security-opt seccomp=unconfined` (what every Berth
 * container got before the profile), on Berth and, with `--docker`, on Docker Engine
 * 20.10 (Debian docker.io, same runc) for reference. Variants are interleaved so all see
 * the same machine load; wall time of the docker CLI, spawn to exit. A private agent,
 * dockerd and fixture registry (test/helpers).
 *
 * Then the cost where it is paid: `runc run` of a one-binary busybox bundle whose config.json
 * is what Berth writes (buildRuntimeSpec), with and without the profile, as CPU time of
 * runc and its children (runc compiles the filter with libseccomp in `runc init`, for
 * x86_64 and its x86 and x32 sub-architectures, at every container start).
 * Usage: node --import tsx bench/seccomp-run-rm.ts [--runs N] [--docker]   (default 40 runs of each)
 */
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildRuntimeSpec } from "../agent/engine/runtime/spec.ts";
import { readSpecHost } from "../agent/engine/runtime/spec-host.ts";
import { startBusyboxAgent } from "../test/helpers/busybox-agent.ts";
import { dockerCliOk, startDockerd, type CliTarget, type DockerdHandle } from "../test/helpers/dockerd.ts";

const argv = process.argv.slice(2);
const runs = argv.includes("--runs") ? Number(argv[argv.indexOf("--runs") + 1]) : 40;
if (!Number.isInteger(runs) || runs < 1) throw new Error("--runs wants a positive integer");
const withDocker = argv.includes("--docker");

function timedRun(target: CliTarget, image: string, extra: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn("docker", ["run", "--rm", ...extra, image, "true"], {
      env: { ...process.env, DOCKER_HOST: target.dockerHost, DOCKER_CONFIG: target.dockerConfig, DOCKER_CLI_HINTS: "false" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t0) / 1e6) : reject(new Error(`docker run exited ${code}: ${err}`))));
  });
}

const quantile = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

const suite = await startBusyboxAgent("bench-seccomp");
let dockerd: DockerdHandle | undefined;
try {
  const unconfined = ["--security-opt", "seccomp=unconfined"];
  const variants: Array<{ name: string; target: CliTarget; image: string; extra: string[] }> = [
    { name: "berth  bridge  default profile", target: suite.agent, image: "busybox", extra: [] },
    { name: "berth  bridge  unconfined", target: suite.agent, image: "busybox", extra: unconfined },
    { name: "berth  none    default profile", target: suite.agent, image: "busybox", extra: ["--network", "none"] },
    { name: "berth  none    unconfined", target: suite.agent, image: "busybox", extra: ["--network", "none", ...unconfined] },
  ];
  if (withDocker) {
    dockerd = await startDockerd({ name: "berth-bench-seccomp" });
    const ref = `${suite.reg.host}/library/busybox:latest`;
    await dockerCliOk(dockerd, ["pull", "-q", ref]);
    // dockerd runs here without a bridge (test/helpers/dockerd.ts): --network none only.
    variants.push(
      { name: "docker none    default profile", target: dockerd, image: ref, extra: ["--network", "none"] },
      { name: "docker none    unconfined", target: dockerd, image: ref, extra: ["--network", "none", ...unconfined] },
    );
  }
  const samples = variants.map(() => [] as number[]);
  for (const v of variants) await timedRun(v.target, v.image, v.extra); // warm-up
  for (let i = 0; i < runs; i++) {
    const order = variants.map((_, k) => k);
    if (i % 2) order.reverse();
    for (const k of order) samples[k]!.push(await timedRun(variants[k]!.target, variants[k]!.image, variants[k]!.extra));
  }
  console.log(
    `run --rm busybox true: ${runs} runs of each, interleaved; ${process.version}; load average at the end ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")}`,
  );
  console.log("  engine network profile            median    p10    p90  (ms)");
  variants.forEach((v, k) => console.log(`  ${v.name.padEnd(32)} ${[0.5, 0.1, 0.9].map((p) => quantile(samples[k]!, p).toFixed(0).padStart(6)).join(" ")}`));
  for (let k = 0; k < variants.length; k += 2) {
    console.log(
      `  ${variants[k]!.name.slice(0, 15)} profile - unconfined: median ${(quantile(samples[k]!, 0.5) - quantile(samples[k + 1]!, 0.5)).toFixed(0)} ms, p10 ${(quantile(samples[k]!, 0.1) - quantile(samples[k + 1]!, 0.1)).toFixed(0)} ms`,
    );
  }
} finally {
  await dockerd?.stop();
  await suite.stop();
}

/** CPU seconds of this process's waited-for children so far (/proc/self/stat cutime + cstime). */
function childrenCpu(): number {
  const fields = readFileSync("/proc/self/stat", "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

const host = await readSpecHost();
const base = mkdtempSync(join(tmpdir(), "berth-bench-seccomp-runc-"));
const cgroupParent = `berth-bench-seccomp-${process.pid}`;
try {
  const bundles = ["default", "unconfined"].map((name) => {
    const bundle = join(base, name);
    mkdirSync(join(bundle, "rootfs", "bin"), { recursive: true });
    copyFileSync("/bin/busybox", join(bundle, "rootfs", "bin", "busybox"));
    symlinkSync("busybox", join(bundle, "rootfs", "bin", "true"));
    const spec = buildRuntimeSpec({
      image: { Cmd: ["/bin/true"] },
      run: { hostname: "bench", seccompProfile: name === "default" ? undefined : "unconfined" },
      rootfs: "rootfs",
      user: { uid: 0, gid: 0, additionalGids: [] },
      namespaces: { network: "none" },
      cgroupsPath: `/${cgroupParent}/${name}`,
      host,
    });
    writeFileSync(join(bundle, "config.json"), JSON.stringify(spec));
    return { name, bundle, cpu: 0, wall: [] as number[] };
  });
  for (let i = 0; i < runs; i++) {
    for (const b of i % 2 ? [...bundles].reverse() : bundles) {
      const cpu0 = childrenCpu();
      const t0 = process.hrtime.bigint();
      const r = spawnSync("runc", ["--root", join(base, "runc"), "run", "--bundle", b.bundle, `bench-${process.pid}-${b.name}-${i}`], {
        stdio: ["ignore", "ignore", "pipe"],
      });
      if (r.status !== 0) throw new Error(`runc run failed: ${r.stderr.toString()}`);
      b.wall.push(Number(process.hrtime.bigint() - t0) / 1e6);
      b.cpu += childrenCpu() - cpu0;
    }
  }
  console.log(`runc run (${spawnSync("runc", ["--version"]).stdout.toString().split("\n")[0]}), the spec Berth writes, ${runs} runs of each, interleaved:`);
  for (const b of bundles)
    console.log(
      `  ${b.name.padEnd(11)} CPU ${((b.cpu / runs) * 1000).toFixed(1)} ms per run, wall median ${quantile(b.wall, 0.5).toFixed(0)} ms, p10 ${quantile(b.wall, 0.1).toFixed(0)} ms`,
    );
} finally {
  rmSync(base, { recursive: true, force: true });
  for (const controller of ["blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "systemd", "unified"]) {
    for (const leaf of ["default", "unconfined", ""]) {
      try {
        rmdirSync(join("/sys/fs/cgroup", controller, cgroupParent, leaf));
      } catch {
        // absent on this hierarchy
      }
    }
  }
}
