// The agent's OCI runtime (`--runtime runc|crun`, issue 16): what `docker info` says, what
// `docker run --runtime` gets, and an agent told to use a runtime this host cannot run.
// crun 1.8 (Debian's `crun`) refuses hybrid cgroup hosts; where this host is one, crun is
// left out and every refusal names that reason; where crun could run, it is named as
// installed but not this agent's runtime.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { docker, dockerOk, startAgent } from "./helpers/agent.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";
import { detectRuntimes } from "../agent/engine/runtime/runtimes.ts";

describe("OCI runtimes", { concurrency: false }, () => {
  let b: BusyboxAgent;
  before(async () => {
    b = await startBusyboxAgent("runtimes");
  });
  after(async () => {
    await b?.stop();
  });

  test("docker info lists runc as the only and default runtime, with a warning for crun and why", async () => {
    const crun = (await detectRuntimes()).find((r) => r.name === "crun")!;
    const info = JSON.parse(await dockerOk(b.agent, ["info", "--format", "{{json .}}"])) as {
      Runtimes: Record<string, { path: string }>;
      DefaultRuntime: string;
      Warnings: string[] | null;
    };
    assert.deepEqual(Object.keys(info.Runtimes), ["runc"]);
    assert.match(info.Runtimes.runc!.path, /\/runc$/);
    assert.equal(info.DefaultRuntime, "runc");
    const warning = (info.Warnings ?? []).find((w) => w.startsWith("runtime crun: "));
    assert.ok(warning, `no warning about crun in ${JSON.stringify(info.Warnings)}`);
    if (crun.unusable) assert.ok(warning.includes(crun.unusable), warning);
    else assert.match(warning, /installed, but this agent runs containers with runc/);
    // The CLI's own rendering: the default runtime, and the warning on stderr.
    const text = await docker(b.agent, ["info"]);
    assert.match(text.stdout, /Default Runtime: runc/);
    assert.ok(text.stderr.includes(warning), text.stderr);
  });

  test("docker run --runtime: runc runs; crun is refused naming the reason; an unknown name gets Docker's text", async () => {
    assert.equal((await dockerOk(b.agent, ["run", "--rm", "--runtime", "runc", "busybox", "echo", "ran"])).trim(), "ran");
    const crun = (await detectRuntimes()).find((r) => r.name === "crun")!;
    const refused = await docker(b.agent, ["run", "--rm", "--runtime", "crun", "busybox", "true"]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /unknown or invalid runtime name: crun: /);
    if (crun.unusable?.includes("hybrid")) assert.match(refused.stderr, /hybrid mode/);
    else if (crun.unusable) assert.ok(refused.stderr.includes(crun.unusable), refused.stderr);
    else assert.match(refused.stderr, /this agent runs every container with runc \(start it with --runtime crun/);
    const unknown = await docker(b.agent, ["create", "--runtime", "kata", "busybox", "true"]);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /unknown or invalid runtime name: kata$/m);
    // Nothing was made for the refused ones.
    assert.equal((await dockerOk(b.agent, ["ps", "-a", "-q"])).trim(), "");
    const inspect = await dockerOk(b.agent, ["create", "busybox", "true"]);
    assert.equal((await dockerOk(b.agent, ["inspect", "--format", "{{.HostConfig.Runtime}}", inspect.trim()])).trim(), "runc");
    await dockerOk(b.agent, ["rm", inspect.trim()]);
  });

  test("an agent told --runtime crun: starts with crun where it can run, else stops at once naming why", async () => {
    const crun = (await detectRuntimes()).find((r) => r.name === "crun")!;
    if (crun.unusable) {
      await assert.rejects(startAgent({ extraArgs: ["--runtime", "crun"] }), (e: Error) => {
        assert.match(e.message, /the runtime crun \(--runtime\) cannot run containers on this host: /);
        assert.ok(e.message.includes(crun.unusable!), e.message);
        return true;
      });
    } else {
      const agent = await startAgent({ registryMirrors: [b.reg.url], extraArgs: ["--runtime", "crun"] });
      try {
        const info = JSON.parse(await dockerOk(agent, ["info", "--format", "{{json .}}"])) as { DefaultRuntime: string };
        assert.equal(info.DefaultRuntime, "crun");
        assert.equal((await dockerOk(agent, ["run", "--rm", "busybox", "echo", "ran"])).trim(), "ran");
      } finally {
        await agent.destroy();
      }
    }
    // A name the agent does not know is a configuration error.
    await assert.rejects(startAgent({ extraArgs: ["--runtime", "kata"] }), /runtime: one of runc, crun/);
  });
});
