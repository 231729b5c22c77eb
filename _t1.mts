import * as tarStream from "tar-stream";
import { pipeline } from "node:stream/promises";
import { PassThrough, Readable } from "node:stream";
const p = tarStream.pack();
p.entry({ name: "a.txt" }, "hello");
p.entry({ name: "d", type: "directory" });
p.entry({ name: "b.txt" }, "world!!");
p.finalize();
const chunks: Buffer[] = [];
for await (const c of p) chunks.push(c);
const buf = Buffer.concat(chunks);
console.log(buf.length);
for (const cut of [buf.length, 1024, 700]) {
  const ex = tarStream.extract();
  const feed = pipeline(Readable.from([buf.subarray(0, cut)]), new PassThrough(), ex);
  feed.catch(e => console.log("feed err", e.message));
  try {
    for await (const e of ex) { let n = 0; for await (const c of e) n += c.length; console.log(e.header.name, e.header.type, n); for await (const c of e) n+=1; }
    await feed; console.log("done", cut);
  } catch (e: any) { console.log("iter err", cut, e.message); }
}
