import { statfs } from "node:fs/promises";
import type { Engine } from "../engine/engine.ts";
import type { ContainerRecord } from "../engine/containers/container-record.ts";
import { BERTH_VERSION } from "../version.ts";
import { containerStatusText, LINK_PROTOCOL_VERSION, type InventoryContainer, type InventorySnapshot } from "./contract.ts";
import { bestEffort, type DebugLog } from "../../shared/best-effort.ts";

/** One container as the console's inventory shows it. */
export function inventoryContainer(c: ContainerRecord, now: number): InventoryContainer {
  const item: Omit<InventoryContainer, "status"> = {
    id: c.id,
    name: c.name,
    image: c.imageName,
    imageId: c.imageId,
    command: [c.path, ...c.args].join(" "),
    state: c.state.status,
    exitCode: c.state.exitCode,
    startedAt: c.state.startedAt,
    finishedAt: c.state.finishedAt,
    restartCount: c.state.restartCount,
    ports: c.publishedPorts,
    created: Math.floor(Date.parse(c.created) / 1000),
    labels: c.options.labels,
  };
  return { ...item, status: containerStatusText(item, now) };
}

/** Reads the node's whole inventory from the engine (memory and a few small files). */
export async function readInventory(engine: Engine, log: DebugLog): Promise<InventorySnapshot> {
  const now = Date.now();
  const [images, volumes, networks, fs] = await Promise.all([
    engine.images.list(),
    engine.volumes.list({}),
    engine.network.list(),
    statfs(engine.config.dataRoot).catch(bestEffort(log, `statfs ${engine.config.dataRoot}`)), // the snapshot goes without disk figures
  ]);
  return {
    protocol: LINK_PROTOCOL_VERSION,
    agentVersion: BERTH_VERSION,
    engineId: engine.id,
    facts: engine.facts,
    images: images.map((i) => ({
      id: i.id,
      repoTags: i.repoTags,
      repoDigests: i.repoDigests,
      size: i.size,
      created: i.created,
      labels: i.labels,
      containers: i.containers,
    })),
    containers: engine.containers.list().map((c) => inventoryContainer(c, now)),
    volumes: volumes.map((v) => ({
      name: v.name,
      driver: v.driver,
      mountpoint: v.mountpoint,
      createdAt: v.createdAt,
      labels: v.labels,
      anonymous: v.anonymous,
    })),
    networks: networks.map((n) => ({
      id: n.id,
      name: n.name,
      driver: n.driver,
      ...(n.subnet ? { subnet: n.subnet } : {}),
      ...(n.gateway ? { gateway: n.gateway } : {}),
      internal: n.internal,
      labels: n.labels,
      created: n.created,
      containers: Object.keys(n.containers).sort(),
    })),
    takenAt: now,
    ...(fs ? { disk: { total: fs.blocks * fs.bsize, free: fs.bavail * fs.bsize } } : {}),
  };
}
