// The node's Docker Engine API socket is root-only: whoever can write to it can start a
// container binding `/`, so it is root on the node. The agent makes it srw-rw---- root
// root, and an unprivileged user is refused at connect.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { chmod, stat } from "node:fs/promises";
import { dirname } from "node:path";
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

test("--docker-socket-group lets that group's members use the socket; an unknown group stops the agent with its name", async () => {
  const grouped = await startAgent({ extraArgs: ["--docker-socket-group", "nogroup"] });
  try {
    const st = await stat(grouped.socket);
    assert.equal(st.mode & 0o777, 0o660);
    assert.equal(st.uid, 0);
    assert.equal(st.gid, 65534);
    await chmod(dirname(grouped.socket), 0o711);
    const probe = `require("http").get({ socketPath: ${JSON.stringify(grouped.socket)}, path: "/_ping" }, (r) => { console.log(r.statusCode); r.resume(); }).on("error", (e) => { console.log(e.code); });`;
    const member = await run("setpriv", ["--reuid=65534", "--regid=65534", "--groups=65534", process.execPath, "-e", probe]);
    assert.equal(member.stdout.trim(), "200");
    const outsider = await run("setpriv", ["--reuid=65534", "--regid=65533", "--clear-groups", process.execPath, "-e", probe]);
    assert.equal(outsider.stdout.trim(), "EACCES");
  } finally {
    await grouped.destroy();
  }
  await assert.rejects(startAgent({ extraArgs: ["--docker-socket-group", "no-such-group-here"] }), /there is no group "no-such-group-here" in \/etc\/group/);
});
