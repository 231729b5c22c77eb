// The engine's one event stream through `docker events` (the real docker CLI against a real
// agent): image, volume and network events in Docker's shape (Type, Action, Actor{ID,
// Attributes}, time, timeNano) next to the container events, each type selectable with
// `--filter type=…` as Docker does.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { execFileSync } from "node:child_process";
import { docker, dockerBackground, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";
import { poll, sleep } from "./helpers/wait.ts";

const uniq = (prefix: string) => `${prefix}-${randomBytes(3).toString("hex")}`;

interface DockerEventJson {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: string;
  time: number;
  timeNano: number;
  status?: string;
  id?: string;
  from?: string;
}

/** `docker events --format '{{json .}}'` with the given filters, left running; its events so far and a way to end it. */
function watchEvents(agent: AgentHandle, filters: string[]) {
  const cli = dockerBackground(agent, ["events", "--format", "{{json .}}", ...filters.flatMap((f) => ["--filter", f])]);
  return {
    events: (): DockerEventJson[] =>
      cli.stdout
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as DockerEventJson),
    get output() {
      return cli.stdout + cli.stderr;
    },
    kill: cli.kill,
  };
}

describe("docker events: images, volumes and networks on the engine's one stream", () => {
  let env: BusyboxAgent;
  let agent: AgentHandle;

  before(async () => {
    env = await startBusyboxAgent("events");
    agent = env.agent;
  });
  after(async () => env?.stop());

  test("--filter type=image shows pull, tag, save, untag, load, import and delete, and nothing else", async (t) => {
    const repo = uniq("evimg");
    const watch = watchEvents(agent, ["type=image"]);
    t.after(() => watch.kill());
    await sleep(1000);
    const id = (await dockerOk(agent, ["image", "inspect", "--format", "{{.Id}}", "busybox"])).trim();
    await dockerOk(agent, ["pull", "busybox"]);
    await dockerOk(agent, ["tag", "busybox", `${repo}:1`]);
    const archive = join(env.work, `${repo}.tar`);
    await dockerOk(agent, ["save", "-o", archive, `${repo}:1`]);
    await dockerOk(agent, ["rmi", `${repo}:1`]);
    await dockerOk(agent, ["load", "-i", archive]);
    await dockerOk(agent, ["rmi", `${repo}:1`]);
    const rootfs = join(env.work, `${repo}-rootfs`);
    await mkdir(rootfs);
    await writeFile(join(rootfs, "hello"), "hello\n");
    const tarball = join(env.work, `${repo}-rootfs.tar`);
    execFileSync("tar", ["-cf", tarball, "-C", rootfs, "."]);
    const imported = (await dockerOk(agent, ["import", tarball, `${repo}:imported`])).trim();
    // Something else happens meanwhile: the filter keeps it out.
    await dockerOk(agent, ["run", "--rm", "busybox", "true"]);
    await dockerOk(agent, ["rmi", `${repo}:imported`]);

    const seen = await poll(async () => watch.events().filter((e) => e.Action === "delete").length >= 1, 10_000);
    await watch.kill();
    assert.ok(seen, watch.output);
    const events = watch.events();
    assert.ok(
      events.every((e) => e.Type === "image" && e.scope === "local"),
      watch.output,
    );
    const find = (action: string, pred: (e: DockerEventJson) => boolean = () => true) => events.find((e) => e.Action === action && pred(e));

    const pull = find("pull");
    assert.equal(pull?.Actor.ID, "busybox:latest", watch.output);
    assert.equal(pull?.Actor.Attributes.name, "busybox:latest");
    const tag = find("tag", (e) => e.Actor.Attributes.name === `${repo}:1`);
    assert.equal(tag?.Actor.ID, id, watch.output);
    assert.equal(find("save")?.Actor.ID, id, watch.output);
    const untag = find("untag");
    assert.equal(untag?.Actor.ID, id, watch.output);
    assert.equal(untag?.Actor.Attributes.name, id);
    assert.equal(find("load")?.Actor.ID, id, watch.output);
    assert.equal(find("import")?.Actor.ID, imported, watch.output);
    assert.ok(
      find("tag", (e) => e.Actor.ID === imported && e.Actor.Attributes.name === `${repo}:imported`),
      watch.output,
    );
    assert.equal(find("delete")?.Actor.ID, imported, watch.output);
    // The legacy fields moby fills for images (status, id), with seconds and nanoseconds of one instant.
    assert.equal(pull?.status, "pull");
    assert.equal(pull?.id, "busybox:latest");
    assert.equal(Math.floor(pull!.timeNano / 1e9), pull!.time);
    // In the order they happened.
    const order = events.map((e) => e.Action);
    assert.ok(order.indexOf("pull") < order.indexOf("tag") && order.indexOf("save") < order.indexOf("untag"), order.join(" "));
    assert.ok(order.indexOf("untag") < order.indexOf("load") && order.indexOf("import") < order.indexOf("delete"), order.join(" "));
  });

  test("--filter type=volume shows create, mount, unmount and destroy with Docker's attributes", async (t) => {
    const vol = uniq("evvol");
    const watch = watchEvents(agent, ["type=volume"]);
    t.after(() => watch.kill());
    t.after(async () => void (await docker(agent, ["volume", "rm", "-f", vol])));
    await sleep(1000);
    await dockerOk(agent, ["volume", "create", vol]);
    const cid = (await dockerOk(agent, ["run", "-d", "-v", `${vol}:/data`, "busybox", "true"])).trim();
    await dockerOk(agent, ["wait", cid]);
    await poll(async () => watch.events().some((e) => e.Action === "unmount"), 10_000);
    await dockerOk(agent, ["rm", cid]);
    await dockerOk(agent, ["volume", "rm", vol]);

    const seen = await poll(async () => watch.events().some((e) => e.Action === "destroy"), 10_000);
    await watch.kill();
    assert.ok(seen, watch.output);
    const events = watch.events();
    assert.deepEqual(
      events.map((e) => [e.Type, e.Action, e.Actor.ID]),
      [
        ["volume", "create", vol],
        ["volume", "mount", vol],
        ["volume", "unmount", vol],
        ["volume", "destroy", vol],
      ],
      watch.output,
    );
    assert.deepEqual(events[0]!.Actor.Attributes, { driver: "local" });
    assert.deepEqual(events[1]!.Actor.Attributes, { driver: "local", container: cid, destination: "/data", "read/write": "true", propagation: "" });
    assert.deepEqual(events[2]!.Actor.Attributes, { driver: "local", container: cid });
    assert.equal(events[0]!.status, undefined, "no legacy fields for volumes (as moby)");
  });

  test("--filter type=network shows create, connect, disconnect and destroy; --filter network= selects one", async (t) => {
    const net = uniq("evnet");
    const c = uniq("evnetc");
    const watch = watchEvents(agent, ["type=network"]);
    const one = watchEvents(agent, [`network=${net}`]);
    t.after(() => Promise.all([watch.kill(), one.kill()]));
    t.after(async () => {
      await docker(agent, ["rm", "-f", c]);
      await docker(agent, ["network", "rm", net]);
    });
    await sleep(1000);
    const nid = (await dockerOk(agent, ["network", "create", net])).trim();
    const cid = (await dockerOk(agent, ["run", "-d", "--name", c, "--network", net, "busybox", "sleep", "300"])).trim();
    await dockerOk(agent, ["network", "connect", "bridge", c]);
    await dockerOk(agent, ["network", "disconnect", "bridge", c]);
    await dockerOk(agent, ["rm", "-f", c]);
    await dockerOk(agent, ["network", "rm", net]);

    const seen = await poll(async () => one.events().some((e) => e.Action === "destroy"), 10_000);
    await Promise.all([watch.kill(), one.kill()]);
    assert.ok(seen, one.output);
    const mine = one.events();
    assert.deepEqual(
      mine.map((e) => e.Action),
      ["create", "connect", "disconnect", "destroy"],
      one.output,
    );
    for (const e of mine) assert.equal(e.Actor.ID, nid);
    assert.deepEqual(mine[0]!.Actor.Attributes, { name: net, type: "bridge" });
    assert.deepEqual(mine[1]!.Actor.Attributes, { container: cid, name: net, type: "bridge" });
    assert.deepEqual(mine[2]!.Actor.Attributes, { container: cid, name: net, type: "bridge" });
    // The default bridge's connect and disconnect by hand are on the unfiltered stream.
    const bridge = watch.events().filter((e) => e.Actor.Attributes.name === "bridge");
    assert.deepEqual(
      bridge.map((e) => [e.Action, e.Actor.Attributes.container, e.Actor.Attributes.type]),
      [
        ["connect", cid, "bridge"],
        ["disconnect", cid, "bridge"],
      ],
      watch.output,
    );
    assert.ok(
      watch.events().every((e) => e.Type === "network"),
      watch.output,
    );
  });
});
