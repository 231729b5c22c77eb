/**
 * Email + password login (what next-auth's credentials provider calls). Unknown
 * emails cost the same scrypt as known ones, disabled users and users without a
 * password are refused like a wrong password, and a hash made with weaker
 * parameters than today's is replaced on success.
 */
import type { PrismaClient } from "../db/generated/client.ts";
import type { SessionUser } from "./sessions.ts";
import { normalizeEmail } from "./email.ts";
import { hashPassword, needsRehash, verifyAgainstDummy, verifyPassword } from "./password.ts";

/** The user when email and password match an enabled account, else null (one answer for every refusal). */
export async function authenticatePassword(prisma: PrismaClient, email: string, password: string): Promise<SessionUser | null> {
  const user = await prisma.user.findUnique({
    where: { email: normalizeEmail(email) },
    select: { id: true, email: true, name: true, role: true, disabled: true, mustChangePassword: true, passwordHash: true, totpEnabledAt: true },
  });
  if (!user || !user.passwordHash) return verifyAgainstDummy(password).then(() => null);
  if (!(await verifyPassword(password, user.passwordHash)) || user.disabled) return null;
  if (needsRehash(user.passwordHash)) {
    await prisma.user.update({ where: { id: user.id }, data: { passwordHash: await hashPassword(password) } });
  }
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    role: user.role,
    mustChangePassword: user.mustChangePassword,
    twoFactor: user.totpEnabledAt !== null,
  };
}
