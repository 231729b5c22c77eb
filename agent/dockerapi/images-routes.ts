import type { Engine } from "../engine/engine.ts";
import { invalidArgument } from "../engine/errors.ts";
import { configuredRegistryDomains, searchRegistries } from "../engine/images/search.ts";
import { familiarString, parseNormalizedReference } from "../../shared/reference.ts";
import { JsonMessageStream } from "./json-stream.ts";
import { credentialsFromHeader } from "./registry-auth.ts";
import { boolParam, clientGone, parseFilters, sendJson, type Router } from "./router.ts";

/** The /images endpoints of the Docker Engine API, translated into engine calls. */
export function addImageRoutes(router: Router, engine: Engine): void {
  const { images } = engine;

  router.get("/images/json", async ({ res, query }) => {
    const f = parseFilters(query);
    const dangling = f.get("dangling")?.[0];
    if (dangling !== undefined && !["true", "false", "1", "0"].includes(dangling)) throw invalidArgument(`Invalid filter 'dangling=${dangling}'`);
    for (const key of f.keys()) {
      if (!["dangling", "reference", "since", "before", "label", "until"].includes(key)) throw invalidArgument(`invalid filter '${key}'`);
    }
    const list = await images.list({
      dangling: dangling === undefined ? undefined : dangling === "true" || dangling === "1",
      reference: f.get("reference"),
      since: f.get("since")?.[0],
      before: f.get("before")?.[0],
      label: f.get("label"),
      until: f.get("until")?.[0],
      all: boolParam(query, "all"),
    });
    sendJson(res, 200, list.map(imageSummaryJson));
  });

  router.post("/images/create", async (ctx) => {
    const { req, res, query } = ctx;
    const fromImage = query.get("fromImage");
    const fromSrc = query.get("fromSrc");
    const tag = query.get("tag") ?? "";
    if (fromSrc !== null) {
      if (fromSrc !== "-") throw invalidArgument("importing from a URL is not supported; pipe the tarball to stdin (docker import - or FILE)");
      const repo = query.get("repo") ?? "";
      const reference = repo ? (tag ? `${repo}:${tag}` : repo) : undefined;
      const stream = new JsonMessageStream(res);
      try {
        const id = await images.importRootfs(req, {
          reference,
          message: query.get("message") ?? undefined,
          changes: query.getAll("changes"),
          signal: clientGone(ctx),
        });
        stream.write({ status: id });
        stream.end();
      } catch (e) {
        if (!stream.hasStarted) throw e;
        stream.fail(e);
      }
      return;
    }
    if (!fromImage) throw invalidArgument("fromImage or fromSrc is required");
    const name = tag ? (tag.startsWith("sha256:") ? `${fromImage}@${tag}` : `${fromImage}:${tag}`) : fromImage;
    parseNormalizedReference(name); // a malformed reference is a 400 before any stream starts
    const stream = new JsonMessageStream(res);
    try {
      const result = await engine.puller.pull(name, {
        credentials: credentialsFromHeader(req),
        onProgress: (e) => stream.progress(e),
        signal: clientGone(ctx),
      });
      stream.write({ status: `Digest: ${result.digest}` });
      const shown = familiarString(result.reference);
      stream.write({ status: result.upToDate ? `Status: Image is up to date for ${shown}` : `Status: Downloaded newer image for ${shown}` });
      stream.end();
    } catch (e) {
      if (!stream.hasStarted) throw e;
      stream.fail(e);
    }
  });

  router.get("/images/search", async ({ req, res, query }) => {
    const term = query.get("term") ?? "";
    const limit = Number(query.get("limit") || 25);
    const creds = credentialsFromHeader(req);
    const found = await searchRegistries(
      engine.registry,
      configuredRegistryDomains(engine.config.insecureRegistries, engine.config.registryMirrors),
      term,
      () => creds,
      limit,
    );
    sendJson(
      res,
      200,
      found.map((r) => ({ name: r.name, description: r.description, star_count: r.starCount, is_official: r.isOfficial, is_automated: r.isAutomated })),
    );
  });

  router.post("/images/prune", async ({ res, query }) => {
    const f = parseFilters(query);
    const dangling = f.get("dangling")?.[0];
    const result = await images.prune({ all: dangling === "false" || dangling === "0", until: f.get("until")?.[0], label: f.get("label") });
    sendJson(res, 200, { ImagesDeleted: result.deleted.length ? result.deleted : null, SpaceReclaimed: result.spaceReclaimed });
  });

  router.get("/images/get", async ({ res, query }) => {
    const names = query.getAll("names");
    for (const n of names) images.resolve(n); // fail with 404 before the tar starts
    res.writeHead(200, { "Content-Type": "application/x-tar" });
    try {
      await images.save(names, res);
    } catch (e) {
      // Half a tar was sent: cutting the connection is how the client learns it is incomplete.
      res.destroy(e as Error);
    }
  });

  router.post("/images/load", async (ctx) => {
    const { req, res, query } = ctx;
    const quiet = boolParam(query, "quiet");
    const result = await images.load(req, clientGone(ctx));
    const stream = new JsonMessageStream(res);
    for (const m of result.messages) stream.write({ stream: m + "\n" });
    void quiet;
    stream.end();
  });

  router.get("/images/{name*}/json", async ({ res, params }) => {
    sendJson(res, 200, await imageInspectJson(engine, params.name!));
  });

  router.get("/images/{name*}/history", async ({ res, params }) => {
    const items = await images.history(params.name!);
    sendJson(
      res,
      200,
      items.map((h) => ({ Id: h.id, Created: h.created, CreatedBy: h.createdBy, Tags: h.tags.length ? h.tags : null, Size: h.size, Comment: h.comment })),
    );
  });

  router.get("/images/{name*}/get", async ({ res, params }) => {
    images.resolve(params.name!);
    res.writeHead(200, { "Content-Type": "application/x-tar" });
    try {
      await images.save([params.name!], res);
    } catch (e) {
      res.destroy(e as Error);
    }
  });

  router.post("/images/{name*}/tag", async ({ res, params, query }) => {
    const repo = query.get("repo");
    if (!repo) throw invalidArgument("repository name must have at least one component");
    const tag = query.get("tag");
    await images.tag(params.name!, tag ? `${repo}:${tag}` : repo);
    res.writeHead(201);
    res.end();
  });

  router.post("/images/{name*}/push", async (ctx) => {
    const { req, res, params, query } = ctx;
    const name = params.name!;
    parseNormalizedReference(name);
    const stream = new JsonMessageStream(res);
    try {
      const pushed = await engine.pusher.push(name, query.get("tag") ?? undefined, {
        credentials: credentialsFromHeader(req),
        onProgress: (e) => stream.progress(e),
        signal: clientGone(ctx),
      });
      for (const p of pushed) stream.write({ progressDetail: {}, aux: { Tag: p.tag, Digest: p.digest, Size: p.size } });
      stream.end();
    } catch (e) {
      if (!stream.hasStarted) throw e;
      stream.fail(e);
    }
  });

  router.delete("/images/{name*}", async ({ res, params, query }) => {
    const records = await images.remove(params.name!, { force: boolParam(query, "force"), noPrune: boolParam(query, "noprune") });
    sendJson(res, 200, records);
  });
}

export function imageSummaryJson(s: Awaited<ReturnType<Engine["images"]["list"]>>[number]) {
  return {
    Id: s.id,
    ParentId: s.parentId,
    RepoTags: s.repoTags,
    RepoDigests: s.repoDigests,
    Created: s.created,
    Size: s.size,
    SharedSize: s.sharedSize,
    VirtualSize: s.size,
    Labels: s.labels,
    Containers: s.containers,
  };
}

async function imageInspectJson(engine: Engine, name: string) {
  const d = await engine.images.details(name);
  const c = d.config;
  return {
    Id: d.record.id,
    RepoTags: d.repoTags,
    RepoDigests: d.repoDigests,
    Parent: d.record.parent ?? "",
    Comment: c.comment ?? "",
    Created: c.created ?? d.record.created,
    DockerVersion: c.docker_version ?? "",
    Author: c.author ?? "",
    Config: c.config ?? null,
    Architecture: c.architecture ?? "",
    Variant: c.variant,
    Os: c.os ?? "",
    Size: d.size,
    VirtualSize: d.size,
    GraphDriver: {
      Name: "overlay2",
      Data: null,
    },
    RootFS: { Type: "layers", Layers: c.rootfs.diff_ids },
    Metadata: { LastTagTime: d.record.lastTagTime ?? "0001-01-01T00:00:00Z" },
  };
}
