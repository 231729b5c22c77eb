// Container health checks (issue 12) through the real docker CLI against a real agent:
// --health-* and an image's HEALTHCHECK (from `docker build`), State.Health in inspect, the
// STATUS column, the `health` filter, health_status events, the probe's timeout (nothing
// left running), restarts of the container and of the agent. The walk-through is run on
// Docker 20.10 too (test/helpers/dockerd.ts) and what a user sees must be the same.
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { docker, dockerBackground, dockerOk } from "./helpers/agent.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";
import { dockerCli, dockerCliOk, startDockerd, type CliTarget, type DockerdHandle } from "./helpers/dockerd.ts";
import { pushFixtureImages } from "./fixtures/images.ts";
import { until } from "./helpers/wait.ts";

const uniq = (prefix: string) => `${prefix}-${randomBytes(3).toString("hex")}`;

interface Health {
  Status: string;
  FailingStreak: number;
  Log: Array<{ Start: string; End: string; ExitCode: number; Output: string }>;
}

/** `docker events` left running: what it printed so far, and a way to end it. */
function eventsOf(target: CliTarget, args: string[]) {
  const cli = dockerBackground(target, ["events", ...args]);
  return {
    get lines() {
      return (cli.stdout + cli.stderr).trim().split("\n").filter(Boolean);
    },
    stop: cli.kill,
  };
}

interface Check {
  cmd: string;
  interval?: string;
  timeout?: string;
  retries?: number;
  startPeriod?: string;
}

/** `docker run -d` of a container without a network whose health check is given as --health-* flags. */
const runChecked = (target: CliTarget, name: string, check: Check, image = "busybox", command = ["sleep", "1000"]) =>
  dockerCliOk(target, [
    "run",
    "-d",
    "--name",
    name,
    "--network",
    "none",
    "--health-cmd",
    check.cmd,
    ...(check.interval ? ["--health-interval", check.interval] : []),
    ...(check.timeout ? ["--health-timeout", check.timeout] : []),
    ...(check.retries !== undefined ? ["--health-retries", String(check.retries)] : []),
    ...(check.startPeriod ? ["--health-start-period", check.startPeriod] : []),
    image,
    ...command,
  ]);

const health = async (target: CliTarget, name: string): Promise<Health | null> =>
  JSON.parse(await dockerCliOk(target, ["inspect", "--format", "{{json .State.Health}}", name])) as Health | null;
const statusColumn = async (target: CliTarget, name: string) =>
  (await dockerCliOk(target, ["ps", "-a", "--filter", `name=^${name}$`, "--format", "{{.Status}}"])).trim();
const psNames = async (target: CliTarget, filter: string) =>
  (await dockerCliOk(target, ["ps", "-a", "--filter", filter, "--format", "{{.Names}}"])).trim().split("\n").filter(Boolean);
const waitHealth = (target: CliTarget, name: string, status: string, ms = 30_000) =>
  until(
    `${name} to be ${status}`,
    async () => {
      const h = await health(target, name);
      return h?.Status === status ? h : undefined;
    },
    ms,
    () => target.logs().split("\n").slice(-25).join("\n"),
  );

/**
 * The walk-through of the issue, on any engine; returns what a user sees, with times and
 * IDs left out, for the comparison with Docker.
 */
async function walkThrough(target: CliTarget, image: string) {
  const c = uniq("hc");
  const none = uniq("hn");
  const events = eventsOf(target, ["--filter", "event=health_status", "--filter", `container=${c}`, "--format", "{{.Action}}"]);
  try {
    await new Promise((r) => setTimeout(r, 300)); // the events stream is listening
    await runChecked(target, c, { cmd: "test -f /tmp/ok", interval: "1s", retries: 2 }, image);
    await dockerCliOk(target, ["run", "-d", "--name", none, "--network", "none", "--no-healthcheck", image, "sleep", "1000"]);
    const seen: Record<string, unknown> = {};
    seen.initial = await health(target, c);
    seen.config = JSON.parse(await dockerCliOk(target, ["inspect", "--format", "{{json .Config.Healthcheck}}", c]));
    seen.startingStatus = (await statusColumn(target, c)).replace(/^Up .+? \(/, "Up … (");

    const unhealthy = await waitHealth(target, c, "unhealthy");
    seen.unhealthy = {
      Status: unhealthy.Status,
      FailingStreak: unhealthy.FailingStreak >= 2,
      keys: Object.keys(unhealthy).sort(),
      entryKeys: Object.keys(unhealthy.Log[0]!).sort(),
      entry: { ExitCode: unhealthy.Log[0]!.ExitCode, Output: unhealthy.Log[0]!.Output },
    };
    seen.unhealthyStatus = (await statusColumn(target, c)).replace(/^Up .+? \(/, "Up … (");
    seen.filterUnhealthy = (await psNames(target, "health=unhealthy")).includes(c);

    await dockerCliOk(target, ["exec", c, "touch", "/tmp/ok"]);
    const healthy = await waitHealth(target, c, "healthy");
    seen.healthy = {
      Status: healthy.Status,
      FailingStreak: healthy.FailingStreak,
      last: { ExitCode: healthy.Log.at(-1)!.ExitCode, Output: healthy.Log.at(-1)!.Output },
    };
    seen.healthyStatus = (await statusColumn(target, c)).replace(/^Up .+? \(/, "Up … (");
    seen.filters = {
      healthy: (await psNames(target, "health=healthy")).filter((n) => n === c || n === none),
      unhealthy: (await psNames(target, "health=unhealthy")).filter((n) => n === c || n === none),
      none: (await psNames(target, "health=none")).filter((n) => n === c || n === none),
    };
    seen.badFilter = (await dockerCli(target, ["ps", "--filter", "health=fine"])).stderr.trim();
    seen.noCheck = {
      health: await health(target, none),
      config: JSON.parse(await dockerCliOk(target, ["inspect", "--format", "{{json .Config.Healthcheck}}", none])),
      status: (await statusColumn(target, none)).replace(/^Up .+$/, "Up …"),
    };

    // Paused: no checks, and Docker calls the container unhealthy until a check passes after the unpause.
    await dockerCliOk(target, ["pause", c]);
    seen.paused = { Status: (await health(target, c))!.Status, column: (await statusColumn(target, c)).replace(/^Up .+? \(/, "Up … (") };
    await dockerCliOk(target, ["unpause", c]);
    await waitHealth(target, c, "healthy");

    // Stopped, the check is over: Docker then calls the container unhealthy. Started again: "starting", log kept.
    const logLength = (await health(target, c))!.Log.length;
    await dockerCliOk(target, ["stop", "-t", "1", c]);
    const stopped = (await health(target, c))!;
    seen.stopped = { Status: stopped.Status, logKept: stopped.Log.length >= logLength };
    await dockerCliOk(target, ["start", c]);
    const restarted = (await health(target, c))!;
    seen.restarted = { Status: restarted.Status, FailingStreak: restarted.FailingStreak, logKept: restarted.Log.length >= logLength };
    await waitHealth(target, c, "healthy");

    await until("the health_status events", () => events.lines.length >= 4 && events.lines, 10_000);
    seen.events = events.lines.slice(0, 4);
    return seen;
  } finally {
    await events.stop();
    await dockerCli(target, ["rm", "-f", c, none]);
  }
}

describe("container health checks through the docker CLI", () => {
  let bb: BusyboxAgent;
  const removeAfter = (t: TestContext, ...names: string[]) => t.after(async () => void (await docker(bb.agent, ["rm", "-f", ...names])));

  before(async () => void (bb = await startBusyboxAgent("health")));
  after(() => bb?.stop());

  test("--health-cmd: starting → unhealthy → healthy after the file appears; STATUS, filters, events, inspect; stop and start", async () => {
    const seen = await walkThrough(bb.agent, "busybox");
    assert.deepEqual(seen.initial, { Status: "starting", FailingStreak: 0, Log: [] });
    assert.deepEqual(seen.config, { Test: ["CMD-SHELL", "test -f /tmp/ok"], Interval: 1_000_000_000, Retries: 2 });
    assert.equal(seen.startingStatus, "Up … (health: starting)");
    assert.deepEqual(seen.unhealthy, {
      Status: "unhealthy",
      FailingStreak: true,
      keys: ["FailingStreak", "Log", "Status"],
      entryKeys: ["End", "ExitCode", "Output", "Start"],
      entry: { ExitCode: 1, Output: "" },
    });
    assert.equal(seen.unhealthyStatus, "Up … (unhealthy)");
    assert.equal(seen.filterUnhealthy, true);
    assert.deepEqual(seen.healthy, { Status: "healthy", FailingStreak: 0, last: { ExitCode: 0, Output: "" } });
    assert.equal(seen.healthyStatus, "Up … (healthy)");
    const [c, none] = [(seen.filters as { healthy: string[] }).healthy[0], (seen.filters as { none: string[] }).none[0]];
    assert.ok(c?.startsWith("hc-") && none?.startsWith("hn-"), JSON.stringify(seen.filters));
    assert.deepEqual(seen.filters, { healthy: [c], unhealthy: [], none: [none] });
    assert.match(String(seen.badFilter), /Unrecognised filter value for health: fine/);
    assert.deepEqual(seen.noCheck, { health: null, config: { Test: ["NONE"] }, status: "Up …" });
    assert.deepEqual(seen.paused, { Status: "unhealthy", column: "Up … (Paused)" });
    assert.deepEqual(seen.stopped, { Status: "unhealthy", logKept: true });
    assert.deepEqual(seen.restarted, { Status: "starting", FailingStreak: 0, logKept: true });
    assert.deepEqual(seen.events, ["health_status: unhealthy", "health_status: healthy", "health_status: healthy", "health_status: healthy"]);
  });

  test("a check that outlives --health-timeout is killed, counts as a failure, and leaves no process behind", async (t) => {
    const c = uniq("slow");
    removeAfter(t, c);
    await runChecked(bb.agent, c, { cmd: "sleep 100; echo never", timeout: "1s", interval: "2s", retries: 1 });
    const h = await waitHealth(bb.agent, c, "unhealthy");
    assert.deepEqual({ ExitCode: h.Log[0]!.ExitCode, Output: h.Log[0]!.Output }, { ExitCode: -1, Output: "Health check exceeded timeout (1s)" });
    const took = Date.parse(h.Log[0]!.End) - Date.parse(h.Log[0]!.Start);
    assert.ok(took >= 900 && took < 5000, `the probe ran ${took} ms`);
    // Right after a result is recorded the next probe is an interval away: nothing of the last one
    // runs, neither its shell nor the shell's child (Docker would leave the child to the container).
    // While a probe runs, `docker top` shows it (so its absence below means something).
    await until("a probe in docker top", async () => /sleep 100$/m.test(await dockerOk(bb.agent, ["top", c])), 10_000, bb.agent, 50);
    const before = (await health(bb.agent, c))!.Log.length;
    await until("the next result", async () => ((await health(bb.agent, c))!.Log.length > before ? true : undefined), 10_000);
    const top = await dockerOk(bb.agent, ["top", c]);
    assert.doesNotMatch(top, /sleep 100$|echo never/m, top);
    assert.match(top, /sleep 1000/);
  });

  test('a probe\'s output is kept up to 4 KiB, then "..."; the log keeps the last five results', async (t) => {
    const c = uniq("chatty");
    removeAfter(t, c);
    await runChecked(bb.agent, c, { cmd: "head -c 5000 /dev/zero | tr '\\0' a; echo; exit 1", interval: "1s", retries: 100 });
    const h = await until(
      "six results",
      async () => {
        const x = (await health(bb.agent, c))!;
        return x.FailingStreak >= 6 ? x : undefined;
      },
      30_000,
      bb.agent,
    );
    assert.equal(h.Log.length, 5);
    assert.equal(h.Log[0]!.Output.length, 4099);
    assert.match(h.Log[0]!.Output, /^a{4096}\.\.\.$/);
    assert.equal(h.Status, "starting", "100 retries: still starting");
  });

  test("--health-start-period: failures before it ends do not count", async (t) => {
    const c = uniq("slowstart");
    removeAfter(t, c);
    await runChecked(bb.agent, c, { cmd: "false", interval: "1s", retries: 1, startPeriod: "4s" });
    const early = await until(
      "a first result",
      async () => {
        const x = (await health(bb.agent, c))!;
        return x.Log.length >= 1 ? x : undefined;
      },
      10_000,
      bb.agent,
    );
    assert.deepEqual({ Status: early.Status, FailingStreak: early.FailingStreak }, { Status: "starting", FailingStreak: 0 });
    const late = await waitHealth(bb.agent, c, "unhealthy");
    const started = Date.parse((await dockerOk(bb.agent, ["inspect", "--format", "{{.State.StartedAt}}", c])).trim());
    assert.ok(Date.parse(late.Log.at(-1)!.Start) - started >= 4000, "only a failure after the start period counts");
  });

  test("HEALTHCHECK of an image from docker build; --health-* overrides a field, --no-healthcheck turns it off", async (t) => {
    const dir = join(bb.work, "ctx-health");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "Dockerfile"), `FROM busybox\nHEALTHCHECK --interval=1s --retries=1 CMD ["test", "-e", "/etc/passwd"]\n`);
    const tag = `health/built:${randomBytes(3).toString("hex")}`;
    await dockerOk(bb.agent, ["build", "-t", tag, dir], { timeoutMs: 180_000 });
    t.after(async () => void (await docker(bb.agent, ["rmi", "-f", tag])));
    const [plain, slower, off] = [uniq("img"), uniq("img-slow"), uniq("img-off")];
    removeAfter(t, plain, slower, off);
    await dockerOk(bb.agent, ["run", "-d", "--name", plain, "--network", "none", tag, "sleep", "1000"]);
    await dockerOk(bb.agent, ["run", "-d", "--name", slower, "--network", "none", "--health-interval", "2s", tag, "sleep", "1000"]);
    await dockerOk(bb.agent, ["run", "-d", "--name", off, "--network", "none", "--no-healthcheck", tag, "sleep", "1000"]);
    const config = async (n: string) => JSON.parse(await dockerOk(bb.agent, ["inspect", "--format", "{{json .Config.Healthcheck}}", n])) as unknown;
    assert.deepEqual(await config(plain), { Test: ["CMD", "test", "-e", "/etc/passwd"], Interval: 1_000_000_000, Retries: 1 });
    assert.deepEqual(await config(slower), { Test: ["CMD", "test", "-e", "/etc/passwd"], Interval: 2_000_000_000, Retries: 1 });
    // Docker's merge fills the fields --no-healthcheck leaves at zero from the image (seen on Docker 20.10).
    assert.deepEqual(await config(off), { Test: ["NONE"], Interval: 1_000_000_000, Retries: 1 });
    await waitHealth(bb.agent, plain, "healthy");
    await waitHealth(bb.agent, slower, "healthy");
    assert.equal(await health(bb.agent, off), null);
    assert.match(await statusColumn(bb.agent, plain), /^Up .+ \(healthy\)$/);
    assert.match(await statusColumn(bb.agent, off), /^Up [^(]+$/);
  });

  test("an agent that stops kills the probe under way: nothing of it is left in the container", async (t) => {
    const c = uniq("orphan");
    removeAfter(t, c);
    await runChecked(bb.agent, c, { cmd: "sleep 100; echo never", interval: "3s", timeout: "60s" });
    await until("a probe in docker top", async () => /sleep 100$/m.test(await dockerOk(bb.agent, ["top", c])), 15_000, bb.agent, 50);
    await bb.agent.restart();
    // The restarted agent's first probe is an interval (3 s) away.
    const top = await dockerOk(bb.agent, ["top", c]);
    assert.doesNotMatch(top, /sleep 100$|echo never/m, top);
    assert.equal((await health(bb.agent, c))!.Status, "starting");
  });

  test('the checks go on after the agent restarts (from "starting", as Docker after a daemon restart)', async (t) => {
    const c = uniq("survivor");
    removeAfter(t, c);
    await runChecked(bb.agent, c, { cmd: "test -f /tmp/ok", interval: "1s", retries: 1 }, "busybox", ["sh", "-c", "touch /tmp/ok; exec sleep 1000"]);
    await waitHealth(bb.agent, c, "healthy");
    await bb.agent.restart();
    const after = (await health(bb.agent, c))!;
    assert.ok(["starting", "healthy"].includes(after.Status), after.Status);
    await waitHealth(bb.agent, c, "healthy");
    await dockerOk(bb.agent, ["exec", c, "rm", "/tmp/ok"]);
    const h = await waitHealth(bb.agent, c, "unhealthy");
    assert.equal(h.Log.at(-1)!.ExitCode, 1);
  });
});

describe("health checks: the walk-through on Docker 20.10 and on Berth shows the same", () => {
  let bb: BusyboxAgent | undefined;
  let dockerd: DockerdHandle | undefined;

  before(async () => {
    bb = await startBusyboxAgent("health-parity");
    const fx = await pushFixtureImages(bb.reg, { only: ["busybox"] });
    dockerd = await startDockerd();
    await dockerCliOk(dockerd, ["pull", fx.busybox.ref]);
    await dockerCliOk(dockerd, ["tag", fx.busybox.ref, "busybox"]);
  });
  after(async () => {
    await dockerd?.stop();
    await bb?.stop();
  });

  test("inspect, STATUS, filters and events of the walk-through", async () => {
    const [docker20, berth] = await Promise.all([walkThrough(dockerd!, "busybox"), walkThrough(bb!.agent, "busybox")]);
    const withoutNames = (s: Record<string, unknown>) => ({ ...s, filters: JSON.stringify(s.filters).replace(/h[cn]-[0-9a-f]{6}/g, (m) => m.slice(0, 2)) });
    assert.deepEqual(withoutNames(berth), withoutNames(docker20));
  });
});
