import type { ContainerOptions, MountSpec } from "../engine/containers/container-record.ts";
import { parseLink } from "../engine/containers/links.ts";

/**
 * The HostConfig fields of `docker inspect` beyond those containers-routes.ts builds from
 * what the engine applies: every key Docker Engine 20.10 returns is present, with the
 * create request's value when one was given and Docker's zero value otherwise (clients
 * such as compose read them and treat an absent key as a change). Fields Berth refuses
 * when set (Ulimits, OomScoreAdj, CgroupParent, UsernsMode, DeviceRequests…) or does not
 * take from the request have only their zero value here.
 */
export function hostConfigFields(o: ContainerOptions, name: string) {
  return {
    ContainerIDFile: "",
    LogConfig: { Type: o.logConfig.type, Config: o.logConfig.config },
    VolumeDriver: o.volumeDriver,
    VolumesFrom: o.volumesFrom.length ? o.volumesFrom : null,
    Dns: o.dns,
    DnsOptions: o.dnsOptions,
    DnsSearch: o.dnsSearch,
    ExtraHosts: o.extraHosts.length ? o.extraHosts : null,
    GroupAdd: o.groupAdd.length ? o.groupAdd : null,
    Cgroup: "",
    // Docker shows them as it resolved them: "/linked:/this/alias".
    Links: o.links.length
      ? o.links.map((l) => {
          const { name: linked, alias } = parseLink(l);
          return `/${linked}:/${name}/${alias}`;
        })
      : null,
    OomScoreAdj: 0,
    UsernsMode: "",
    ...(Object.keys(o.tmpfs).length ? { Tmpfs: o.tmpfs } : {}),
    Runtime: o.runtime,
    ConsoleSize: o.consoleSize ? [o.consoleSize.height, o.consoleSize.width] : [0, 0],
    Isolation: o.isolation,
    CgroupParent: "",
    BlkioWeight: 0,
    BlkioWeightDevice: [],
    BlkioDeviceReadBps: [],
    BlkioDeviceWriteBps: [],
    BlkioDeviceReadIOps: [],
    BlkioDeviceWriteIOps: [],
    CpuRealtimePeriod: 0,
    CpuRealtimeRuntime: 0,
    CpusetMems: "",
    DeviceRequests: null,
    KernelMemory: 0,
    KernelMemoryTCP: 0,
    MemoryReservation: 0,
    MemorySwappiness: o.memorySwappiness ?? null,
    OomKillDisable: o.oomKillDisable,
    Ulimits: [],
    CpuCount: 0,
    CpuPercent: 0,
    IOMaximumIOps: 0,
    IOMaximumBandwidth: 0,
    // Docker leaves Init out unless the request set it.
    ...(o.init ? { Init: true } : {}),
  };
}

/** Config fields Docker returns that are the request's own (omitted when unset, as Docker's omitempty does). */
export function configFields(o: ContainerOptions) {
  return {
    AttachStdin: o.attachStdin,
    AttachStdout: o.attachStdout,
    AttachStderr: o.attachStderr,
    ...(o.stopTimeout !== undefined ? { StopTimeout: o.stopTimeout } : {}),
    ...(o.macAddress ? { MacAddress: o.macAddress } : {}),
  };
}

/**
 * Config.Volumes as Docker merges it at create: the image's VOLUMEs and the request's own
 * (`-v /path`, which the door records as anonymous volumes without a name); null when none.
 */
export function configVolumes(image: Record<string, object> | null | undefined, mounts: readonly MountSpec[]): Record<string, object> | null {
  const out: Record<string, object> = { ...(image ?? {}) };
  for (const m of mounts) if (m.type === "volume" && m.anonymous && m.source === "") out[m.destination] = {};
  return Object.keys(out).length ? out : null;
}
