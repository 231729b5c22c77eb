// The one mapping from API errors to form messages (app/lib/form-errors.ts), and the node
// label selector the pickers use ("env=prod"). The errors come from the real tRPC stack:
// a procedure with a zod input called through a caller, formatted by the console's own
// error formatter, as the browser receives it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { z } from "zod";
import { formErrors, issuesOf, pathKey } from "../app/lib/form-errors.ts";
import { nodeMatches } from "../server/trpc/routers/nodes.ts";
import { appRouter } from "../server/trpc/router.ts";

/** What the browser gets for an input that fails validation: the console formats the error itself. */
async function browserError(
  path: string,
  input: unknown,
): Promise<{ message: string; data: { code?: string; issues?: Array<{ path: Array<string | number>; message: string }> } }> {
  const { getErrorShape, getTRPCErrorFromUnknown } = await import("@trpc/server/unstable-core-do-not-import");
  const schema = (appRouter._def.procedures as unknown as Record<string, { _def: { inputs: z.ZodType[] } }>)[path]!._def.inputs[0]!;
  const r = schema.safeParse(input);
  assert.ok(!r.success, "the sample input is invalid");
  const { TRPCError } = await import("@trpc/server");
  const err = getTRPCErrorFromUnknown(new TRPCError({ code: "BAD_REQUEST", message: r.error.message, cause: r.error }));
  const shape = getErrorShape({ config: appRouter._def._config, error: err, type: "mutation", path, input, ctx: undefined });
  return shape as never;
}

test("a validation error becomes one message per field, never zod's JSON", async () => {
  const e = await browserError("jobs.createNetwork", { nodeIds: [], name: "bad name!", subnet: "10.0.0.0/33x" });
  assert.ok(e.data.issues?.length, "the console sends the issues by field");
  const f = formErrors(e, ["nodeIds", "name", "subnet", "gateway", "labels"]);
  assert.equal(f.fields.nodeIds, "choose at least one node");
  assert.match(f.fields.name!, /letters, digits/);
  assert.match(f.fields.subnet!, /IPv4 subnet in CIDR form/);
  assert.equal(f.form, null, "nothing left over for the form");
  // A form that shows no control for a field gets it as "field: message", still no JSON.
  const g = formErrors(e, ["name"]);
  assert.match(g.form!, /^nodeIds: choose at least one node$/m);
  assert.doesNotMatch(g.form!, /[[{]"/);
});

test("a field's children are its own: labels.env goes under labels", async () => {
  const e = await browserError("jobs.createVolume", { nodeIds: ["00000000-0000-4000-8000-000000000000"], labels: { "a b": "x" } });
  const f = formErrors(e, ["labels"]);
  assert.match(f.fields.labels!, /label key "a b": no spaces/);
});

test("an older answer with zod's JSON as its message is read the same way", () => {
  const message = JSON.stringify([{ code: "invalid_format", path: ["address"], message: "registry address must be host[:port]" }]);
  assert.deepEqual(issuesOf({ message }), [{ path: ["address"], message: "registry address must be host[:port]" }]);
  assert.deepEqual(formErrors({ message }, ["address"]).fields, { address: "registry address must be host[:port]" });
  assert.equal(pathKey(["targets", 0, "id"]), "targets[0].id");
});

test("any other error is the form's message as the server wrote it", () => {
  assert.deepEqual(formErrors({ message: "the current password is wrong", data: { code: "BAD_REQUEST" } }, ["current"]), {
    fields: {},
    form: "the current password is wrong",
  });
  assert.deepEqual(formErrors(null), { fields: {}, form: null });
  // "[" alone is not JSON: shown as it is.
  assert.equal(formErrors({ message: "[node 3] is offline" }).form, "[node 3] is offline");
});

test("node search: key=value matches a label exactly, key= any value, text any of name, ID, address, label", () => {
  const n = { id: "3f2a9c1d-0000-4000-8000-000000000001", name: "vm", hostname: "vm", labels: { env: "prod", rack: "b2" }, addresses: ["192.0.2.7"] };
  assert.ok(nodeMatches(n, "env=prod"));
  assert.ok(nodeMatches(n, "ENV=Prod"));
  assert.ok(!nodeMatches(n, "env=pro"), "a label value matches whole");
  assert.ok(nodeMatches(n, "rack="));
  assert.ok(!nodeMatches(n, "zone="));
  assert.ok(nodeMatches(n, "3f2a9c1d"), "short ID");
  assert.ok(nodeMatches(n, "192.0.2"), "address");
  assert.ok(nodeMatches(n, "prod"), "a label as text");
  assert.ok(!nodeMatches(n, "staging"));
});
