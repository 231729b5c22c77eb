/** Small helpers to build the POSIX shell commands the installer runs on a node. */

/** Quotes one word for a POSIX shell. */
export function q(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * An install prefix: "/" for a real install, another absolute directory (tests, staging)
 * to keep every file under it. Restricted to plain characters because it lands unquoted in
 * the systemd unit and in sed expressions.
 * @throws TypeError for anything else.
 */
export function normalizePrefix(prefix: string | undefined): string {
  const p = (prefix ?? "/").trim();
  if (p === "/") return "/";
  if (!/^(\/[A-Za-z0-9._-]+)+\/?$/.test(p) || p.split("/").some((part) => part === "." || part === "..")) {
    throw new TypeError(`install prefix must be "/" or an absolute path of letters, digits, ".", "_", "-" (got ${JSON.stringify(prefix)})`);
  }
  return p.replace(/\/+$/, "");
}

/** Where things live on a node for a given prefix. */
export interface NodePaths {
  prefix: string;
  /** The prefix as it is written before absolute paths: "" for "/". */
  root: string;
  libDir: string;
  current: string;
  etcDir: string;
  config: string;
  credential: string;
  unitDir: string;
  unit: string;
  dataRoot: string;
  execRoot: string;
  dockerSocket: string;
}

export function nodePaths(prefix: string): NodePaths {
  const root = prefix === "/" ? "" : prefix;
  return {
    prefix,
    root,
    libDir: `${root}/usr/lib/berth-agent`,
    current: `${root}/usr/lib/berth-agent/current`,
    etcDir: `${root}/etc/berth`,
    config: `${root}/etc/berth/agent.json`,
    credential: `${root}/etc/berth/node-credential`,
    unitDir: `${root}/etc/systemd/system`,
    unit: `${root}/etc/systemd/system/berth-agent.service`,
    dataRoot: `${root}/var/lib/berth`,
    execRoot: `${root}/run/berth`,
    dockerSocket: `${root}/run/berth/docker.sock`,
  };
}

/**
 * A shell function `mkd DIR MODE` that creates DIR (MODE) and its missing parents (0755) and prints
 * `created:PATH` for each directory it made, so the caller can undo exactly those.
 */
export const MKD = `mkd() { _l=$1; _p=$1; _m=$2; set --; while [ ! -e "$_p" ]; do set -- "$_p" "$@"; _p=$(dirname "$_p"); done; for _d in "$@"; do if [ "$_d" = "$_l" ]; then mkdir -m "$_m" "$_d"; else mkdir -m 0755 "$_d"; fi && echo "created:$_d"; done; }`;

/** The directories a script using MKD reported as created, outermost first. */
export function createdDirs(stdout: string): string[] {
  return stdout
    .split("\n")
    .filter((l) => l.startsWith("created:"))
    .map((l) => l.slice("created:".length));
}

/** Of a list of created directories (outermost first), those not inside another one of the list. */
export function outermost(dirs: string[]): string[] {
  const out: string[] = [];
  for (const d of dirs) if (!out.some((o) => d === o || d.startsWith(o + "/"))) out.push(d);
  return out;
}
