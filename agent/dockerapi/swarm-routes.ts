/**
 * Swarm and plugins, answered as a Docker Engine that is not in a swarm and has no plugins:
 * clients (compose, SDK test suites, Portainer) probe these and treat Docker's 503 as "no swarm",
 * while a 404 reads to them as a broken daemon.
 */
import type { Router } from "./router.ts";
import { sendJson } from "./router.ts";

/** Docker's texts (moby daemon/cluster errors.go). */
const NOT_A_MANAGER = 'This node is not a swarm manager. Use "docker swarm init" or "docker swarm join" to connect this node to swarm and try again.';
const NOT_IN_SWARM = "This node is not part of a swarm";

const MANAGER_PATHS = [
  "/swarm",
  "/swarm/unlockkey",
  "/services",
  "/services/{id}",
  "/services/{id}/logs",
  "/nodes",
  "/nodes/{id}",
  "/tasks",
  "/tasks/{id}",
  "/tasks/{id}/logs",
  "/secrets",
  "/secrets/{id}",
  "/configs",
  "/configs/{id}",
];

export function addSwarmRoutes(router: Router): void {
  const notManager = () => (ctx: Parameters<Parameters<Router["get"]>[1]>[0]) => sendJson(ctx.res, 503, { message: NOT_A_MANAGER });
  for (const path of MANAGER_PATHS) {
    router.get(path, notManager());
    router.delete(path, notManager());
    router.post(`${path}/update`, notManager());
  }
  for (const path of ["/swarm/init", "/swarm/join", "/swarm/unlock", "/services/create", "/secrets/create", "/configs/create"]) router.post(path, notManager());
  router.post("/swarm/leave", (ctx) => sendJson(ctx.res, 503, { message: NOT_IN_SWARM }));

  router.get("/plugins", (ctx) => sendJson(ctx.res, 200, []));
  router.get("/plugins/privileges", (ctx) => sendJson(ctx.res, 200, []));
  router.get("/plugins/{name*}/json", (ctx) => sendJson(ctx.res, 404, { message: `plugin "${ctx.params.name}" not found` }));
}
