import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { Readable } from "node:stream";
import { test } from "node:test";
import { isEngineError } from "../errors.ts";
import { decompressStream, detectCompression } from "./decompress.ts";
import { makeTar } from "./testing-tar.ts";

async function collect(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

/** One byte per chunk at the start, so sniffing must span chunks. */
function trickle(buf: Buffer): Readable {
  const parts: Buffer[] = [...buf.subarray(0, 8)].map((b) => Buffer.from([b]));
  parts.push(buf.subarray(8));
  return Readable.from(
    parts.filter((p) => p.length),
    { objectMode: false },
  );
}

const tar = makeTar([{ name: "hello.txt", data: "hello ".repeat(1000) }]);

test("detectCompression", () => {
  assert.equal(detectCompression(gzipSync(tar)), "gzip");
  assert.equal(detectCompression(tar), "none");
  assert.equal(detectCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0])), "zstd");
  assert.equal(detectCompression(Buffer.from("BZh91AY")), "bzip2");
  assert.equal(detectCompression(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])), "xz");
  assert.equal(detectCompression(Buffer.alloc(0)), "none");
});

test("gzip is decompressed, plain tar passes through, even when the magic spans chunks", async () => {
  assert.deepEqual(await collect(decompressStream(trickle(gzipSync(tar)))), tar);
  assert.deepEqual(await collect(decompressStream(trickle(tar))), tar);
  // Multi-member gzip (concatenated), as some tools write.
  const half = tar.length / 2;
  const multi = Buffer.concat([gzipSync(tar.subarray(0, half)), gzipSync(tar.subarray(half))]);
  assert.deepEqual(await collect(decompressStream(trickle(multi))), tar);
  assert.deepEqual(await collect(decompressStream(Readable.from([], { objectMode: false }))), Buffer.alloc(0));
  assert.deepEqual(await collect(decompressStream(Readable.from([Buffer.from("abc")], { objectMode: false }))), Buffer.from("abc"));
});

test("zstd, bzip2 and xz are refused clearly", async () => {
  const cases: [string, Buffer][] = [
    ["bzip2", Buffer.from("BZh91AY&SY....")],
    ["xz", Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(20)])],
  ];
  if (!("createZstdDecompress" in (await import("node:zlib")))) cases.push(["zstd", Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(20)])]);
  for (const [kind, data] of cases) {
    const input = Readable.from([data], { objectMode: false });
    await assert.rejects(
      collect(decompressStream(input)),
      (e) => isEngineError(e, "InvalidArgument") && e.message.startsWith(`unsupported layer compression: ${kind}`),
      kind,
    );
    assert.ok(input.destroyed, `${kind}: input destroyed`);
  }
});

test("corrupt or truncated gzip is DataLoss; input errors pass through", async () => {
  const gz = gzipSync(tar);
  await assert.rejects(
    collect(decompressStream(trickle(gz.subarray(0, gz.length - 30)))),
    (e) => isEngineError(e, "DataLoss") && /corrupt gzip/.test(e.message),
  );
  const bad = Buffer.from(gz);
  bad.fill(0x55, 20, 60);
  await assert.rejects(collect(decompressStream(trickle(bad))), (e) => isEngineError(e, "DataLoss"));
  const failing = Readable.from(
    (async function* () {
      yield gz.subarray(0, 100);
      throw new Error("socket closed");
    })(),
    { objectMode: false },
  );
  await assert.rejects(collect(decompressStream(failing)), /socket closed/);
});

test("destroying the output destroys the input", async () => {
  const input = new Readable({ read() {} });
  input.push(gzipSync(Buffer.alloc(1024 * 1024)));
  const out = decompressStream(input);
  await new Promise((r) => out.once("data", r));
  out.destroy();
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(input.destroyed);
});
