import { mkdir, readFile, writeFile } from "node:fs/promises";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import type { Logger } from "pino";
import { FsContentStore } from "./content/fs-store.ts";
import { ContainerService } from "./containers/container-service.ts";
import { ContainerFiles, type ContainerFilesystem } from "./containers/filesystem.ts";
import { ContainerStore } from "./containers/container-store.ts";
import { OverlayLayerStore } from "./layers/overlay-layer-store.ts";
import { ConmonMonitor } from "./monitor/conmon.ts";
import { NetworkManager } from "./network/network-manager.ts";
import { RegistryClient } from "./registry/client.ts";
import { Runc } from "./runtime/runc.ts";
import { detectRuntimes, Runtimes, type RuntimeName } from "./runtime/runtimes.ts";
import { readSpecHost } from "./runtime/spec-host.ts";
import { OverlaySnapshotter } from "./snapshots/overlay.ts";
import { LocalVolumeStore } from "./volumes/local-volumes.ts";
import { ImageService, type ImageServiceDeps } from "./images/image-service.ts";
import { ImageStore } from "./images/image-store.ts";
import { Puller } from "./images/pull.ts";
import { Pusher } from "./images/push.ts";
import { readHostFacts, type HostFacts } from "./system/host-facts.ts";
import { Builder } from "./build/builder.ts";
import type { BuildUploads } from "./build/uploads.ts";
import { isErrno } from "./fs-util.ts";
import { bestEffort } from "../../shared/best-effort.ts";
import { EventBus, type EngineEvents } from "./system/events.ts";

export interface EngineConfig {
  dataRoot: string;
  registryMirrors: string[];
  insecureRegistries: string[];
  /** A registry request or body without progress for this long fails (default 30 s). */
  registryStallTimeoutMs?: number;
  /** Where run-time state lives (runc state, network namespaces): gone after a reboot. */
  execRoot?: string;
  /** The OCI runtime containers run with (default runc). */
  runtime?: RuntimeName;
  /** Name of the default bridge and its subnet (tests use their own). */
  bridgeName?: string;
  bridgeSubnet?: string;
  chainPrefix?: string;
}

/*
 * The engine's public surface: what the doors (Docker API, console link) may call, split as
 * moby's daemon Backend is (lifecycle, stdio and monitoring, exec, filesystem, networks of a
 * container; images; networks; volumes; system and events). The facets are picked from the
 * concerns' classes so signatures stay in one place, but no door sees a class: not its
 * collaborators (`deps`), nor its internals.
 */

/** Create, start, stop, kill, restart, pause, update, remove, rename, wait, prune; the records. */
export type ContainerLifecycle = Pick<
  ContainerService,
  | "get"
  | "list"
  | "exists"
  | "create"
  | "start"
  | "stop"
  | "kill"
  | "restart"
  | "pause"
  | "unpause"
  | "update"
  | "remove"
  | "rename"
  | "wait"
  | "prune"
  | "paths"
  | "readTextFile"
  | "volumeUsers"
  | "volumeMountpoint"
  | "seccompAvailable"
  | "memorySwap"
>;
/** Stdio and monitoring of containers: attach, logs, resize, top, stats, sizes. */
export type ContainerMonitoring = Pick<ContainerService, "attach" | "logs" | "resize" | "top" | "stats" | "sizeRw">;
/** Processes run in a running container, and their end when their client leaves. */
export type ContainerExec = Pick<ContainerService, "createExec" | "startExec" | "getExec" | "execDone" | "killExec" | "killExecTree" | "execIds">;
/** A container's filesystem as a whole: diff, export, commit, its writable layer. */
export type ContainerSnapshotOps = Pick<ContainerService, "diff" | "exportTo" | "commit" | "upperDir">;
/** The networks a container joins (`docker network connect/disconnect`). */
export type ContainerNetworking = Pick<ContainerService, "connect" | "disconnect">;
export type Containers = ContainerLifecycle & ContainerMonitoring & ContainerExec & ContainerSnapshotOps & ContainerNetworking;

/** Stored images: list, inspect, history, tag, remove, prune, save, load, import. */
export type Images = Pick<
  ImageService,
  | "list"
  | "resolve"
  | "config"
  | "details"
  | "history"
  | "tag"
  | "remove"
  | "prune"
  | "diskUsage"
  | "count"
  | "parentOf"
  | "size"
  | "save"
  | "load"
  | "importRootfs"
>;
export type ImagePuller = Pick<Puller, "pull">;
export type ImagePusher = Pick<Pusher, "push">;
/** Registries as the doors meet them: login, search, distribution inspect, insecure domains. */
export type Registries = Pick<RegistryClient, "allowInsecure" | "checkLogin" | "inspectDistribution" | "catalog">;
export type Networks = Pick<NetworkManager, "list" | "listNow" | "inspect" | "createNetwork" | "removeNetwork" | "prune">;
export type Volumes = Pick<LocalVolumeStore, "create" | "get" | "list" | "remove" | "prune" | "usage">;
export interface ImageBuilder extends Pick<Builder, "build"> {
  /** Build contexts sent in pieces over the console link. */
  uploads: Pick<BuildUploads, "write" | "open" | "remove">;
}

/** The engine of one node, built from the agent's config: the one place where concerns are wired. */
export interface Engine {
  config: EngineConfig;
  facts: HostFacts;
  registry: Registries;
  images: Images;
  puller: ImagePuller;
  pusher: ImagePusher;
  containers: Containers;
  /** `docker cp`: paths inside containers, read and written without leaving them. */
  files: ContainerFilesystem;
  network: Networks;
  volumes: Volumes;
  builder: ImageBuilder;
  /** The one event stream of containers, images, volumes and networks (`docker events`). */
  events: EngineEvents;
  /** The OCI runtime containers run with, and why others are not offered. */
  runtimes: Runtimes;
  /** A stable ID for this engine (Docker's `info.ID`). */
  id: string;
  close(): void;
}

export async function createEngine(config: EngineConfig, logger: Logger): Promise<Engine> {
  const root = config.dataRoot;
  const execRoot = config.execRoot ?? "/run/berth";
  const tmpDir = join(root, "tmp");
  await mkdir(tmpDir, { recursive: true, mode: 0o700 });
  const content = new FsContentStore(join(root, "content"), logger.child({ concern: "content" }));
  const layers = new OverlayLayerStore(join(root, "layers"), { logger: logger.child({ concern: "layers" }) });
  const registry = new RegistryClient({
    insecureRegistries: config.insecureRegistries,
    mirrors: config.registryMirrors,
    stallTimeoutMs: config.registryStallTimeoutMs,
    logger: logger.child({ concern: "registry" }),
  });
  const events = new EventBus();
  const store = new ImageStore(join(root, "images"));
  let containers: ContainerService | undefined;
  // The image concern's stores, wired here once: the pull, the push, the builder and a
  // container's commit write into them besides the image service itself.
  const imageDeps: ImageServiceDeps = {
    content,
    layers,
    store,
    registry,
    logger: logger.child({ concern: "images" }),
    tmpDir,
    events: events.publish,
    containersUsing: (id) => containers?.usingImage(id) ?? [],
  };
  const images = new ImageService(imageDeps);
  await images.init();

  // Told before anything else is set up: a runtime that cannot run containers here stops the start.
  const runtimes = new Runtimes(await detectRuntimes(), config.runtime ?? "runc");
  for (const why of runtimes.notOffered) logger.warn(why);
  logger.info({ runtime: runtimes.default.name, path: runtimes.default.path }, "containers run with this OCI runtime");
  // Each runtime its own state directory: their formats differ (runc's keeps its old place).
  const runcRoot = join(execRoot, runtimes.default.name);
  const runc = new Runc({ root: runcRoot, binary: runtimes.default.path });
  const network = new NetworkManager({
    stateDir: join(root, "network"),
    netnsDir: join(execRoot, "netns"),
    dnsDir: join(execRoot, "dns"),
    bridgeName: config.bridgeName,
    defaultSubnet: config.bridgeSubnet,
    chainPrefix: config.chainPrefix,
    logger: logger.child({ concern: "network" }),
    events: events.publish,
  });
  const volumes = new LocalVolumeStore(join(root, "volumes"), logger.child({ concern: "volumes" }), events.publish);
  const facts = await readHostFacts();
  const snapshots = new OverlaySnapshotter(join(root, "snapshots"), layers, logger.child({ concern: "snapshots" }));
  containers = new ContainerService({
    store: new ContainerStore(join(root, "containers"), logger.child({ concern: "containers" })),
    images,
    imageStores: imageDeps,
    layers,
    snapshots,
    monitor: new ConmonMonitor({ runcRoot, runc: runtimes.default.path, logger: logger.child({ concern: "monitor" }) }),
    runc,
    network,
    volumes,
    specHost: await readSpecHost(),
    logger: logger.child({ concern: "containers" }),
    cgroupParent: "/berth",
    ncpu: facts.ncpu,
    events: events.publish,
    runtimes,
  });
  const puller = new Puller(images, imageDeps, { dataRoot: root });
  const builder = new Builder({
    images,
    containers,
    imageStores: imageDeps,
    snapshots,
    puller,
    root: join(root, "build"),
    contextsRoot: join(root, "build-contexts"),
    logger: logger.child({ concern: "build" }),
  });
  await builder.recover(); // before the snapshots are swept: a crashed build's mounts hold them
  await containers.init();
  await builder.removeLeftoverContainers();
  const id = await engineId(root);
  const c = containers;
  const files = new ContainerFiles({
    withRootfs: (name, fn) => c.withRootfs(name, fn),
    volumeMountpoint: (name) => c.volumeMountpoint(name),
    paths: (cid) => c.paths(cid),
    imageUser: async (imageId) => (await images.config(imageId).catch(bestEffort(logger, `read the config of image ${imageId}`)))?.config?.User ?? "",
  });
  return {
    config,
    facts,
    registry,
    images,
    puller,
    pusher: new Pusher(images, imageDeps),
    containers: c,
    files,
    network,
    volumes,
    builder,
    events,
    runtimes,
    id,
    close: () => c.close(),
  };
}

async function engineId(root: string): Promise<string> {
  const file = join(root, "engine-id");
  try {
    return (await readFile(file, "utf8")).trim();
  } catch (e) {
    if (!isErrno(e, "ENOENT")) throw e; // a new id for an unreadable file would make this another engine
    const id = randomUUID();
    await writeFile(file, id + "\n", { mode: 0o600 });
    return id;
  }
}
