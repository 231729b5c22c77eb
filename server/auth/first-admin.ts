/**
 * The first start of a console with an empty users table: make one admin with a
 * random password, for the operator to read once from the console's output and
 * change at the first login (mustChangePassword). Runs at every start and does
 * nothing once any user exists; concurrent starts (replicas) serialise on a
 * transaction-scoped advisory lock, so exactly one admin is made.
 */
import { randomBytes } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PrismaClient } from "../db/generated/client.ts";
import { recordAudit } from "../db/audit.ts";
import { normalizeEmail } from "./email.ts";
import { hashPassword } from "./password.ts";

export const DEFAULT_FIRST_ADMIN_EMAIL = "admin@berth.local";
/** pg_advisory_xact_lock key: "berthadm" as an int64. */
const LOCK_KEY = "7090199032657699949";

export type FirstAdminResult =
  | { created: false }
  | {
      created: true;
      userId: string;
      email: string;
      /** The generated password, in clear: print it once, it is stored only hashed. */
      password: string;
    };

export async function createFirstAdmin(prisma: PrismaClient, options: { email?: string; name?: string } = {}): Promise<FirstAdminResult> {
  const email = normalizeEmail(options.email ?? DEFAULT_FIRST_ADMIN_EMAIL);
  if (!/^[^\s@]+@[^\s@]+$/.test(email)) throw new TypeError(`first admin email is not an email address: ${JSON.stringify(email)}`);
  // Hash before the transaction: scrypt takes a while and needs no lock.
  const password = randomBytes(18).toString("base64url");
  const passwordHash = await hashPassword(password);
  const result = await prisma.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_advisory_xact_lock(${LOCK_KEY}::bigint)`;
    if ((await tx.user.count()) > 0) return null;
    return tx.user.create({
      data: { email, name: options.name ?? "Administrator", passwordHash, role: "admin", mustChangePassword: true },
      select: { id: true, email: true },
    });
  });
  if (!result) return { created: false };
  await recordAudit(prisma, {
    actorLabel: "system",
    action: "user.create",
    outcome: "success",
    details: { userId: result.id, email: result.email, role: "admin", reason: "first start" },
  });
  return { created: true, userId: result.id, email: result.email, password };
}

/** The lines the console prints after creating the first admin. */
export function firstAdminMessage(r: Extract<FirstAdminResult, { created: true }>, url?: string): string {
  return [
    "Berth: first start, created the administrator account.",
    `  email:    ${r.email}`,
    `  password: ${r.password}`,
    `Log in${url ? ` at ${url}` : ""} and change the password; it is shown only this once.`,
  ].join("\n");
}

/**
 * The first admin's login is also kept in this 0600 file of the console's data directory until
 * that admin changes the password, so that `bin/berth-up` can show it again to the person who
 * set the machine up (and never once it no longer works). Line 1: user id; then the message.
 */
export const FIRST_ADMIN_FILE = "first-admin-login";

export async function keepFirstAdminLogin(dataDir: string, r: Extract<FirstAdminResult, { created: true }>, url: string): Promise<void> {
  await writeFile(join(dataDir, FIRST_ADMIN_FILE), `${r.userId}\n${firstAdminMessage(r, url)}\n`, { mode: 0o600 });
}

/** Removes the kept login once it is no longer valid: `userId` changed its password (or, without it, whoever it was). */
export async function forgetFirstAdminLogin(dataDir: string, prisma: PrismaClient, userId?: string): Promise<void> {
  const file = join(dataDir, FIRST_ADMIN_FILE);
  let owner: string;
  try {
    owner = (await readFile(file, "utf8")).split("\n", 1)[0] ?? "";
  } catch (e) {
    // Only "no such file" means there is nothing to forget: a password kept on disk must not outlive its use unheard.
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return;
    throw e;
  }
  if (userId !== undefined && owner !== userId) return;
  const user = await prisma.user.findUnique({ where: { id: owner }, select: { mustChangePassword: true } });
  if (!user?.mustChangePassword) await rm(file, { force: true });
}
