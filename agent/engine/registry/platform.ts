/**
 * The platform this node runs images for, and the choice of an entry from an
 * image index / manifest list (after containerd's platforms.Only matcher, which
 * Docker uses): os and architecture must match; for arm a lower variant is
 * accepted when the exact one is missing (v7 runs v6 and v5 images); arm64's
 * default variant v8 also matches entries without a variant.
 */
import { arch, endianness } from "node:os";
import { notFound } from "../errors.ts";
import type { Descriptor } from "./types.ts";

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** Maps Node's process.arch to the OCI architecture (and default variant). */
export function platformFromNode(nodeArch: string = arch(), nodePlatform: string = process.platform): Platform {
  const os = nodePlatform === "win32" ? "windows" : nodePlatform;
  switch (nodeArch) {
    case "x64":
      return { os, architecture: "amd64" };
    case "arm64":
      return { os, architecture: "arm64", variant: "v8" };
    case "arm": {
      const v = (process.config.variables as Record<string, unknown>)["arm_version"];
      return { os, architecture: "arm", variant: typeof v === "string" && /^\d+$/.test(v) ? `v${v}` : "v7" };
    }
    case "ia32":
      return { os, architecture: "386" };
    case "ppc64":
      return { os, architecture: endianness() === "LE" ? "ppc64le" : "ppc64" };
    case "mipsel":
      return { os, architecture: "mipsle" };
    case "mips":
      return { os, architecture: "mips" };
    case "loong64":
      return { os, architecture: "loong64" };
    default:
      // s390x, riscv64 and others carry the same name in both worlds.
      return { os, architecture: nodeArch };
  }
}

/** Brings aliases to their canonical form (containerd's platforms.Normalize). */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase() || undefined;
  switch (architecture) {
    case "i386":
      architecture = "386";
      variant = undefined;
      break;
    case "x86_64":
    case "x86-64":
    case "amd64":
      architecture = "amd64";
      if (variant === "v1") variant = undefined;
      break;
    case "aarch64":
    case "arm64":
      architecture = "arm64";
      if (variant === "8" || variant === "v8" || variant === undefined) variant = "v8";
      break;
    case "armhf":
      architecture = "arm";
      variant = "v7";
      break;
    case "armel":
      architecture = "arm";
      variant = "v6";
      break;
    case "arm":
      if (variant === undefined || variant === "7") variant = "v7";
      else if (variant === "5" || variant === "6" || variant === "8") variant = `v${variant}`;
      break;
  }
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

/** "linux/amd64", "linux/arm64/v8". */
export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/**
 * Ranks how well `candidate` serves `want`: 0 is an exact match, higher is a
 * compatible fallback, undefined means it cannot run here.
 */
function rank(want: Platform, candidate: Platform): number | undefined {
  const w = normalizePlatform(want);
  const c = normalizePlatform(candidate);
  if (w.os !== c.os || w.architecture !== c.architecture) return undefined;
  if (w.variant === c.variant) return 0;
  if (w.architecture === "arm" && w.variant && c.variant) {
    // An armv7 host runs v6 and v5 images; prefer the closest.
    const wn = Number(w.variant.slice(1));
    const cn = Number(c.variant.slice(1));
    if (Number.isFinite(wn) && Number.isFinite(cn) && cn < wn) return wn - cn;
    return undefined;
  }
  if (w.architecture === "amd64" && c.variant === undefined) return 0;
  return undefined;
}

/**
 * Picks the manifest for `platform` from an index's entries: the best variant
 * match wins, ties go to the earlier entry (as listed by the publisher).
 * @throws EngineError(NotFound) "no matching manifest for linux/amd64 in the manifest list entries"
 */
export function selectPlatformManifest(entries: Descriptor[], platform: Platform): Descriptor {
  let best: Descriptor | undefined;
  let bestRank = Infinity;
  for (const entry of entries) {
    if (!entry.platform) continue;
    const r = rank(platform, entry.platform);
    if (r !== undefined && r < bestRank) {
      best = entry;
      bestRank = r;
    }
  }
  if (!best) throw notFound(`no matching manifest for ${formatPlatform(platform)} in the manifest list entries`);
  return best;
}
