import { readFile } from "node:fs/promises";
import os from "node:os";
import { nodeArchitecture } from "../archive/docker-archive.ts";

/** Facts about this node that `docker info` and the console show. */
export interface HostFacts {
  hostname: string;
  kernelVersion: string;
  operatingSystem: string;
  osVersion: string;
  architecture: string; // Docker's names: x86_64, aarch64
  goArch: string; // OCI names: amd64, arm64
  ncpu: number;
  memTotal: number;
  cgroupVersion: "1" | "2";
  /** The node's own addresses: what tells two nodes with one hostname apart. */
  addresses: string[];
}

/** Interfaces the engine (or another engine) makes for containers: their addresses are not the node's. */
const CONTAINER_LINK = /^(berth|veth|docker|br-|cni|flannel|cali|virbr)/;

/** Global addresses of the node's interfaces, IPv4 first. */
export function nodeAddresses(): string[] {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
    if (CONTAINER_LINK.test(name)) continue;
    for (const a of addrs ?? []) {
      if (a.internal) continue;
      if (a.family === "IPv4") v4.push(a.address);
      else if (!a.address.toLowerCase().startsWith("fe80")) v6.push(a.address);
    }
  }
  return [...v4, ...v6].slice(0, 64);
}

export async function readHostFacts(): Promise<HostFacts> {
  let prettyName = "Linux";
  let versionId = "";
  try {
    const text = await readFile("/etc/os-release", "utf8");
    const get = (k: string) => new RegExp(`^${k}="?([^"\\n]*)"?`, "m").exec(text)?.[1];
    prettyName = get("PRETTY_NAME") ?? prettyName;
    versionId = get("VERSION_ID") ?? "";
  } catch {
    // not every system has os-release; the generic name is fine
  }
  let cgroupVersion: "1" | "2" = "1";
  try {
    await readFile("/sys/fs/cgroup/cgroup.controllers", "utf8");
    cgroupVersion = "2";
  } catch {
    cgroupVersion = "1";
  }
  return {
    hostname: os.hostname(),
    kernelVersion: os.release(),
    operatingSystem: prettyName,
    osVersion: versionId,
    architecture: os.machine(),
    goArch: nodeArchitecture(),
    ncpu: os.cpus().length,
    memTotal: os.totalmem(),
    cgroupVersion,
    addresses: nodeAddresses(),
  };
}
