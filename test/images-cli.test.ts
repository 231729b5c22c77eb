// The image chapters of the seeds through the real docker CLI against a real agent,
// on images that skopeo/umoci put into a real docker-registry.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { startRegistry, type RegistryFixture } from "./fixtures/registry.ts";
import { BUSYBOX_EXPECTED, MULTILAYER_ABSENT, MULTILAYER_EXPECTED, checkRootfs, pushFixtureImages, type FixtureImages } from "./fixtures/images.ts";
import { OverlayLayerStore } from "../agent/engine/layers/overlay-layer-store.ts";
import { chainIdOf } from "../agent/engine/layers/chain-id.ts";
import { docker, dockerOk, startAgent, type AgentHandle } from "./helpers/agent.ts";

const execFileP = promisify(execFile);

describe("images through the docker CLI (anonymous registry)", () => {
  let reg: RegistryFixture;
  let fx: FixtureImages;
  let agent: AgentHandle;
  let work: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "berth-images-"));
    reg = await startRegistry({ auth: "none" });
    fx = await pushFixtureImages(reg);
    agent = await startAgent();
  });
  after(async () => {
    await agent?.destroy();
    await reg?.stop();
    await rm(work, { recursive: true, force: true });
  });

  test("version and info answer as a Docker daemon", async () => {
    const v = await dockerOk(agent, ["version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}"]);
    assert.equal(v.trim(), "1.47 linux");
    const info = await dockerOk(agent, ["info", "--format", "{{.Driver}} {{.Images}} {{.OSType}}"]);
    assert.equal(info.trim(), "overlay2 0 linux");
  });

  test("pull shows per-layer progress and the image is listed with Docker's columns", async () => {
    const out = await dockerOk(agent, ["pull", fx.busybox.ref]);
    assert.match(out, /latest: Pulling from library\/busybox/);
    assert.match(out, /[0-9a-f]{12}: Pull complete/);
    assert.match(out, new RegExp(`Digest: ${fx.busybox.manifestDigest}`));
    assert.match(out, /Status: Downloaded newer image for 127\.0\.0\.1:\d+\/library\/busybox:latest/);
    const again = await dockerOk(agent, ["pull", fx.busybox.ref]);
    assert.match(again, /Status: Image is up to date/);

    const table = await dockerOk(agent, ["images"]);
    const lines = table.trim().split("\n");
    assert.match(lines[0]!, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
    const row = lines.find((l) => l.startsWith(`${reg.host}/library/busybox`));
    assert.ok(row, table);
    assert.match(row!, new RegExp(`latest\\s+${fx.busybox.configDigest.slice(7, 19)}`));
    const ids = await dockerOk(agent, ["images", "-q"]);
    assert.deepEqual(ids.trim().split("\n"), [fx.busybox.configDigest.slice(7, 19)]);
    const digests = await dockerOk(agent, ["images", "--digests", "--format", "{{.Repository}}|{{.Tag}}|{{.Digest}}"]);
    assert.equal(digests.trim(), `${reg.host}/library/busybox|latest|${fx.busybox.manifestDigest}`);
  });

  test("an OCI index resolves to this node's platform", async () => {
    await dockerOk(agent, ["pull", fx.index.ref]);
    const id = await dockerOk(agent, ["image", "inspect", "--format", "{{.Id}} {{.Architecture}}", fx.index.ref]);
    assert.equal(id.trim(), `${fx.index.amd64.configDigest} amd64`);
    const repoDigests = await dockerOk(agent, ["image", "inspect", "--format", "{{json .RepoDigests}}", fx.index.ref]);
    assert.deepEqual(JSON.parse(repoDigests), [`${reg.host}/${fx.index.repository}@${fx.index.digest}`]);
  });

  test("schema2 and OCI images pull, and the multi-layer image applies whiteouts", async () => {
    await dockerOk(agent, ["pull", fx.schema2.ref]);
    await dockerOk(agent, ["pull", fx.oci.ref]);
    const out = await dockerOk(agent, ["pull", fx.multilayer.ref]);
    assert.ok((out.match(/Pull complete|Already exists/g) ?? []).length >= 4, out);
    const inspect = JSON.parse(await dockerOk(agent, ["image", "inspect", fx.multilayer.ref]))[0];
    assert.equal(inspect.RootFS.Layers.length, fx.multilayer.layerCount);

    // Stack the stored layers as overlayfs does for a container: whiteouts and the
    // opaque directory must hide lower content; modes, owners and links must survive.
    const layers = new OverlayLayerStore(join(agent.dataRoot, "layers"));
    const { cwd, lowers } = await layers.lowerDirs(chainIdOf(inspect.RootFS.Layers));
    const merged = await mkdtemp(join(tmpdir(), "berth-merged-"));
    await execFileP("mount", ["-t", "overlay", "overlay", "-o", `ro,lowerdir=${lowers.join(":")}`, merged], { cwd });
    try {
      assert.deepEqual(await checkRootfs(merged, [...BUSYBOX_EXPECTED, ...MULTILAYER_EXPECTED], MULTILAYER_ABSENT), []);
    } finally {
      await execFileP("umount", [merged]);
      await rm(merged, { recursive: true, force: true });
    }
  });

  test("images filters and formats", async () => {
    const ref = await dockerOk(agent, ["images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", `reference=${reg.host}/test/*`]);
    assert.deepEqual(ref.trim().split("\n").sort(), [
      `${reg.host}/test/multiarch:latest`,
      `${reg.host}/test/multilayer:latest`,
      `${reg.host}/test/oci:latest`,
      `${reg.host}/test/schema2:latest`,
    ]);
    const byName = await dockerOk(agent, ["images", `${reg.host}/library/busybox`, "--format", "{{.ID}}"]);
    assert.equal(byName.trim(), fx.busybox.configDigest.slice(7, 19));
    const dangling = await dockerOk(agent, ["images", "-f", "dangling=true", "-q"]);
    assert.equal(dangling.trim(), "");
    const bad = await docker(agent, ["images", "-f", "dangling=maybe"]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /Invalid filter 'dangling=maybe'/);
  });

  test("tag, then rmi untags by name and deletes by ID with Docker's messages", async () => {
    await dockerOk(agent, ["tag", fx.busybox.ref, "evobot_centos"]);
    await dockerOk(agent, ["tag", fx.busybox.ref, "evobot_centos2:test1"]);
    const list = await dockerOk(agent, ["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert.match(list, /evobot_centos:latest/);
    assert.match(list, /evobot_centos2:test1/);

    const untag = await dockerOk(agent, ["rmi", "evobot_centos2:test1"]);
    assert.equal(untag.trim(), "Untagged: evobot_centos2:test1");
    const conflict = await docker(agent, ["rmi", fx.busybox.configDigest.slice(7, 19)]);
    assert.notEqual(conflict.code, 0);
    assert.match(conflict.stderr, /unable to delete [0-9a-f]{12} \(must be forced\) - image is referenced in multiple repositories/);
    const untag2 = await dockerOk(agent, ["rmi", "evobot_centos"]);
    assert.equal(untag2.trim(), "Untagged: evobot_centos:latest");

    const missing = await docker(agent, ["rmi", "nosuchimage:tag"]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /No such image: nosuchimage:tag/);
  });

  test("inspect and history", async () => {
    const inspect = JSON.parse(await dockerOk(agent, ["image", "inspect", fx.busybox.ref]))[0];
    assert.equal(inspect.Id, fx.busybox.configDigest);
    assert.deepEqual(inspect.RepoTags, [`${reg.host}/library/busybox:latest`]);
    assert.deepEqual(inspect.Config.Cmd, ["sh"]);
    const hist = await dockerOk(agent, ["history", "--no-trunc", "--format", "{{.ID}}|{{.Size}}", fx.busybox.ref]);
    const rows = hist.trim().split("\n");
    assert.equal(rows[0]!.split("|")[0], fx.busybox.configDigest);
    const missing = await docker(agent, ["image", "inspect", "nope:latest"]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /No such image: nope:latest/);
  });

  test("save -o, rmi, load -i and load from stdin keep the IMAGE ID and tags", async () => {
    const tarPath = join(work, "two.tar");
    await dockerOk(agent, ["save", "-o", tarPath, fx.busybox.ref, fx.multilayer.ref]);
    assert.ok((await stat(tarPath)).size > 100_000);
    const { stdout: listing } = await execFileP("tar", ["tf", tarPath]);
    assert.match(listing, /manifest\.json/);
    await dockerOk(agent, ["rmi", fx.multilayer.ref]);
    const loaded = await dockerOk(agent, ["load", "-i", tarPath]);
    assert.match(loaded, new RegExp(`Loaded image: ${reg.host}/test/multilayer:latest`));
    const id = await dockerOk(agent, ["image", "inspect", "--format", "{{.Id}}", fx.multilayer.ref]);
    assert.equal(id.trim(), fx.multilayer.configDigest);

    await dockerOk(agent, ["rmi", fx.multilayer.ref]);
    const fromStdin = await dockerOk(agent, ["load"], { input: await readFile(tarPath) });
    assert.match(fromStdin, /Loaded image: .*test\/multilayer:latest/);
  });

  test("load refuses what is not a docker-archive, naming the problem", async () => {
    const notTar = await docker(agent, ["load"], { input: Buffer.from("this is not a tar file at all".repeat(40)) });
    assert.notEqual(notTar.code, 0);
    assert.match(notTar.stderr, /not a docker image archive/);
    const emptyTar = join(work, "empty.tar");
    await execFileP("tar", ["cf", emptyTar, "--files-from", "/dev/null"]);
    const r = await docker(agent, ["load", "-i", emptyTar]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /not a docker image archive/);
  });

  test("import a rootfs tarball", async () => {
    const rootfs = join(work, "rootfs");
    await execFileP("mkdir", ["-p", join(rootfs, "bin"), join(rootfs, "etc")]);
    await execFileP("cp", ["/bin/busybox", join(rootfs, "bin/busybox")]);
    await execFileP("sh", ["-c", `echo imported > ${join(rootfs, "etc/motd")}`]);
    const tarPath = join(work, "rootfs.tar.gz");
    await execFileP("tar", ["czf", tarPath, "-C", rootfs, "."]);
    const out = await dockerOk(agent, ["import", "-m", "from a tarball", "-c", 'CMD ["/bin/busybox","sh"]', tarPath, "imported/rootfs:v1"]);
    assert.match(out.trim(), /^sha256:[0-9a-f]{64}$/);
    const inspect = JSON.parse(await dockerOk(agent, ["image", "inspect", "imported/rootfs:v1"]))[0];
    assert.deepEqual(inspect.Config.Cmd, ["/bin/busybox", "sh"]);
    assert.equal(inspect.Comment, "from a tarball");
    assert.equal(inspect.RootFS.Layers.length, 1);
  });

  test("push to another repository mounts blobs, and skopeo reads back the same digest", async () => {
    await dockerOk(agent, ["tag", fx.busybox.ref, `${reg.host}/copies/busybox:v1`]);
    const out = await dockerOk(agent, ["push", `${reg.host}/copies/busybox:v1`]);
    assert.match(out, new RegExp(`The push refers to repository \\[${reg.host.replace(/\./g, "\\.")}/copies/busybox\\]`));
    assert.match(out, /[0-9a-f]{12}: Mounted from library\/busybox/);
    const m = /v1: digest: (sha256:[0-9a-f]{64}) size: \d+/.exec(out);
    assert.ok(m, out);
    const { stdout: raw } = await execFileP("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${reg.host}/copies/busybox:v1`]);
    const { createHash } = await import("node:crypto");
    assert.equal(`sha256:${createHash("sha256").update(raw).digest("hex")}`, m![1]);
  });

  test("push of an imported (uncompressed) image uploads gzip layers that skopeo can copy", async () => {
    await dockerOk(agent, ["tag", "imported/rootfs:v1", `${reg.host}/imported/rootfs:v1`]);
    const out = await dockerOk(agent, ["push", `${reg.host}/imported/rootfs:v1`]);
    assert.match(out, /Pushed/);
    const dest = join(work, "skopeo-copy");
    await execFileP("skopeo", ["copy", "--src-tls-verify=false", `docker://${reg.host}/imported/rootfs:v1`, `dir:${dest}`]);
    const manifest = JSON.parse(await readFile(join(dest, "manifest.json"), "utf8"));
    assert.equal(manifest.layers[0].mediaType, "application/vnd.docker.image.rootfs.diff.tar.gzip");
  });

  test("search lists the registry's catalog", async () => {
    const out = await dockerOk(agent, ["search", `${reg.host}/multi`]);
    assert.match(out, /NAME/);
    assert.match(out, new RegExp(`${reg.host.replace(/\./g, "\\.")}/test/multiarch`));
  });

  test("system df counts images and layer bytes", async () => {
    const out = await dockerOk(agent, ["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert.match(out, /Images \d+/);
  });

  test("image prune removes dangling images only", async () => {
    await dockerOk(agent, ["tag", fx.schema2.ref, "dangling/soon:latest"]);
    await dockerOk(agent, ["rmi", fx.schema2.ref]);
    await dockerOk(agent, ["tag", fx.oci.ref, "dangling/soon:latest"]); // moves the tag: schema2's image is now dangling
    const dangling = await dockerOk(agent, ["images", "-f", "dangling=true", "-q"]);
    assert.equal(dangling.trim(), fx.schema2.configDigest.slice(7, 19));
    const out = await dockerOk(agent, ["image", "prune", "-f"]);
    assert.match(out, new RegExp(`deleted: ${fx.schema2.configDigest}`));
    assert.match(out, /Total reclaimed space/);
    assert.equal((await dockerOk(agent, ["images", "-f", "dangling=true", "-q"])).trim(), "");
  });

  test("malformed references and unknown tags are clear errors", async () => {
    const bad = await docker(agent, ["pull", "Busybox"]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid reference format: repository name \(library\/Busybox\) must be lowercase/);
    // The daemon itself refuses a malformed reference from any API client, with a 400.
    const { stdout: raw } = await execFileP("curl", [
      "-s",
      "-w",
      "\n%{http_code}",
      "--unix-socket",
      agent.socket,
      "-X",
      "POST",
      "http://d/v1.47/images/create?fromImage=bad::name&tag=latest",
    ]);
    const [body, status] = raw.trim().split("\n");
    assert.equal(status, "400");
    assert.match(JSON.parse(body!).message, /invalid reference format/);
    const unknown = await docker(agent, ["pull", `${reg.host}/library/busybox:nosuchtag`]);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /manifest unknown|not found/);
    const images = await dockerOk(agent, ["images", "--format", "{{.Tag}}"]);
    assert.doesNotMatch(images, /nosuchtag/);
  });

  test("rmi by digest and by short ID deletes the image and its layers", async () => {
    await dockerOk(agent, ["pull", fx.schema2.ref]);
    const before = (await execFileP("ls", [join(agent.dataRoot, "layers")])).stdout;
    const out = await dockerOk(agent, ["rmi", `${reg.host}/${fx.schema2.repository}@${fx.schema2.manifestDigest}`]);
    assert.match(out, /Untagged: .*@sha256/);
    const shortId = fx.schema2.configDigest.slice(7, 19);
    const del = await docker(agent, ["rmi", shortId]);
    if (del.code === 0) assert.match(del.stdout, /Deleted: sha256:/);
    const ids = await dockerOk(agent, ["images", "-q"]);
    assert.doesNotMatch(ids, new RegExp(shortId));
    assert.ok(before.length > 0);
  });
});
