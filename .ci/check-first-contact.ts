/**
 * CI's outside check of the README's first command, run by .ci/run right after it on the clean
 * clone: what a new user does next, through the doors a new user has (HTTP, the docker CLI).
 *
 *   node --import tsx .ci/check-first-contact.ts FILE   (FILE: what `bin/berth-up` printed)
 *
 * 1. /api/health answers;
 * 2. the first admin signs in over HTTP (next-auth's credentials flow) with the printed one-time
 *    password and chooses a new one, as the console asks at the first login;
 * 3. this host's agent is online in `nodes.list`;
 * 4. `docker run --rm <fixture image> true` works on the agent's socket (image from a real
 *    registry on 127.0.0.1 made by skopeo/umoci, test/fixtures);
 * 5. the README's example commands run as written;
 * 6. running `bin/berth-up` again says what runs and no longer shows the one-time password.
 * Each check prints one line; the first failure exits 1 with what was seen.
 */
import { execFile, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { startRegistry } from "../test/fixtures/registry.ts";
import { pushFixtureImages } from "../test/fixtures/images.ts";
import { HttpBrowser } from "../test/helpers/http-browser.ts";

const execFileP = promisify(execFile);
const LOCAL = `http://127.0.0.1:${process.env.BERTH_PORT ?? 8080}`;
const SOCKET = process.env.BERTH_DOCKER_SOCKET ?? "/run/berth/docker.sock";

function fail(what: string, seen: unknown): never {
  console.error(`first contact: FAILED: ${what}\n${typeof seen === "string" ? seen : JSON.stringify(seen, null, 2)}`);
  process.exit(1);
}
function ok(what: string): void {
  console.log(`first contact: ok: ${what}`);
}

const printed = readFileSync(process.argv[2] ?? fail("usage", "check-first-contact.ts FILE"), "utf8");
const email = /^\s+email:\s+(\S+)/m.exec(printed)?.[1];
const password = /^\s+password:\s+(\S+)/m.exec(printed)?.[1];
const url = /^Berth console: (\S+)/m.exec(printed)?.[1];
if (!email || !password || !url) fail("bin/berth-up printed no console URL and first admin login", printed);
ok(`bin/berth-up printed the console URL ${url} and the first admin ${email}`);

const health = await fetch(`${LOCAL}/api/health`).then((r) => r.json() as Promise<{ ok?: boolean; url?: string }>);
if (health.ok !== true || health.url !== url) fail(`/api/health answers ok with the printed URL ${url}`, health);
ok("/api/health answers");

const browser = new HttpBrowser(LOCAL);
async function trpc(path: string, input?: unknown, mutation = false): Promise<unknown> {
  return browser.trpc(path, input, mutation).catch((e: unknown) => fail(`tRPC ${path}`, (e as Error).message));
}
await browser.signIn(email, password).catch((e: unknown) => fail("sign-in with the printed one-time password gives a session", (e as Error).message));
const me = (await trpc("auth.me")) as { email: string; role: string; mustChangePassword: boolean } | null;
if (me?.email !== email || me.role !== "admin" || !me.mustChangePassword) fail("the signed-in user is the first admin, asked to change the password", me);
ok("the first admin signed in over HTTP with the one-time password");

const newPassword = `first contact ${Date.now()} keeps the fleet afloat`;
await trpc("auth.changePassword", { current: password, next: newPassword }, true);
ok("the first admin chose a new password");

type NodeRow = { id: string; name: string; online: boolean; hostname?: string };
const deadline = Date.now() + 30_000;
let nodes: NodeRow[] = [];
while (Date.now() < deadline) {
  nodes = ((await trpc("nodes.list")) as { nodes: NodeRow[] }).nodes;
  if (nodes.some((n) => n.online)) break;
  await new Promise((r) => setTimeout(r, 500));
}
if (nodes.length !== 1 || !nodes[0]!.online) fail("this host's agent is the one node, online, in nodes.list", nodes);
ok(`this host's agent is online in nodes.list (${nodes[0]!.name})`);

const docker = async (...args: string[]) => {
  try {
    return await execFileP("docker", args, { env: { ...process.env, DOCKER_HOST: `unix://${SOCKET}` }, timeout: 120_000 });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    return fail(`docker ${args.join(" ")}`, `${err.message}\n${err.stdout ?? ""}${err.stderr ?? ""}`);
  }
};
const reg = await startRegistry({ auth: "none" });
try {
  await pushFixtureImages(reg, { only: ["busybox"] });
  const image = `${reg.host}/library/busybox`;
  await docker("run", "--rm", image, "true");
  ok(`DOCKER_HOST=unix://${SOCKET} docker run --rm ${image} true`);
  const left = (await docker("ps", "-aq")).stdout.trim();
  if (left) fail("docker run --rm leaves no container", left);
} finally {
  await reg.stop();
}

// The README's examples, as written (the block after "## After bin/berth-up"; lines run by bash
// one after the other; `-it` lines need a terminal and are left to people).
const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
const block = /<!-- readme-examples -->\s*```bash\n([\s\S]*?)```/.exec(readme)?.[1];
if (!block) fail("README.md has its examples block (marked <!-- readme-examples -->)", "");
/** What a reader is promised to see: a part of the command, a part of its output. */
const EXPECTED_OUTPUT: Array<[string, string]> = [
  ["docker images", "busybox"],
  ["echo hello from Berth", "hello from Berth"],
  ["curl", "hello from web"],
  ["ls /srv", "index.html"],
];
for (const line of block
  .split("\n")
  .map((l) => l.replace(/\s+#.*$/, "").trim())
  .filter((l) => l && !l.startsWith("#"))) {
  if (/\s-(it|ti)\s/.test(line)) continue;
  const r = spawnSync("bash", ["-euo", "pipefail", "-c", line], {
    encoding: "utf8",
    env: { ...process.env, DOCKER_HOST: `unix://${SOCKET}` },
    timeout: 120_000,
  });
  if (r.status !== 0) fail(`README example: ${line}`, `${r.stdout}${r.stderr}`);
  const expected = EXPECTED_OUTPUT.find(([command]) => line.includes(command))?.[1];
  if (expected && !r.stdout.includes(expected)) fail(`README example prints "${expected}": ${line}`, `${r.stdout}${r.stderr}`);
  ok(`README example: ${line}${r.stdout.trim() ? `\n    ${r.stdout.trim().split("\n").slice(0, 4).join("\n    ")}` : ""}`);
}

const again = spawnSync("bin/berth-up", { encoding: "utf8", cwd: new URL("..", import.meta.url).pathname });
const out = `${again.stdout}${again.stderr}`;
if (again.status !== 0 || !/berth-console is already running/.test(out) || !/berth-agent is already running/.test(out))
  fail("bin/berth-up again says what already runs", out);
if (out.includes(password)) fail("bin/berth-up again does not show the changed one-time password", out);
ok("bin/berth-up again says what runs and no longer shows the one-time password");
