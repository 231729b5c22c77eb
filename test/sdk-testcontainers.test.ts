// testcontainers (npm), the client many CI suites use, against a real agent: a GenericContainer
// with an exposed port, wait strategies on a log line and on the health check, exec with
// stdout and stderr apart, files copied in and out, a network with aliases, logs.
// Ryuk (its reaper container) is off: the test removes what it started.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { pushFixtureImages } from "./fixtures/images.ts";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { dockerOk, startAgent, type AgentHandle } from "./helpers/agent.ts";

function httpGet(host: string, port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
    req.end();
  });
}

async function text(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer));
  return Buffer.concat(chunks);
}

describe("testcontainers against the agent", () => {
  let reg: RegistryFixture | undefined;
  let agent: AgentHandle | undefined;
  let ref: string;

  before(async () => {
    reg = await startRegistry({ auth: "none" });
    ref = (await pushFixtureImages(reg, { only: ["busybox"] })).busybox.ref;
    agent = await startAgent({ insecureRegistries: [reg.host] });
    await dockerOk(agent, ["pull", ref]);
    // testcontainers reads its Docker host from the environment, once, at first use.
    process.env.DOCKER_HOST = agent.dockerHost;
    process.env.TESTCONTAINERS_RYUK_DISABLED = "true";
  });

  after(async () => {
    await agent?.destroy();
    await reg?.stop();
  });

  test("GenericContainer: exposed port, a log wait, exec, files in and out, logs, stop", async () => {
    const { GenericContainer, Wait } = await import("testcontainers");
    const container = await new GenericContainer(ref)
      .withCommand(["sh", "-c", "mkdir -p /www && echo hello-from-berth > /www/index.html && echo server starting && exec httpd -f -v -p 8080 -h /www"])
      .withExposedPorts(8080)
      .withCopyContentToContainer([{ content: "copied in before start\n", target: "/etc/berth-note.txt" }])
      .withWaitStrategy(Wait.forLogMessage("server starting"))
      .withStartupTimeout(30_000)
      .start();
    try {
      const port = container.getMappedPort(8080);
      const got = await httpGet(container.getHost(), port, "/index.html");
      assert.equal(got.status, 200);
      assert.equal(got.body, "hello-from-berth\n");

      const r = await container.exec(["sh", "-c", "echo to-out; echo to-err >&2; exit 3"]);
      assert.equal(r.exitCode, 3);
      assert.equal(r.stdout, "to-out\n");
      assert.equal(r.stderr, "to-err\n");
      assert.equal((await container.exec(["id", "-u"], { user: "root" })).stdout, "0\n");

      assert.equal((await container.exec(["cat", "/etc/berth-note.txt"])).stdout, "copied in before start\n");
      await container.copyContentToContainer([{ content: "copied in while running\n", target: "/www/live.txt" }]);
      assert.equal((await httpGet(container.getHost(), port, "/live.txt")).body, "copied in while running\n");
      const tar = await text(await container.copyArchiveFromContainer("/www/index.html"));
      assert.ok(tar.includes("index.html") && tar.includes("hello-from-berth"), "the archive holds the file");

      const logs = await container.logs();
      let seen = "";
      logs.on("data", (d: Buffer | string) => (seen += d.toString()));
      await new Promise((r) => setTimeout(r, 500));
      logs.destroy();
      assert.match(seen, /server starting/);
    } finally {
      await container.stop({ timeout: 1 });
    }
    assert.equal((await dockerOk(agent!, ["ps", "-aq"])).trim(), "", "stop removed the container");
  });

  test("a health-check wait, and two containers on a network reaching each other by alias", async () => {
    const { GenericContainer, Network, Wait } = await import("testcontainers");
    const network = await new Network().start();
    const server = await new GenericContainer(ref)
      .withNetwork(network)
      .withNetworkAliases("api")
      .withCommand(["sh", "-c", "sleep 1; mkdir -p /www && echo pong > /www/ping && exec httpd -f -p 80 -h /www"])
      .withHealthCheck({ test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1/ping"], interval: 500, timeout: 1000, retries: 10, startPeriod: 0 })
      .withWaitStrategy(Wait.forHealthCheck())
      .withStartupTimeout(30_000)
      .start();
    try {
      const client = await new GenericContainer(ref).withNetwork(network).withCommand(["sleep", "60"]).start();
      try {
        const r = await client.exec(["wget", "-q", "-O", "-", "http://api/ping"]);
        assert.equal(r.exitCode, 0, r.output);
        assert.equal(r.stdout, "pong\n");
      } finally {
        await client.stop({ timeout: 1 });
      }
    } finally {
      await server.stop({ timeout: 1 });
      await network.stop();
    }
    assert.equal((await dockerOk(agent!, ["network", "ls", "-q", "--filter", "name=^" + network.getName() + "$"])).trim(), "", "the network is gone");
  });
});
