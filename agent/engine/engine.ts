import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { FsContentStore } from "../engine/content/fs-store.ts";
import { OverlayLayerStore } from "../engine/layers/overlay-layer-store.ts";
import { RegistryClient } from "../engine/registry/client.ts";
import { ImageService } from "./images/image-service.ts";
import { ImageStore } from "./images/image-store.ts";
import { Puller } from "./images/pull.ts";
import { Pusher } from "./images/push.ts";
import { readHostFacts, type HostFacts } from "./system/host-facts.ts";

export interface EngineConfig {
  dataRoot: string;
  registryMirrors: string[];
  insecureRegistries: string[];
}

/** The engine of one node, built from the agent's config: the one place where concerns are wired. */
export interface Engine {
  config: EngineConfig;
  facts: HostFacts;
  registry: RegistryClient;
  images: ImageService;
  puller: Puller;
  pusher: Pusher;
  /** A stable ID for this engine (Docker's `info.ID`). */
  id: string;
}

export async function createEngine(config: EngineConfig, logger: Logger): Promise<Engine> {
  const root = config.dataRoot;
  const tmpDir = join(root, "tmp");
  await mkdir(tmpDir, { recursive: true, mode: 0o700 });
  const content = new FsContentStore(join(root, "content"));
  const layers = new OverlayLayerStore(join(root, "layers"));
  const registry = new RegistryClient({
    insecureRegistries: config.insecureRegistries,
    mirrors: config.registryMirrors,
    logger: logger.child({ concern: "registry" }),
  });
  const store = new ImageStore(join(root, "images"));
  const images = new ImageService({ content, layers, store, registry, logger: logger.child({ concern: "images" }), tmpDir });
  await images.init();
  const facts = await readHostFacts();
  const id = await engineId(root);
  return { config, facts, registry, images, puller: new Puller(images), pusher: new Pusher(images), id };
}

async function engineId(root: string): Promise<string> {
  const { readFile, writeFile } = await import("node:fs/promises");
  const file = join(root, "engine-id");
  try {
    return (await readFile(file, "utf8")).trim();
  } catch {
    const { randomUUID } = await import("node:crypto");
    const id = randomUUID();
    await writeFile(file, id + "\n", { mode: 0o600 });
    return id;
  }
}
