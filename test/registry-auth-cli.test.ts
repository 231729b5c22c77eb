// docker login / pull / push / logout through the real docker CLI against a real agent,
// for a private registry (htpasswd, Basic) and for the Docker Hub flow (Bearer tokens
// from a realm). Each agent has its own DOCKER_CONFIG, where the CLI keeps the logins.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { registryFetch, startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { pushFixtureImages, type FixtureImages } from "./fixtures/images.ts";
import { docker, dockerOk, startAgent, type AgentHandle } from "./helpers/agent.ts";

const MANIFEST_ACCEPT = [
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.index.v1+json",
].join(", ");

interface CliAuthEntry {
  auth?: string;
  identitytoken?: string;
}

/** The `auths` entry the CLI keeps for `host` in the agent's DOCKER_CONFIG, if any. */
async function storedLogin(agent: AgentHandle, host: string): Promise<CliAuthEntry | undefined> {
  let text: string;
  try {
    text = await readFile(join(agent.dockerConfig, "config.json"), "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
  const config = JSON.parse(text) as { auths?: Record<string, CliAuthEntry>; credsStore?: string };
  assert.equal(config.credsStore, undefined, `the test expects the CLI's file store, config.json names a credsStore: ${text}`);
  return config.auths?.[host];
}

function decodeAuth(entry: CliAuthEntry | undefined): string | undefined {
  return entry?.auth === undefined ? undefined : Buffer.from(entry.auth, "base64").toString("utf8");
}

async function listedRefs(agent: AgentHandle): Promise<string[]> {
  const out = await dockerOk(agent, ["images", "--format", "{{.Repository}}:{{.Tag}}"]);
  return out.split("\n").filter(Boolean);
}

/** Pull, tag into a new repository, push; then the registry serves the pushed tag with the same manifest digest. */
async function pullTagPush(agent: AgentHandle, reg: RegistryFixture, fx: FixtureImages, repo: string): Promise<void> {
  const pulled = await dockerOk(agent, ["pull", fx.busybox.ref]);
  assert.match(pulled, new RegExp(`Digest: ${fx.busybox.manifestDigest}`));
  assert.ok((await listedRefs(agent)).includes(`${reg.host}/library/busybox:latest`));

  const target = `${reg.host}/${repo}:v1`;
  await dockerOk(agent, ["tag", fx.busybox.ref, target]);
  const pushed = await dockerOk(agent, ["push", target]);
  assert.match(pushed, new RegExp(`v1: digest: ${fx.busybox.manifestDigest}`), pushed);
  const res = await registryFetch(reg, `/v2/${repo}/manifests/v1`, { method: "HEAD", headers: { Accept: MANIFEST_ACCEPT } });
  await res.arrayBuffer();
  assert.equal(res.status, 200, `the registry does not serve ${repo}:v1 after the push`);
  assert.equal(res.headers.get("docker-content-digest"), fx.busybox.manifestDigest);
}

describe("docker login against a basic-auth registry", () => {
  const uniq = randomBytes(3).toString("hex");
  let reg: RegistryFixture;
  let fx: FixtureImages;
  let agent: AgentHandle;

  before(async () => {
    reg = await startRegistry({ auth: "basic", username: `basic-${uniq}`, password: `pw-${uniq}-secret` });
    fx = await pushFixtureImages(reg, { only: ["busybox"] });
    agent = await startAgent();
  });
  after(async () => {
    await agent?.destroy();
    await reg?.stop();
  });

  test("pull without login is refused as unauthorized", async () => {
    const r = await docker(agent, ["pull", fx.busybox.ref]);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /unauthorized|pull access denied/i);
    assert.ok(!(await listedRefs(agent)).some((l) => l.startsWith(reg.host)), "a refused pull left an image");
  });

  test("login with a wrong password fails and stores nothing", async () => {
    const r = await docker(agent, ["login", reg.host, "-u", reg.username, "-p", "not-the-password"]);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /unauthorized/i);
    assert.doesNotMatch(r.stdout, /Login Succeeded/);
    assert.equal(await storedLogin(agent, reg.host), undefined);
  });

  test("login succeeds and the CLI stores user:password for the host", async () => {
    const r = await docker(agent, ["login", reg.host, "-u", reg.username, "-p", reg.password]);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /Login Succeeded/);
    const entry = await storedLogin(agent, reg.host);
    assert.equal(decodeAuth(entry), `${reg.username}:${reg.password}`);
    assert.equal(entry?.identitytoken, undefined, "a Basic registry issues no identity token");
  });

  test("after login, pull and push work", async () => {
    await pullTagPush(agent, reg, fx, `berth-auth-basic-${uniq}/copy`);
  });

  test("logout removes the stored login and pulls are refused again", async () => {
    const out = await dockerOk(agent, ["logout", reg.host]);
    assert.match(out, new RegExp(`Removing login credentials for ${reg.host.replace(/\./g, "\\.")}`));
    assert.equal(await storedLogin(agent, reg.host), undefined);
    // The agent must not remember credentials of an earlier request.
    const r = await docker(agent, ["pull", `${reg.host}/berth-auth-basic-${uniq}/copy:v1`]);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /unauthorized|pull access denied/i);
  });
});

describe("docker login against a token-auth registry (the Docker Hub flow)", () => {
  const uniq = randomBytes(3).toString("hex");
  let reg: RegistryFixture;
  let fx: FixtureImages;
  let agent: AgentHandle;

  before(async () => {
    reg = await startRegistry({ auth: "token", anonymousPull: false, username: `token-${uniq}`, password: `pw-${uniq}-secret` });
    fx = await pushFixtureImages(reg, { only: ["busybox"] });
    agent = await startAgent();
  });
  after(async () => {
    await agent?.destroy();
    await reg?.stop();
  });

  test("pull without login is refused, and no token is granted", async () => {
    reg.tokenRequests.length = 0;
    const r = await docker(agent, ["pull", fx.busybox.ref]);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /unauthorized|pull access denied/i);
    assert.deepEqual(
      reg.tokenRequests.filter((t) => t.status === 200),
      [],
      "the token server granted a token to an anonymous pull",
    );
    assert.ok(!(await listedRefs(agent)).some((l) => l.startsWith(reg.host)), "a refused pull left an image");
  });

  test("login with a wrong password (--password-stdin) fails and stores nothing", async () => {
    const r = await docker(agent, ["login", reg.host, "-u", reg.username, "--password-stdin"], { input: "wrong-password\n" });
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /unauthorized/i);
    assert.doesNotMatch(r.stdout, /Login Succeeded/);
    assert.equal(await storedLogin(agent, reg.host), undefined);
  });

  test("login with --password-stdin succeeds; the CLI stores the identity token, not the password", async () => {
    const r = await docker(agent, ["login", reg.host, "-u", reg.username, "--password-stdin"], { input: `${reg.password}\n` });
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /Login Succeeded/);
    // The realm issues a refresh token to `docker login` (offline_token=true); Docker hands it to the
    // CLI as IdentityToken, and the CLI stores it in place of the password ("user:" in `auth`).
    const entry = await storedLogin(agent, reg.host);
    assert.ok(entry, "no auths entry for the registry in config.json");
    assert.ok(entry.identitytoken, `no identitytoken stored: ${JSON.stringify(entry)}`);
    assert.equal(decodeAuth(entry), `${reg.username}:`);
  });

  test("after login, a pull fetches one token per scope, not one per request", async () => {
    reg.tokenRequests.length = 0;
    const out = await dockerOk(agent, ["pull", fx.busybox.ref]);
    assert.match(out, /Pull complete/);
    const granted = reg.tokenRequests.filter((t) => t.status === 200);
    const pullScope = "repository:library/busybox:pull";
    // Manifest, config and layer (three registry requests) share one token.
    assert.equal(granted.filter((t) => t.scopes.includes(pullScope)).length, 1, JSON.stringify(reg.tokenRequests));
    const scopeSets = granted.map((t) => [...t.scopes].sort().join(" "));
    assert.equal(new Set(scopeSets).size, scopeSets.length, `a scope set was fetched twice: ${JSON.stringify(reg.tokenRequests)}`);
    assert.ok(
      granted.every((t) => t.user === reg.username),
      `tokens were not asked for as the logged-in user: ${JSON.stringify(reg.tokenRequests)}`,
    );
    assert.deepEqual(
      reg.tokenRequests.filter((t) => t.status !== 200),
      [],
      "the agent's token requests were refused",
    );

    // A second pull within the token's lifetime needs no new token.
    reg.tokenRequests.length = 0;
    const again = await dockerOk(agent, ["pull", fx.busybox.ref]);
    assert.match(again, /Image is up to date/);
    assert.ok(reg.tokenRequests.length <= 1, `an up-to-date pull fetched ${reg.tokenRequests.length} tokens: ${JSON.stringify(reg.tokenRequests)}`);
  });

  test("after login, push works", async () => {
    const repo = `berth-auth-token-${uniq}/copy`;
    const target = `${reg.host}/${repo}:v1`;
    await dockerOk(agent, ["tag", fx.busybox.ref, target]);
    reg.tokenRequests.length = 0;
    const pushed = await dockerOk(agent, ["push", target]);
    assert.match(pushed, new RegExp(`v1: digest: ${fx.busybox.manifestDigest}`), pushed);
    const res = await registryFetch(reg, `/v2/${repo}/manifests/v1`, { method: "HEAD", headers: { Accept: MANIFEST_ACCEPT } });
    await res.arrayBuffer();
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("docker-content-digest"), fx.busybox.manifestDigest);
    const pushScope = `repository:${repo}:pull,push`;
    const forPush = reg.tokenRequests.filter((t) => t.status === 200 && t.scopes.includes(pushScope));
    assert.ok(forPush.length >= 1, `no token for ${pushScope}: ${JSON.stringify(reg.tokenRequests)}`);
    assert.ok(forPush.length <= 2, `the push scope was fetched ${forPush.length} times: ${JSON.stringify(reg.tokenRequests)}`);
  });

  test("logout removes the stored login and pulls are refused again", async () => {
    const out = await dockerOk(agent, ["logout", reg.host]);
    assert.match(out, new RegExp(`Removing login credentials for ${reg.host.replace(/\./g, "\\.")}`));
    assert.equal(await storedLogin(agent, reg.host), undefined);
    reg.tokenRequests.length = 0;
    // The agent must not reuse a token it fetched for the logged-in user.
    const r = await docker(agent, ["pull", `${reg.host}/berth-auth-token-${uniq}/copy:v1`]);
    assert.notEqual(r.code, 0, r.stdout);
    assert.match(r.stderr, /unauthorized|pull access denied/i);
  });
});
