/**
 * For tests of the installer: a console the installed agents enroll into (HTTP server
 * with /api/health, socket.io, the real AgentHub on a real NodeRegistry), and the agent
 * started as its systemd unit says, for hosts where systemd is not PID 1.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import pino from "pino";
import { Server } from "socket.io";
import { LINK_MAX_MESSAGE_BYTES } from "../../agent/link/contract.ts";
import { AgentHub } from "../hub/agent-hub.ts";
import type { NodeRegistry } from "../hub/node-registry.ts";
import { serviceCommand } from "./unit.ts";

export interface TestConsole {
  url: string;
  hub: AgentHub;
  close(): Promise<void>;
}

/**
 * @param routes answers other HTTP requests (return true when handled); /api/health answers
 *   200 JSON like the real console's.
 */
export async function startTestConsole(registry: NodeRegistry, routes?: (req: IncomingMessage, res: ServerResponse) => boolean | Promise<boolean>): Promise<TestConsole> {
  const http = createServer((req, res) => {
    void (async () => {
      if (req.url === "/api/health") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ ok: true }));
        return;
      }
      if (routes && (await routes(req, res))) return;
      res.writeHead(404).end();
    })().catch(() => res.writeHead(500).end());
  });
  const io = new Server(http, { pingInterval: 2_000, pingTimeout: 3_000, maxHttpBufferSize: LINK_MAX_MESSAGE_BYTES });
  const hub = new AgentHub({ io, registry, logger: pino({ level: process.env.BERTH_TEST_LOG ?? "silent" }), inventorySaveIntervalMs: 200 });
  await new Promise<void>((resolve, reject) => {
    http.once("error", reject);
    http.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (http.address() as { port: number }).port;
  let closed = false;
  return {
    url: `http://127.0.0.1:${port}`,
    hub,
    close: async () => {
      if (closed) return;
      closed = true;
      await hub.close();
      await io.close();
    },
  };
}

export interface UnitProcess {
  child: ChildProcess;
  /** The command that was started (the unit's ExecStart). */
  argv: string[];
  logs(): string;
  /** SIGTERM to the main process only, as systemd does with KillMode=process; waits for it to exit. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

/** Starts the service the way systemd would: the unit's ExecStart with its Environment=. */
export async function startFromUnit(unitPath: string): Promise<UnitProcess> {
  const { argv, env } = serviceCommand(await readFile(unitPath, "utf8"));
  const [program, ...args] = argv;
  if (!program) throw new Error(`${unitPath}: empty ExecStart`);
  // systemd gives a service a minimal environment, not the test runner's.
  const serviceEnv = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ...env } as unknown as NodeJS.ProcessEnv;
  const child = spawn(program, args, { env: serviceEnv, stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  child.once("exit", () => live.delete(child));
  let output = "";
  const keep = (d: Buffer) => {
    output += d.toString();
    if (output.length > 1 << 20) output = output.slice(-(1 << 19));
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  return {
    child,
    argv,
    logs: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      });
    },
  };
}
