// Table tests taken from github.com/distribution/reference (normalize_test.go,
// reference_test.go), run through our ParseNormalizedNamed equivalent.
import { test } from "node:test";
import assert from "node:assert/strict";
import { canonicalString, familiarName, familiarString, fullName, isDigest, looksLikeImageId, parseNormalizedReference, withDefaultTag } from "./reference.ts";
import { isEngineError } from "./errors.ts";

const F64 = "f".repeat(64);
const HEX64 = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";

function rejects(input: string, message?: string | RegExp): void {
  assert.throws(
    () => parseNormalizedReference(input),
    (e: unknown) => {
      assert.ok(isEngineError(e, "InvalidArgument"), `${input}: expected InvalidArgument, got ${String(e)}`);
      if (typeof message === "string") assert.equal(e.message, message, input);
      else if (message) assert.match(e.message, message, input);
      return true;
    },
    input,
  );
}

test("TestValidateReferenceName: valid names", () => {
  for (const name of [
    "docker/docker",
    "library/debian",
    "debian",
    "docker.io/docker/docker",
    "docker.io/library/debian",
    "docker.io/debian",
    "index.docker.io/docker/docker",
    "index.docker.io/library/debian",
    "index.docker.io/debian",
    "127.0.0.1:5000/docker/docker",
    "127.0.0.1:5000/library/debian",
    "127.0.0.1:5000/debian",
    "192.168.0.1",
    "192.168.0.1:80",
    "192.168.0.1:8/debian",
    "192.168.0.2:25000/debian",
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
    "[fc00::1]:5000/docker",
    "[fc00::1]:5000/docker/docker",
    "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
    `docker.io/${HEX64}`,
    "Docker/docker",
    "DOCKER/docker",
    // TestValidateRemoteName
    "docker-rules/docker",
    "docker---rules/docker",
    "doc/docker",
    "d/docker",
    "jess/t",
    "dock__er/docker",
  ]) {
    assert.doesNotThrow(() => parseNormalizedReference(name), name);
  }
});

test("TestValidateReferenceName / TestValidateRemoteName: invalid names", () => {
  for (const name of [
    "https://github.com/docker/docker",
    "docker/Docker",
    "-docker",
    "-docker/docker",
    "-docker.io/docker/docker",
    "docker///docker",
    "docker.io/docker/Docker",
    "docker.io/docker///docker",
    "[fc00::1]",
    "[fc00::1]:5000",
    "fc00::1:5000/debian",
    "[fe80::1%eth0]:5000/debian",
    "[2001:db8:3:4::192.0.2.33]:5000/debian",
    HEX64,
    "docker-/docker",
    "-docker-/docker",
    "____/____",
    "_docker/_docker",
    "dock..er/docker",
    "dock_.er/docker",
    "dock-.er/docker",
    "docker/",
    "",
    ":justtag",
    "@sha256:" + F64,
    "aa/asdf$$^/aa",
    "[2001:db8::1]",
    "[2001:db8::1]:5000",
    "[fe80::1%@invalidzone]:5000/repo",
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_".repeat(4) + "/docker",
  ]) {
    rejects(name);
  }
});

test("error messages are worded as Docker words them", () => {
  rejects("Busybox", "invalid reference format: repository name (library/Busybox) must be lowercase");
  rejects("docker.io/docker/Docker", "invalid reference format: repository name (docker/Docker) must be lowercase");
  rejects("Uppercase:tag", "invalid reference format: repository name (library/Uppercase) must be lowercase");
  rejects("test:5000/Uppercase/lowercase:tag", "invalid reference format: repository name (Uppercase/lowercase) must be lowercase");
  rejects(HEX64, `invalid repository name (${HEX64}), cannot specify 64-byte hexadecimal strings`);
  rejects("aa/asdf$$^/aa", "invalid reference format");
  rejects("busybox:-tag", "invalid reference format");
  rejects("busybox:" + "a".repeat(129), "invalid reference format");
  rejects("repo@sha256:ffffffffffffffffffffffffffffffffff", "invalid checksum digest length");
  rejects("validname@invaliddigest:" + F64, "unsupported digest algorithm");
  rejects("repo@sha256:" + "F".repeat(64), "invalid checksum digest format");
  rejects("a/".repeat(128) + "a:tag", "repository name must not be more than 255 characters");
});

test("TestParseRepositoryInfo: familiar, full and domain", () => {
  const cases: Array<{ remote: string; familiar: string; full: string; ambiguous?: string; domain: string }> = [
    { remote: "fooo/bar", familiar: "fooo/bar", full: "docker.io/fooo/bar", ambiguous: "index.docker.io/fooo/bar", domain: "docker.io" },
    { remote: "library/ubuntu", familiar: "ubuntu", full: "docker.io/library/ubuntu", ambiguous: "library/ubuntu", domain: "docker.io" },
    { remote: "nonlibrary/ubuntu", familiar: "nonlibrary/ubuntu", full: "docker.io/nonlibrary/ubuntu", domain: "docker.io" },
    { remote: "other/library", familiar: "other/library", full: "docker.io/other/library", domain: "docker.io" },
    { remote: "private/moonbase", familiar: "127.0.0.1:8000/private/moonbase", full: "127.0.0.1:8000/private/moonbase", domain: "127.0.0.1:8000" },
    { remote: "privatebase", familiar: "127.0.0.1:8000/privatebase", full: "127.0.0.1:8000/privatebase", domain: "127.0.0.1:8000" },
    { remote: "private/moonbase", familiar: "example.com/private/moonbase", full: "example.com/private/moonbase", domain: "example.com" },
    { remote: "privatebase", familiar: "example.com/privatebase", full: "example.com/privatebase", domain: "example.com" },
    { remote: "private/moonbase", familiar: "example.com:8000/private/moonbase", full: "example.com:8000/private/moonbase", domain: "example.com:8000" },
    { remote: "privatebasee", familiar: "example.com:8000/privatebasee", full: "example.com:8000/privatebasee", domain: "example.com:8000" },
    {
      remote: "library/ubuntu-12.04-base",
      familiar: "ubuntu-12.04-base",
      full: "docker.io/library/ubuntu-12.04-base",
      ambiguous: "index.docker.io/library/ubuntu-12.04-base",
      domain: "docker.io",
    },
    { remote: "library/foo", familiar: "foo", full: "docker.io/library/foo", ambiguous: "docker.io/foo", domain: "docker.io" },
    { remote: "library/foo/bar", familiar: "library/foo/bar", full: "docker.io/library/foo/bar", domain: "docker.io" },
    { remote: "store/foo/bar", familiar: "store/foo/bar", full: "docker.io/store/foo/bar", domain: "docker.io" },
    { remote: "bar", familiar: "Foo/bar", full: "Foo/bar", domain: "Foo" },
    { remote: "bar", familiar: "FOO/bar", full: "FOO/bar", domain: "FOO" },
  ];
  for (const tc of cases) {
    for (const input of [tc.familiar, tc.full, ...(tc.ambiguous ? [tc.ambiguous] : [])]) {
      const r = parseNormalizedReference(input);
      assert.equal(familiarName(r), tc.familiar, `familiar name of ${input}`);
      assert.equal(fullName(r), tc.full, `full name of ${input}`);
      assert.equal(r.domain, tc.domain, `domain of ${input}`);
      assert.equal(r.path, tc.remote, `path of ${input}`);
      assert.equal(r.tag, undefined);
      assert.equal(r.digest, undefined);
    }
  }
});

test("TestNormalizedSplitHostname", () => {
  for (const [input, domain, path] of [
    ["test.com/foo", "test.com", "foo"],
    ["test_com/foo", "docker.io", "test_com/foo"],
    ["docker/migrator", "docker.io", "docker/migrator"],
    ["test.com:8080/foo", "test.com:8080", "foo"],
    ["test-com:8080/foo", "test-com:8080", "foo"],
    ["foo", "docker.io", "library/foo"],
    ["xn--n3h.com/foo", "xn--n3h.com", "foo"],
    ["xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo"],
    ["docker.io/foo", "docker.io", "library/foo"],
    ["docker.io/library/foo", "docker.io", "library/foo"],
    ["docker.io/library/foo/bar", "docker.io", "library/foo/bar"],
    ["localhost/foo", "localhost", "foo"],
    ["localhost:5000/foo/bar:1", "localhost:5000", "foo/bar"],
  ] as const) {
    const r = parseNormalizedReference(input);
    assert.equal(r.domain, domain, input);
    assert.equal(r.path, path, input);
  }
});

test("TestReferenceParse cases through normalisation", () => {
  const sha = "sha256:" + F64;
  const sha512 = "sha512:" + "f".repeat(128);
  const cases: Array<{ input: string; domain: string; path: string; tag?: string; digest?: string }> = [
    { input: "test_com", domain: "docker.io", path: "library/test_com" },
    { input: "test.com:tag", domain: "docker.io", path: "library/test.com", tag: "tag" },
    { input: "test.com:5000", domain: "docker.io", path: "library/test.com", tag: "5000" },
    { input: "test.com/repo:tag", domain: "test.com", path: "repo", tag: "tag" },
    { input: "test:5000/repo", domain: "test:5000", path: "repo" },
    { input: "test:5000/repo:tag", domain: "test:5000", path: "repo", tag: "tag" },
    { input: `test:5000/repo@${sha}`, domain: "test:5000", path: "repo", digest: sha },
    { input: `test:5000/repo:tag@${sha}`, domain: "test:5000", path: "repo", tag: "tag", digest: sha },
    { input: "lowercase:Uppercase", domain: "docker.io", path: "library/lowercase", tag: "Uppercase" },
    { input: "a/".repeat(127) + "a:tag-puts-this-over-max", domain: "docker.io", path: "a/".repeat(127) + "a", tag: "tag-puts-this-over-max" },
    { input: "sub-dom1.foo.com/bar/baz/quux", domain: "sub-dom1.foo.com", path: "bar/baz/quux" },
    { input: "sub-dom1.foo.com/bar/baz/quux:some-long-tag", domain: "sub-dom1.foo.com", path: "bar/baz/quux", tag: "some-long-tag" },
    { input: "b.gcr.io/test.example.com/my-app:test.example.com", domain: "b.gcr.io", path: "test.example.com/my-app", tag: "test.example.com" },
    { input: "xn--n3h.com/myimage:xn--n3h.com", domain: "xn--n3h.com", path: "myimage", tag: "xn--n3h.com" },
    { input: `xn--7o8h.com/myimage:xn--7o8h.com@${sha512}`, domain: "xn--7o8h.com", path: "myimage", tag: "xn--7o8h.com", digest: sha512 },
    { input: "foo_bar.com:8080", domain: "docker.io", path: "library/foo_bar.com", tag: "8080" },
    { input: "foo/foo_bar.com:8080", domain: "docker.io", path: "foo/foo_bar.com", tag: "8080" },
    { input: "192.168.1.1", domain: "docker.io", path: "library/192.168.1.1" },
    { input: "192.168.1.1:tag", domain: "docker.io", path: "library/192.168.1.1", tag: "tag" },
    { input: "192.168.1.1/repo", domain: "192.168.1.1", path: "repo" },
    { input: "192.168.1.1:5000/repo:5050", domain: "192.168.1.1:5000", path: "repo", tag: "5050" },
    { input: "[2001:db8::1]/repo", domain: "[2001:db8::1]", path: "repo" },
    { input: "[2001:db8:1:2:3:4:5:6]/repo:tag", domain: "[2001:db8:1:2:3:4:5:6]", path: "repo", tag: "tag" },
    { input: "[2001:db8::1]:5000/repo:tag@" + sha, domain: "[2001:db8::1]:5000", path: "repo", tag: "tag", digest: sha },
    { input: "[::1]:5000/repo", domain: "[::1]:5000", path: "repo" },
  ];
  for (const tc of cases) {
    const r = parseNormalizedReference(tc.input);
    assert.deepEqual(r, { domain: tc.domain, path: tc.path, ...(tc.tag ? { tag: tc.tag } : {}), ...(tc.digest ? { digest: tc.digest } : {}) }, tc.input);
  }
});

test("TestParseReferenceWithTagAndDigest and familiar strings", () => {
  const shortRef = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
  const r = parseNormalizedReference(shortRef);
  assert.equal(canonicalString(r), "docker.io/library/" + shortRef);
  assert.equal(familiarString(r), shortRef);

  assert.equal(familiarString(withDefaultTag(parseNormalizedReference("busybox"))), "busybox:latest");
  assert.equal(canonicalString(withDefaultTag(parseNormalizedReference("busybox"))), "docker.io/library/busybox:latest");
  assert.equal(familiarString(withDefaultTag(parseNormalizedReference("127.0.0.1:5000/x/y:t"))), "127.0.0.1:5000/x/y:t");
  const d = "sha256:" + "a".repeat(64);
  const digested = withDefaultTag(parseNormalizedReference(`user/app@${d}`));
  assert.equal(digested.tag, undefined, "a digest reference gets no default tag");
  assert.equal(familiarString(digested), `user/app@${d}`);
  assert.equal(familiarName(parseNormalizedReference("127.0.0.1:5000/x/y:t")), "127.0.0.1:5000/x/y");
  assert.equal(familiarName(parseNormalizedReference("docker.io/library/foo/bar")), "library/foo/bar");
  assert.equal(fullName(parseNormalizedReference("busybox")), "docker.io/library/busybox");
});

test("isDigest and looksLikeImageId", () => {
  assert.equal(isDigest("sha256:" + F64), true);
  assert.equal(isDigest("sha256:" + "F".repeat(64)), false);
  assert.equal(isDigest("sha256:abc"), false);
  assert.equal(isDigest("sha512:" + "f".repeat(128)), false);
  assert.equal(isDigest(F64), false);

  assert.equal(looksLikeImageId("abc123"), true);
  assert.equal(looksLikeImageId(F64), true);
  assert.equal(looksLikeImageId("sha256:abc"), true);
  assert.equal(looksLikeImageId("sha256:" + F64), true);
  assert.equal(looksLikeImageId("f".repeat(65)), false);
  assert.equal(looksLikeImageId("busybox"), false);
  assert.equal(looksLikeImageId("ABC"), false);
  assert.equal(looksLikeImageId(""), false);
  assert.equal(looksLikeImageId("sha256:"), false);
});
