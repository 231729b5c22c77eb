/**
 * Registries the nodes pull from and push to, with credentials encrypted at rest
 * (server/auth/secret-box.ts). The password column holds only the sealed value,
 * bound to the registry's id; listings never carry it, and only getCredentials()
 * opens it, for the moment a pull or push needs it.
 */
import { randomUUID } from "node:crypto";
import type { SecretBox } from "../auth/secret-box.ts";
import type { PrismaClient } from "./generated/client.ts";

export interface RegistryInput {
  /** host[:port] as in image references, e.g. "registry.example.com:5000". */
  address: string;
  username?: string | null;
  /** Clear password; undefined keeps the stored one on update, null removes it. */
  password?: string | null;
  insecure?: boolean;
}

/** What may be shown to anyone allowed to see registries: no secret, only whether one is set. */
export interface RegistryView {
  id: string;
  address: string;
  username: string | null;
  hasPassword: boolean;
  insecure: boolean;
  createdAt: Date;
  updatedAt: Date;
}

const purpose = (id: string) => `registry-password:${id}`;

export class RegistryStore {
  readonly #prisma: PrismaClient;
  readonly #box: SecretBox;

  constructor(prisma: PrismaClient, box: SecretBox) {
    this.#prisma = prisma;
    this.#box = box;
  }

  /** Creates the registry, or updates the one with the same address. */
  async save(input: RegistryInput): Promise<RegistryView> {
    const address = input.address.trim();
    if (!/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:]+\](:\d{1,5})?$/.test(address)) {
      throw new TypeError(`registry address must be host[:port], got ${JSON.stringify(input.address)}`);
    }
    const existing = await this.#prisma.registry.findUnique({ where: { address }, select: { id: true } });
    const id = existing?.id ?? randomUUID();
    const passwordEncrypted = input.password === undefined ? undefined : input.password === null ? null : this.#box.seal(input.password, purpose(id));
    const row = existing
      ? await this.#prisma.registry.update({
          where: { id },
          data: {
            ...(input.username !== undefined ? { username: input.username } : {}),
            ...(passwordEncrypted !== undefined ? { passwordEncrypted } : {}),
            ...(input.insecure !== undefined ? { insecure: input.insecure } : {}),
          },
        })
      : await this.#prisma.registry.create({
          data: { id, address, username: input.username ?? null, passwordEncrypted: passwordEncrypted ?? null, insecure: input.insecure ?? false },
        });
    return toView(row);
  }

  async list(): Promise<RegistryView[]> {
    const rows = await this.#prisma.registry.findMany({ orderBy: { address: "asc" } });
    return rows.map(toView);
  }

  /**
   * The clear credentials for `address`, or null when no such registry is known.
   * @throws SecretKeyError when the stored password cannot be opened with this key.
   */
  async getCredentials(address: string): Promise<{ username: string | null; password: string | null; insecure: boolean } | null> {
    const row = await this.#prisma.registry.findUnique({ where: { address: address.trim() } });
    if (!row) return null;
    return {
      username: row.username,
      password: row.passwordEncrypted === null ? null : this.#box.open(row.passwordEncrypted, purpose(row.id)),
      insecure: row.insecure,
    };
  }

  async remove(address: string): Promise<boolean> {
    const { count } = await this.#prisma.registry.deleteMany({ where: { address: address.trim() } });
    return count > 0;
  }
}

function toView(row: {
  id: string;
  address: string;
  username: string | null;
  passwordEncrypted: string | null;
  insecure: boolean;
  createdAt: Date;
  updatedAt: Date;
}): RegistryView {
  return {
    id: row.id,
    address: row.address,
    username: row.username,
    hasPassword: row.passwordEncrypted !== null,
    insecure: row.insecure,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}
