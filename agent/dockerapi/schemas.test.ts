import assert from "node:assert/strict";
import { test } from "node:test";
import { CreateBodySchema, NetworkCreateBodySchema, parseDockerBody } from "./schemas.ts";

const message = (schema: Parameters<typeof parseDockerBody>[0], value: unknown) => {
  try {
    parseDockerBody(schema, value);
  } catch (e) {
    return (e as Error).message;
  }
  return "accepted";
};

test("Go's decoder texts: innermost struct, the path without map keys and indices, the Go type", () => {
  assert.equal(
    message(CreateBodySchema, { HostConfig: { Memory: "1g" } }),
    "json: cannot unmarshal string into Go struct field HostConfig.HostConfig.Memory of type int64",
  );
  assert.equal(
    message(CreateBodySchema, { HostConfig: { Memory: 1.5 } }),
    "json: cannot unmarshal number 1.5 into Go struct field HostConfig.HostConfig.Memory of type int64",
  );
  assert.equal(
    message(CreateBodySchema, { HostConfig: { PortBindings: { "80/tcp": [{ HostPort: 80 }] } } }),
    "json: cannot unmarshal number into Go struct field PortBinding.HostConfig.PortBindings.HostPort of type string",
  );
  assert.equal(
    message(CreateBodySchema, { HostConfig: "x" }),
    "json: cannot unmarshal string into Go struct field ContainerConfigWrapper.HostConfig of type *container.HostConfig",
  );
  assert.equal(
    message(CreateBodySchema, { Labels: { a: true } }),
    "json: cannot unmarshal bool into Go struct field ContainerConfigWrapper.Labels of type string",
  );
  assert.equal(message(CreateBodySchema, "x"), "json: cannot unmarshal string into Go value of type runconfig.ContainerConfigWrapper");
  assert.equal(
    message(NetworkCreateBodySchema, { IPAM: { Config: [{}, { Gateway: [] }] } }),
    "json: cannot unmarshal array into Go struct field IPAMConfig.IPAM.Config.Gateway of type string",
  );
});

test("null is a zero value and unknown fields pass through", () => {
  const body = parseDockerBody(CreateBodySchema, { Image: "busybox", Env: null, Labels: { a: null }, Future: { x: 1 }, HostConfig: { Memory: null } });
  assert.deepEqual(body.Labels, { a: "" });
  assert.equal((body as Record<string, unknown>).Future !== undefined, true);
  assert.deepEqual(parseDockerBody(CreateBodySchema, null), {});
});
