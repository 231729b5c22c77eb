import { createServer, type Server } from "node:http";
import { chmod, chown, mkdir, readFile, rm } from "node:fs/promises";
import { dirname } from "node:path";
import type { Logger } from "pino";
import type { Engine } from "../engine/engine.ts";
import { addArchiveRoutes } from "./archive-routes.ts";
import { addBuildRoutes } from "./build-routes.ts";
import { addContainerUpdateRoutes } from "./container-update-routes.ts";
import { addContainerRoutes } from "./containers-routes.ts";
import { addImageRoutes } from "./images-routes.ts";
import { addVolumeNetworkRoutes } from "./volumes-networks-routes.ts";
import { Router } from "./router.ts";
import { addSwarmRoutes } from "./swarm-routes.ts";
import { addSystemRoutes } from "./system-routes.ts";
import { API_VERSION } from "../version.ts";
import { isEngineError } from "../engine/errors.ts";

/**
 * The Docker Engine API door: an HTTP server on a unix socket that translates
 * requests into engine calls. It owns the socket file and removes it on close.
 */
/**
 * The gid of `group` (a name from /etc/group, or a number).
 * @throws Error naming the group when it does not exist.
 */
export async function groupId(group: string): Promise<number> {
  if (/^\d+$/.test(group)) return Number(group);
  const line = (await readFile("/etc/group", "utf8")).split("\n").find((l) => l.split(":")[0] === group);
  const gid = line?.split(":")[2];
  if (gid === undefined || !/^\d+$/.test(gid))
    throw new Error(`docker-socket-group: there is no group ${JSON.stringify(group)} in /etc/group (create it with groupadd)`);
  return Number(gid);
}

export async function serveDockerApi(
  engine: Engine,
  socketPath: string,
  logger: Logger,
  opts: { group?: string } = {},
): Promise<{ server: Server; close(): Promise<void> }> {
  // Resolved before listening: a wrong group name must not leave a socket behind.
  const gid = opts.group === undefined ? undefined : await groupId(opts.group);
  const router = new Router();
  addSystemRoutes(router, engine);
  addImageRoutes(router, engine);
  addContainerRoutes(router, engine);
  addArchiveRoutes(router, engine);
  addContainerUpdateRoutes(router, engine);
  addVolumeNetworkRoutes(router, engine);
  addSwarmRoutes(router);
  addBuildRoutes(router, engine);

  // A client may hang up at any moment (Ctrl-C, a killed process, a library dropping its
  // streams at exit): its request's work ends then, and the error stops here.
  const clientError = (what: string, req: { method?: string; url?: string }) => (err: Error) => {
    if (isClientGone(err)) logger.debug({ err, method: req.method, url: req.url }, `docker api ${what}: the client left`);
    else logger.warn({ err, method: req.method, url: req.url }, `docker api ${what} failed mid-stream`);
  };
  const server = createServer((req, res) => {
    const started = Date.now();
    req.on("error", clientError("request", req));
    res.on("error", clientError("response", req));
    res.once("finish", () => logger.debug({ method: req.method, url: req.url, status: res.statusCode, ms: Date.now() - started }, "docker api"));
    router.dispatch(req, res, API_VERSION).catch((e: unknown) => {
      logger.error({ err: e }, "docker api handler crashed");
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  // A connection's own failures: a malformed request, a reset, a response cut off on purpose
  // (a save or export that broke midway destroys it with its reason).
  server.on("clientError", (err: Error, socket: import("node:stream").Duplex) => {
    const parseError = ((err as NodeJS.ErrnoException).code ?? "").startsWith("HPE_");
    if (parseError) logger.debug({ err }, "docker api: malformed request");
    else clientError("connection", {})(err);
    // As Node's default: a request that cannot be parsed is answered 400 before the close.
    if (parseError && socket.writable)
      (socket as import("node:net").Socket).end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n", () => socket.destroy());
    else socket.destroy();
  });
  // docker attach / exec start ask to take over the connection (Upgrade: tcp).
  server.on("upgrade", (req, socket, head) => {
    // The HTTP server let go of the socket: its errors (EPIPE, ECONNRESET) are ours now.
    socket.on("error", (err: Error) => {
      clientError("upgraded connection", req)(err);
      socket.destroy();
    });
    req.on("error", clientError("request", req));
    router.dispatchUpgrade(req, socket, head, API_VERSION).catch((e: unknown) => {
      logger.error({ err: e }, "docker api upgrade handler crashed");
      socket.destroy();
    });
  });
  server.keepAliveTimeout = 0;
  server.requestTimeout = 0;
  server.headersTimeout = 0;

  await mkdir(dirname(socketPath), { recursive: true });
  await rm(socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, () => resolve());
  });
  // Root only unless a group is named: the socket is as good as root on this host.
  if (gid !== undefined) await chown(socketPath, 0, gid);
  await chmod(socketPath, 0o660);
  logger.info({ socket: socketPath }, "serving the Docker Engine API");
  return {
    server,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await rm(socketPath, { force: true });
    },
  };
}

/** Errors that only say the client went away (hung up, reset, stopped reading). */
function isClientGone(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return (
    ["ECONNRESET", "EPIPE", "ECONNABORTED", "ERR_STREAM_PREMATURE_CLOSE", "ERR_STREAM_DESTROYED"].includes(code ?? "") ||
    isEngineError(err, "Canceled") ||
    err.message === "aborted"
  );
}
