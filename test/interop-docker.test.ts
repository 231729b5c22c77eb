// Interoperability with Docker Engine 20.10 (Debian docker.io) and skopeo: images move
// between Berth and Docker as docker-archive tars, and Berth's pushes are read back by
// skopeo. Both daemons are driven by the same docker CLI (28.x) through DOCKER_HOST.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MULTILAYER_ABSENT, MULTILAYER_EXPECTED, type FixtureImages } from "./fixtures/images.ts";
import { dockerCli, dockerCliOk, type CliTarget } from "./helpers/dockerd.ts";
import { startBerthAndDocker, type BerthAndDocker } from "./helpers/parity.ts";

function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** Runs a tool; resolves to its stdout bytes, rejects with its stderr. */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { env, encoding: "buffer", maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")} failed: ${err.message}\n${stderr.toString()}`));
      else resolve(stdout);
    });
  });
}

/** skopeo without the host's login files or signature policy. */
const SKOPEO_ENV: NodeJS.ProcessEnv = { ...process.env, REGISTRY_AUTH_FILE: "/dev/null/none.json", DOCKER_CONFIG: "/dev/null/none" };

describe("interoperability with Docker Engine 20.10 and skopeo", () => {
  let pair: BerthAndDocker | undefined;
  let fx: FixtureImages;
  let work: string | undefined;
  // The CLI targets; logs() gives the daemon's output for failure messages.
  let berth: CliTarget;
  let engine: CliTarget;

  // Registered before any setup, so whatever started is stopped even if `before` fails.
  after(async () => {
    await pair?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-interop-"));
    pair = await startBerthAndDocker({ images: ["busybox", "multilayer"] });
    ({ fx, berth, engine } = pair);
  });

  /** Asserts dockerd does not have `ref`, so that what it runs can only come from the loaded tar. */
  async function assertEngineLacks(ref: string): Promise<void> {
    const r = await dockerCli(engine, ["image", "inspect", ref]);
    assert.notEqual(r.code, 0, `dockerd already has ${ref}`);
  }

  test("an image saved by Berth loads into Docker Engine 20.10 and runs there", async () => {
    await dockerCliOk(berth, ["pull", fx.busybox.ref]);
    const tar = join(work!, "berth-busybox.tar");
    await dockerCliOk(berth, ["save", "-o", tar, fx.busybox.ref]);

    await assertEngineLacks(fx.busybox.ref);
    const loaded = await dockerCliOk(engine, ["load", "-i", tar]);
    assert.match(loaded, new RegExp(`Loaded image: ${escapeRe(fx.busybox.ref)}`));
    const id = await dockerCliOk(engine, ["image", "inspect", "--format", "{{.Id}}", fx.busybox.ref]);
    assert.equal(id.trim(), fx.busybox.configDigest);

    const out = await dockerCliOk(engine, ["run", "--rm", "--pull", "never", "--network", "none", fx.busybox.ref, "echo", "hello"]);
    assert.equal(out, "hello\n");
  });

  test("images saved by Docker Engine load into Berth with the same IMAGE ID and tags", async () => {
    // 1. an image Docker pulled from the registry, under a tag Berth has never seen;
    await dockerCliOk(engine, ["pull", fx.busybox.ref]);
    await dockerCliOk(engine, ["tag", fx.busybox.ref, "interop/busybox-from-docker:v1"]);
    // 2. an image only Docker has ever had: `docker import` of a rootfs with a file of its own.
    const rootfs = join(work!, "import-rootfs");
    await mkdir(join(rootfs, "bin"), { recursive: true });
    await mkdir(join(rootfs, "etc"), { recursive: true });
    await copyFile("/bin/busybox", join(rootfs, "bin/busybox"));
    await chmod(join(rootfs, "bin/busybox"), 0o755);
    for (const applet of ["sh", "cat", "echo", "ls"]) await symlink("busybox", join(rootfs, "bin", applet));
    const marker = `made by docker import ${Date.now()}\n`;
    await writeFile(join(rootfs, "etc/marker"), marker);
    const rootfsTar = join(work!, "import-rootfs.tar");
    await run("tar", ["-C", rootfs, "-cf", rootfsTar, "."]);
    await dockerCliOk(engine, ["import", "--change", 'CMD ["sh"]', rootfsTar, "interop/imported:v1"]);

    const refs = ["interop/busybox-from-docker:v1", "interop/imported:v1"];
    const tar = join(work!, "docker-saved.tar");
    await dockerCliOk(engine, ["save", "-o", tar, ...refs]);

    for (const ref of refs) {
      const before = await dockerCli(berth, ["image", "inspect", ref]);
      assert.notEqual(before.code, 0, `Berth already has ${ref}`);
    }
    const loaded = await dockerCliOk(berth, ["load", "-i", tar]);
    for (const ref of refs) {
      assert.match(loaded, new RegExp(`Loaded image: ${escapeRe(ref)}$`, "m"), loaded);
      const engineId = (await dockerCliOk(engine, ["images", "--no-trunc", "-q", ref])).trim();
      const berthId = (await dockerCliOk(berth, ["images", "--no-trunc", "-q", ref])).trim();
      assert.match(engineId, /^sha256:[0-9a-f]{64}$/);
      assert.equal(berthId, engineId, `IMAGE ID of ${ref} in Berth`);
      const engineInspect = JSON.parse(await dockerCliOk(engine, ["image", "inspect", ref]))[0];
      const berthInspect = JSON.parse(await dockerCliOk(berth, ["image", "inspect", ref]))[0];
      assert.equal(berthInspect.Id, engineInspect.Id);
      assert.ok(berthInspect.RepoTags.includes(ref), `RepoTags ${JSON.stringify(berthInspect.RepoTags)} lack ${ref}`);
      assert.deepEqual(berthInspect.RootFS.Layers, engineInspect.RootFS.Layers);
      assert.deepEqual(berthInspect.Config.Cmd, engineInspect.Config.Cmd);
    }
    const busyboxId = (await dockerCliOk(berth, ["image", "inspect", "--format", "{{.Id}}", "interop/busybox-from-docker:v1"])).trim();
    assert.equal(busyboxId, fx.busybox.configDigest);

    // And the listing a user looks at shows both tags with Docker's short IDs.
    const listing = await dockerCliOk(berth, ["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "--filter", "reference=interop/*"]);
    for (const ref of refs) {
      const id = (await dockerCliOk(engine, ["images", "-q", ref])).trim();
      assert.match(listing, new RegExp(`^${escapeRe(ref)} ${id}$`, "m"), listing);
    }
  });

  test("an image pushed by Berth is read back by skopeo with the digest the push printed", async () => {
    await dockerCliOk(berth, ["pull", fx.busybox.ref]);
    const target = `${pair!.reg.host}/interop/pushed:v1`;
    await dockerCliOk(berth, ["tag", fx.busybox.ref, target]);
    const out = await dockerCliOk(berth, ["push", target]);
    const m = /^v1: digest: (sha256:[0-9a-f]{64}) size: (\d+)$/m.exec(out);
    assert.ok(m, `no "v1: digest: … size: …" line in:\n${out}`);
    const [, digest, size] = m;

    const raw = await run("skopeo", ["inspect", "--raw", "--tls-verify=false", "--no-creds", `docker://${target}`], SKOPEO_ENV);
    assert.equal(sha256(raw), digest, "sha256 of the manifest skopeo reads");
    assert.equal(raw.length, Number(size), "manifest size");
    const inspect = JSON.parse((await run("skopeo", ["inspect", "--tls-verify=false", "--no-creds", `docker://${target}`], SKOPEO_ENV)).toString());
    assert.equal(inspect.Digest, digest);

    // skopeo copy fetches and verifies every blob against the manifest's digests.
    const dir = join(work!, "skopeo-copy");
    await run("skopeo", ["copy", "--quiet", "--insecure-policy", "--src-tls-verify=false", "--src-no-creds", `docker://${target}`, `dir:${dir}`], SKOPEO_ENV);
    const copied = await readFile(join(dir, "manifest.json"));
    assert.equal(sha256(copied), digest, "skopeo copy kept the manifest Berth pushed");
    const manifest = JSON.parse(copied.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
    assert.equal(manifest.config.digest, fx.busybox.configDigest);
    for (const l of manifest.layers) assert.ok((await stat(join(dir, l.digest.slice(7)))).size > 0, `layer ${l.digest} copied`);
  });

  test("a multi-layer image saved by Berth runs in Docker with whiteouts, opaque dirs, modes and hard links intact", async () => {
    await dockerCliOk(berth, ["pull", fx.multilayer.ref], { timeoutMs: 300_000 });
    const tar = join(work!, "berth-multilayer.tar");
    await dockerCliOk(berth, ["save", "-o", tar, fx.multilayer.ref]);

    await assertEngineLacks(fx.multilayer.ref);
    const loaded = await dockerCliOk(engine, ["load", "-i", tar]);
    assert.match(loaded, new RegExp(`Loaded image: ${escapeRe(fx.multilayer.ref)}`));
    const id = await dockerCliOk(engine, ["image", "inspect", "--format", "{{.Id}} {{len .RootFS.Layers}}", fx.multilayer.ref]);
    assert.equal(id.trim(), `${fx.multilayer.configDigest} ${fx.multilayer.layerCount}`);

    // What `ls -la` shows a user first (kept for the failure message), then every path's details.
    const script = [
      "ls -la /data /data/old /data/links /data/hard /data/modes /data/modes/private",
      "echo '@@@'",
      "for p in $(find /data | sort); do",
      '  t=$(stat -c %F "$p")',
      '  l="$p|$t|$(stat -c %a "$p")|$(stat -c %u:%g "$p")|$(stat -c %i "$p")"',
      '  case "$t" in symbolic*) l="$l|$(readlink "$p")";; regular*) l="$l|$(sha256sum < "$p" | cut -d" " -f1)";; esac',
      '  echo "$l"',
      "done",
      "echo '@@@'",
      `for a in ${MULTILAYER_ABSENT.join(" ")}; do if [ -e "$a" ] || [ -L "$a" ]; then echo "present $a"; fi; done`,
    ].join("\n");
    const out = await dockerCliOk(engine, ["run", "--rm", "--pull", "never", "--network", "none", fx.multilayer.ref, "sh", "-c", script]);
    const [lsOut = "", statOut = "", absentOut = ""] = out.split("@@@\n");

    // ls -la /data: exactly the expected entries; gone.txt was whited out.
    const lsData = lsOut.split("\n\n")[0] ?? "";
    const names = lsData
      .split("\n")
      .slice(2) // "/data:" and "total N"
      .map((l) => l.trim().split(/\s+/)[8])
      .filter((n): n is string => !!n && n !== "." && n !== "..")
      .sort();
    assert.deepEqual(names, ["hard", "keep.txt", "links", "modes", "old"], `ls -la /data in Docker:\n${lsOut}`);
    assert.match(lsOut, /^-rwsr-xr-x\s.*\ssetuid$/m, `setuid bit in ls -la:\n${lsOut}`);

    type Row = { type: string; mode: string; owner: string; inode: string; extra: string | undefined };
    const rows = new Map<string, Row>();
    for (const line of statOut.trim().split("\n")) {
      const [path, type, mode, owner, inode, extra] = line.split("|");
      if (path && type && mode && owner && inode) rows.set(path, { type, mode, owner, inode, extra });
    }
    const problems: string[] = [];
    const wantPaths = MULTILAYER_EXPECTED.map((e) => e.path).sort();
    const gotPaths = [...rows.keys()].sort();
    if (JSON.stringify(gotPaths) !== JSON.stringify(wantPaths))
      problems.push(`tree under /data: ${JSON.stringify(gotPaths)}, want ${JSON.stringify(wantPaths)}`);
    const typeName = { file: "regular file", dir: "directory", symlink: "symbolic link" } as const;
    for (const e of MULTILAYER_EXPECTED) {
      const r = rows.get(e.path);
      if (!r) continue;
      if (r.type !== typeName[e.type]) problems.push(`${e.path}: ${r.type}, want ${typeName[e.type]}`);
      if (e.mode !== undefined && r.mode !== e.mode.toString(8)) problems.push(`${e.path}: mode ${r.mode}, want ${e.mode.toString(8)}`);
      if (r.owner !== `${e.uid}:${e.gid}`) problems.push(`${e.path}: owner ${r.owner}, want ${e.uid}:${e.gid}`);
      if (e.target !== undefined && r.extra !== e.target) problems.push(`${e.path}: target ${r.extra}, want ${e.target}`);
      if (e.content !== undefined && r.extra !== sha256(e.content).slice(7)) problems.push(`${e.path}: content differs from ${JSON.stringify(e.content)}`);
      if (e.hardlinkOf !== undefined && rows.get(e.hardlinkOf)?.inode !== r.inode) problems.push(`${e.path}: not a hard link of ${e.hardlinkOf}`);
    }
    if (absentOut.trim() !== "") problems.push(`whited-out paths still there: ${absentOut.trim().split("\n").join(", ")}`);
    assert.deepEqual(problems, [], `the image Berth saved, as Docker runs it:\n${lsOut}\n${statOut}`);

    // And the busybox part still works (the first layer).
    const cat = await dockerCliOk(engine, [
      "run",
      "--rm",
      "--pull",
      "never",
      "--network",
      "none",
      fx.multilayer.ref,
      "cat",
      "/data/keep.txt",
      "/data/old/new.txt",
    ]);
    assert.equal(cat, "kept\nnew content\n");
  });
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
