import type { Engine } from "../engine/engine.ts";
import { API_VERSION, BERTH_VERSION, ENGINE_VERSION, MIN_API_VERSION } from "../version.ts";
import { imageSummaryJson } from "./images-routes.ts";
import { registryDomain } from "./registry-auth.ts";
import { readJsonBody, sendJson, type Router } from "./router.ts";
import { AuthConfigSchema, parseDockerBody } from "./schemas.ts";

export function addSystemRoutes(router: Router, engine: Engine): void {
  const ping = ({ res, req }: { res: import("node:http").ServerResponse; req: import("node:http").IncomingMessage }) => {
    res.writeHead(200, {
      "Content-Type": "text/plain; charset=utf-8",
      "Api-Version": API_VERSION,
      "Docker-Experimental": "false",
      Ostype: "linux",
      "Builder-Version": "1",
      "Cache-Control": "no-cache, no-store, must-revalidate",
      Pragma: "no-cache",
    });
    res.end(req.method === "HEAD" ? undefined : "OK");
  };
  router.get("/_ping", ping);
  router.head("/_ping", ping);

  router.get("/version", ({ res }) => {
    const f = engine.facts;
    sendJson(res, 200, {
      Platform: { Name: "Berth Engine" },
      Components: [
        {
          Name: "Engine",
          Version: ENGINE_VERSION,
          Details: {
            ApiVersion: API_VERSION,
            MinAPIVersion: MIN_API_VERSION,
            Os: "linux",
            Arch: f.goArch,
            KernelVersion: f.kernelVersion,
            BerthVersion: BERTH_VERSION,
            GitCommit: "berth",
            GoVersion: `node${process.versions.node}`,
          },
        },
      ],
      Version: ENGINE_VERSION,
      ApiVersion: API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      GitCommit: "berth",
      GoVersion: `node${process.versions.node}`,
      Os: "linux",
      Arch: f.goArch,
      KernelVersion: f.kernelVersion,
      BuildTime: new Date(0).toISOString(),
    });
  });

  router.get("/info", async ({ res }) => {
    const f = engine.facts;
    const images = engine.images.count();
    const all = engine.containers.list();
    const count = (st: string) => all.filter((c) => c.state.status === st).length;
    sendJson(res, 200, {
      ID: engine.id,
      Containers: all.length,
      ContainersRunning: count("running"),
      ContainersPaused: count("paused"),
      ContainersStopped: all.length - count("running") - count("paused"),
      Images: images,
      Driver: "overlay2",
      DriverStatus: [
        ["Backing Filesystem", "extfs"],
        ["Supports d_type", "true"],
        ["Using metacopy", "false"],
        ["Native Overlay Diff", "true"],
      ],
      Plugins: { Volume: ["local"], Network: ["bridge", "host", "null"], Authorization: null, Log: ["json-file"] },
      MemoryLimit: true,
      SwapLimit: true,
      CpuCfsPeriod: true,
      CpuCfsQuota: true,
      CPUShares: true,
      CPUSet: true,
      PidsLimit: true,
      IPv4Forwarding: true,
      Debug: false,
      NFd: 0,
      OomKillDisable: false,
      NGoroutines: 0,
      SystemTime: new Date().toISOString(),
      LoggingDriver: "json-file",
      CgroupDriver: "cgroupfs",
      CgroupVersion: f.cgroupVersion,
      NEventsListener: 0,
      KernelVersion: f.kernelVersion,
      OperatingSystem: f.operatingSystem,
      OSVersion: f.osVersion,
      OSType: "linux",
      Architecture: f.architecture,
      IndexServerAddress: "https://index.docker.io/v1/",
      RegistryConfig: {
        InsecureRegistryCIDRs: ["127.0.0.0/8", "::1/128"],
        IndexConfigs: indexConfigs(engine),
        Mirrors: engine.config.registryMirrors,
      },
      NCPU: f.ncpu,
      MemTotal: f.memTotal,
      DockerRootDir: engine.config.dataRoot,
      Name: f.hostname,
      Labels: [],
      ExperimentalBuild: false,
      ServerVersion: ENGINE_VERSION,
      Runtimes: Object.fromEntries(engine.runtimes.offered.map((r) => [r.name, { path: r.path }])),
      DefaultRuntime: engine.runtimes.default.name,
      Swarm: { LocalNodeState: "inactive", ControlAvailable: false, NodeID: "", NodeAddr: "", RemoteManagers: null },
      LiveRestoreEnabled: true,
      Isolation: "",
      InitBinary: "",
      // Docker's wording: containers get its default profile unless the kernel has no seccomp.
      SecurityOptions: engine.containers.seccompAvailable ? ["name=seccomp,profile=default"] : [],
      // Docker's place for what the engine cannot do here; the CLI prints each as a WARNING.
      Warnings: engine.runtimes.notOffered.length ? engine.runtimes.notOffered : null,
    });
  });

  router.post("/auth", async ({ req, res }) => {
    const body = parseDockerBody(AuthConfigSchema, await readJsonBody(req));
    const domain = registryDomain(body.serveraddress ?? undefined);
    const result = await engine.registry.checkLogin(domain, {
      username: body.username ?? undefined,
      password: body.password ?? undefined,
      identitytoken: body.identitytoken ?? undefined,
    });
    sendJson(res, 200, { Status: "Login Succeeded", IdentityToken: result.identityToken ?? "" });
  });

  router.get("/system/df", async ({ res }) => {
    const du = await engine.images.diskUsage();
    const containers = [];
    for (const c of engine.containers.list()) {
      containers.push({
        Id: c.id,
        Names: [`/${c.name}`],
        Image: c.imageName,
        ImageID: c.imageId,
        Command: [c.path, ...c.args].join(" "),
        Created: Math.floor(Date.parse(c.created) / 1000),
        State: c.state.status,
        Status: c.state.status,
        SizeRw: await engine.containers.sizeRw(c.id),
        SizeRootFs: 0,
        Labels: c.options.labels,
        Mounts: [],
        Ports: [],
      });
    }
    const volumes = [];
    for (const v of await engine.volumes.list({})) {
      volumes.push({
        Name: v.name,
        Driver: v.driver,
        Mountpoint: v.mountpoint,
        CreatedAt: v.createdAt,
        Labels: v.labels,
        Scope: v.scope,
        Options: v.options,
        UsageData: { Size: await engine.volumes.usage(v.name), RefCount: engine.containers.volumeUsers(v.name).length },
      });
    }
    sendJson(res, 200, { LayersSize: du.layersSize, Images: du.images.map(imageSummaryJson), Containers: containers, Volumes: volumes, BuildCache: [] });
  });
}

function indexConfigs(engine: Engine): Record<string, { Name: string; Mirrors: string[]; Secure: boolean; Official: boolean }> {
  const out: Record<string, { Name: string; Mirrors: string[]; Secure: boolean; Official: boolean }> = {
    "docker.io": { Name: "docker.io", Mirrors: engine.config.registryMirrors, Secure: true, Official: true },
  };
  for (const r of engine.config.insecureRegistries) out[r] = { Name: r, Mirrors: [], Secure: false, Official: false };
  return out;
}
