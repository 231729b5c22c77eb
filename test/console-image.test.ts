/**
 * The production path, as an operator takes it: the console image built from the Dockerfile,
 * run with PostgreSQL by the repository's docker-compose.yml under Debian's docker-compose 1.29
 * on Docker Engine 20.10, then checked from outside: health (ours and Docker's HEALTHCHECK), the
 * first admin's one-time password from `docker-compose logs`, a sign-in over HTTP, a non-root
 * console process, the agent artifact served for Add node / install.sh, and a real agent on this
 * host enrolling and showing online.
 *
 * Docker Hub is not reachable here, so the bases are made locally and handed to the same files
 * through their variables: Debian bookworm by debootstrap from the configured Debian mirror,
 * imported with `docker import`; on it this machine's Node.js 20 and npm (a stand-in for
 * node:20-bookworm-slim, test/fixtures/node-base-image) and Debian's PostgreSQL (a stand-in for
 * postgres:17, test/fixtures/postgres-image). The build's `npm ci` and apt reach the npm registry
 * and the Debian mirror through the private dockerd's bridge and NAT.
 *
 * The debootstrap tarball is kept in /var/cache/berth-test/ for a week (it takes minutes to
 * download); everything else is made fresh and removed: `docker-compose down -v`, the private
 * dockerd with its data root, bridge and rules, the agent and its data root.
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cp, mkdir, mkdtemp, readFile, rename, rm, stat } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { promisify } from "node:util";
import { startBridgedDockerd, type BridgedDockerd } from "../bench/dockerd-bridge.ts";
import { dockerCliOk } from "./helpers/dockerd.ts";
import { startAgent, type AgentHandle } from "./helpers/agent.ts";
import { until } from "./helpers/wait.ts";
import { HttpBrowser } from "./helpers/http-browser.ts";

const execFileP = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "..");
const FIXTURES = join(ROOT, "test/fixtures");
const DEBIAN_MIRROR = "http://deb.debian.org/debian";
const CACHE_DIR = "/var/cache/berth-test";
const DEBIAN_TAR = join(CACHE_DIR, "debian-bookworm-minbase.tar");
const CACHE_MAX_AGE_MS = 7 * 24 * 3600_000;

const started = Date.now();
let phaseStarted = started;
/** One line per phase with its duration, in the test's output (figures, not assertions). */
function phase(what: string): void {
  const now = Date.now();
  console.log(`# console-image: ${what} (${((now - phaseStarted) / 1000).toFixed(1)} s; ${((now - started) / 1000).toFixed(1)} s in all)`);
  phaseStarted = now;
}

let dockerd: BridgedDockerd | undefined;
let work: string | undefined;
let agent: AgentHandle | undefined;
let composeUp = false;
const tag = randomBytes(3).toString("hex");
const project = `berthimg${tag}`;
const images = {
  debian: `berth-test-debian:${tag}`,
  node: `berth-test-node:${tag}`,
  postgres: `berth-test-postgres:${tag}`,
  console: `berth-console:test-${tag}`,
};
let composeEnv: NodeJS.ProcessEnv = { ...process.env };
// The daemons' pipes are unref'd (test/helpers/dockerd.ts) and a fetch in flight does not hold the
// event loop: without this, a slow answer ends the run with "Promise resolution is still pending".
let keepAlive: NodeJS.Timeout | undefined;

interface Run {
  code: number;
  /** stdout and stderr as they came. */
  out: string;
  stdout: string;
}

/** Runs a command; never throws (the caller asserts with what it printed). */
function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((done) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd ?? ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let stdout = "";
    const keep = (d: Buffer) => {
      out += d.toString();
      if (out.length > 512 * 1024) out = out.slice(-256 * 1024);
    };
    child.stdout.on("data", (d: Buffer) => {
      keep(d);
      if (stdout.length < 1024 * 1024) stdout += d.toString();
    });
    child.stderr.on("data", keep);
    const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 15 * 60_000);
    child.on("error", (e) => (out += `spawn error: ${e.message}\n`));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      done({ code: code ?? (signal ? 128 : -1), out, stdout });
    });
  });
}

async function runOk(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}:\n${r.out.split("\n").slice(-60).join("\n")}`);
  return r.out;
}

const docker = (args: string[], timeoutMs?: number) => dockerCliOk(dockerd!, args, timeoutMs ? { timeoutMs } : {});
const compose = (args: string[], timeoutMs?: number) =>
  run("docker-compose", ["-p", project, "-f", join(ROOT, "docker-compose.yml"), "--ansi", "never", ...args], {
    env: composeEnv,
    ...(timeoutMs ? { timeoutMs } : {}),
  });

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r, j) => server.listen(0, "127.0.0.1", () => r()).on("error", j));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

/** Debian bookworm minbase as a tarball: from the cache when it is younger than a week, else debootstrap. */
async function debianTarball(): Promise<string> {
  const cached = await stat(DEBIAN_TAR).catch(() => undefined);
  if (cached && Date.now() - cached.mtimeMs < CACHE_MAX_AGE_MS) return DEBIAN_TAR;
  const dir = await mkdtemp(join(tmpdir(), "berth-debootstrap-"));
  try {
    await runOk("debootstrap", ["--variant=minbase", "bookworm", join(dir, "root"), DEBIAN_MIRROR], { timeoutMs: 15 * 60_000 });
    await mkdir(CACHE_DIR, { recursive: true });
    const partial = `${DEBIAN_TAR}.${process.pid}.partial`;
    await runOk("tar", ["--numeric-owner", "-C", join(dir, "root"), "-cf", partial, "."]);
    await rename(partial, DEBIAN_TAR);
    return DEBIAN_TAR;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

before(async () => {
  for (const [bin, pkg] of [
    ["debootstrap", "debootstrap"],
    ["docker-compose", "docker-compose"],
    ["/usr/sbin/dockerd", "docker.io"],
  ] as const) {
    const r = await run("sh", ["-c", `command -v ${bin}`]);
    assert.equal(r.code, 0, `${bin} is missing: install the Debian package ${pkg} (scripts/debian-packages-test.txt)`);
  }
  keepAlive = setInterval(() => undefined, 1000);
  work = await mkdtemp(join(tmpdir(), "berth-console-image-"));
  dockerd = await startBridgedDockerd();
  phase(`private dockerd 20.10 on bridge ${dockerd.bridge} (${dockerd.subnet})`);
});

after(async () => {
  await agent?.destroy();
  if (composeUp && dockerd) {
    const down = await compose(["down", "-v", "--remove-orphans"], 120_000);
    if (down.code !== 0) console.log(`# console-image: docker-compose down failed:\n${down.out}`);
  }
  await dockerd?.stop();
  if (work) await rm(work, { recursive: true, force: true });
  phase("cleaned up");
  clearInterval(keepAlive);
});

test(
  "the console image, run by docker-compose.yml with PostgreSQL: healthy, first admin signs in, runs as non-root, an agent enrolls",
  { timeout: 40 * 60_000 },
  async () => {
    // ---- bases made here, in place of Docker Hub's
    const tarball = await debianTarball();
    phase(`Debian bookworm minbase rootfs (${tarball})`);
    await runOk("sh", ["-c", `docker import - ${images.debian} < "${tarball}"`], {
      env: { ...process.env, DOCKER_HOST: dockerd!.dockerHost, DOCKER_CONFIG: dockerd!.dockerConfig },
    });
    const nodeContext = join(work!, "node-base");
    await mkdir(nodeContext);
    await cp(join(FIXTURES, "node-base-image/Dockerfile"), join(nodeContext, "Dockerfile"));
    await cp(process.execPath, join(nodeContext, "node"));
    const npmDir = (await execFileP("npm", ["root", "-g"])).stdout.trim();
    await cp(join(npmDir, "npm"), join(nodeContext, "npm"), { recursive: true, verbatimSymlinks: true });
    await cp("/etc/ssl/certs/ca-certificates.crt", join(nodeContext, "ca-certificates.crt"));
    await docker(["build", "-q", "--build-arg", `DEBIAN=${images.debian}`, "-t", images.node, nodeContext]);
    phase(`base images imported: ${images.debian}, ${images.node}`);

    // ---- the console image from the repository's Dockerfile, and PostgreSQL, built side by side
    const [consoleBuild, postgresBuild] = await Promise.all(
      [
        docker(["build", "--build-arg", `BASE=${images.node}`, "-t", images.console, ROOT], 30 * 60_000).then(() =>
          phase(`console image ${images.console} built from the Dockerfile`),
        ),
        docker(["build", "-q", "--build-arg", `DEBIAN=${images.debian}`, "-t", images.postgres, join(FIXTURES, "postgres-image")], 30 * 60_000).then(() =>
          phase(`PostgreSQL image ${images.postgres} built`),
        ),
      ].map((p) =>
        p.then(
          () => undefined,
          (e: Error) => e,
        ),
      ),
    );
    if (consoleBuild) throw consoleBuild;
    if (postgresBuild) throw postgresBuild;

    // What the final stage holds: the production dependencies (npm's: every package the lockfile
    // marks dev-only is gone, as `npm ci --omit=dev` would leave it), the built UI, Prisma client and
    // agent artifact; nothing of the build's context that is not run (tests, .git), no build cache.
    const lock = JSON.parse(await readFile(join(ROOT, "package-lock.json"), "utf8")) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages)
      .filter(([path, p]) => p.dev && path.startsWith("node_modules/"))
      .map(([path]) => path);
    assert.ok(devOnly.includes("node_modules/playwright-core"), "the lockfile marks dev-only packages");
    const expected = [
      "node_modules/tsx",
      "node_modules/next",
      "node_modules/@prisma/client",
      "node_modules/pg",
      ".next/BUILD_ID",
      "dist/berth-agent.tar.gz",
      "server/db/generated/client.ts",
      "public/favicon.ico",
      "prisma/migrations",
    ];
    const unwanted = [...devOnly, ".next/cache", "test", "bench", ".git", "test-artifacts"];
    const listing = await docker([
      "run",
      "--rm",
      "--entrypoint",
      "/bin/sh",
      images.console,
      "-c",
      'for p in "$@"; do [ -e "$p" ] && echo "has $p" || echo "no $p"; done',
      "sh",
      ...expected,
      ...unwanted,
    ]);
    for (const p of expected) assert.ok(listing.includes(`has ${p}\n`), `the image has ${p}`);
    const found = unwanted.filter((p) => listing.includes(`has ${p}\n`));
    assert.deepEqual(found, [], "the image holds no dev-only package, build cache, tests or .git");

    // ---- docker-compose up, the real file, images through its variables
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    composeEnv = {
      ...process.env,
      DOCKER_HOST: dockerd!.dockerHost,
      DOCKER_CONFIG: dockerd!.dockerConfig,
      BERTH_CONSOLE_IMAGE: images.console,
      BERTH_POSTGRES_IMAGE: images.postgres,
      BERTH_SECRET_KEY: randomBytes(32).toString("hex"),
      BERTH_PUBLIC_URL: publicUrl,
      BERTH_PUBLISH: `127.0.0.1:${port}`,
      POSTGRES_PASSWORD: randomBytes(12).toString("hex"),
    };
    composeUp = true;
    const up = await compose(["up", "-d"], 5 * 60_000);
    assert.equal(up.code, 0, `docker-compose up -d:\n${up.out}`);
    assert.doesNotMatch(up.out, /[Bb]uilding console|[Pp]ulling/, `docker-compose used the given images:\n${up.out}`);
    // depends_on's `condition: service_healthy` held under docker-compose 1.29: the console started
    // only after PostgreSQL's healthcheck first passed (checked at once: Docker keeps 5 results).
    const postgresId = (await compose(["ps", "-q", "postgres"])).stdout.trim();
    const consoleStartedAt = Date.parse(
      (await docker(["inspect", "--format", "{{.State.StartedAt}}", (await compose(["ps", "-q", "console"])).stdout.trim()])).trim(),
    );
    const postgresChecks = JSON.parse(await docker(["inspect", "--format", "{{json .State.Health.Log}}", postgresId])) as Array<{
      End: string;
      ExitCode: number;
    }>;
    const firstHealthy = postgresChecks.find((c) => c.ExitCode === 0);
    assert.ok(
      firstHealthy && Date.parse(firstHealthy.End) <= consoleStartedAt,
      `the console started (${new Date(consoleStartedAt).toISOString()}) after PostgreSQL was healthy: ${JSON.stringify(postgresChecks)}`,
    );
    phase("docker-compose up -d");

    const consoleLogs = async () => (await compose(["logs", "--no-color", "console"])).stdout;
    const health = await until(
      `${publicUrl}/api/health from this host`,
      async () => {
        const body = (await (await fetch(`${publicUrl}/api/health`, { signal: AbortSignal.timeout(5000) })).json()) as { ok?: boolean; url?: string };
        return body.ok === true ? body : undefined;
      },
      180_000,
      undefined,
      1000,
    ).catch(async (e: Error) => {
      throw new Error(`${e.message}\ndocker-compose logs:\n${(await compose(["logs", "--no-color", "--tail", "60"])).out}`);
    });
    assert.equal(health.url, publicUrl, "the console says the public URL it was given");
    const consoleId = (await compose(["ps", "-q", "console"])).stdout.trim();
    assert.match(consoleId, /^[0-9a-f]{12,}$/, "docker-compose ps -q console");
    const healthStatus = await until(
      "Docker's HEALTHCHECK of the console to say healthy",
      async () => {
        const s = (await docker(["inspect", "--format", "{{.State.Health.Status}}", consoleId])).trim();
        return s === "healthy" ? s : undefined;
      },
      90_000,
      undefined,
      1000,
    );
    assert.equal(healthStatus, "healthy");
    assert.equal((await docker(["inspect", "--format", "{{.RestartCount}}", consoleId])).trim(), "0", "the console did not restart");
    phase("/api/health answers and Docker's HEALTHCHECK says healthy");

    const uid = (await docker(["exec", consoleId, "id", "-u"])).trim();
    assert.notEqual(uid, "0", "the console does not run as root");
    assert.match(uid, /^\d+$/);
    // docker top needs the pid column; the second is the owner's uid as the host sees it.
    const processes = (await docker(["top", consoleId, "-eo", "pid,uid,args"]))
      .split("\n")
      .slice(1)
      .filter((l) => l.trim());
    assert.ok(
      processes.length > 0 && processes.every((l) => l.trim().split(/\s+/)[1] !== "0"),
      `every process of the console is non-root:\n${processes.join("\n")}`,
    );

    // ---- the first admin, as the operator finds it: in `docker-compose logs console`
    const logs = await consoleLogs();
    const email = /^\S*\s*\|\s+email:\s+(\S+)/m.exec(logs)?.[1];
    const password = /^\S*\s*\|\s+password:\s+(\S+)/m.exec(logs)?.[1];
    assert.ok(email && password, `docker-compose logs console shows the first admin's login:\n${logs}`);

    const browser = new HttpBrowser(publicUrl);
    const trpc = (path: string, input?: unknown, mutation = false) => browser.trpc(path, input, mutation);
    await browser.signIn(email, password);
    const me = (await trpc("auth.me")) as { email: string; role: string; mustChangePassword: boolean } | null;
    assert.deepEqual(me && { email: me.email, role: me.role, mustChangePassword: me.mustChangePassword }, { email, role: "admin", mustChangePassword: true });
    await trpc("auth.changePassword", { current: password, next: `the image ${tag} keeps the fleet afloat` }, true);
    phase(`first admin ${email} signed in with the one-time password from docker-compose logs`);

    // ---- the agent artifact Add node and install.sh ship, served from the image
    const artifact = await fetch(`${publicUrl}/downloads/berth-agent.tar.gz`, { signal: AbortSignal.timeout(30_000) });
    assert.equal(artifact.status, 200, "the console serves the agent artifact built into the image");
    assert.ok((await artifact.arrayBuffer()).byteLength > 100_000, "the artifact is the built agent");

    // ---- a real agent on this host enrolls into the containerised console
    const issued = (await trpc("admin.tokens.create", { note: "console image test" }, true)) as { token: string; agentCommand: string };
    assert.ok(issued.agentCommand.includes(publicUrl), `the join command names the public URL: ${issued.agentCommand}`);
    agent = await startAgent({ consoleUrl: publicUrl, joinToken: issued.token });
    type NodeRow = { name: string; online: boolean };
    const online = await until(
      "the agent online in nodes.list",
      async () => ((await trpc("nodes.list")) as { nodes: NodeRow[] }).nodes.find((n) => n.online),
      60_000,
      agent,
      500,
    );
    const nodes = ((await trpc("nodes.list")) as { nodes: NodeRow[] }).nodes;
    assert.equal(nodes.length, 1, JSON.stringify(nodes));
    assert.equal(nodes[0]!.name, online.name);
    phase(`agent enrolled and online in nodes.list (${online.name})`);

    // ---- down -v leaves nothing of the project
    await agent.destroy();
    const down = await compose(["down", "-v", "--remove-orphans"], 120_000);
    assert.equal(down.code, 0, `docker-compose down -v:\n${down.out}`);
    composeUp = false;
    assert.equal((await docker(["ps", "-aq"])).trim(), "", "no container left");
    assert.equal((await docker(["volume", "ls", "-q", "--filter", `name=${project}`])).trim(), "", "no volume left");
    assert.equal((await docker(["network", "ls", "-q", "--filter", `name=${project}`])).trim(), "", "no network left");
    phase("docker-compose down -v");
  },
);
