// The node's Docker Engine API socket is root-only: whoever can write to it can start a
// container binding `/`, so it is root on the node. The agent makes it srw-rw---- root
// root, and an unprivileged user is refused at connect.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { stat } from "node:fs/promises";
import { promisify } from "node:util";
import { startAgent, type AgentHandle } from "./helpers/agent.ts";

const run = promisify(execFile);
let agent: AgentHandle;

before(async () => {
  agent = await startAgent();
});
after(async () => {
  await agent?.destroy();
});

test("the Docker API socket is srw-rw---- root:root and refuses an unprivileged user", async () => {
  const st = await stat(agent.socket);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o660);
  assert.equal(st.uid, 0);
  assert.equal(st.gid, 0);
  // The same request as root works; as nobody the connect is refused by the kernel.
  const probe = `require("http").get({ socketPath: ${JSON.stringify(agent.socket)}, path: "/_ping" }, (r) => { console.log(r.statusCode); r.resume(); }).on("error", (e) => { console.log(e.code); });`;
  assert.equal((await run(process.execPath, ["-e", probe])).stdout.trim(), "200");
  const asNobody = await run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, "-e", probe]);
  assert.equal(asNobody.stdout.trim(), "EACCES");
});
