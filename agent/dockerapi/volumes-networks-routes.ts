import { createHash } from "node:crypto";
import type { Engine } from "../engine/engine.ts";
import type { EngineEvent } from "../engine/system/events.ts";
import { invalidArgument } from "../engine/errors.ts";
import { parseUntil } from "../engine/images/image-service.ts";
import { boolParam, clientGone, parseFilters, readJsonBody, sendJson, sendNoContent, type Router } from "./router.ts";
import { NetworkConnectBodySchema, NetworkCreateBodySchema, NetworkDisconnectBodySchema, parseDockerBody, VolumeCreateBodySchema } from "./schemas.ts";

/** /volumes, /networks and /events of the Docker Engine API. */
export function addVolumeNetworkRoutes(router: Router, engine: Engine): void {
  const { volumes, network, containers } = engine;
  const inUse = (name: string) => containers.volumeUsers(name).length > 0;

  const volumeJson = (v: Awaited<ReturnType<typeof volumes.get>>) => ({
    Name: v.name,
    Driver: v.driver,
    Mountpoint: v.mountpoint,
    CreatedAt: v.createdAt,
    Labels: Object.keys(v.labels).length ? v.labels : null,
    Scope: v.scope,
    Options: Object.keys(v.options).length ? v.options : null,
  });

  router.get("/volumes", async ({ res, query }) => {
    const f = parseFilters(query);
    const dangling = f.get("dangling")?.[0];
    const list = await volumes.list(
      { dangling: dangling === undefined ? undefined : dangling === "true" || dangling === "1", name: f.get("name"), label: f.get("label") },
      inUse,
    );
    sendJson(res, 200, { Volumes: list.map(volumeJson), Warnings: null });
  });
  router.post("/volumes/create", async ({ req, res }) => {
    const body = parseDockerBody(VolumeCreateBodySchema, await readJsonBody(req));
    if (body.Driver && body.Driver !== "local") throw invalidArgument(`volume driver ${body.Driver} is not supported; only "local"`);
    sendJson(res, 201, volumeJson(await volumes.create({ name: body.Name || undefined, labels: body.Labels ?? {}, options: body.DriverOpts ?? {} })));
  });
  router.post("/volumes/prune", async ({ res, query }) => {
    const f = parseFilters(query);
    const all = f.get("all")?.[0];
    const r = await volumes.prune(inUse, { all: all === "true" || all === "1", label: f.get("label") });
    sendJson(res, 200, { VolumesDeleted: r.deleted.length ? r.deleted : null, SpaceReclaimed: r.spaceReclaimed });
  });
  router.get("/volumes/{name}", async ({ res, params }) => {
    sendJson(res, 200, volumeJson(await volumes.get(params.name!)));
  });
  router.delete("/volumes/{name}", async ({ res, params, query }) => {
    await volumes.remove(params.name!, { force: boolParam(query, "force") }, (n) => containers.volumeUsers(n));
    sendNoContent(res);
  });

  const networkJson = (n: Awaited<ReturnType<typeof network.inspect>>) => ({
    Name: n.name,
    Id: n.id,
    Created: n.created,
    Scope: "local",
    Driver: n.driver,
    EnableIPv6: !!n.subnet6,
    // As Docker 20.10: a gateway only when given, or when the subnet was picked too.
    IPAM: {
      Driver: "default",
      Options: n.name === "bridge" ? null : {},
      Config: n.subnet
        ? [
            { Subnet: n.subnet, ...(n.ipRange ? { IPRange: n.ipRange } : {}), ...(!n.userSubnet || n.userGateway ? { Gateway: n.gateway } : {}) },
            ...(n.subnet6 ? [{ Subnet: n.subnet6, Gateway: n.gateway6 }] : []),
          ]
        : [],
    },
    Internal: n.internal,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: "" },
    ConfigOnly: false,
    Containers: Object.fromEntries(
      Object.entries(n.containers).map(([id, e]) => [
        id,
        {
          Name: e.name,
          EndpointID: createHash("sha256").update(`${n.id}/${id}`).digest("hex"),
          MacAddress: e.macAddress,
          IPv4Address: `${e.ipAddress}/${e.prefixLen}`,
          IPv6Address: e.ipv6Address ? `${e.ipv6Address}/${e.ipv6PrefixLen}` : "",
        },
      ]),
    ),
    // Only what the user gave: compose compares them with its file and recreates a network whose
    // options differ. The default bridge shows Docker's own.
    Options: n.name === "bridge" && n.bridge ? defaultBridgeOptions(n.bridge) : n.options,
    Labels: n.labels,
  });

  router.get("/networks", async ({ res, query }) => {
    const f = parseFilters(query);
    let list = await network.list();
    const names = f.get("name");
    if (names) list = list.filter((n) => names.some((x) => n.name.includes(x)));
    const ids = f.get("id");
    if (ids) list = list.filter((n) => ids.some((x) => n.id.startsWith(x)));
    const drivers = f.get("driver");
    if (drivers) list = list.filter((n) => drivers.includes(n.driver));
    const labels = f.get("label");
    if (labels)
      list = list.filter((n) => labels.every((l) => (l.includes("=") ? n.labels[l.slice(0, l.indexOf("="))] === l.slice(l.indexOf("=") + 1) : l in n.labels)));
    const types = f.get("type");
    if (types) list = list.filter((n) => types.includes(["bridge", "host", "none"].includes(n.name) ? "builtin" : "custom"));
    sendJson(res, 200, list.map(networkJson));
  });
  router.post("/networks/create", async ({ req, res }) => {
    const body = parseDockerBody(NetworkCreateBodySchema, await readJsonBody(req));
    if (!body.Name) throw invalidArgument("network name is required");
    if (body.Driver && body.Driver !== "bridge") throw invalidArgument(`network driver ${body.Driver} is not supported; only "bridge"`);
    if (body.IPAM?.Driver && body.IPAM.Driver !== "default") throw invalidArgument(`IPAM driver ${body.IPAM.Driver} is not supported; only "default"`);
    const all = body.IPAM?.Config ?? [];
    const isV6 = (c: (typeof all)[number]) => !!(c.Subnet?.includes(":") || c.Gateway?.includes(":"));
    const configs = all.filter((c) => !isV6(c));
    const v6 = all.filter(isV6);
    if (v6.length > 0 && !body.EnableIPv6) throw invalidArgument("an IPv6 subnet needs IPv6 enabled on the network (--ipv6)");
    if (body.EnableIPv6 && v6.length === 0) throw invalidArgument("IPv6 networks need an IPv6 --subnet: Berth picks no IPv6 subnet by itself");
    if (v6.some((c) => c.Gateway || c.IPRange))
      throw invalidArgument("IPv6 --gateway and --ip-range are not supported by Berth: the gateway is the subnet's first address");
    if (configs.length > 1 || v6.length > 1) throw invalidArgument("bridge driver doesn't support multiple subnets");
    const cfg = configs[0];
    const n = await network.createNetwork({
      name: body.Name,
      subnet: cfg?.Subnet || undefined,
      gateway: cfg?.Gateway || undefined,
      ipRange: cfg?.IPRange || undefined,
      subnet6: v6[0]?.Subnet || undefined,
      internal: !!body.Internal,
      labels: body.Labels ?? {},
      options: body.Options ?? {},
    });
    sendJson(res, 201, { Id: n.id, Warning: "" });
  });
  router.post("/networks/prune", async ({ res }) => {
    const deleted = await network.prune();
    sendJson(res, 200, { NetworksDeleted: deleted.length ? deleted : null });
  });
  router.get("/networks/{id}", async ({ res, params }) => {
    sendJson(res, 200, networkJson(await network.inspect(params.id!)));
  });
  router.delete("/networks/{id}", async ({ res, params }) => {
    await network.removeNetwork(params.id!);
    sendNoContent(res);
  });
  router.post("/networks/{id}/connect", async ({ req, res, params }) => {
    const body = parseDockerBody(NetworkConnectBodySchema, await readJsonBody(req));
    const ep = body.EndpointConfig ?? {};
    if (ep.IPAMConfig?.IPv6Address) throw invalidArgument("IPv6 addresses are not supported by Berth (--ip6)");
    await containers.connect(body.Container ?? "", params.id!, {
      aliases: ep.Aliases ?? [],
      ipv4Address: ep.IPAMConfig?.IPv4Address || undefined,
      links: ep.Links ?? [],
      driverOpts: ep.DriverOpts ?? {},
    });
    sendNoContent(res, 200);
  });
  router.post("/networks/{id}/disconnect", async ({ req, res, params }) => {
    const body = parseDockerBody(NetworkDisconnectBodySchema, await readJsonBody(req));
    await containers.disconnect(body.Container ?? "", params.id!, !!body.Force);
    sendNoContent(res, 200);
  });

  router.get("/events", async (ctx) => {
    const { res, query } = ctx;
    const since = query.get("since") ? parseUntil(query.get("since")!) : undefined;
    const until = query.get("until") ? parseUntil(query.get("until")!) : undefined;
    const f = parseFilters(query);
    res.writeHead(200, { "Content-Type": "application/json" });
    res.flushHeaders();
    const send = (e: EngineEvent) => {
      if (!eventWanted(f, e)) return;
      const secs = Math.floor(e.time / 1000);
      if (since !== undefined && secs < since) return;
      if (!res.writableEnded) res.write(JSON.stringify(dockerEvent(e)) + "\n");
    };
    const unsubscribe = engine.events.subscribe(send);
    let timer: NodeJS.Timeout | undefined;
    const stop = () => {
      unsubscribe();
      clearTimeout(timer);
      res.end();
    };
    const gone = clientGone(ctx);
    if (gone.aborted) return stop();
    gone.addEventListener("abort", stop, { once: true });
    if (until !== undefined) timer = setTimeout(stop, Math.max(0, until * 1000 - Date.now()));
  });
}

/** Docker's `/events` message; the legacy status/id/from fields only for containers and images, as moby fills them. */
export function dockerEvent(e: EngineEvent): Record<string, unknown> {
  const legacy = e.type === "container" ? { status: e.action, id: e.id, from: e.attributes.image } : e.type === "image" ? { status: e.action, id: e.id } : {};
  return {
    ...legacy,
    Type: e.type,
    Action: e.action,
    Actor: { ID: e.id, Attributes: e.attributes },
    scope: "local",
    time: Math.floor(e.time / 1000),
    timeNano: e.time * 1e6,
  };
}

/**
 * Docker's event filters (moby daemon/events/filter.go): every filter given must match, any of
 * its values. container, volume and network match the actor's ID or name attribute, exactly or
 * as a prefix, whatever the event's type; image matches the ID or image name (a container's
 * `image`, an image's `name`), with or without its tag.
 */
function eventWanted(f: Map<string, string[]>, e: EngineEvent): boolean {
  const a = e.attributes;
  const fuzzy = (key: string, ...values: Array<string | undefined>) => {
    const wanted = f.get(key);
    return !wanted || wanted.some((w) => values.some((v) => v !== undefined && v.startsWith(w)));
  };
  const exact = (key: string, ...values: Array<string | undefined>) => {
    const wanted = f.get(key);
    return !wanted || wanted.some((w) => values.includes(w));
  };
  const stripTag = (r: string | undefined) => r?.replace(/(@.*|:[^:/]*)$/, "");
  const actions = f.get("event");
  if (actions && !eventMatches(actions, e.action)) return false;
  const imageName = e.type === "image" ? a.name : a.image;
  const labels = f.get("label");
  return (
    exact("type", e.type) &&
    fuzzy("container", e.id, a.name) &&
    fuzzy("volume", e.id, a.name) &&
    fuzzy("network", e.id, a.name) &&
    exact("image", e.id, imageName, stripTag(e.id), stripTag(imageName)) &&
    (!labels || labels.every((l) => (l.includes("=") ? a[l.slice(0, l.indexOf("="))] === l.slice(l.indexOf("=") + 1) : l in a)))
  );
}

/**
 * Docker's `event` filter: exact, except that health_status, exec_create and exec_start
 * (whose actions carry a suffix, "health_status: healthy") also match as prefixes once any
 * of them is asked for (moby daemon/events/filter.go).
 */
export function eventMatches(wanted: string[], action: string): boolean {
  if (wanted.some((w) => ["health_status", "exec_create", "exec_start"].includes(w))) return wanted.some((w) => action.startsWith(w));
  return wanted.includes(action);
}

/** What Docker shows as the default bridge network's options (its bridge named as ours is). */
function defaultBridgeOptions(bridge: string): Record<string, string> {
  return {
    "com.docker.network.bridge.default_bridge": "true",
    "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
    "com.docker.network.bridge.name": bridge,
    "com.docker.network.driver.mtu": "1500",
  };
}
