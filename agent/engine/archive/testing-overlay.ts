/**
 * Test helper: an image of two layers (tars written with tar-stream by makeTar, unpacked
 * by OverlayLayerStore), a real overlay mount of it with an upper directory,
 * and a container's worth of changes made through the merged directory.
 * Also an independent tree description for comparing two directory trees.
 * Not used by the engine itself. Needs root (mount) and the attr tools.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import type { BigIntStats } from "node:fs";
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { TestContext } from "node:test";
import { makeTar, type RawEntry } from "../../../test/helpers/raw-images.ts";
import { OverlayLayerStore } from "../layers/overlay-layer-store.ts";
import type { LayerInfo } from "../layers/layer-store.ts";
import { portableList, readTreeXattrs } from "./xattrs.ts";

export const BASE_LAYER: RawEntry[] = [
  { name: "bin/", type: "directory" },
  { name: "bin/tool", content: "#!tool\n", mode: 0o755 },
  { name: "etc/", type: "directory" },
  { name: "etc/hostname", content: "box\n" },
  { name: "etc/motd", content: "welcome\n" },
  { name: "keep/", type: "directory" },
  { name: "keep/x", content: "x" },
  { name: "keep/y", content: "y" },
  { name: "keep/y2", type: "link", linkname: "keep/y" },
  { name: "opt/", type: "directory" },
  { name: "opt/old", content: "old" },
  { name: "srv/", type: "directory" },
  { name: "srv/dir/", type: "directory", uid: 1000, gid: 1000 },
  { name: "srv/dir/f", content: "f", uid: 1000, gid: 1000 },
  { name: "var/", type: "directory" },
  { name: "var/cache/", type: "directory" },
  { name: "var/cache/a", content: "a" },
  { name: "var/cache/b", content: "b" },
  { name: "var/cache/sub/", type: "directory" },
  { name: "var/cache/sub/s", content: "s" },
];

export const TOP_LAYER: RawEntry[] = [
  { name: "etc/", type: "directory" },
  { name: "etc/extra", content: "extra\n" },
  { name: "home/", type: "directory" },
  { name: "home/u/", type: "directory", mode: 0o750, uid: 1000, gid: 1000 },
  { name: "home/u/.profile", content: "PS1=$\n", uid: 1000, gid: 1000 },
  { name: "opt/", type: "directory" },
  { name: "opt/.wh.old" },
];

/** The changes a container makes, run with the merged directory as working directory. */
export const CHANGES = [
  "echo new > new.txt",
  "echo more >> etc/motd",
  "rm etc/hostname",
  "rm -rf var/cache && mkdir var/cache && echo c > var/cache/c && echo a2 > var/cache/a",
  "chmod 600 keep/x",
  "rm keep/y",
  "echo t > bin/su2 && chmod 4755 bin/su2",
  "chmod u+s bin/tool",
  "ln new.txt newlink",
  "ln -s etc/motd motd-link",
  "mkdir -p newdir/sub && echo z > newdir/sub/z",
  "chown 1234:5678 srv/dir/f",
  "setfattr -n security.capability -v 0x0100000280000000000000000000000000000000 bin/su2",
  "setfattr -n user.note -v hello new.txt",
  "touch opt/old",
  "mkfifo fifo1",
  "touch home/u/mnt",
].join(" && ");

/** `docker diff` of CHANGES on BASE_LAYER + TOP_LAYER. */
export const EXPECTED_DIFF: Array<[string, string]> = [
  ["C", "/bin"],
  ["A", "/bin/su2"],
  ["C", "/bin/tool"],
  ["C", "/etc"],
  ["D", "/etc/hostname"],
  ["C", "/etc/motd"],
  ["A", "/fifo1"],
  ["C", "/home"],
  ["C", "/home/u"],
  ["A", "/home/u/mnt"],
  ["C", "/keep"],
  ["C", "/keep/x"],
  ["D", "/keep/y"],
  ["A", "/motd-link"],
  ["A", "/new.txt"],
  ["A", "/newdir"],
  ["A", "/newdir/sub"],
  ["A", "/newdir/sub/z"],
  ["A", "/newlink"],
  ["C", "/opt"],
  ["A", "/opt/old"],
  ["C", "/srv"],
  ["C", "/srv/dir"],
  ["C", "/srv/dir/f"],
  ["C", "/var"],
  ["C", "/var/cache"],
  ["C", "/var/cache/a"],
  ["D", "/var/cache/b"],
  ["A", "/var/cache/c"],
  ["D", "/var/cache/sub"],
];

export interface Scenario {
  base: string;
  store: OverlayLayerStore;
  /** The image's top layer. */
  top: LayerInfo;
  /** Layer directories, topmost first. */
  lowers: string[];
  upper: string;
  merged: string;
  /** Mounts a read-only overlay of `lowers` (topmost first) and returns its directory. */
  mountReadOnly(lowers: string[]): Promise<string>;
}

/** Builds the image, mounts it with an upper directory and applies CHANGES. Cleanup is registered on `t`. */
export async function setUpScenario(t: TestContext): Promise<Scenario> {
  const base = await mkdtemp(join(tmpdir(), "berth-archive-"));
  const mounted: string[] = [];
  t.after(async () => {
    for (const m of mounted.reverse()) {
      try {
        execFileSync("umount", [m]);
      } catch {
        execFileSync("umount", ["-l", m]);
      }
    }
    await rm(base, { recursive: true, force: true });
  });
  const store = new OverlayLayerStore(join(base, "layers"), { durable: false });
  const l1 = await store.unpack({}, Readable.from([await makeTar(BASE_LAYER)]));
  const l2 = await store.unpack({ parent: l1.chainId }, Readable.from([await makeTar(TOP_LAYER)]));
  const lowers = [l2.diffDir, l1.diffDir];
  const upper = join(base, "upper");
  const work = join(base, "work");
  const merged = join(base, "merged");
  await Promise.all([mkdir(upper), mkdir(work), mkdir(merged)]);
  execFileSync("mount", ["-t", "overlay", "overlay", "-o", `index=off,lowerdir=${lowers.join(":")},upperdir=${upper},workdir=${work}`, merged]);
  mounted.push(merged);
  execFileSync("sh", ["-ec", CHANGES], { cwd: merged });
  let n = 0;
  return {
    base,
    store,
    top: l2,
    lowers,
    upper,
    merged,
    async mountReadOnly(ls: string[]): Promise<string> {
      const dir = join(base, `ro${n++}`);
      await mkdir(dir);
      execFileSync("mount", ["-t", "overlay", "overlay", "-o", `ro,lowerdir=${ls.join(":")}`, dir]);
      mounted.push(dir);
      return dir;
    },
  };
}

/**
 * A description of every entry of a tree (type, mode, owner, mtime in seconds,
 * content digest, link target, portable xattrs), by a plain recursive walk
 * independent of tree-walk.ts.
 */
export async function describeTree(root: string): Promise<Map<string, string>> {
  const xattrs = await readTreeXattrs(root);
  const out = new Map<string, string>();
  const visit = async (rel: string) => {
    const p = rel === "" ? root : join(root, rel);
    for (const name of (await readdir(p)).sort()) {
      const childRel = rel === "" ? name : `${rel}/${name}`;
      const cp = join(root, childRel);
      const st: BigIntStats = await lstat(cp, { bigint: true });
      let what = st.isDirectory() ? "dir" : st.isFile() ? "file" : st.isSymbolicLink() ? "symlink" : st.isFIFO() ? "fifo" : "other";
      if (st.isFile())
        what += ` sha256:${createHash("sha256")
          .update(await readFile(cp))
          .digest("hex")
          .slice(0, 16)}`;
      if (st.isSymbolicLink()) what += ` -> ${await readlink(cp)}`;
      const xs = portableList(xattrs.get(childRel))
        .map(([k, v]) => `${k}=${v.toString("hex")}`)
        .join(",");
      out.set(
        childRel,
        `${what} mode=${(st.mode & 0o7777n).toString(8)} owner=${st.uid}:${st.gid} mtime=${st.mtimeNs / 1_000_000_000n}${xs ? ` xattrs=${xs}` : ""}`,
      );
      if (st.isDirectory()) await visit(childRel);
    }
  };
  await visit("");
  return out;
}
