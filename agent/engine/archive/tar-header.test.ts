import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import * as tarStream from "tar-stream";
import { encodeHeader, END_OF_ARCHIVE, padding, type TarHeader } from "./tar-header.ts";

test("encodeHeader: ustar when it fits, PAX for long or non-ASCII names, big ids and binary xattrs", async () => {
  const long = `${"d".repeat(120)}/${"e".repeat(120)}/file`; // needs PAX: no split fits
  const split = `${"p".repeat(120)}/name`; // fits ustar's prefix + name
  const cap = Buffer.from("0100000280000000000000000000000000000000", "hex");
  const base = { mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1_600_000_000 };
  const headers: TarHeader[] = [
    { ...base, name: "dir/", type: "directory", mode: 0o755 },
    { ...base, name: split, type: "file", size: 3 },
    { ...base, name: long, type: "file", mode: 0o4755, uid: 3_000_000, gid: 5, xattrs: [["security.capability", cap]] },
    { ...base, name: "données/été", type: "symlink", linkname: "ça" },
  ];
  const tar = Buffer.concat([
    encodeHeader(headers[0]!),
    encodeHeader(headers[1]!),
    Buffer.from("abc"),
    padding(3),
    encodeHeader(headers[2]!),
    encodeHeader(headers[3]!),
    END_OF_ARCHIVE,
  ]);
  assert.equal(tar.length % 512, 0);

  const ex = tarStream.extract();
  const seen: tarStream.Header[] = [];
  const done = (async () => {
    for await (const e of ex) {
      seen.push(e.header);
      e.resume();
    }
  })();
  ex.end(tar);
  await done;
  assert.deepEqual(
    seen.map((h) => [h.name, h.type, h.mode, h.uid, h.linkname ?? null]),
    [
      ["dir/", "directory", 0o755, 0, null],
      [split, "file", 0o644, 0, null],
      [long, "file", 0o4755, 3_000_000, null],
      ["données/été", "symlink", 0o644, 0, "ça"],
    ],
  );
  assert.equal(seen[1]!.uname, "");
  // GNU tar reads it too, binary xattr included.
  const listing = execFileSync("tar", ["--xattrs", "--xattrs-include=*", "-tvf", "-"], { input: tar }).toString();
  assert.match(listing, /données\/été -> ça/);
  assert.match(listing, new RegExp(`${"e".repeat(120)}/file`));
});
