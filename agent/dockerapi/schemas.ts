/**
 * The JSON bodies the Docker door accepts, as zod schemas, and the one place a parse failure
 * becomes Docker's error text. Docker decodes bodies with Go's encoding/json into typed
 * structs: a wrong type is refused ("json: cannot unmarshal string into Go struct field
 * HostConfig.HostConfig.Memory of type int64"), `null` leaves a field at its zero value and
 * unknown fields are ignored. So every field here is nullish, every object loose, and each
 * schema carries the Go struct and type names its message needs (goStruct, goType).
 */
import { z } from "zod";
import { invalidArgument } from "../engine/errors.ts";

interface GoMeta {
  /** A struct's Go name ("HostConfig"); `value` is its package-qualified name for a wrong root value. */
  struct?: string;
  value?: string;
  /** The Go type a leaf decodes into ("int64", "[]string", "container.NetworkMode"). */
  type?: string;
}
const goMeta = z.registry<GoMeta>();

type Shape = Record<string, z.ZodType>;

/** A Go struct: unknown fields pass through (Docker ignores them). */
function goObject<S extends Shape>(name: string, shape: S, value?: string) {
  const s = z.looseObject(shape);
  s.register(goMeta, { struct: name, value: value ?? name });
  return s;
}

/** A Go struct in a field: `null` is its zero value. */
function goStruct<S extends Shape>(name: string, shape: S, value?: string) {
  return goObject(name, shape, value).nullish();
}

function leaf<T extends z.ZodType>(schema: T, type: string) {
  goMeta.add(schema, { type });
  return schema.nullish();
}

const str = (type = "string") => leaf(z.string(), type);
const bool = (type = "bool") => leaf(z.boolean(), type);
/** Go's integer types: a fraction or a string is refused as Go refuses it. */
const int = (type = "int64") => leaf(z.number().int(), type);
const uint = (type = "uint64") => leaf(z.number().int().nonnegative(), type);
const strings = (type = "[]string") => leaf(z.array(z.string()), type);
/** map[string]string: a wrong value is named by the map's field, "of type string". */
const stringMap = () =>
  z
    .record(
      z.string(),
      z
        .string()
        .register(goMeta, { type: "string" })
        .nullable()
        .transform((v) => v ?? ""),
    )
    .nullish();
/** map[string]struct{} (ExposedPorts, Volumes): the values are empty objects, their content ignored. */
const setMap = () => z.record(z.string(), goStruct("struct {}", {})).nullish();
/** strslice.StrSlice (Cmd, Entrypoint, CapAdd): a string or an array of strings; Go names its fallback, string. */
const strSlice = () => leaf(z.union([z.string(), z.array(z.string())]), "string");

const HealthConfig = goStruct(
  "HealthConfig",
  {
    Test: strings(),
    Interval: int("time.Duration"),
    Timeout: int("time.Duration"),
    StartPeriod: int("time.Duration"),
    StartInterval: int("time.Duration"),
    Retries: int("int"),
  },
  "*container.HealthConfig",
);

/** container.Config: its fields sit at the top of a create body (Go embeds it in ContainerConfigWrapper). */
function configShape() {
  return {
    Hostname: str(),
    Domainname: str(),
    User: str(),
    AttachStdin: bool(),
    AttachStdout: bool(),
    AttachStderr: bool(),
    ExposedPorts: setMap(),
    Tty: bool(),
    OpenStdin: bool(),
    StdinOnce: bool(),
    Env: strings(),
    Cmd: strSlice(),
    Healthcheck: HealthConfig,
    ArgsEscaped: bool(),
    Image: str(),
    Volumes: setMap(),
    WorkingDir: str(),
    Entrypoint: strSlice(),
    NetworkDisabled: bool(),
    MacAddress: str(),
    OnBuild: strings(),
    Labels: stringMap(),
    StopSignal: str(),
    StopTimeout: int("int"),
    Shell: strSlice(),
  };
}

const RestartPolicy = goStruct("RestartPolicy", { Name: str(), MaximumRetryCount: int("int") }, "container.RestartPolicy");

const HostConfig = goStruct(
  "HostConfig",
  {
    Binds: strings(),
    ContainerIDFile: str(),
    LogConfig: goStruct("LogConfig", { Type: str(), Config: stringMap() }, "container.LogConfig"),
    NetworkMode: str("container.NetworkMode"),
    PortBindings: z.record(z.string(), z.array(goObject("PortBinding", { HostIp: str(), HostPort: str() }, "nat.PortBinding")).nullish()).nullish(),
    RestartPolicy,
    AutoRemove: bool(),
    VolumeDriver: str(),
    VolumesFrom: strings(),
    CapAdd: strSlice(),
    CapDrop: strSlice(),
    CgroupnsMode: str("container.CgroupnsMode"),
    Dns: strings(),
    DnsOptions: strings(),
    DnsSearch: strings(),
    ExtraHosts: strings(),
    GroupAdd: strings(),
    IpcMode: str("container.IpcMode"),
    Cgroup: str("container.CgroupSpec"),
    Links: strings(),
    OomScoreAdj: int("int"),
    PidMode: str("container.PidMode"),
    Privileged: bool(),
    PublishAllPorts: bool(),
    ReadonlyRootfs: bool(),
    SecurityOpt: strings(),
    StorageOpt: stringMap(),
    Tmpfs: stringMap(),
    UTSMode: str("container.UTSMode"),
    UsernsMode: str("container.UsernsMode"),
    ShmSize: int(),
    Sysctls: stringMap(),
    Runtime: str(),
    ConsoleSize: leaf(z.array(z.number().int().nonnegative()), "[2]uint"),
    Isolation: str("container.Isolation"),
    // container.Resources, embedded: Go reports its fields as HostConfig's.
    CpuShares: int(),
    Memory: int(),
    NanoCpus: int(),
    CgroupParent: str(),
    BlkioWeight: uint("uint16"),
    CpuPeriod: int(),
    CpuQuota: int(),
    CpuRealtimePeriod: int(),
    CpuRealtimeRuntime: int(),
    CpusetCpus: str(),
    CpusetMems: str(),
    Devices: z.array(goObject("DeviceMapping", { PathOnHost: str(), PathInContainer: str(), CgroupPermissions: str() })).nullish(),
    DeviceCgroupRules: strings(),
    DeviceRequests: leaf(z.array(z.unknown()), "[]container.DeviceRequest"),
    KernelMemory: int(),
    KernelMemoryTCP: int(),
    MemoryReservation: int(),
    MemorySwap: int(),
    MemorySwappiness: int(),
    OomKillDisable: bool(),
    PidsLimit: int(),
    Ulimits: leaf(z.array(z.unknown()), "[]*units.Ulimit"),
    CpuCount: int(),
    CpuPercent: int(),
    Mounts: z
      .array(goObject("Mount", { Type: str("mount.Type"), Source: str(), Target: str(), ReadOnly: bool(), Consistency: str("mount.Consistency") }))
      .nullish(),
    MaskedPaths: strings(),
    ReadonlyPaths: strings(),
    Init: bool(),
    // Not part of Docker's HostConfig since 1.25, but the type Berth refuses it by (UNSUPPORTED_HOST_CONFIG).
    Capabilities: strings(),
  },
  "*container.HostConfig",
);

const EndpointIPAMConfig = goStruct("EndpointIPAMConfig", { IPv4Address: str(), IPv6Address: str(), LinkLocalIPs: strings() }, "*network.EndpointIPAMConfig");

const EndpointSettings = goStruct(
  "EndpointSettings",
  {
    IPAMConfig: EndpointIPAMConfig,
    Links: strings(),
    Aliases: strings(),
    DriverOpts: stringMap(),
    MacAddress: str(),
  },
  "*network.EndpointSettings",
);

/** POST /containers/create (runconfig.ContainerConfigWrapper: Config embedded, HostConfig, NetworkingConfig). */
export const CreateBodySchema = goStruct(
  "ContainerConfigWrapper",
  {
    ...configShape(),
    HostConfig,
    NetworkingConfig: goStruct("NetworkingConfig", { EndpointsConfig: z.record(z.string(), EndpointSettings).nullish() }, "*network.NetworkingConfig"),
  },
  "runconfig.ContainerConfigWrapper",
);
export type DockerCreateBody = NonNullable<z.infer<typeof CreateBodySchema>>;
export type DockerHostConfig = NonNullable<DockerCreateBody["HostConfig"]>;
export type DockerEndpointSettings = NonNullable<z.infer<typeof EndpointSettings>>;

/** POST /containers/{id}/update (container.UpdateConfig: Resources embedded, RestartPolicy). */
export const UpdateBodySchema = goStruct(
  "UpdateConfig",
  {
    Memory: int(),
    MemorySwap: int(),
    NanoCpus: int(),
    CpuShares: int(),
    CpuQuota: int(),
    CpuPeriod: int(),
    CpusetCpus: str(),
    PidsLimit: int(),
    RestartPolicy,
    BlkioWeight: uint("uint16"),
    CpusetMems: str(),
    MemoryReservation: int(),
    KernelMemory: int(),
    CpuRealtimePeriod: int(),
    CpuRealtimeRuntime: int(),
  },
  "container.UpdateConfig",
);

/** POST /containers/{id}/exec. */
export const ExecCreateBodySchema = goStruct(
  "ExecConfig",
  {
    User: str(),
    Privileged: bool(),
    Tty: bool(),
    ConsoleSize: leaf(z.array(z.number().int().nonnegative()), "[2]uint"),
    AttachStdin: bool(),
    AttachStderr: bool(),
    AttachStdout: bool(),
    Detach: bool(),
    DetachKeys: str(),
    Env: strings(),
    WorkingDir: str(),
    Cmd: strings(),
  },
  "types.ExecConfig",
);

/** POST /exec/{id}/start. */
export const ExecStartBodySchema = goStruct(
  "ExecStartCheck",
  { Detach: bool(), Tty: bool(), ConsoleSize: leaf(z.array(z.number().int().nonnegative()), "*[2]uint") },
  "types.ExecStartCheck",
);

/** POST /commit: the body is a container.Config, decoded by Docker through the create wrapper. */
export const CommitBodySchema = goStruct("ContainerConfigWrapper", configShape(), "runconfig.ContainerConfigWrapper");

/** POST /networks/create. */
export const NetworkCreateBodySchema = goStruct(
  "NetworkCreateRequest",
  {
    Name: str(),
    CheckDuplicate: bool(),
    Driver: str(),
    Scope: str(),
    EnableIPv6: bool(),
    IPAM: goStruct("IPAM", {
      Driver: str(),
      Options: stringMap(),
      Config: z.array(goObject("IPAMConfig", { Subnet: str(), IPRange: str(), Gateway: str(), AuxiliaryAddresses: stringMap() })).nullish(),
    }),
    Internal: bool(),
    Attachable: bool(),
    Ingress: bool(),
    Options: stringMap(),
    Labels: stringMap(),
  },
  "types.NetworkCreateRequest",
);

/** POST /networks/{id}/connect. */
export const NetworkConnectBodySchema = goStruct("NetworkConnect", { Container: str(), EndpointConfig: EndpointSettings }, "types.NetworkConnect");

/** POST /networks/{id}/disconnect. */
export const NetworkDisconnectBodySchema = goStruct("NetworkDisconnect", { Container: str(), Force: bool() }, "types.NetworkDisconnect");

/** POST /volumes/create. */
export const VolumeCreateBodySchema = goStruct(
  "VolumeCreateBody",
  { Name: str(), Driver: str(), DriverOpts: stringMap(), Labels: stringMap() },
  "volume.VolumeCreateBody",
);

/** types.AuthConfig: POST /auth, and the X-Registry-Auth header of pull and push. */
export const AuthConfigSchema = goStruct(
  "AuthConfig",
  { username: str(), password: str(), auth: str(), email: str(), serveraddress: str(), identitytoken: str(), registrytoken: str() },
  "types.AuthConfig",
);

/** The JSON query parameters of POST /build. */
/** map[string]*string: a null value is an argument without a value (taken from the environment). */
export const BuildArgsSchema = z.record(z.string(), z.string().register(goMeta, { type: "*string" }).nullable()).nullish();
export const BuildLabelsSchema = stringMap();
export const BuildCacheFromSchema = strings();

/**
 * Parses `value` with `schema`; a failure becomes an InvalidArgument (400) with Docker's text.
 * The single mapping from a ZodError to what a Docker client reads in `{"message": ...}`.
 */
export function parseDockerBody<S extends z.ZodType>(schema: S, value: unknown): NonNullable<z.infer<S>> {
  const r = schema.safeParse(value);
  if (!r.success) throw invalidArgument(dockerMessage(schema, value, r.error));
  return (r.data ?? {}) as NonNullable<z.infer<S>>;
}

/** Go's kind names for a JSON value in "cannot unmarshal <kind>". */
function jsonKind(v: unknown): string {
  if (Array.isArray(v)) return "array";
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number") return Number.isInteger(v) ? "number" : `number ${v}`;
  if (v === null) return "null";
  return typeof v; // "string", "object"
}

/** Strips the wrappers that do not change a value's Go type (nullish, pipes). */
function unwrap(s: z.ZodType): z.ZodType {
  for (;;) {
    const def = s._zod.def as { type: string; innerType?: z.ZodType; in?: z.ZodType };
    if ((def.type === "optional" || def.type === "nullable" || def.type === "default") && def.innerType) s = def.innerType;
    else if (def.type === "pipe" && def.in) s = def.in;
    else return s;
  }
}

/** A ZodError's first issue in Go's words, found by walking the schema and the value along its path. */
export function dockerMessage(root: z.ZodType, value: unknown, error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid request body";
  if (issue.code === "custom") return issue.message;
  let schema = unwrap(root);
  let v: unknown = value;
  let struct = goMeta.get(schema)?.struct ?? "";
  const fields: string[] = [];
  for (const key of issue.path) {
    const def = schema._zod.def as { type: string; shape?: Shape; valueType?: z.ZodType; element?: z.ZodType };
    if (def.type === "object" && def.shape && typeof key === "string") {
      struct = goMeta.get(schema)?.struct ?? struct;
      const next = def.shape[key];
      if (!next) break;
      fields.push(key);
      schema = unwrap(next);
    } else if (def.type === "record" && def.valueType) schema = unwrap(def.valueType);
    else if (def.type === "array" && def.element) schema = unwrap(def.element);
    else break;
    v = v !== null && typeof v === "object" ? (v as Record<string | number, unknown>)[key as string | number] : undefined;
  }
  const meta = goMeta.get(schema);
  const type = meta?.type ?? meta?.value ?? "";
  if (fields.length === 0) return `json: cannot unmarshal ${jsonKind(v)} into Go value of type ${type}`;
  return `json: cannot unmarshal ${jsonKind(v)} into Go struct field ${struct}.${fields.join(".")} of type ${type}`;
}
