import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { isEngineError } from "../errors.ts";
import { chainIdOf } from "./chain-id.ts";

const d1 = `sha256:${"1".repeat(64)}`;
const d2 = `sha256:${"2".repeat(64)}`;
const d3 = `sha256:${"3".repeat(64)}`;

/** sha256 by an independent implementation (coreutils). */
const sha256sum = (s: string) => "sha256:" + execFileSync("sha256sum", { input: s, encoding: "utf8" }).slice(0, 64);

test("chain ID of one layer is its diff ID", () => {
  assert.equal(chainIdOf([d1]), d1);
});

test("chain ID folds sha256(parent + ' ' + diffID)", () => {
  const c2 = sha256sum(`${d1} ${d2}`);
  assert.equal(chainIdOf([d1, d2]), c2);
  assert.equal(chainIdOf([d1, d2, d3]), sha256sum(`${c2} ${d3}`));
});

test("bad input is InvalidArgument", () => {
  assert.throws(
    () => chainIdOf([]),
    (e) => isEngineError(e, "InvalidArgument"),
  );
  assert.throws(
    () => chainIdOf([d1, "sha256:nothex"]),
    (e) => isEngineError(e, "InvalidArgument") && /invalid digest format/.test(e.message),
  );
});
