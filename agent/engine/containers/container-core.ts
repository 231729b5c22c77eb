import type { Runtimes } from "../runtime/runtimes.ts";
import type { Logger } from "pino";
import type { ImageService, ImageServiceDeps } from "../images/image-service.ts";
import type { LayerStore } from "../layers/layer-store.ts";
import type { ContainerMonitor, MonitorPaths } from "../monitor/monitor.ts";
import type { NetworkManager } from "../network/network-manager.ts";
import type { SpecHost } from "../runtime/spec.ts";
import type { Runc } from "../runtime/runc.ts";
import type { Snapshotter } from "../snapshots/snapshotter.ts";
import type { PublishEvent } from "../system/events.ts";
import type { VolumeStore } from "../volumes/volume-store.ts";
import type { ContainerRecord } from "./container-record.ts";
import type { ContainerStore } from "./container-store.ts";
import type { RootfsMounts } from "./rootfs-mounts.ts";

export interface ContainerServiceDeps {
  store: ContainerStore;
  images: ImageService;
  /** The image concern's stores: a commit writes its layer into them. */
  imageStores: Pick<ImageServiceDeps, "store" | "content">;
  layers: LayerStore;
  snapshots: Snapshotter;
  monitor: ContainerMonitor;
  runc: Runc;
  network: NetworkManager;
  volumes: VolumeStore;
  specHost: SpecHost;
  logger: Logger;
  /** cgroup parent of every container ("/berth" → /sys/fs/cgroup/<controller>/berth/<id>). */
  cgroupParent: string;
  /** The engine's event stream. */
  events: PublishEvent;
  /** The host's CPUs (stats' online CPUs when the cgroup does not say). */
  ncpu: number;
  /** The runtime `runc` and `monitor` run (default: runc only), for `--runtime` at create. */
  runtimes?: Runtimes;
}

/** Where a container's files are: its directory, bundle, monitor state, log, root and the files bound into it. */
export type ContainerPaths = MonitorPaths & {
  dir: string;
  jsonLogPath: string;
  rootfs: string;
  hostsPath: string;
  hostnamePath: string;
  resolvConfPath: string;
};

/**
 * What the parts of the container concern (exec, snapshot operations, networking, adoption)
 * share with the lifecycle (container-service.ts), which owns each of these: the per-container
 * lock (one queue: every part's change to a container is serialised with the others), the
 * rootfs mounts and the event stream.
 */
export interface ContainerCore {
  readonly deps: ContainerServiceDeps;
  get(idOrName: string): ContainerRecord;
  paths(id: string): ContainerPaths;
  withLock<T>(id: string, fn: () => Promise<T>): Promise<T>;
  emitEvent(action: string, record: ContainerRecord, extra?: Record<string, string>): void;
  readonly rootfsMounts: RootfsMounts;
}
