/**
 * Extended attributes, read and written with the `attr` tools (Node has no
 * xattr calls): one `getfattr -R` reads a whole tree, one `setfattr` writes a
 * (name, value) pair on many paths.
 *
 * Which attributes travel in archives and copies (`portableXattr`): the same
 * set the layer extractor accepts, i.e. `security.capability`, `user.*` and
 * `trusted.*`, never overlay's own (`trusted.overlay.*`, `user.overlay.*`),
 * which would change how layers merge.
 *
 * External tools: getfattr and setfattr (Debian package `attr`).
 */
import { runTool } from "../child-process.ts";
import { isErrno } from "../fs-util.ts";
import { resolve } from "node:path";
import { EngineError, invalidArgument, unavailable } from "../errors.ts";

export type Xattrs = Map<string, Buffer>;

/** Whether an attribute is carried into layer tars, exports and volume copies. */
export function portableXattr(name: string): boolean {
  if (name === "security.capability") return true;
  if (name.startsWith("user.")) return !name.startsWith("user.overlay.");
  if (name.startsWith("trusted.")) return !name.startsWith("trusted.overlay.");
  return false;
}

/** The portable attributes of one entry, sorted by name (deterministic output). */
export function portableList(x: Xattrs | undefined): Array<[string, Buffer]> {
  if (!x) return [];
  return [...x].filter(([k]) => portableXattr(k)).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/**
 * Attributes of every entry under `root` (root included, as ""), keyed by path
 * relative to root; entries without matching attributes are absent.
 * Symlinks are not followed (getfattr -P -h). Reads by path: a tree that
 * changes meanwhile may give attributes of entries the caller then skips.
 * @param match a regular expression on attribute names (getfattr -m); default all.
 * @throws Unavailable if getfattr is missing or fails.
 */
export async function readTreeXattrs(root: string, match = "-"): Promise<Map<string, Xattrs>> {
  const abs = resolve(root);
  const byPath = await getfattr(["-R", "-P", "-h", "-d", "-m", match, "-e", "hex", "--absolute-names", "--", abs]);
  const out = new Map<string, Xattrs>();
  for (const [p, x] of byPath) {
    if (p === abs) out.set("", x);
    else if (p.startsWith(abs + "/")) out.set(p.slice(abs.length + 1), x);
  }
  return out;
}

/**
 * Attributes of the given paths (not recursive), keyed by the path as given;
 * missing paths and paths without matching attributes are absent.
 */
export async function readXattrs(paths: string[], match = "-"): Promise<Map<string, Xattrs>> {
  const out = new Map<string, Xattrs>();
  for (const batch of batches(paths)) {
    for (const [p, x] of await getfattr(["-h", "-d", "-m", match, "-e", "hex", "--absolute-names", "--", ...batch])) out.set(p, x);
  }
  return out;
}

/**
 * Sets attributes, grouping identical (name, value) pairs so that one setfattr
 * call covers many paths. Paths are not dereferenced (setfattr -h); give paths
 * a child process can resolve (see tree-walk.ts `atFdForChild`).
 * @throws InvalidArgument if the filesystem refuses an attribute; Unavailable if setfattr is missing.
 */
export async function writeXattrs(items: Iterable<readonly [string, Xattrs]>): Promise<void> {
  const groups = new Map<string, { name: string; value: Buffer; paths: string[] }>();
  for (const [path, attrs] of items) {
    for (const [k, v] of attrs) {
      const key = `${k}\0${v.toString("hex")}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { name: k, value: v, paths: [] }));
      g.paths.push(path);
    }
  }
  for (const g of groups.values()) {
    for (const batch of batches(g.paths)) {
      const { code, stderr } = await run("setfattr", ["-h", "-n", g.name, "-v", `0x${g.value.toString("hex")}`, "--", ...batch]);
      if (code !== 0) throw invalidArgument(`cannot set extended attribute ${g.name}: ${stderr.trim()}`);
    }
  }
}

/** Paths per call, well under the kernel's argument limits. */
function* batches(paths: string[]): Generator<string[]> {
  let cur: string[] = [];
  let bytes = 0;
  for (const p of paths) {
    if (cur.length > 0 && (cur.length >= 500 || bytes + p.length > 64 * 1024)) {
      yield cur;
      cur = [];
      bytes = 0;
    }
    cur.push(p);
    bytes += p.length + 1;
  }
  if (cur.length > 0) yield cur;
}

async function getfattr(args: string[]): Promise<Map<string, Xattrs>> {
  const { code, stdout, stderr } = await run("getfattr", args);
  if (code !== 0) {
    // Entries that vanish while a live tree is read are not errors; anything else is.
    const bad = stderr.split("\n").filter((l) => l.trim() !== "" && !/No such file or directory|Not a directory/.test(l));
    if (bad.length > 0) throw unavailable(`getfattr failed: ${bad.slice(0, 3).join("; ")}`);
  }
  return parseDump(stdout);
}

/**
 * Parses `getfattr -d -e hex --absolute-names` output. getfattr escapes
 * backslashes, newlines (and "=" in attribute names) as `\ooo` octal; the output
 * is read as bytes so that non-ASCII names survive.
 */
export function parseDump(out: Buffer): Map<string, Xattrs> {
  const text = out.toString("latin1");
  const result = new Map<string, Xattrs>();
  let cur: Xattrs | undefined;
  for (const line of text.split("\n")) {
    if (line.startsWith("# file: ")) {
      const path = unquote(line.slice("# file: ".length));
      cur = new Map();
      result.set(path, cur);
      continue;
    }
    if (line === "" || !cur) continue;
    const eq = line.indexOf("=");
    const name = unquote(eq < 0 ? line : line.slice(0, eq));
    const raw = eq < 0 ? "" : line.slice(eq + 1);
    cur.set(name, decodeValue(raw));
  }
  for (const [p, x] of result) if (x.size === 0) result.delete(p);
  return result;
}

function unquote(s: string): string {
  const bytes = Buffer.from(
    s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))),
    "latin1",
  );
  return bytes.toString("utf8");
}

function decodeValue(raw: string): Buffer {
  if (raw.startsWith("0x")) return Buffer.from(raw.slice(2), "hex");
  if (raw.startsWith("0s")) return Buffer.from(raw.slice(2), "base64");
  if (raw.startsWith('"') && raw.endsWith('"') && raw.length >= 2) return Buffer.from(unquote(raw.slice(1, -1)), "utf8");
  return Buffer.from(raw, "latin1");
}

async function run(cmd: string, args: string[]): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  try {
    const r = await runTool(cmd, args);
    return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr.toString("utf8") };
  } catch (e) {
    if (isErrno(e, "ENOENT")) throw unavailable(`${cmd} is not installed (Debian package attr); it is needed for extended attributes`, e);
    throw new EngineError("Internal", `${cmd}: ${(e as Error).message}`, { cause: e });
  }
}
