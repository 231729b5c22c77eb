/**
 * The STAND-IN ENGINE of bench/fleet: what the console link touches of an Engine
 * (agent/engine/engine.ts) — ConsoleLink, readInventory and the link handlers — over a
 * synthetic inventory in memory. It runs no containers and pulls nothing. Issue 4 §5
 * allows a stand-in engine in this benchmark only: it lets one machine play 500 nodes,
 * so what bench/fleet measures is the console and the real link protocol, not an engine.
 * Nothing outside bench/ may use it.
 */
import { Runtimes } from "../agent/engine/runtime/runtimes.ts";
import { createHash } from "node:crypto";
import type { Containers, Engine, ImageBuilder, Images, ImagePuller, ImagePusher, Networks, Registries, Volumes } from "../agent/engine/engine.ts";
import { ContainerRecordSchema, type ContainerRecord, type ContainerStatus } from "../agent/engine/containers/container-record.ts";
import type { ContainerFilesystem } from "../agent/engine/containers/filesystem.ts";
import { conflict, notFound, notImplemented } from "../agent/engine/errors.ts";
import type { ImageSummary } from "../agent/engine/images/image-service.ts";
import type { PullOptions, PullResult } from "../agent/engine/images/pull.ts";
import type { NetworkInfo } from "../agent/engine/network/network-manager.ts";
import { EventBus } from "../agent/engine/system/events.ts";
import { familiarString, parseNormalizedReference, withDefaultTag } from "../shared/reference.ts";
import type { Volume } from "../agent/engine/volumes/volume-store.ts";

/**
 * What the stand-in does not do (run, exec, build, push…): the call fails as an engine error,
 * which comes back to the console as an error acknowledgement, never silently.
 */
const no = (what: string) => (): never => {
  throw notImplemented(`the stand-in engine of bench/fleet does not ${what}`);
};

export const CONTAINERS_PER_NODE = 20;
export const IMAGES_PER_NODE = 10;
const SERVICES = ["web", "api", "worker", "cache", "db", "queue", "proxy", "cron", "metrics", "logs"] as const;

const hex = (s: string) => createHash("sha256").update(s).digest("hex");
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Every node's search key: container `billing-<node mod 100>` exists on nodes n, n+100, …,
 * so a search for `billing-42` matches a few containers across a fleet of 500.
 */
export function rareContainerName(nodeIndex: number): string {
  return `billing-${nodeIndex % 100}`;
}

/** The containers the link's benchmark paths touch: list, start, stop, pause, unpause; the rest refused. */
class StandInContainers implements Containers {
  constructor(
    private readonly records: ContainerRecord[],
    private readonly events: EventBus,
  ) {}

  readonly seccompAvailable = false;
  readonly exists = (id: string) => this.records.some((c) => c.id === id);
  readonly create = no("create containers");
  readonly kill = no("kill containers");
  readonly restart = no("restart containers");
  readonly update = no("update containers");
  readonly remove = no("remove containers");
  readonly rename = no("rename containers");
  readonly wait = no("wait for containers");
  readonly prune = no("prune containers");
  readonly paths = no("keep container files");
  readonly readTextFile = no("keep container files");
  readonly volumeUsers = () => [];
  readonly volumeMountpoint = no("mount volumes");
  readonly memorySwap = () => 0;
  readonly attach = no("attach to containers");
  readonly logs = no("keep logs");
  readonly resize = no("resize terminals");
  readonly top = no("list processes");
  readonly stats = no("read stats");
  readonly sizeRw = async () => 0;
  readonly createExec = no("exec");
  readonly startExec = no("exec");
  readonly getExec = no("exec");
  readonly execDone = no("exec");
  readonly killExec = no("exec");
  readonly killExecTree = no("exec");
  readonly execIds = () => [];
  readonly diff = no("diff containers");
  readonly exportTo = no("export containers");
  readonly commit = no("commit containers");
  readonly upperDir = no("keep container layers");
  readonly connect = no("connect networks");
  readonly disconnect = no("disconnect networks");

  list(): ContainerRecord[] {
    return this.records;
  }

  get(idOrName: string): ContainerRecord {
    const r = this.records.find((c) => c.id === idOrName || c.name === idOrName || c.id.startsWith(idOrName));
    if (!r) throw notFound(`No such container: ${idOrName}`);
    return r;
  }

  private emitEvent(action: string, record: ContainerRecord): void {
    this.events.publish("container", action, record.id, { name: record.name, image: record.imageName });
  }

  async start(idOrName: string): Promise<boolean> {
    const r = this.get(idOrName);
    if (r.state.status === "running") return false;
    r.state.status = "running";
    this.emitEvent("start", r);
    return true;
  }

  async stop(idOrName: string): Promise<boolean> {
    const r = this.get(idOrName);
    if (r.state.status !== "running") return false;
    r.state.status = "exited";
    this.emitEvent("die", r);
    this.emitEvent("stop", r);
    return true;
  }

  async pause(idOrName: string): Promise<void> {
    const r = this.get(idOrName);
    if (r.state.status !== "running") throw conflict(`Container ${r.id} is not running`);
    r.state.status = "paused";
    this.emitEvent("pause", r);
  }

  async unpause(idOrName: string): Promise<void> {
    const r = this.get(idOrName);
    if (r.state.status !== "paused") throw conflict(`Container ${r.id} is not paused`);
    r.state.status = "running";
    this.emitEvent("unpause", r);
  }
}

export interface StandInEngineOptions {
  /** 0-based index of the simulated node in the fleet. */
  nodeIndex: number;
  /** A real directory: readInventory statfs()s it for the node's disk figures. */
  dataRoot: string;
  /** Called when a pull request reaches this node (the benchmark times the fan-out with it). */
  onPull?: (reference: string) => void;
}

/** One simulated node: 20 containers (mostly running) and 10 images, all synthetic. */
export class StandInEngine implements Engine {
  readonly id: string;
  readonly facts: Engine["facts"];
  readonly config: Engine["config"];
  readonly images: Images;
  readonly containers: StandInContainers;
  readonly volumes: Volumes;
  readonly network: Networks;
  readonly puller: ImagePuller;
  readonly pusher: ImagePusher = { push: no("push images") };
  readonly registry: Registries = {
    allowInsecure: () => undefined,
    checkLogin: no("log in to registries"),
    inspectDistribution: no("inspect registries"),
    catalog: no("search registries"),
  };
  readonly builder: ImageBuilder = {
    build: no("build images"),
    uploads: { write: no("build images"), open: no("build images"), remove: async () => undefined },
  };
  readonly files: ContainerFilesystem = { statPath: no("copy files"), archivePath: no("copy files"), extractToDir: no("copy files") };
  readonly events = new EventBus();
  readonly runtimes = Runtimes.runcOnly();
  readonly hostname: string;

  constructor(opts: StandInEngineOptions) {
    const n = opts.nodeIndex;
    this.hostname = `sim-${String(n).padStart(4, "0")}`;
    this.id = `stand-in-${hex(`engine-${n}`).slice(0, 24)}`;
    this.config = { dataRoot: opts.dataRoot, registryMirrors: [], insecureRegistries: [] };
    this.facts = {
      hostname: this.hostname,
      kernelVersion: "6.1.0-stand-in",
      operatingSystem: "Stand-in Linux (bench/fleet)",
      osVersion: "1",
      architecture: "x86_64",
      goArch: "amd64",
      ncpu: 4,
      memTotal: 8 * 1024 ** 3,
      cgroupVersion: "2",
      addresses: [`10.99.${Math.floor(n / 256) % 256}.${n % 256}`],
    };

    // Started three days ago: the status text ("Up 3 days") then stays put, so the only
    // inventory changes on the wire are the ones the benchmark makes.
    const since = Date.now() - 3 * 24 * 3600 * 1000;
    const images: ImageSummary[] = Array.from({ length: IMAGES_PER_NODE }, (_, k) => {
      const repo = `registry.example.com/fleet/${SERVICES[k % SERVICES.length]}`;
      const tag = `1.${n % 3}.${k}`;
      const id = `sha256:${hex(`${repo}:${tag}`)}`;
      return {
        id,
        parentId: "",
        repoTags: [`${repo}:${tag}`],
        repoDigests: [`${repo}@sha256:${hex(`manifest ${repo}:${tag}`)}`],
        created: Math.floor(since / 1000) - k * 3600,
        size: 20_000_000 + k * 7_000_000,
        sharedSize: -1,
        labels: { "org.opencontainers.image.source": "bench/fleet" },
        containers: 2,
      };
    });
    const records: ContainerRecord[] = Array.from({ length: CONTAINERS_PER_NODE }, (_, k) => {
      const image = images[k % IMAGES_PER_NODE]!;
      const name = k === 0 ? rareContainerName(n) : `${SERVICES[k % SERVICES.length]}-${Math.floor(k / SERVICES.length) + 1}`;
      const status: ContainerStatus = k % 10 === 9 ? "exited" : "running";
      return ContainerRecordSchema.parse({
        id: hex(`container-${n}-${k}`),
        name,
        // Nodes deployed a few seconds apart, as a rollout does: not 500 identical timestamps.
        created: iso(since - k * 60_000 - n * 7_000),
        imageId: image.id,
        imageName: image.repoTags[0]!,
        options: { image: image.repoTags[0]!, name, labels: { "com.example.service": SERVICES[k % SERVICES.length]!, "com.example.node": this.hostname } },
        path: "/usr/local/bin/serve",
        args: ["--port", String(8000 + k)],
        state: {
          status,
          pid: status === "running" ? 1000 + k : 0,
          startedAt: iso(since),
          finishedAt: status === "exited" ? iso(since + 60_000) : "0001-01-01T00:00:00Z",
        },
        publishedPorts: k < 3 ? [{ containerPort: 8000 + k, protocol: "tcp", hostIp: "0.0.0.0", hostPort: 18000 + k }] : [],
      });
    });
    this.containers = new StandInContainers(records, this.events);

    const volumes: Volume[] = [
      {
        name: `data-${this.hostname}`,
        driver: "local",
        mountpoint: `${opts.dataRoot}/volumes/data`,
        createdAt: iso(since).replace(/\.\d+Z$/, "Z"),
        labels: {},
        options: {},
        scope: "local",
        anonymous: false,
      },
    ];
    const networks: NetworkInfo[] = [
      {
        id: hex(`network-${n}`),
        name: "bridge",
        driver: "bridge",
        subnet: "10.209.0.0/16",
        gateway: "10.209.0.1",
        bridge: "berth0",
        internal: false,
        labels: {},
        created: iso(since),
        containers: {},
      },
    ];
    this.images = {
      list: async () => images,
      count: () => images.length,
      resolve: no("inspect images"),
      config: no("inspect images"),
      details: no("inspect images"),
      history: no("inspect images"),
      parentOf: () => undefined,
      size: () => 0,
      tag: no("tag images"),
      remove: no("remove images"),
      prune: no("prune images"),
      diskUsage: no("measure images"),
      save: no("save images"),
      load: no("load images"),
      importRootfs: no("import images"),
    };
    this.volumes = {
      list: async () => volumes,
      get: no("inspect volumes"),
      create: no("create volumes"),
      remove: no("remove volumes"),
      prune: no("prune volumes"),
      usage: async () => 0,
    };
    this.network = {
      list: async () => networks,
      listNow: () => networks,
      inspect: no("inspect networks"),
      createNetwork: no("create networks"),
      removeNetwork: no("remove networks"),
      prune: no("prune networks"),
    };
    this.puller = {
      pull: async (name: string, o: PullOptions = {}): Promise<PullResult> => {
        const ref = withDefaultTag(parseNormalizedReference(name));
        opts.onPull?.(familiarString(ref));
        // A few progress events, as a real pull of a two-layer image sends, then done at once.
        const progress = o.onProgress ?? (() => undefined);
        progress({ id: ref.tag ?? "latest", status: `Pulling from ${ref.path}` });
        for (const layer of ["a1b2c3d4e5f6", "0f9e8d7c6b5a"]) {
          progress({ id: layer, status: "Pulling fs layer" });
          progress({ id: layer, status: "Downloading", current: 1_048_576, total: 1_048_576 });
          progress({ id: layer, status: "Pull complete" });
        }
        const tag = familiarString(ref);
        const id = `sha256:${hex(`pulled ${tag}`)}`;
        const digest = `sha256:${hex(`manifest ${tag}`)}`;
        const upToDate = images.some((i) => i.id === id);
        if (!upToDate) {
          images.push({
            id,
            parentId: "",
            repoTags: [tag],
            repoDigests: [`${familiarString({ ...ref, tag: undefined })}@${digest}`],
            created: Math.floor(Date.now() / 1000),
            size: 2_097_152,
            sharedSize: -1,
            labels: {},
            containers: 0,
          });
        }
        progress({ status: `Digest: ${digest}` });
        progress({ status: upToDate ? `Status: Image is up to date for ${tag}` : `Status: Downloaded newer image for ${tag}` });
        return { id, reference: ref, digest, upToDate };
      },
    };
  }

  close(): void {}

  /** Flips the first container between running and paused, as `docker pause/unpause` would. */
  async toggle(): Promise<string> {
    const c = this.containers.list()[0]!;
    if (c.state.status === "paused") await this.containers.unpause(c.id);
    else await this.containers.pause(c.id);
    return c.state.status;
  }
}
