/**
 * `docker cp`: GET, HEAD and PUT /containers/{id}/archive, on a running or a stopped
 * container (engine.files resolves paths without ever leaving the container's root).
 */
import type { ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import type { Engine } from "../engine/engine.ts";
import type { PathStat } from "../engine/containers/filesystem.ts";
import { boolParam, sendNoContent, type Router } from "./router.ts";

export function addArchiveRoutes(router: Router, engine: Engine): void {
  router.head("/containers/{id}/archive", async ({ res, params, query }) => {
    const stat = await engine.files.statPath(params.id!, query.get("path") ?? "");
    res.writeHead(200, { "X-Docker-Container-Path-Stat": statHeader(stat), "Content-Type": "application/json" });
    res.end();
  });

  router.get("/containers/{id}/archive", async ({ res, params, query }) => {
    await engine.files.archivePath(params.id!, query.get("path") ?? "", async (stat, tar) => {
      res.writeHead(200, { "Content-Type": "application/x-tar", "X-Docker-Container-Path-Stat": statHeader(stat) });
      await sendTar(res, tar);
    });
  });

  router.put("/containers/{id}/archive", async ({ req, res, params, query }) => {
    await engine.files.extractToDir(params.id!, query.get("path") ?? "", req, {
      noOverwriteDirNonDir: boolParam(query, "noOverwriteDirNonDir"),
      copyUIDGID: boolParam(query, "copyUIDGID"),
    });
    sendNoContent(res, 200);
  });
}

/** Docker's X-Docker-Container-Path-Stat: the stat as base64 JSON. */
export function statHeader(stat: PathStat): string {
  return Buffer.from(JSON.stringify(stat)).toString("base64");
}

async function sendTar(res: ServerResponse, tar: import("node:stream").Readable): Promise<void> {
  try {
    await pipeline(tar, res);
  } catch (e) {
    // Half a tar was sent: cutting the connection is how the client learns it is incomplete.
    res.destroy(e as Error);
  }
}
