/**
 * The STAND-IN ENGINE of bench/fleet: what the console link touches of an Engine
 * (agent/engine/engine.ts) — ConsoleLink, readInventory and the link handlers — over a
 * synthetic inventory in memory. It runs no containers and pulls nothing. Issue 4 §5
 * allows a stand-in engine in this benchmark only: it lets one machine play 500 nodes,
 * so what bench/fleet measures is the console and the real link protocol, not an engine.
 * Nothing outside bench/ may use it.
 */
import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import type { Engine } from "../agent/engine/engine.ts";
import { ContainerRecordSchema, type ContainerRecord, type ContainerStatus } from "../agent/engine/containers/container-record.ts";
import type { ContainerEvent, ContainerService } from "../agent/engine/containers/container-service.ts";
import { conflict, notFound } from "../agent/engine/errors.ts";
import type { ImageService, ImageSummary } from "../agent/engine/images/image-service.ts";
import type { PullOptions, PullResult, Puller } from "../agent/engine/images/pull.ts";
import type { NetworkInfo, NetworkManager } from "../agent/engine/network/network-manager.ts";
import { familiarString, parseNormalizedReference, withDefaultTag } from "../shared/reference.ts";
import type { LocalVolumeStore } from "../agent/engine/volumes/local-volumes.ts";
import type { Volume } from "../agent/engine/volumes/volume-store.ts";

/**
 * The Engine surface the stand-in implements, checked against the real classes' own
 * signatures so that a change in the engine breaks this file rather than the benchmark.
 */
export interface StandInSurface extends Pick<Engine, "id" | "facts" | "config"> {
  images: Pick<ImageService, "list">;
  // on/off return `this`, which no stand-in can be: compared as plain EventEmitter methods.
  containers: Pick<ContainerService, "list" | "start" | "stop" | "pause" | "unpause"> & Pick<EventEmitter, "on" | "off">;
  volumes: Pick<LocalVolumeStore, "list">;
  network: Pick<NetworkManager, "list">;
  puller: Pick<Puller, "pull">;
}

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

class StandInContainers extends EventEmitter {
  constructor(private readonly records: ContainerRecord[]) {
    super();
  }

  list(): ContainerRecord[] {
    return this.records;
  }

  private get(idOrName: string): ContainerRecord {
    const r = this.records.find((c) => c.id === idOrName || c.name === idOrName || c.id.startsWith(idOrName));
    if (!r) throw notFound(`No such container: ${idOrName}`);
    return r;
  }

  private emitEvent(action: string, record: ContainerRecord): void {
    const event: ContainerEvent = { type: "container", action, id: record.id, attributes: { name: record.name, image: record.imageName }, time: Date.now() };
    this.emit("event", event);
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
export class StandInEngine implements StandInSurface {
  readonly id: string;
  readonly facts: Engine["facts"];
  readonly config: Engine["config"];
  readonly images: Pick<ImageService, "list">;
  readonly containers: StandInContainers;
  readonly volumes: Pick<LocalVolumeStore, "list">;
  readonly network: Pick<NetworkManager, "list">;
  readonly puller: Pick<Puller, "pull">;
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
    this.containers = new StandInContainers(records);

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
    this.images = { list: async () => images };
    this.volumes = { list: async () => volumes };
    this.network = { list: async () => networks };
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

  /**
   * The Engine the link expects. The stand-in implements only StandInSurface (what the
   * link's code paths in this benchmark use); any other engine call fails inside the
   * handler and comes back to the console as an error acknowledgement, never silently.
   */
  asEngine(): Engine {
    return this as unknown as Engine;
  }

  /** Flips the first container between running and paused, as `docker pause/unpause` would. */
  async toggle(): Promise<string> {
    const c = this.containers.list()[0]!;
    if (c.state.status === "paused") await this.containers.unpause(c.id);
    else await this.containers.pause(c.id);
    return c.state.status;
  }
}
