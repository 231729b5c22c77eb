/**
 * The packages an agent needs on its host, per package manager: one list for the SSH installer
 * and the manual install script (bin/berth-up reads scripts/debian-packages.txt, the same set).
 * tini is `docker run --init`'s docker-init; aardvark-dns answers names on user networks.
 */
import type { PackageManager } from "./preflight.ts";

export const AGENT_PACKAGES: Record<PackageManager, readonly string[]> = {
  apt: ["runc", "conmon", "iptables", "iproute2", "attr", "ca-certificates", "tini", "aardvark-dns"],
  dnf: ["runc", "conmon", "iptables", "iproute", "attr", "ca-certificates", "tini", "aardvark-dns"],
};
