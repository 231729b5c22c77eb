import { invalidArgument, notImplemented } from "../errors.ts";
import { Runtimes } from "../runtime/runtimes.ts";
import type { ContainerOptions } from "./container-record.ts";
import { jsonLogLimits } from "../monitor/json-log.ts";
import { parseLink } from "./links.ts";

/**
 * Create-time checks of the host options whose only effect Berth has is the one Docker
 * has (or that Berth keeps for inspect), with Docker's texts: a create Docker refuses is
 * refused here, before anything is made.
 */

/** Logging drivers Berth writes: Docker's default json-file, `local` (same store here) and `none`. */
export const LOG_DRIVERS = ["json-file", "local", "none"] as const;
/** Docker's other built-in drivers: known names, but Berth does not ship them. */
const DOCKER_ONLY_LOG_DRIVERS = ["syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "etwlogs", "gcplogs", "logentries"];
/** The `--log-opt` keys Docker's json-file and local drivers accept (moby `daemon/logger/jsonfilelog`, `local`). */
const LOG_OPTS: Record<(typeof LOG_DRIVERS)[number], readonly string[]> = {
  "json-file": ["max-file", "max-size", "compress", "labels", "labels-regex", "env", "env-regex", "tag"],
  local: ["max-file", "max-size", "compress"],
  none: [],
};

/** Docker's "configured logging driver does not support reading" is for these. */
export function logsReadable(o: Pick<ContainerOptions, "logConfig">): boolean {
  return o.logConfig.type !== "none";
}

/**
 * Normalizes (an empty log driver is json-file) and checks, in place.
 * @throws InvalidArgument / NotImplemented naming the option, as Docker words it
 */
export function checkHostOptions(o: ContainerOptions, runtimes: Runtimes = Runtimes.runcOnly()): void {
  if (o.logConfig.type === "") o.logConfig.type = "json-file";
  const driver = o.logConfig.type;
  if (DOCKER_ONLY_LOG_DRIVERS.includes(driver))
    throw notImplemented(`logging driver ${driver} is not supported by Berth (it writes ${LOG_DRIVERS.join(", ")})`);
  if (!(LOG_DRIVERS as readonly string[]).includes(driver)) throw invalidArgument(`error looking up logging plugin ${driver}: plugin "${driver}" not found`);
  for (const key of Object.keys(o.logConfig.config)) {
    if (!LOG_OPTS[driver as (typeof LOG_DRIVERS)[number]].includes(key)) throw invalidArgument(`unknown log opt '${key}' for ${driver} log driver`);
  }
  if (driver === "json-file" || driver === "local") jsonLogLimits(driver, o.logConfig.config);
  for (const l of o.links) parseLink(l);
  o.runtime = runtimes.resolve(o.runtime);
  if (o.isolation !== "" && o.isolation !== "default") throw invalidArgument(`Invalid isolation: "${o.isolation}" - linux only supports 'default'`);
  if (o.volumeDriver !== "" && o.volumeDriver !== "local")
    throw invalidArgument(`error looking up volume plugin ${o.volumeDriver}: plugin "${o.volumeDriver}" not found`);
  if (o.macAddress !== "" && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(o.macAddress)) throw invalidArgument(`invalid MAC address: ${o.macAddress}`);
  for (const vf of o.volumesFrom) {
    const mode = vf.includes(":") ? vf.slice(vf.lastIndexOf(":") + 1) : "";
    if (mode !== "" && mode !== "ro" && mode !== "rw") throw invalidArgument(`invalid mode: ${mode}`);
  }
}

/** "name[:ro|:rw]" → the container and whether its mounts are forced read-only or read-write. */
export function parseVolumesFrom(spec: string): { container: string; mode: "" | "ro" | "rw" } {
  const i = spec.lastIndexOf(":");
  if (i < 0) return { container: spec, mode: "" };
  return { container: spec.slice(0, i), mode: spec.slice(i + 1) as "ro" | "rw" };
}
