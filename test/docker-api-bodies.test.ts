// Docker API request bodies are validated as Docker's Go decoder does (issue 12): raw HTTP
// requests over the agent's unix socket with fields of the wrong type get 400 and Go's
// "json: cannot unmarshal …" text naming the field (the texts below are Docker 20.10's, taken
// from the same requests against it), unknown fields are ignored, and `null` is a zero value.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { randomBytes } from "node:crypto";
import { docker, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";

const uniq = (prefix: string) => `${prefix}-${randomBytes(3).toString("hex")}`;

function raw(socket: string, method: string, path: string, body?: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; text: string; json: { message?: string; Id?: string } }>((resolve, reject) => {
    const r = request({ socketPath: socket, method, path, headers: { "Content-Type": "application/json", ...headers } }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString()));
      res.on("end", () => {
        let json = {};
        try {
          json = JSON.parse(text) as object;
        } catch {
          // A stream (pull) answers with several JSON lines: read as text.
        }
        resolve({ status: res.statusCode!, text, json });
      });
      res.on("error", reject);
    });
    r.on("error", reject);
    r.end(body);
  });
}

describe("Docker API bodies: Go's decoding rules and texts", () => {
  let agent: AgentHandle;
  let suite: BusyboxAgent | undefined;
  before(async () => void ({ agent } = suite = await startBusyboxAgent("api-bodies")));
  after(() => suite?.stop());

  const wrongTypes: Array<[string, string, unknown, string]> = [
    [
      "POST",
      "/v1.41/containers/create",
      { Image: "busybox", HostConfig: { Memory: "1g" } },
      "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64",
    ],
    [
      "POST",
      "/v1.41/containers/create",
      { Image: "busybox", Tty: "yes" },
      "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Tty of type bool",
    ],
    [
      "POST",
      "/v1.41/containers/create",
      { Image: "busybox", Env: "A=1" },
      "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.Env of type []string",
    ],
    [
      "POST",
      "/v1.41/containers/create",
      { Image: "busybox", Labels: { a: 1 } },
      "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Labels of type string",
    ],
    ["POST", "/v1.41/containers/create", { Image: 5 }, "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Image of type string"],
    [
      "POST",
      "/v1.41/containers/create",
      { Image: "busybox", HostConfig: { Memory: 1.5 } },
      "json: cannot unmarshal number 1.5 into Go struct field HostConfig.HostConfig.Memory of type int64",
    ],
    [
      "POST",
      "/v1.41/containers/create",
      { Image: "busybox", HostConfig: { RestartPolicy: { MaximumRetryCount: "3" } } },
      "json: cannot unmarshal string into Go struct field RestartPolicy.HostConfig.RestartPolicy.MaximumRetryCount of type int",
    ],
    [
      "POST",
      "/v1.41/containers/create",
      { Image: "busybox", NetworkingConfig: { EndpointsConfig: { x: { Aliases: "a" } } } },
      "json: cannot unmarshal string into Go struct field EndpointSettings.NetworkingConfig.EndpointsConfig.Aliases of type []string",
    ],
    [
      "POST",
      "/v1.41/containers/create",
      { Image: "busybox", HostConfig: { PortBindings: { "80/tcp": [{ HostPort: 80 }] } } },
      "json: cannot unmarshal number into Go struct field PortBinding.HostConfig.PortBindings.HostPort of type string",
    ],
    [
      "POST",
      "/v1.41/containers/create",
      { Image: "busybox", Healthcheck: { Test: "x" } },
      "json: cannot unmarshal string into Go struct field HealthConfig.Healthcheck.Test of type []string",
    ],
    [
      "POST",
      "/v1.41/containers/create",
      { Image: "busybox", Cmd: 5 },
      "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Cmd of type string",
    ],
    ["POST", "/v1.41/containers/create", [1], "json: cannot unmarshal array into Go value of type runconfig.ContainerConfigWrapper"],
    ["POST", "/v1.41/containers/{c}/update", { Memory: "1" }, "json: cannot unmarshal string into Go struct field UpdateConfig.Memory of type int64"],
    ["POST", "/v1.41/containers/{c}/exec", { Cmd: "ls" }, "json: cannot unmarshal string into Go struct field ExecConfig.Cmd of type []string"],
    ["POST", "/v1.41/containers/{c}/exec", { Tty: 1 }, "json: cannot unmarshal number into Go struct field ExecConfig.Tty of type bool"],
    ["POST", "/v1.41/networks/create", { Name: 5 }, "json: cannot unmarshal number into Go struct field NetworkCreateRequest.Name of type string"],
    [
      "POST",
      "/v1.41/networks/create",
      { Name: "n", Internal: "yes" },
      "json: cannot unmarshal string into Go struct field NetworkCreateRequest.Internal of type bool",
    ],
    [
      "POST",
      "/v1.41/networks/create",
      { Name: "n", IPAM: { Config: [{ Subnet: 5 }] } },
      "json: cannot unmarshal number into Go struct field IPAMConfig.IPAM.Config.Subnet of type string",
    ],
    ["POST", "/v1.41/networks/bridge/connect", { Container: 5 }, "json: cannot unmarshal number into Go struct field NetworkConnect.Container of type string"],
    [
      "POST",
      "/v1.41/networks/bridge/disconnect",
      { Container: "c", Force: "yes" },
      "json: cannot unmarshal string into Go struct field NetworkDisconnect.Force of type bool",
    ],
    ["POST", "/v1.41/volumes/create", { Name: 5 }, "json: cannot unmarshal number into Go struct field VolumeCreateBody.Name of type string"],
    ["POST", "/v1.41/volumes/create", { Labels: { a: 5 } }, "json: cannot unmarshal number into Go struct field VolumeCreateBody.Labels of type string"],
    ["POST", "/v1.41/commit?container={c}", { Cmd: 5 }, "json: cannot unmarshal number into Go struct field ContainerConfigWrapper.Cmd of type string"],
    ["POST", "/v1.41/auth", { username: 5 }, "json: cannot unmarshal number into Go struct field AuthConfig.username of type string"],
  ];

  test("wrong types: 400 with Go's text naming the struct, the field path and the Go type", async (t) => {
    const c = uniq("bodies");
    t.after(async () => void (await docker(agent, ["rm", "-f", c])));
    await dockerOk(agent, ["run", "-d", "--name", c, "busybox", "sleep", "300"]);
    for (const [method, path, body, message] of wrongTypes) {
      const r = await raw(agent.socket, method, path.replace("{c}", c), JSON.stringify(body));
      assert.deepEqual({ path, status: r.status, message: r.json.message }, { path, status: 400, message }, JSON.stringify(body));
    }
    // The exec start body too (it arrives before the connection is switched to a stream).
    const exec = await raw(agent.socket, "POST", `/v1.41/containers/${c}/exec`, JSON.stringify({ Cmd: ["true"] }));
    assert.equal(exec.status, 201, exec.json.message);
    const start = await raw(agent.socket, "POST", `/v1.41/exec/${exec.json.Id}/start`, JSON.stringify({ Detach: "yes" }));
    assert.deepEqual(
      { status: start.status, message: start.json.message },
      { status: 400, message: "json: cannot unmarshal string into Go struct field ExecStartCheck.Detach of type bool" },
    );
  });

  test("missing fields: Docker's texts", async () => {
    for (const body of [{}, { HostConfig: { Memory: 0 } }]) {
      const r = await raw(agent.socket, "POST", "/v1.41/containers/create", JSON.stringify(body));
      assert.deepEqual({ status: r.status, message: r.json.message }, { status: 400, message: "Config cannot be empty in order to create a container" });
    }
    const exec = await raw(agent.socket, "POST", "/v1.41/containers/nope/exec", JSON.stringify({ Cmd: null }));
    assert.equal(exec.status, 404, exec.json.message);
    const bad = await raw(agent.socket, "POST", "/v1.41/containers/create", "{");
    assert.equal(bad.status, 400);
  });

  test("unknown fields are ignored and null is a zero value: the container is created and runs", async (t) => {
    const c = uniq("loose");
    t.after(async () => void (await docker(agent, ["rm", "-f", c])));
    const r = await raw(
      agent.socket,
      "POST",
      `/v1.41/containers/create?name=${c}`,
      JSON.stringify({
        Image: "busybox",
        Cmd: "true",
        Bogus: { nested: [1, 2] },
        Env: null,
        Labels: { k: null },
        HostConfig: { Memory: null, RestartPolicy: null, FutureField: true, PortBindings: null },
        NetworkingConfig: null,
      }),
    );
    assert.equal(r.status, 201, r.json.message);
    assert.equal(
      (await dockerOk(agent, ["inspect", "--format", "{{json .Config.Labels}} {{.HostConfig.Memory}} {{json .Config.Cmd}}", c])).trim(),
      `{"k":""} 0 ["true"]`,
    );
    await dockerOk(agent, ["start", "-a", c]);
  });

  test("a malformed X-Registry-Auth header means no credentials, as in Docker: the pull goes on", async () => {
    for (const header of ["!!!not-base64", Buffer.from(JSON.stringify({ username: 5 })).toString("base64")]) {
      const r = await raw(agent.socket, "POST", "/v1.41/images/create?fromImage=busybox&tag=latest", undefined, { "X-Registry-Auth": header });
      assert.equal(r.status, 200, r.text);
      assert.match(r.text, /Status: Image is up to date for busybox:latest/);
      assert.doesNotMatch(r.text, /errorDetail/);
    }
  });

  test("JSON query parameters of build: Go's text after Docker's prefix", async () => {
    const r = await raw(agent.socket, "POST", `/v1.41/build?buildargs=${encodeURIComponent(JSON.stringify({ A: 5 }))}`, "");
    assert.deepEqual(
      { status: r.status, message: r.json.message },
      { status: 400, message: "error reading build args: json: cannot unmarshal number into Go value of type *string" },
    );
  });
});
