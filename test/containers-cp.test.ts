// Issue 12's missing endpoints through the real docker CLI against a real agent:
// `docker cp` both ways (archive GET/HEAD/PUT) on running and stopped containers, into
// volumes, and with symlinks in the container that point out of it (nothing on the host
// is read or written); `docker update`; `docker commit` of a running container;
// DELETE /containers/{name}/{link}; GET /distribution/{name}/json.
//
// Every test uses its own names (uniq()) and registers its cleanup before it creates anything.
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import * as tarStream from "tar-stream";
import { docker, dockerOk, type AgentHandle, runShellDetached } from "./helpers/agent.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";
import { sleep, until } from "./helpers/wait.ts";

const uniq = (prefix: string) => `${prefix}-${randomBytes(3).toString("hex")}`;

/** Lists a tar (GNU tar on the host) as "type name[ -> target]" lines. */
function tarList(tar: Buffer): string[] {
  return execFileSync("tar", ["-tvf", "-"], { input: tar }).toString().trim().split("\n").filter(Boolean);
}

/** One file's content out of a tar. */
function tarFile(tar: Buffer, name: string): string {
  return execFileSync("tar", ["-xOf", "-", name], { input: tar }).toString();
}

/** A raw Docker API call over the agent's socket. */
function api(
  agent: AgentHandle,
  method: string,
  path: string,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: agent.socket, method, path }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** A tar made with tar-stream (what a client library would send). */
async function makeTar(entries: Array<{ name: string; body?: string; type?: "file" | "symlink"; linkname?: string }>): Promise<Buffer> {
  const pack = tarStream.pack();
  const chunks: Buffer[] = [];
  pack.on("data", (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((r) => pack.on("end", () => r()));
  for (const e of entries) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ name: e.name, type: e.type ?? "file", linkname: e.linkname, mode: 0o644 }, e.body ?? "", (err) => (err ? reject(err) : resolve())),
    );
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** A raw Docker API call with a body. */
function apiBody(agent: AgentHandle, method: string, path: string, body: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: agent.socket, method, path, headers: { "Content-Type": "application/x-tar", "Content-Length": body.length } }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Records a container's events from now on; the returned function stops and gives the actions. */
function dockerEvents(agent: AgentHandle, container: string): () => Promise<string[]> {
  const child = spawn("docker", ["events", "--format", "{{.Action}}", "--filter", `container=${container}`], {
    env: { ...process.env, DOCKER_HOST: agent.dockerHost, DOCKER_CONFIG: agent.dockerConfig },
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  return async () => {
    await sleep(500);
    child.kill("SIGKILL");
    return out.split("\n").filter(Boolean);
  };
}

/** Whether anything of the agent's data root is still mounted for container `id`'s root filesystem. */
async function rootfsMounted(agent: AgentHandle, id: string): Promise<string | false> {
  const info = await readFile("/proc/self/mountinfo", "utf8");
  return info.split("\n").find((l) => l.split(" ")[4]?.includes(`${id}/rootfs`) && l.split(" ")[4]?.startsWith(agent.dataRoot)) ?? false;
}

describe("docker cp, update, commit and the other missing endpoints against the agent", () => {
  let agent: AgentHandle;
  let work: string;
  let suite: BusyboxAgent | undefined;
  before(async () => void ({ agent, work } = suite = await startBusyboxAgent("cp")));
  after(() => suite?.stop());

  const removeAfter = (t: TestContext, ...names: string[]) => t.after(async () => void (await docker(agent, ["rm", "-fv", ...names])));

  test("cp out of and into a running container: a file, a directory, its contents with /., a missing path", async (t) => {
    const c = uniq("cp-run");
    removeAfter(t, c);
    await runShellDetached(agent, c, "mkdir -p /srv/d/sub && echo one > /srv/d/a && echo two > /srv/d/sub/b && sleep 1000");
    const out = join(work, c);
    await mkdir(out);
    // A file out: the same bytes the container sees.
    await dockerOk(agent, ["cp", `${c}:/etc/passwd`, join(out, "passwd")]);
    assert.equal(await readFile(join(out, "passwd"), "utf8"), await dockerOk(agent, ["exec", c, "cat", "/etc/passwd"]));
    // A directory out, by name and by contents.
    await dockerOk(agent, ["exec", c, "sh", "-c", "until [ -f /srv/d/sub/b ]; do sleep 0.1; done"]);
    await dockerOk(agent, ["cp", `${c}:/srv/d`, join(out, "d")]);
    assert.equal(await readFile(join(out, "d/a"), "utf8"), "one\n");
    assert.equal(await readFile(join(out, "d/sub/b"), "utf8"), "two\n");
    await mkdir(join(out, "contents"));
    await dockerOk(agent, ["cp", `${c}:/srv/d/.`, join(out, "contents")]);
    assert.equal(await readFile(join(out, "contents/sub/b"), "utf8"), "two\n");
    // The tar's top name is the requested path's last element, as Docker's.
    const tar = execFileSync("docker", ["cp", `${c}:/srv/d`, "-"], {
      env: { ...process.env, DOCKER_HOST: agent.dockerHost, DOCKER_CONFIG: agent.dockerConfig },
    });
    const names = tarList(tar).map((l) => l.split(/\s+/).at(-1));
    assert.deepEqual(names.sort(), ["d/", "d/a", "d/sub/", "d/sub/b"]);

    // In: a file, and a directory tree with a mode.
    const src = join(work, `${c}-src`);
    await mkdir(join(src, "tree/inner"), { recursive: true });
    await writeFile(join(src, "tree/inner/f.txt"), "in the tree\n");
    await writeFile(join(src, "tree/run.sh"), "#!/bin/sh\necho ran\n", { mode: 0o755 });
    await writeFile(join(src, "single"), "single file\n");
    await dockerOk(agent, ["cp", join(src, "single"), `${c}:/tmp/`]);
    await dockerOk(agent, ["cp", join(src, "tree"), `${c}:/srv/tree`]);
    assert.equal(await dockerOk(agent, ["exec", c, "cat", "/tmp/single"]), "single file\n");
    assert.equal(await dockerOk(agent, ["exec", c, "cat", "/srv/tree/inner/f.txt"]), "in the tree\n");
    assert.equal(await dockerOk(agent, ["exec", c, "/srv/tree/run.sh"]), "ran\n");
    // A file onto a new name in an existing directory.
    await dockerOk(agent, ["cp", join(src, "single"), `${c}:/tmp/renamed`]);
    assert.equal(await dockerOk(agent, ["exec", c, "cat", "/tmp/renamed"]), "single file\n");

    // Missing: Docker's message, and HEAD's 404.
    const missing = await docker(agent, ["cp", `${c}:/nope/nothing`, join(out, "x")]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, new RegExp(`Could not find the file /nope/nothing in container ${c}`));
    const head = await api(agent, "HEAD", `/v1.47/containers/${c}/archive?path=/nope`);
    assert.equal(head.status, 404);
    const ok = await api(agent, "HEAD", `/v1.47/containers/${c}/archive?path=/etc/passwd`);
    assert.equal(ok.status, 200);
    const stat = JSON.parse(Buffer.from(String(ok.headers["x-docker-container-path-stat"]), "base64").toString()) as Record<string, unknown>;
    assert.equal(stat.name, "passwd");
    assert.equal(stat.mode, 0o644);
    assert.equal(stat.linkTarget, "");
    const dirStat = await api(agent, "HEAD", `/v1.47/containers/${c}/archive?path=/srv/d`);
    const ds = JSON.parse(Buffer.from(String(dirStat.headers["x-docker-container-path-stat"]), "base64").toString()) as { mode: number };
    assert.equal(ds.mode >>> 0, (2 ** 31 + 0o755) >>> 0);
    const empty = await api(agent, "GET", `/v1.47/containers/${c}/archive`);
    assert.equal(empty.status, 400);
    assert.match(empty.body.toString(), /path cannot be empty/);
  });

  test("cp into and out of a stopped container, which is mounted only for the copy and starts with the file", async (t) => {
    const c = uniq("cp-stopped");
    removeAfter(t, c);
    const id = (await dockerOk(agent, ["create", "--name", c, "busybox", "cat", "/etc/copied"])).trim();
    const src = join(work, `${c}-file`);
    await writeFile(src, "copied while stopped\n");
    await dockerOk(agent, ["cp", src, `${c}:/etc/copied`]);
    assert.equal(await rootfsMounted(agent, id), false, "the root filesystem of a created container is unmounted after the copy");
    const back = join(work, `${c}-back`);
    await dockerOk(agent, ["cp", `${c}:/etc/copied`, back]);
    assert.equal(await readFile(back, "utf8"), "copied while stopped\n");
    await dockerOk(agent, ["start", "-a", c]).then((o) => assert.equal(o, "copied while stopped\n"));
    // Exited now: copy again, out and in.
    await dockerOk(agent, ["cp", src, `${c}:/tmp/again`]);
    await dockerOk(agent, ["cp", `${c}:/tmp/again`, join(work, `${c}-again`)]);
    assert.equal(await readFile(join(work, `${c}-again`), "utf8"), "copied while stopped\n");
    // The answer's last byte goes out before the mount is released: a moment later it is.
    await until("the root filesystem unmounted after the copy of an exited container", async () => !(await rootfsMounted(agent, id)), 5000, agent);
  });

  test("cp -a: files owned by the container's user; without it, by the tar's owner", async (t) => {
    const c = uniq("cp-owner");
    removeAfter(t, c);
    await dockerOk(agent, ["run", "-d", "--name", c, "--user", "1234:2345", "busybox", "sleep", "1000"]);
    const src = join(work, `${c}-f`);
    await writeFile(src, "owned\n");
    await dockerOk(agent, ["cp", "-a", src, `${c}:/tmp/archived`]);
    await dockerOk(agent, ["cp", src, `${c}:/tmp/plain`]);
    assert.equal((await dockerOk(agent, ["exec", c, "stat", "-c", "%u:%g", "/tmp/archived"])).trim(), "1234:2345");
    assert.equal((await dockerOk(agent, ["exec", c, "stat", "-c", "%u:%g", "/tmp/plain"])).trim(), `${process.getuid!()}:${process.getgid!()}`);
  });

  test("cp into a volume's path goes to the volume, running or stopped", async (t) => {
    const c = uniq("cp-vol");
    const vol = uniq("vol");
    removeAfter(t, c);
    t.after(async () => void (await docker(agent, ["volume", "rm", "-f", vol])));
    await dockerOk(agent, ["run", "-d", "--name", c, "-v", `${vol}:/data`, "busybox", "sleep", "1000"]);
    const src = join(work, `${c}-f`);
    await writeFile(src, "into the volume\n");
    await dockerOk(agent, ["cp", src, `${c}:/data/`]);
    assert.equal(await dockerOk(agent, ["exec", c, "cat", `/data/${c}-f`]), "into the volume\n");
    await dockerOk(agent, ["stop", "-t", "0", c]);
    await dockerOk(agent, ["cp", src, `${c}:/data/second`]);
    const other = await dockerOk(agent, ["run", "--rm", "-v", `${vol}:/v`, "busybox", "cat", `/v/${c}-f`, "/v/second"]);
    assert.equal(other, "into the volume\ninto the volume\n");
    const tar = (await api(agent, "GET", `/v1.47/containers/${c}/archive?path=/data/second`)).body;
    assert.equal(tarFile(tar, "second"), "into the volume\n");
    // A directory holding a mount point is copied out with the mount's content, as the container sees it.
    const nested = uniq("cp-nested");
    removeAfter(t, nested);
    await dockerOk(agent, ["create", "--name", nested, "-v", `${vol}:/tmp/vol`, "busybox", "true"]);
    await dockerOk(agent, ["cp", src, `${nested}:/tmp/beside`]);
    const out = join(work, nested);
    await dockerOk(agent, ["cp", `${nested}:/tmp`, out]);
    assert.equal(await readFile(join(out, "vol/second"), "utf8"), "into the volume\n");
    assert.equal(await readFile(join(out, "beside"), "utf8"), "into the volume\n");
  });

  test("symlinks pointing out of the container are resolved inside it: nothing of the host is read or written", async (t) => {
    const c = uniq("cp-escape");
    removeAfter(t, c);
    const marker = uniq("container-only");
    await runShellDetached(
      agent,
      c,
      `ln -s / /escape && ln -s /etc/shadow /x && echo ${marker}:x:0:0 > /etc/shadow && echo ${marker} >> /etc/passwd && touch /ready && sleep 1000`,
    );
    await dockerOk(agent, ["exec", c, "sh", "-c", "until [ -f /ready ]; do sleep 0.1; done"]);
    for (const state of ["running", "stopped"]) {
      // Out through /escape: the container's passwd, not the host's.
      const tar = execFileSync("docker", ["cp", `${c}:/escape/etc/passwd`, "-"], {
        env: { ...process.env, DOCKER_HOST: agent.dockerHost, DOCKER_CONFIG: agent.dockerConfig },
      });
      const passwd = tarFile(tar, "passwd");
      assert.ok(passwd.includes(marker), `${state}: the container's /etc/passwd: ${passwd}`);
      // /x is a symlink: archived as one; followed (-L), it is the container's /etc/shadow.
      const link = tarList(
        execFileSync("docker", ["cp", `${c}:/x`, "-"], { env: { ...process.env, DOCKER_HOST: agent.dockerHost, DOCKER_CONFIG: agent.dockerConfig } }),
      );
      assert.match(link[0]!, /^l.* x -> \/etc\/shadow$/);
      const followed = join(work, `${c}-${state}-shadow`);
      await dockerOk(agent, ["cp", "-L", `${c}:/x`, followed]);
      assert.equal(await readFile(followed, "utf8"), `${marker}:x:0:0\n`);
      // In through /escape/tmp/: lands in the container's /tmp, never the host's.
      const name = uniq("escaped");
      const src = join(work, name);
      await writeFile(src, "must stay inside\n");
      await dockerOk(agent, ["cp", src, `${c}:/escape/tmp/`]);
      assert.equal(existsSync(join("/tmp", name)), false, `${state}: nothing written on the host`);
      // And onto /x (a symlink to /etc/shadow): the container's file is replaced, the host's untouched.
      const hostShadow = await readFile("/etc/shadow", "utf8");
      const dir = join(work, `${name}-d`);
      await mkdir(dir);
      await writeFile(join(dir, "shadow"), "replaced\n");
      await dockerOk(agent, ["cp", join(dir, "shadow"), `${c}:/escape/etc/shadow`]);
      assert.equal(await readFile("/etc/shadow", "utf8"), hostShadow, `${state}: the host's /etc/shadow is unchanged`);
      await rm(src);
      if (state === "running") {
        assert.equal(await dockerOk(agent, ["exec", c, "cat", `/tmp/${name}`]), "must stay inside\n");
        assert.equal(await dockerOk(agent, ["exec", c, "cat", "/etc/shadow"]), "replaced\n");
        await dockerOk(agent, ["exec", c, "sh", "-c", `echo ${marker}:x:0:0 > /etc/shadow`]);
        await dockerOk(agent, ["stop", "-t", "0", c]);
      } else {
        const back = join(work, `${name}-back`);
        await dockerOk(agent, ["cp", `${c}:/tmp/${name}`, back]);
        assert.equal(await readFile(back, "utf8"), "must stay inside\n");
      }
    }
  });

  test("PUT archive: gzip accepted; entries leaving the destination or passing through a symlink refused, nothing written outside", async (t) => {
    const c = uniq("cp-put");
    removeAfter(t, c);
    await dockerOk(agent, ["run", "-d", "--name", c, "busybox", "sh", "-c", "mkdir /dst && ln -s / /dst/up && sleep 1000"]);
    await dockerOk(agent, ["exec", c, "sh", "-c", "until [ -L /dst/up ]; do sleep 0.1; done"]);
    const put = (body: Buffer, path = "/dst") => apiBody(agent, "PUT", `/v1.47/containers/${c}/archive?path=${encodeURIComponent(path)}`, body);
    // gzip-compressed: unpacked.
    const ok = await put(gzipSync(await makeTar([{ name: "zipped.txt", body: "from gzip\n" }])));
    assert.equal(ok.status, 200, ok.body);
    assert.equal(await dockerOk(agent, ["exec", c, "cat", "/dst/zipped.txt"]), "from gzip\n");
    const host = uniq("never-on-host");
    for (const [what, entries, message] of [
      ["a name climbing out", [{ name: `../../../../tmp/${host}`, body: "x" }], /is outside of/],
      ["a symlink that leads out, then a file through it", [{ name: "out", type: "symlink" as const, linkname: "../../../../.." }], /invalid symlink/],
      ["a file through an existing symlink", [{ name: `up/tmp/${host}`, body: "x" }], /symbolic link/],
    ] as const) {
      const r = await put(await makeTar(entries as never));
      assert.equal(r.status, 400, `${what}: ${r.body}`);
      assert.match(JSON.parse(r.body).message, message, what);
    }
    assert.equal(existsSync(join("/tmp", host)), false, "nothing written on the host");
    assert.equal((await docker(agent, ["exec", c, "ls", `/tmp/${host}`])).code, 1, "nor through the container's symlink");
    // Onto a file: Docker's 500.
    const notDir = await put(await makeTar([{ name: "f", body: "x" }]), "/dst/zipped.txt");
    assert.equal(notDir.status, 500);
    assert.equal(JSON.parse(notDir.body).message, "extraction point is not a directory");
  });

  test("update: limits applied live (cgroup) and kept (inspect), the restart policy with them; Docker's refusals", async (t) => {
    const c = uniq("upd");
    const rm = uniq("upd-rm");
    removeAfter(t, c, rm);
    // Created with a memory limit: Docker records twice that as the swap limit, so 64m fits under it.
    // Runs until told to stop (/tmp/stop), which it removes on the way out.
    const id = (
      await dockerOk(agent, ["run", "-d", "--name", c, "-m", "32m", "busybox", "sh", "-c", "while [ ! -f /tmp/stop ]; do sleep 0.2; done; rm /tmp/stop"])
    ).trim();
    const out = await dockerOk(agent, ["update", "--memory", "64m", "--restart", "always", c]);
    assert.equal(out.trim(), c);
    const hc = JSON.parse(await dockerOk(agent, ["inspect", "--format", "{{json .HostConfig}}", c])) as Record<string, unknown>;
    assert.equal(hc.Memory, 64 * 1024 * 1024);
    assert.deepEqual(hc.RestartPolicy, { Name: "always", MaximumRetryCount: 0 });
    const cg = `/sys/fs/cgroup/memory/berth/${id}/memory.limit_in_bytes`;
    assert.equal((await readFile(cg, "utf8")).trim(), String(64 * 1024 * 1024));
    // CPU, pids and shares, live.
    await dockerOk(agent, ["update", "--cpus", "0.5", "--pids-limit", "50", "--cpu-shares", "512", "--cpuset-cpus", "0", c]);
    assert.equal((await readFile(`/sys/fs/cgroup/cpu/berth/${id}/cpu.cfs_quota_us`, "utf8")).trim(), "50000");
    assert.equal((await readFile(`/sys/fs/cgroup/cpu/berth/${id}/cpu.shares`, "utf8")).trim(), "512");
    assert.equal((await readFile(`/sys/fs/cgroup/pids/berth/${id}/pids.max`, "utf8")).trim(), "50");
    const after = JSON.parse(await dockerOk(agent, ["inspect", "--format", "{{json .HostConfig}}", c])) as Record<string, unknown>;
    assert.equal(after.NanoCpus, 500_000_000);
    assert.equal(after.PidsLimit, 50);
    assert.equal(after.CpuShares, 512);
    assert.equal(after.CpusetCpus, "0");
    // Docker's refusals, word for word.
    const quota = await docker(agent, ["update", "--cpu-quota", "20000", c]);
    assert.match(quota.stderr, new RegExp(`Cannot update container ${id}: Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set`));
    const small = await docker(agent, ["update", "--memory", "2m", c]);
    assert.match(small.stderr, /Minimum memory limit allowed is 6MB/);
    const above = await docker(agent, ["update", "--memory", "512m", c]);
    assert.match(above.stderr, /Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time/);
    const bogus = await docker(agent, ["update", "--restart", "bogus", c]);
    assert.match(bogus.stderr, /invalid restart policy 'bogus'/);
    // The restart policy now applies: the killed process comes back.
    await dockerOk(agent, ["exec", c, "touch", "/tmp/stop"]);
    await until(
      "the container restarted by its new policy",
      async () => (await dockerOk(agent, ["inspect", "--format", "{{.RestartCount}} {{.State.Status}}", c])).trim() === "1 running",
      15_000,
      agent,
    );
    // --rm containers keep their policy.
    await dockerOk(agent, ["run", "-d", "--rm", "--name", rm, "busybox", "sleep", "1000"]);
    const auto = await docker(agent, ["update", "--restart", "always", rm]);
    assert.match(auto.stderr, /Restart policy cannot be updated because AutoRemove is enabled for the container/);
    // A stopped container: stored, and applied at its next start.
    await dockerOk(agent, ["update", "--restart", "no", c]);
    await dockerOk(agent, ["stop", "-t", "0", c]);
    await dockerOk(agent, ["update", "--memory", "48m", c]);
    assert.equal((await dockerOk(agent, ["inspect", "--format", "{{.HostConfig.Memory}}", c])).trim(), String(48 * 1024 * 1024));
    await dockerOk(agent, ["start", c]);
    assert.equal((await readFile(cg, "utf8")).trim(), String(48 * 1024 * 1024));
  });

  test("commit of a running container pauses it for the commit and leaves it running", async (t) => {
    const c = uniq("commit-run");
    const image = uniq("committed");
    removeAfter(t, c);
    t.after(async () => void (await docker(agent, ["rmi", "-f", `${image}:1`])));
    await dockerOk(agent, ["run", "-d", "--name", c, "busybox", "sh", "-c", "echo committed > /marker && sleep 1000"]);
    await dockerOk(agent, ["exec", c, "sh", "-c", "until [ -f /marker ]; do sleep 0.1; done"]);
    const events = dockerEvents(agent, c);
    await sleep(700); // the events stream is subscribed
    await dockerOk(agent, ["commit", c, `${image}:1`]);
    assert.equal((await dockerOk(agent, ["inspect", "--format", "{{.State.Status}}", c])).trim(), "running");
    assert.equal(await dockerOk(agent, ["run", "--rm", `${image}:1`, "cat", "/marker"]), "committed\n");
    const seen = await events();
    assert.ok(seen.indexOf("pause") >= 0 && seen.indexOf("pause") < seen.indexOf("commit") && seen.indexOf("commit") < seen.indexOf("unpause"), seen.join(","));
    // --pause=false: committed without pausing.
    await dockerOk(agent, ["commit", "--pause=false", c, `${image}:1`]);
    assert.equal((await dockerOk(agent, ["inspect", "--format", "{{.State.Status}}", c])).trim(), "running");
  });

  test("links: DELETE /containers/{name}/{link} and rm --link answer as Docker does for unknown links", async (t) => {
    const c = uniq("web");
    removeAfter(t, c);
    await dockerOk(agent, ["create", "--name", c, "busybox", "true"]);
    const r = await docker(agent, ["rm", "--link", `/${c}/redis`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`No such container: ${c}/redis`));
    const raw = await api(agent, "DELETE", `/v1.47/containers/${c}/redis`);
    assert.equal(raw.status, 404);
    assert.equal(JSON.parse(raw.body.toString()).message, `No such container: ${c}/redis`);
    const own = await docker(agent, ["rm", "--link", c]);
    assert.match(own.stderr, /Conflict, cannot remove the default link name of the container/);
    assert.equal((await dockerOk(agent, ["inspect", "--format", "{{.State.Status}}", c])).trim(), "created");
  });

  test("GET /distribution/{name}/json: the registry's descriptor and platforms", async () => {
    const ref = `${suite!.reg.host}/library/busybox:latest`;
    const r = await api(agent, "GET", `/v1.47/distribution/${ref}/json`);
    assert.equal(r.status, 200, r.body.toString());
    const body = JSON.parse(r.body.toString()) as {
      Descriptor: { mediaType: string; digest: string; size: number };
      Platforms: Array<{ architecture: string; os: string }>;
    };
    const local = (await dockerOk(agent, ["image", "inspect", "--format", "{{index .RepoDigests 0}}", "busybox"])).trim();
    assert.equal(body.Descriptor.digest, local.slice(local.indexOf("@") + 1));
    assert.equal(body.Descriptor.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
    assert.ok(body.Descriptor.size > 0);
    assert.deepEqual(body.Platforms, [{ architecture: "amd64", os: "linux" }]);
    const missing = await api(agent, "GET", `/v1.47/distribution/${suite!.reg.host}/library/busybox:nope/json`);
    assert.equal(missing.status, 404);
    assert.match(JSON.parse(missing.body.toString()).message, /manifest unknown/);
  });
});
