/**
 * `docker diff`: what a container changed, read from the overlay upper
 * directory of its snapshot and the image's layer directories below it.
 *
 * Rules (paths are container paths, "/etc/passwd"):
 * - a whiteout (char 0/0) in the upper directory → D;
 * - any other upper entry → C if the path exists in the image (the lower
 *   layers merged as overlay merges them: whiteouts and opaque directories of
 *   the lower layers hide what is below them), else A; everything inside an added
 *   directory is A;
 * - an opaque upper directory (`rm -rf d && mkdir d`) → C if it exists below,
 *   and D for each name the image had directly in it that was not re-created
 *   (the same below every re-created directory inside it);
 * - every directory above a change that exists in the image → C;
 * - a directory that exists below, with no change inside, is reported (C) only
 *   if its mode, owner or mtime differ from the image's.
 * The list is sorted by path (byte order), root never included.
 *
 * Lower layers are read by path with lstat, never through a symlink: they are
 * the layer store's directories, which containers cannot write. The upper
 * directory is walked as tree-walk.ts does (no symlink followed).
 *
 * @throws NotImplemented for an upper dir made with overlay redirect_dir or
 *   metacopy (overlay-form.ts); Unavailable if getfattr is missing.
 */
import type { BigIntStats } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { Exclusion } from "./exclusion.ts";
import { checkSelfContained, isOpaque, isWhiteout, OPAQUE_XATTR } from "./overlay-form.ts";
import { byteOrder, isErrno, walkTree, type TreeEntry } from "./tree-walk.ts";
import { readTreeXattrs, readXattrs } from "./xattrs.ts";

export interface Change {
  /** Absolute path inside the container: "/etc/foo". */
  path: string;
  /** Docker's ChangeType: 0 = Modified (C), 1 = Added (A), 2 = Deleted (D). */
  kind: 0 | 1 | 2;
}

const MODIFIED = 0;
const ADDED = 1;
const DELETED = 2;

interface UpperEntry {
  rel: string;
  st: BigIntStats;
  whiteout: boolean;
  opaque: boolean;
  /** Inside an opaque directory (or opaque itself): lower contents are hidden here. */
  hidden: boolean;
}

/**
 * @param upperDir the container's overlay upper directory.
 * @param lowerDirs the image's layer directories, absolute, topmost first (as overlay's lowerdir).
 * @param opts.exclude paths to leave out, as for upperToLayerTar (exclusion.ts).
 */
export async function diffUpper(upperDir: string, lowerDirs: string[], opts?: { exclude?: string[] }): Promise<Change[]> {
  const xattrs = await readTreeXattrs(upperDir, "^trusted\\.overlay\\.");
  const exclusion = new Exclusion(opts?.exclude);
  const opaque = (rel: string) => isOpaque(xattrs.get(rel));

  // 1. The upper tree.
  const entries: UpperEntry[] = [];
  const upperChildren = new Map<string, Set<string>>();
  const hiddenDirs = new Set<string>();
  const keep = async (e: TreeEntry) => !exclusion.excluded(e.rel) && !(e.st.isDirectory() && (await exclusion.onlyExcluded(e.at, e.rel, opaque)));
  for await (const e of walkTree(upperDir, { keep })) {
    if (e.rel === "") {
      if (opaque("")) hiddenDirs.add("");
      continue;
    }
    checkSelfContained(e.rel, xattrs.get(e.rel));
    const parent = parentOf(e.rel);
    let names = upperChildren.get(parent);
    if (!names) upperChildren.set(parent, (names = new Set()));
    names.add(e.name);
    const isDir = e.st.isDirectory();
    const op = isDir && opaque(e.rel);
    const hidden = isDir && (op || hiddenDirs.has(parent));
    if (hidden) hiddenDirs.add(e.rel);
    entries.push({ rel: e.rel, st: e.st, whiteout: isWhiteout(e.st), opaque: op, hidden });
  }

  // 2. The image below it.
  const upperDirs = ["", ...entries.filter((e) => e.st.isDirectory()).map((e) => e.rel)];
  const lower = await LowerView.open(lowerDirs, upperDirs);

  // 3. Changes.
  const changes = new Map<string, 0 | 1 | 2>();
  const deletedBelow = async (dir: string) => {
    const present = upperChildren.get(dir) ?? new Set<string>();
    for (const name of await lower.children(dir)) {
      const rel = dir === "" ? name : `${dir}/${name}`;
      if (!present.has(name) && !exclusion.excluded(rel)) changes.set(rel, DELETED);
    }
  };
  if (hiddenDirs.has("")) await deletedBelow("");
  for (const e of entries) {
    if (e.whiteout) {
      changes.set(e.rel, DELETED);
      continue;
    }
    const below = await lower.stat(e.rel);
    if (!below) {
      changes.set(e.rel, ADDED);
      continue;
    }
    if (!e.st.isDirectory()) {
      changes.set(e.rel, MODIFIED);
      continue;
    }
    if (e.opaque || !below.isDirectory() || metadataDiffers(e.st, below)) changes.set(e.rel, MODIFIED);
    if (e.hidden && below.isDirectory()) await deletedBelow(e.rel);
  }
  // Directories above a change: C where the image has them (those it lacks are A already).
  for (const rel of [...changes.keys()]) {
    for (let p = parentOf(rel); p !== ""; p = parentOf(p)) {
      if (changes.has(p)) continue;
      if (await lower.stat(p)) changes.set(p, MODIFIED);
      else changes.set(p, ADDED);
    }
  }

  return [...changes].map(([rel, kind]) => ({ path: `/${rel}`, kind })).sort((a, b) => byteOrder(a.path, b.path));
}

function metadataDiffers(a: BigIntStats, b: BigIntStats): boolean {
  return a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || a.mtimeNs !== b.mtimeNs;
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf("/");
  return i < 0 ? "" : rel.slice(0, i);
}

const OPAQUE_MATCH = `^${OPAQUE_XATTR.replace(/\./g, "\\.")}$`;

type Resolved = { kind: "found"; st: BigIntStats } | { kind: "whiteout" } | { kind: "blocked" } | { kind: "absent" };

/**
 * The image's layers merged the way overlay merges them, for the few paths a
 * diff asks about. Opaque flags are read up front, in one getfattr call, for
 * the directories that can matter: those that also exist in the upper directory
 * (every path asked about, and every parent of one, is such a directory).
 */
class LowerView {
  private readonly lstats = new Map<string, BigIntStats | null>();

  private constructor(
    private readonly layers: string[],
    private readonly opaqueDirs: Set<string>,
  ) {}

  static async open(layers: string[], upperDirs: string[]): Promise<LowerView> {
    const view = new LowerView(layers, new Set());
    const candidates: string[] = [];
    for (const layer of layers) {
      for (const d of upperDirs) {
        const p = d === "" ? layer : join(layer, d);
        const st = await view.lstat(p);
        if (st?.isDirectory()) candidates.push(p);
      }
    }
    for (const [p, x] of await readXattrs(candidates, OPAQUE_MATCH)) if (isOpaque(x)) view.opaqueDirs.add(p);
    return view;
  }

  /** The path in the merged image, or undefined if the image does not have it. */
  async stat(rel: string): Promise<BigIntStats | undefined> {
    for (let i = 0; i < this.layers.length; i++) {
      const r = await this.resolve(i, rel);
      if (r.kind === "found") return r.st;
      if (r.kind !== "absent") return undefined;
    }
    return undefined;
  }

  /** Names directly inside the merged image directory `rel`. */
  async children(rel: string): Promise<string[]> {
    const names = new Set<string>();
    const seen = new Set<string>();
    for (let i = 0; i < this.layers.length; i++) {
      const r = await this.resolve(i, rel);
      if (r.kind === "absent") continue;
      if (r.kind !== "found" || !r.st.isDirectory()) break;
      const dir = this.abs(i, rel);
      for (const name of await readdir(dir)) {
        if (seen.has(name)) continue;
        seen.add(name);
        const st = await this.lstat(join(dir, name));
        if (st && !isWhiteout(st)) names.add(name);
      }
      if (this.opaqueDirs.has(dir)) break;
    }
    return [...names].sort(byteOrder);
  }

  /** What layer `i` says about `rel`, given its parents in that layer. */
  private async resolve(i: number, rel: string): Promise<Resolved> {
    let blocked = false;
    const parts = rel === "" ? [] : rel.split("/");
    for (let n = 0; n < parts.length; n++) {
      const a = this.abs(i, parts.slice(0, n).join("/"));
      const st = await this.lstat(a);
      if (!st) return blocked ? { kind: "blocked" } : { kind: "absent" };
      if (!st.isDirectory()) return { kind: "blocked" }; // a whiteout or a file hides what is below
      if (this.opaqueDirs.has(a)) blocked = true;
    }
    const st = await this.lstat(this.abs(i, rel));
    if (st) return isWhiteout(st) ? { kind: "whiteout" } : { kind: "found", st };
    return blocked ? { kind: "blocked" } : { kind: "absent" };
  }

  private abs(i: number, rel: string): string {
    return rel === "" ? this.layers[i]! : join(this.layers[i]!, rel);
  }

  private async lstat(p: string): Promise<BigIntStats | undefined> {
    const cached = this.lstats.get(p);
    if (cached !== undefined) return cached ?? undefined;
    let st: BigIntStats | null;
    try {
      st = await lstat(p, { bigint: true });
    } catch (e) {
      if (!isErrno(e, "ENOENT") && !isErrno(e, "ENOTDIR")) throw e;
      st = null;
    }
    this.lstats.set(p, st);
    return st ?? undefined;
  }
}
