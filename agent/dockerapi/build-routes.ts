import type { Engine } from "../engine/engine.ts";
import { invalidArgument, notImplemented, toEngineError } from "../engine/errors.ts";
import { JsonMessageStream } from "./json-stream.ts";
import { boolParam, sendJson, type Router } from "./router.ts";
import { BuildArgsSchema, BuildCacheFromSchema, BuildLabelsSchema, parseDockerBody } from "./schemas.ts";
import type { z } from "zod";

/**
 * `POST /build`: the classic builder's API (what docker CLI 28 uses without
 * buildx). The body is the context tar; the answer is Docker's JSON stream of
 * `{"stream": …}` lines. Errors found before the first step (bad options, a
 * Dockerfile that does not parse) are plain HTTP errors, as Docker's, so the CLI
 * prints `Error response from daemon: …`; later ones end the stream with an
 * `errorDetail` (with the exit code of a failed RUN, which the CLI exits with).
 * A client that hangs up cancels the build.
 */
export function addBuildRoutes(router: Router, engine: Engine): void {
  router.post("/build", async ({ req, res, query }) => {
    if (query.get("remote")) throw notImplemented("building from a remote context (Git or URL) is not supported: send the context as a tar");
    const version = query.get("version");
    if (version === "2") throw notImplemented("BuildKit (version=2) is not supported by this node: use the classic builder (DOCKER_BUILDKIT=0)");
    const quiet = boolParam(query, "q");
    const stream = new JsonMessageStream(res);
    const held: string[] = [];
    const abort = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) abort.abort(new Error("client went away"));
    });
    req.once("aborted", () => abort.abort(new Error("client went away")));
    try {
      const result = await engine.builder.build(
        {
          context: req,
          dockerfile: query.get("dockerfile") ?? undefined,
          tags: query.getAll("t").filter(Boolean),
          buildArgs: jsonParam(query, "buildargs", BuildArgsSchema, "build args", {}),
          target: query.get("target") || undefined,
          noCache: boolParam(query, "nocache"),
          pull: boolParam(query, "pull"),
          labels: jsonParam(query, "labels", BuildLabelsSchema, "labels", {}),
          networkMode: query.get("networkmode") || "bridge",
          extraHosts: (query.getAll("extrahosts") ?? [])
            .flatMap((h) => h.split(","))
            .map((h) => h.trim())
            .filter(Boolean),
          shmSize: numberParam(query, "shmsize"),
          rm: query.get("rm") === null ? true : boolParam(query, "rm"),
          forceRm: boolParam(query, "forcerm"),
          cacheFrom: jsonParam(query, "cachefrom", BuildCacheFromSchema, "cache from", []),
          platform: query.get("platform") || undefined,
          signal: abort.signal,
        },
        {
          stream: (text) => (quiet ? held.push(text) : stream.write({ stream: text })),
          progress: (e) => {
            if (!quiet) stream.progress(e);
          },
          aux: (id) => stream.write({ aux: { ID: id } }),
        },
      );
      if (quiet) stream.write({ stream: `${result.imageId}\n` });
      stream.end();
    } catch (e) {
      if (!stream.hasStarted) throw e;
      if (quiet && held.length) stream.write({ stream: held.join("") });
      const err = toEngineError(e);
      const code = (e as { exitCode?: number }).exitCode;
      stream.write({ errorDetail: { ...(code !== undefined ? { code } : {}), message: err.message }, error: err.message });
      stream.end();
    }
  });

  // `docker builder prune`: the classic builder's cache is its intermediate images, so pruning it
  // removes the dangling images stale or failed builds left (their untagged parents go with them).
  router.post("/build/prune", async ({ res }) => {
    const { deleted, spaceReclaimed } = await engine.images.prune({});
    const ids = deleted.flatMap((d) => ("Deleted" in d ? [d.Deleted] : []));
    sendJson(res, 200, { CachesDeleted: ids, SpaceReclaimed: spaceReclaimed });
  });

  // The CLI asks before a build whether the daemon could use a session (BuildKit); the classic builder needs none.
  router.post("/session", () => {
    throw notImplemented("sessions (BuildKit) are not supported by this node");
  });
}

/** A JSON query parameter, decoded as Docker does: "error reading <what>: <Go's json error>". */
function jsonParam<S extends z.ZodType>(q: URLSearchParams, name: string, schema: S, what: string, fallback: NonNullable<z.infer<S>>): NonNullable<z.infer<S>> {
  const raw = q.get(name);
  if (!raw || raw === "null") return fallback;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    throw invalidArgument(`error reading ${what}: ${(e as Error).message}`, e);
  }
  try {
    return parseDockerBody(schema, value);
  } catch (e) {
    throw invalidArgument(`error reading ${what}: ${(e as Error).message}`, e);
  }
}

function numberParam(q: URLSearchParams, name: string): number {
  const raw = q.get(name);
  if (!raw) return 0;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw invalidArgument(`invalid ${name} parameter: ${raw}`);
  return n;
}
