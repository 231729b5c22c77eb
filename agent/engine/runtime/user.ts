/**
 * Resolving `docker run --user` (or the image's USER) to numeric IDs from the
 * container's own /etc/passwd and /etc/group, with Docker's rules (runc's
 * `libcontainer/user.GetExecUser`, which Docker calls):
 *
 * - "" → uid 0, gid 0 (root), with root's supplementary groups if /etc/group lists any.
 * - "name" or "uid" → the passwd entry (a numeric argument is always a uid); its
 *   gid, and as supplementary groups every group in /etc/group listing the name.
 *   A uid with no entry is allowed (gid 0); a name with no entry is an error.
 * - "user:group" (each a name or a number) → the group replaces the passwd gid,
 *   and there are no supplementary groups. A numeric gid with no entry is allowed.
 *
 * The files are read inside the rootfs with `secureJoin`, so a container whose
 * /etc/passwd is a symlink to the host's reads its own tree, never the host's.
 * Missing files are treated as empty (only numeric IDs then resolve).
 */
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { invalidArgument } from "../errors.ts";
import { secureJoin } from "./secure-join.ts";

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups (implicit form only), in /etc/group order. */
  additionalGids: number[];
}

const MAX_ID = 2147483647;
/** Larger passwd/group files are refused rather than read into memory. */
const MAX_FILE = 16 << 20;

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/**
 * @param rootfs the container's root filesystem on the host (a mounted snapshot).
 * @param user `name`, `uid`, `uid:gid`, `name:group` (`""` means root).
 * @param groupAdd `--group-add`: group names or numeric IDs, appended to the supplementary
 *   groups (runc's `GetAdditionalGroups`: a name must be in /etc/group, a number need not).
 * @throws InvalidArgument "unable to find user NAME: no matching entries in passwd file",
 *   "unable to find group NAME: no matching entries in group file",
 *   "uids and gids must be in range 0-2147483647", or for a passwd/group file that is not a regular file.
 */
export async function resolveUser(rootfs: string, user: string, groupAdd: readonly string[] = []): Promise<ResolvedUser> {
  const colon = user.indexOf(":");
  const userArg = colon < 0 ? user : user.slice(0, colon);
  const groupArg = colon < 0 ? "" : user.slice(colon + 1);
  const numericUid = parseId(userArg);
  const numericGid = parseId(groupArg);

  let uid = 0;
  let gid = 0;
  let name = "";
  const passwd = parsePasswd(await readInRoot(rootfs, "/etc/passwd"));
  const match = passwd.find((u) => (userArg === "" ? u.uid === 0 : numericUid !== undefined ? u.uid === numericUid : u.name === userArg));
  if (match) {
    ({ uid, gid, name } = match);
  } else if (userArg !== "") {
    if (numericUid === undefined) throw invalidArgument(`unable to find user ${userArg}: no matching entries in passwd file`);
    uid = numericUid;
  }

  let additionalGids: number[] = [];
  let groupFile: GroupEntry[] | undefined;
  const groupsOf = async () => (groupFile ??= parseGroup(await readInRoot(rootfs, "/etc/group")));
  if (groupArg !== "" || name !== "") {
    const groups = await groupsOf();
    if (groupArg !== "") {
      const g = groups.find((x) => x.name === groupArg || String(x.gid) === groupArg);
      if (g) gid = g.gid;
      else if (numericGid !== undefined) gid = numericGid;
      else throw invalidArgument(`unable to find group ${groupArg}: no matching entries in group file`);
    } else {
      additionalGids = groups.filter((g) => g.members.includes(name)).map((g) => g.gid);
    }
  }
  for (const ag of groupAdd) {
    const g = (await groupsOf()).find((x) => x.name === ag || String(x.gid) === ag);
    const id = g?.gid ?? parseId(ag);
    if (id === undefined) throw invalidArgument(`Unable to find group ${ag}: no matching entries in group file`);
    if (!additionalGids.includes(id)) additionalGids.push(id);
  }
  return { uid, gid, additionalGids };
}

/** A decimal ID, undefined if the argument is not a number. @throws InvalidArgument out of range. */
function parseId(s: string): number | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n > MAX_ID) throw invalidArgument("uids and gids must be in range 0-2147483647");
  return n;
}

/** The file's text, "" if it does not exist. Never follows a symlink out of the root, never blocks on a FIFO. */
async function readInRoot(rootfs: string, path: string): Promise<string> {
  const host = await secureJoin(rootfs, path);
  let fh;
  try {
    fh = await open(host, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return "";
    if (code === "ELOOP") throw invalidArgument(`${path} in the container changed into a symlink while being read`);
    throw e;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw invalidArgument(`${path} in the container is not a regular file`);
    if (st.size > MAX_FILE) throw invalidArgument(`${path} in the container is larger than ${MAX_FILE} bytes`);
    return await fh.readFile("utf8");
  } finally {
    await fh.close();
  }
}

/** passwd(5) lines: name:password:uid:gid:gecos:home:shell. Comments, blanks and lines with bad IDs are skipped. */
function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of lines(text)) {
    const f = line.split(":");
    const uid = idField(f[2]);
    const gid = idField(f[3]);
    if (!f[0] || uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid });
  }
  return out;
}

/** group(5) lines: name:password:gid:member,member. */
function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of lines(text)) {
    const f = line.split(":");
    const gid = idField(f[2]);
    if (!f[0] || gid === undefined) continue;
    out.push({ name: f[0], gid, members: (f[3] ?? "").split(",").filter(Boolean) });
  }
  return out;
}

function lines(text: string): string[] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));
}

function idField(s: string | undefined): number | undefined {
  if (s === undefined || !/^[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}
