import { test } from "node:test";
import assert from "node:assert/strict";
import { parseChallenges, repositoryScope, TokenCache } from "./auth.ts";

test("parseChallenges: one Bearer challenge as distribution sends it", () => {
  assert.deepEqual(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'), [
    { scheme: "bearer", params: { realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/busybox:pull" } },
  ]);
});

test("parseChallenges: several challenges joined by fetch, tokens, escapes", () => {
  assert.deepEqual(parseChallenges('Bearer realm="https://a/token", service="s", Basic realm="x \\"y\\"", Negotiate'), [
    { scheme: "bearer", params: { realm: "https://a/token", service: "s" } },
    { scheme: "basic", params: { realm: 'x "y"' } },
    { scheme: "negotiate", params: {} },
  ]);
  assert.deepEqual(parseChallenges("Basic realm=plain"), [{ scheme: "basic", params: { realm: "plain" } }]);
  assert.deepEqual(parseChallenges(""), []);
  assert.deepEqual(parseChallenges(null), []);
  // an unterminated quote stops parsing without throwing
  assert.deepEqual(parseChallenges('Bearer realm="oops'), [{ scheme: "bearer", params: {} }]);
});

test("TokenCache: scope sets, supersets and expiry", () => {
  let now = 1000;
  const cache = new TokenCache(() => now);
  const pull = repositoryScope("a/b", ["pull"]);
  const push = repositoryScope("a/b", ["pull", "push"]);
  assert.equal(cache.lookup("k", [pull]), undefined);
  cache.store("k", [pull], "t-pull", 5000);
  assert.equal(cache.lookup("k", [pull]), "t-pull");
  assert.equal(cache.lookup("k", [push]), undefined, "a pull token does not serve push");
  assert.equal(cache.lookup("other", [pull]), undefined, "keys are separate (registry, realm, account)");
  cache.store("k", [push, repositoryScope("c/d", ["pull"])], "t-push", 5000);
  assert.equal(cache.lookup("k", [push]), "t-push");
  assert.equal(cache.lookup("k", [repositoryScope("c/d", ["pull"])]), "t-push");
  cache.store("k", ["registry:catalog:*"], "t-cat", 9000);
  assert.equal(cache.lookup("k", ["registry:catalog:*"]), "t-cat");
  now = 6000;
  assert.equal(cache.lookup("k", [pull]), undefined, "expired");
  assert.equal(cache.lookup("k", ["registry:catalog:*"]), "t-cat");
  cache.forget("k", "t-cat");
  assert.equal(cache.lookup("k", ["registry:catalog:*"]), undefined);
});
