// The console over HTTPS with its own certificate: the API answers on https, the browser
// socket on wss, and an agent pinning the certificate's fingerprint enrolls over wss.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { io as ioClient } from "socket.io-client";
import { startAgent, type AgentHandle } from "./helpers/agent.ts";
import { createUser, sessionCookie, startTestConsole, type TestConsole } from "./helpers/console.ts";
import { selfSignedCert } from "./helpers/files.ts";
import { until } from "./helpers/wait.ts";

/** GET over https trusting exactly `ca` (the console's self-signed certificate). */
function httpsGet(url: string, ca: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the console over HTTPS", () => {
  let dir: string;
  let cert: string;
  let c: TestConsole;
  let agent: AgentHandle | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "berth-console-tls-"));
    const pair = await selfSignedCert(dir);
    cert = pair.cert;
    c = await startTestConsole("console-tls", { tls: { cert, key: pair.key } });
  });

  after(async () => {
    await agent?.destroy();
    await c?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test("the API answers over https only to a signed-in caller", async () => {
    assert.match(c.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.equal((await httpsGet(`${c.url}/api/health`, cert)).status, 200);
    const admin = await createUser(c, "admin");
    const cookie = await sessionCookie(c, admin.id);
    const me = await httpsGet(`${c.url}/api/trpc/auth.me`, cert, { cookie });
    assert.match(me.body, new RegExp(admin.email));
    const anon = await httpsGet(`${c.url}/api/trpc/nodes.list?input=%7B%7D`, cert);
    assert.equal(anon.status, 401);
  });

  test("an agent pinning the certificate enrolls over wss, and a browser socket connects over wss", async () => {
    const fingerprint = new X509Certificate(cert).fingerprint256;
    const token = await c.services.nodeRegistry.createJoinToken({});
    agent = await startAgent({ consoleUrl: c.url, joinToken: token.token, consoleFingerprint: fingerprint });
    await until("the node online over TLS", () => c.services.hub.nodes().some((n) => n.online), 30_000, agent);
    const admin = await createUser(c, "admin");
    const socket = ioClient(`${c.url}/ui`, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      ca: cert,
      extraHeaders: { cookie: await sessionCookie(c, admin.id), origin: c.url },
    });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", () => resolve());
        socket.once("connect_error", reject);
      });
    } finally {
      socket.close();
    }
  });
});
