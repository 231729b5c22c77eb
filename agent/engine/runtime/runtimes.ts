/**
 * The OCI runtimes an agent knows (runc, Debian's `runc`; crun, Debian's `crun`), which of
 * them can run containers on this host, and the one the agent runs its containers with
 * (its `--runtime` setting, runc by default). One runtime per agent: its state directory
 * and every runtime call (create under conmon, start, kill, delete…) use the same binary.
 *
 * crun 1.8 refuses a hybrid cgroup host, cgroup v1 with a cgroup v2 tree mounted at
 * /sys/fs/cgroup/unified that has controllers ("cgroups in hybrid mode not supported, drop
 * all controllers from cgroupv2"), as soon as it sets up a container's cgroups: told at
 * start, it is left out of the runtimes the agent offers, and a container asking for it
 * is refused with that reason.
 */
import { access, constants as fsConstants, readFile, statfs } from "node:fs/promises";
import { join } from "node:path";
import { invalidArgument } from "../errors.ts";

export const RUNTIME_NAMES = ["runc", "crun"] as const;
export type RuntimeName = (typeof RUNTIME_NAMES)[number];

export interface RuntimeInfo {
  name: RuntimeName;
  /** The executable (absolute), or where it was looked for. */
  path: string;
  /** Why it cannot run containers here; absent when it can. */
  unusable?: string;
}

const CGROUP_ROOT = "/sys/fs/cgroup";
const TMPFS_MAGIC = 0x01021994;
const CGROUP2_SUPER_MAGIC = 0x63677270;

/** Where each runtime is installed by its Debian package (then anywhere on PATH). */
const KNOWN_PATHS: Record<RuntimeName, string[]> = { runc: ["/usr/sbin/runc", "/usr/bin/runc"], crun: ["/usr/bin/crun", "/usr/sbin/crun"] };

/** What each runtime can do on this host. */
export async function detectRuntimes(cgroupRoot = CGROUP_ROOT): Promise<RuntimeInfo[]> {
  const hybrid = await hybridWithV2Controllers(cgroupRoot);
  const out: RuntimeInfo[] = [];
  for (const name of RUNTIME_NAMES) {
    const path = await findExecutable(name);
    if (!path) {
      out.push({ name, path: KNOWN_PATHS[name][0]!, unusable: `${name} is not installed (Debian package ${name})` });
      continue;
    }
    if (name === "crun" && hybrid)
      out.push({
        name,
        path,
        unusable:
          `crun does not support this host's cgroups: hybrid mode (cgroup v1 at ${cgroupRoot}, cgroup v2 at ${cgroupRoot}/unified ` +
          `with the controllers ${hybrid.join(", ")}); crun refuses it with "cgroups in hybrid mode not supported, drop all controllers from cgroupv2"`,
      });
    else out.push({ name, path });
  }
  return out;
}

/**
 * The runtime containers run with, and the answer for any other name a container asks for
 * (Docker's `HostConfig.Runtime`, `docker run --runtime`).
 */
export class Runtimes {
  readonly default: RuntimeInfo;

  /** @throws Error naming why when `name` cannot run containers here */
  constructor(
    readonly all: RuntimeInfo[],
    name: RuntimeName,
  ) {
    const chosen = all.find((r) => r.name === name);
    if (!chosen) throw new Error(`unknown runtime ${name} (known: ${RUNTIME_NAMES.join(", ")})`);
    if (chosen.unusable) throw new Error(`the runtime ${name} (--runtime) cannot run containers on this host: ${chosen.unusable}`);
    this.default = chosen;
  }

  /** Only runc, found on PATH: for callers without a detection (tests). */
  static runcOnly(path = "runc"): Runtimes {
    return new Runtimes([{ name: "runc", path }], "runc");
  }

  /** The runtimes `docker info` lists: those containers can be run with. */
  get offered(): RuntimeInfo[] {
    return [this.default];
  }

  /** One line per known runtime that is not offered, and why (for logs and `docker info` warnings). */
  get notOffered(): string[] {
    return this.all
      .filter((r) => r !== this.default)
      .map((r) =>
        r.unusable ? `runtime ${r.name}: ${r.unusable}` : `runtime ${r.name}: installed, but this agent runs containers with ${this.default.name} (--runtime)`,
      );
  }

  /**
   * The runtime for a container asking for `name` ("" is the default).
   * @throws InvalidArgument with Docker's text, and the reason for a runtime Berth knows
   */
  resolve(name: string): RuntimeName {
    if (name === "" || name === this.default.name) return this.default.name;
    const known = this.all.find((r) => r.name === name);
    if (!known) throw invalidArgument(`unknown or invalid runtime name: ${name}`);
    const why = known.unusable ?? `this agent runs every container with ${this.default.name} (start it with --runtime ${name} to use ${name})`;
    throw invalidArgument(`unknown or invalid runtime name: ${name}: ${why}`);
  }
}

/** The v2 controllers of a hybrid host (v1 at the root, v2 at unified/), or undefined when not hybrid or none. */
async function hybridWithV2Controllers(cgroupRoot: string): Promise<string[] | undefined> {
  try {
    if ((await statfs(cgroupRoot)).type !== TMPFS_MAGIC) return undefined;
    const unified = join(cgroupRoot, "unified");
    if ((await statfs(unified)).type !== CGROUP2_SUPER_MAGIC) return undefined;
    const controllers = (await readFile(join(unified, "cgroup.controllers"), "utf8")).trim().split(/\s+/).filter(Boolean);
    return controllers.length ? controllers : undefined;
  } catch {
    return undefined; // no unified tree: pure v1, or pure v2 (cgroup2 at the root)
  }
}

async function findExecutable(name: RuntimeName): Promise<string | undefined> {
  const dirs = (process.env.PATH ?? "").split(":").filter((d) => d.startsWith("/"));
  for (const p of [...KNOWN_PATHS[name], ...dirs.map((d) => join(d, name))]) {
    const ok = await access(p, fsConstants.X_OK).then(
      () => true,
      () => false,
    );
    if (ok) return p;
  }
  return undefined;
}
