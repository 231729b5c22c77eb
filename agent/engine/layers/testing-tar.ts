/**
 * Test helper: writes layer tars in memory, including odd and hostile ones
 * (binary PAX xattrs, device nodes, escaping names). A tiny independent ustar
 * + PAX writer, so the extractor is not only tested against its own library.
 * Not used by the engine itself.
 */

export type TarType = "file" | "link" | "symlink" | "character-device" | "block-device" | "directory" | "fifo" | "contiguous-file" | "gnu-sparse";

export interface TarEntry {
  name: string;
  type?: TarType;
  data?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** SCHILY.xattr.<name> PAX records, values as raw bytes. */
  xattrs?: Record<string, string | Buffer>;
}

const TYPEFLAG: Record<TarType, string> = {
  file: "0",
  link: "1",
  symlink: "2",
  "character-device": "3",
  "block-device": "4",
  directory: "5",
  fifo: "6",
  "contiguous-file": "7",
  "gnu-sparse": "S",
};

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len)), body]);
}

function octal(buf: Buffer, off: number, len: number, value: number): void {
  buf.write(value.toString(8).padStart(len - 1, "0") + "\0", off, len, "latin1");
}

function header(fields: {
  name: string;
  typeflag: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
}): Buffer {
  const b = Buffer.alloc(512);
  b.write(fields.name, 0, 100, "utf8");
  octal(b, 100, 8, fields.mode);
  octal(b, 108, 8, fields.uid);
  octal(b, 116, 8, fields.gid);
  octal(b, 124, 12, fields.size);
  octal(b, 136, 12, Math.floor(fields.mtime.getTime() / 1000));
  b.write(fields.typeflag, 156, 1, "latin1");
  if (fields.linkname) b.write(fields.linkname, 157, 100, "utf8");
  b.write("ustar\0", 257, 6, "latin1");
  b.write("00", 263, 2, "latin1");
  b.write("root", 265, 32, "latin1");
  b.write("root", 297, 32, "latin1");
  octal(b, 329, 8, fields.devmajor ?? 0);
  octal(b, 337, 8, fields.devminor ?? 0);
  b.fill(" ", 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
  return b;
}

function padded(data: Buffer): Buffer[] {
  const r = data.length % 512;
  return r ? [data, Buffer.alloc(512 - r)] : [data];
}

/** The whole tar, ending with the end-of-archive marker unless `noEnd`. */
export function makeTar(entries: TarEntry[], opts?: { noEnd?: boolean }): Buffer {
  const out: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? "file";
    const data = e.data === undefined ? Buffer.alloc(0) : Buffer.from(e.data);
    const records: Buffer[] = [];
    let name = e.name;
    let linkname = e.linkname;
    if (Buffer.byteLength(name) > 100) {
      records.push(paxRecord("path", Buffer.from(name)));
      name = name.slice(0, 99);
    }
    if (linkname && Buffer.byteLength(linkname) > 100) {
      records.push(paxRecord("linkpath", Buffer.from(linkname)));
      linkname = linkname.slice(0, 99);
    }
    for (const [k, v] of Object.entries(e.xattrs ?? {})) records.push(paxRecord(`SCHILY.xattr.${k}`, Buffer.from(v)));
    const mtime = e.mtime ?? new Date(1_600_000_000_000);
    if (records.length) {
      const pax = Buffer.concat(records);
      out.push(header({ name: "PaxHeaders/x", typeflag: "x", size: pax.length, mode: 0o644, uid: 0, gid: 0, mtime }), ...padded(pax));
    }
    const mode = e.mode ?? (type === "directory" ? 0o755 : 0o644);
    out.push(
      header({
        name,
        typeflag: TYPEFLAG[type],
        size: data.length,
        mode,
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        mtime,
        linkname,
        devmajor: e.devmajor,
        devminor: e.devminor,
      }),
      ...padded(data),
    );
  }
  if (!opts?.noEnd) out.push(Buffer.alloc(1024));
  return Buffer.concat(out);
}

export interface EvilCase {
  title: string;
  entries: TarEntry[];
  /** What the error message must say (it must also name the entry). */
  message: RegExp;
}

/**
 * Tars that try to write outside the layer or create device nodes.
 * `outside` is an absolute directory outside the layer that must stay untouched.
 */
export function evilCases(outside: string): EvilCase[] {
  return [
    { title: "../evil", entries: [{ name: "../evil", data: "x" }], message: /escapes the layer root: \.\.\/evil/ },
    {
      title: "a/../../evil",
      entries: [
        { name: "a/", type: "directory" },
        { name: "a/../../evil", data: "x" },
      ],
      message: /escapes the layer root: a\/\.\.\/\.\.\/evil/,
    },
    { title: "/../evil", entries: [{ name: "/../evil", data: "x" }], message: /escapes the layer root: \/\.\.\/evil/ },
    {
      title: "file through a symlink to an outside directory",
      entries: [
        { name: "lnk", type: "symlink", linkname: outside },
        { name: "lnk/evil", data: "x" },
      ],
      message: /lnk\/evil.*through a symlink/,
    },
    {
      title: "directory through a symlink to an outside directory",
      entries: [
        { name: "lnk", type: "symlink", linkname: outside },
        { name: "lnk/sub/", type: "directory" },
      ],
      message: /lnk\/sub.*through a symlink/,
    },
    {
      title: "file through a symlink to ..",
      entries: [
        { name: "up", type: "symlink", linkname: ".." },
        { name: "up/evil", data: "x" },
      ],
      message: /up\/evil.*through a symlink/,
    },
    {
      title: "deep file through a relative symlink chain",
      entries: [
        { name: "d/", type: "directory" },
        { name: "d/up", type: "symlink", linkname: "../.." },
        { name: "d/up/evil", data: "x" },
      ],
      message: /d\/up\/evil.*through a symlink/,
    },
    {
      title: "whiteout through a symlink",
      entries: [
        { name: "lnk", type: "symlink", linkname: outside },
        { name: "lnk/.wh.sentinel", data: "" },
      ],
      message: /lnk\/\.wh\.sentinel.*through a symlink/,
    },
    {
      title: "opaque marker through a symlink",
      entries: [
        { name: "lnk", type: "symlink", linkname: outside },
        { name: "lnk/.wh..wh..opq", data: "" },
      ],
      message: /lnk\/\.wh\.\.wh\.\.opq.*through a symlink/,
    },
    {
      title: "hardlink through a symlink",
      entries: [
        { name: "f", data: "x" },
        { name: "lnk", type: "symlink", linkname: outside },
        { name: "lnk/hl", type: "link", linkname: "f" },
      ],
      message: /lnk\/hl.*through a symlink/,
    },
    {
      title: "hardlink to ../../etc/passwd",
      entries: [{ name: "hl", type: "link", linkname: "../../etc/passwd" }],
      message: /hl: hardlink target \.\.\/\.\.\/etc\/passwd escapes the layer root/,
    },
    {
      title: "hardlink to /etc/passwd",
      entries: [{ name: "hl", type: "link", linkname: "/etc/passwd" }],
      message: /hl: hardlink target \/etc\/passwd does not exist in the layer/,
    },
    {
      title: "hardlink to a file reached through a symlink",
      entries: [
        { name: "etc", type: "symlink", linkname: "/etc" },
        { name: "hl", type: "link", linkname: "etc/passwd" },
      ],
      message: /hl: hardlink target etc\/passwd is reached through a symlink/,
    },
    {
      title: "hardlink target outside through a symlink",
      entries: [
        { name: "lnk", type: "symlink", linkname: outside },
        { name: "hl", type: "link", linkname: "lnk/sentinel" },
      ],
      message: /hl: hardlink target lnk\/sentinel is reached through a symlink/,
    },
    { title: "block device sda", entries: [{ name: "sda", type: "block-device", devmajor: 8, devminor: 0 }], message: /sda is a block device/ },
    {
      title: "char device null 1/3",
      entries: [{ name: "dev/null", type: "character-device", devmajor: 1, devminor: 3 }],
      message: /dev\/null is a character device \(1\/3\)/,
    },
    { title: "GNU sparse file", entries: [{ name: "sparse", type: "gnu-sparse", data: "x" }], message: /sparse has an unsupported type/ },
  ];
}
