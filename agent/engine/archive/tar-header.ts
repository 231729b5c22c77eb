/**
 * Encoding of tar headers (POSIX ustar, with PAX extended headers when a field
 * does not fit), written by hand rather than with tar-stream because PAX values
 * must be raw bytes: `SCHILY.xattr.security.capability` is binary, and
 * tar-stream encodes PAX values as UTF-8 strings, which mangles it.
 *
 * Deterministic by construction: no atime/ctime, empty user and group names,
 * PAX records sorted by key, the PAX header's own fields fixed.
 */

export type TarEntryType = "file" | "link" | "symlink" | "char" | "block" | "directory" | "fifo";

export interface TarHeader {
  /** Entry name, relative, "/"-separated; directories end with "/". */
  name: string;
  type: TarEntryType;
  /** Permission bits including setuid, setgid and sticky (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Bytes of data following the header: only regular files have any. */
  size: number;
  /** Modification time in whole seconds since the epoch. */
  mtime: number;
  /** Target of a symlink, or the earlier entry a hard link names. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes, written as `SCHILY.xattr.NAME` PAX records. */
  xattrs?: ReadonlyArray<readonly [string, Buffer]>;
}

export const BLOCK = 512;
/** The end-of-archive marker: two zero blocks. */
export const END_OF_ARCHIVE: Buffer = Buffer.alloc(2 * BLOCK);

const TYPEFLAG: Record<TarEntryType, string> = { file: "0", link: "1", symlink: "2", char: "3", block: "4", directory: "5", fifo: "6" };
const MAX_OCTAL_7 = 0o7777777;
const MAX_OCTAL_11 = 0o77777777777;

/** Zero bytes that pad `size` bytes of data to a whole block. */
export function padding(size: number): Buffer {
  const r = size % BLOCK;
  return r === 0 ? EMPTY : Buffer.alloc(BLOCK - r);
}
const EMPTY = Buffer.alloc(0);

/** The header block of one entry, preceded by a PAX header when needed. */
export function encodeHeader(h: TarHeader): Buffer {
  const pax: Array<[string, Buffer]> = [];
  let name = "";
  let prefix = "";
  const split = ustarName(h.name);
  if (split) [prefix, name] = split;
  else {
    pax.push(["path", Buffer.from(h.name)]);
    name = truncateBytes(h.name, 100);
  }
  let linkname = h.linkname ?? "";
  if (linkname && (!isAscii(linkname) || linkname.length > 100)) {
    pax.push(["linkpath", Buffer.from(linkname)]);
    linkname = truncateBytes(linkname, 100);
  }
  // Ids beyond 7 octal digits: a PAX record, and base-256 in the field for readers
  // that ignore PAX ids (tar-stream, hence the layer extractor).
  if (h.uid > MAX_OCTAL_7) pax.push(["uid", Buffer.from(String(h.uid))]);
  if (h.gid > MAX_OCTAL_7) pax.push(["gid", Buffer.from(String(h.gid))]);
  let size = h.size;
  if (size > MAX_OCTAL_11) {
    pax.push(["size", Buffer.from(String(size))]);
    size = 0;
  }
  let mtime = h.mtime;
  if (mtime < 0 || mtime > MAX_OCTAL_11) {
    pax.push(["mtime", Buffer.from(String(mtime))]);
    mtime = 0;
  }
  for (const [k, v] of h.xattrs ?? []) pax.push([`SCHILY.xattr.${k}`, v]);

  const block = ustar({
    name,
    prefix,
    typeflag: TYPEFLAG[h.type],
    mode: h.mode & 0o7777,
    uid: h.uid,
    gid: h.gid,
    size,
    mtime,
    linkname,
    devmajor: h.devmajor ?? 0,
    devminor: h.devminor ?? 0,
  });
  if (pax.length === 0) return block;
  pax.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const records = Buffer.concat(pax.map(([k, v]) => paxRecord(k, v)));
  const paxName = truncateBytes(paxHeaderName(h.name), 100);
  const paxBlock = ustar({
    name: paxName,
    prefix: "",
    typeflag: "x",
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: records.length,
    mtime: 0,
    linkname: "",
    devmajor: 0,
    devminor: 0,
  });
  return Buffer.concat([paxBlock, records, padding(records.length), block]);
}

/** `dir/PaxHeaders.0/base`, as Go's archive/tar names PAX headers. */
function paxHeaderName(name: string): string {
  const trimmed = name.endsWith("/") ? name.slice(0, -1) : name;
  const i = trimmed.lastIndexOf("/");
  return i < 0 ? `PaxHeaders.0/${trimmed}` : `${trimmed.slice(0, i)}/PaxHeaders.0/${trimmed.slice(i + 1)}`;
}

/** [prefix, name] if the name fits ustar's fields, else undefined (a PAX `path` is needed). */
function ustarName(full: string): [string, string] | undefined {
  if (!isAscii(full)) return undefined;
  if (full.length <= 100) return ["", full];
  // Split at a "/" so that the prefix holds at most 155 bytes and the name at most 100.
  const body = full.endsWith("/") ? full.slice(0, -1) : full;
  for (let i = body.indexOf("/"); i >= 0; i = body.indexOf("/", i + 1)) {
    if (i > 155) break;
    const rest = full.slice(i + 1);
    if (rest.length <= 100 && rest.length > 0) return [full.slice(0, i), rest];
  }
  return undefined;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0 || c > 0x7e) return false;
  }
  return true;
}

function truncateBytes(s: string, max: number): string {
  const b = Buffer.from(s);
  if (b.length <= max) return s;
  // Whole characters only; the PAX record holds the real value.
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end).toString();
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

interface UstarFields {
  name: string;
  prefix: string;
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
}

function ustar(f: UstarFields): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(f.name, 0, 100, "utf8");
  octal(b, 100, 8, f.mode);
  numeric(b, 108, 8, f.uid);
  numeric(b, 116, 8, f.gid);
  octal(b, 124, 12, f.size);
  octal(b, 136, 12, f.mtime);
  b.write(f.typeflag, 156, 1, "latin1");
  if (f.linkname) b.write(f.linkname, 157, 100, "utf8");
  b.write("ustar\0", 257, 6, "latin1");
  b.write("00", 263, 2, "latin1");
  // uname and gname (265, 297) stay empty: numeric ids only, as Docker writes layers.
  octal(b, 329, 8, Math.min(f.devmajor, MAX_OCTAL_7));
  octal(b, 337, 8, Math.min(f.devminor, MAX_OCTAL_7));
  if (f.prefix) b.write(f.prefix, 345, 155, "utf8");
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  b.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  return b;
}

/** Octal if it fits, else base-256 (GNU): 0x80, then the value big-endian. */
function numeric(buf: Buffer, off: number, len: number, value: number): void {
  if (value <= MAX_OCTAL_7) return octal(buf, off, len, value);
  buf[off] = 0x80;
  let v = BigInt(Math.trunc(value));
  for (let i = off + len - 1; i > off; i--) {
    buf[i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

function octal(buf: Buffer, off: number, len: number, value: number): void {
  buf.write(
    Math.trunc(value)
      .toString(8)
      .padStart(len - 1, "0") + "\0",
    off,
    len,
    "latin1",
  );
}
