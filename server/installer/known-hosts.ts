/**
 * Pinned SSH host keys (table ssh_hosts), one per host:port, as the admin confirmed them
 * on first contact. A pin changes only through pin() with the new fingerprint, which the
 * console calls after the admin confirmed it again: the installer itself never re-pins.
 *
 * SSH credentials are kept only when the admin asks (remember()), sealed with the
 * console's SecretBox and bound to the row; they never appear in a listing.
 */
import type { SecretBox } from "../auth/secret-box.ts";
import type { PrismaClient } from "../db/generated/client.ts";
import { normalizeHostFingerprint, type HostKey } from "./host-key.ts";
import type { SshCredentials } from "./ssh-session.ts";

export interface PinnedHost {
  id: string;
  host: string;
  port: number;
  hostKey: HostKey;
  username: string | null;
  nodeId: string | null;
  installPrefix: string;
  hasCredentials: boolean;
  createdAt: Date;
  updatedAt: Date;
}

const purpose = (id: string) => `ssh-credentials:${id}`;

function normalizeHost(host: string): string {
  const h = host.trim().toLowerCase();
  if (!h || /\s/.test(h)) throw new TypeError(`not a host name or address: ${JSON.stringify(host)}`);
  return h;
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`SSH port must be 1..65535, got ${port}`);
  return port;
}

export class KnownHosts {
  readonly #prisma: PrismaClient;
  readonly #box: SecretBox | undefined;

  /** @param box needed only to keep or read credentials. */
  constructor(prisma: PrismaClient, box?: SecretBox) {
    this.#prisma = prisma;
    this.#box = box;
  }

  async get(host: string, port = 22): Promise<PinnedHost | null> {
    const row = await this.#prisma.sshHost.findUnique({ where: { host_port: { host: normalizeHost(host), port: checkPort(port) } } });
    return row ? toView(row) : null;
  }

  /** The fingerprint to pass as SshTarget.hostKeyFingerprint (null on first contact). */
  async fingerprint(host: string, port = 22): Promise<string | null> {
    return (await this.get(host, port))?.hostKey.fingerprint ?? null;
  }

  /** Pins the key the admin confirmed (first contact, or a deliberate re-pin after a host was reinstalled). */
  async pin(host: string, port: number, key: HostKey): Promise<PinnedHost> {
    const h = normalizeHost(host);
    const fingerprint = normalizeHostFingerprint(key.fingerprint);
    const row = await this.#prisma.sshHost.upsert({
      where: { host_port: { host: h, port: checkPort(port) } },
      create: { host: h, port, hostKeyAlgorithm: key.algorithm, hostKeyFingerprint: fingerprint },
      update: { hostKeyAlgorithm: key.algorithm, hostKeyFingerprint: fingerprint },
    });
    return toView(row);
  }

  /**
   * Records what an install established: the node, the login user, the prefix, and the
   * credentials if the admin asked to keep them (null forgets kept ones; undefined leaves them).
   * @throws Error when the host is not pinned, or credentials are given without a SecretBox.
   */
  async remember(
    host: string,
    port: number,
    info: { nodeId?: string | null; username?: string; installPrefix?: string; credentials?: SshCredentials | null },
  ): Promise<PinnedHost> {
    const where = { host_port: { host: normalizeHost(host), port: checkPort(port) } };
    const row = await this.#prisma.sshHost.findUnique({ where, select: { id: true } });
    if (!row) throw new Error(`${host}:${port} has no pinned host key`);
    let credentialsSealed: string | null | undefined;
    if (info.credentials === null) credentialsSealed = null;
    else if (info.credentials !== undefined) {
      if (!this.#box) throw new Error("keeping SSH credentials needs the console's secret key (SecretBox)");
      const c = info.credentials;
      const kept: SshCredentials = {};
      for (const k of ["password", "privateKey", "passphrase", "sudoPassword"] as const) if (c[k] !== undefined) kept[k] = c[k];
      credentialsSealed = this.#box.seal(JSON.stringify(kept), purpose(row.id));
    }
    const updated = await this.#prisma.sshHost.update({
      where,
      data: {
        ...(info.nodeId !== undefined ? { nodeId: info.nodeId } : {}),
        ...(info.username !== undefined ? { username: info.username } : {}),
        ...(info.installPrefix !== undefined ? { installPrefix: info.installPrefix } : {}),
        ...(credentialsSealed !== undefined ? { credentialsSealed } : {}),
      },
    });
    return toView(updated);
  }

  /**
   * The kept credentials, or null when none are kept.
   * @throws SecretKeyError when they cannot be opened with the console's key.
   */
  async credentials(host: string, port = 22): Promise<SshCredentials | null> {
    const row = await this.#prisma.sshHost.findUnique({ where: { host_port: { host: normalizeHost(host), port: checkPort(port) } } });
    if (!row?.credentialsSealed) return null;
    if (!this.#box) throw new Error("reading kept SSH credentials needs the console's secret key (SecretBox)");
    return JSON.parse(this.#box.open(row.credentialsSealed, purpose(row.id))) as SshCredentials;
  }

  async byNode(nodeId: string): Promise<PinnedHost[]> {
    const rows = await this.#prisma.sshHost.findMany({ where: { nodeId }, orderBy: { host: "asc" } });
    return rows.map(toView);
  }

  async list(): Promise<PinnedHost[]> {
    const rows = await this.#prisma.sshHost.findMany({ orderBy: [{ host: "asc" }, { port: "asc" }] });
    return rows.map(toView);
  }

  /** Forgets the pin and anything kept with it. */
  async forget(host: string, port = 22): Promise<boolean> {
    const { count } = await this.#prisma.sshHost.deleteMany({ where: { host: normalizeHost(host), port: checkPort(port) } });
    return count > 0;
  }
}

function toView(row: {
  id: string;
  host: string;
  port: number;
  hostKeyAlgorithm: string;
  hostKeyFingerprint: string;
  username: string | null;
  credentialsSealed: string | null;
  nodeId: string | null;
  installPrefix: string;
  createdAt: Date;
  updatedAt: Date;
}): PinnedHost {
  return {
    id: row.id,
    host: row.host,
    port: row.port,
    hostKey: { algorithm: row.hostKeyAlgorithm, fingerprint: row.hostKeyFingerprint },
    username: row.username,
    nodeId: row.nodeId,
    installPrefix: row.installPrefix,
    hasCredentials: row.credentialsSealed !== null,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}
