import { mkdir, readFile, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "../engine/fs-util.ts";

/**
 * The node's credential on disk: `{ nodeId, credential, console, enrolledAt }` as JSON,
 * mode 0600, owned by the agent's user. Written once at enrollment (atomically: a
 * temporary file beside it, fsync, rename, fsync of the directory), deleted when the
 * console revokes the node.
 */
const CredentialFileSchema = z.object({
  nodeId: z.string().min(1),
  credential: z.string().min(16),
  console: z.string(),
  enrolledAt: z.string(),
});
export type StoredCredential = z.infer<typeof CredentialFileSchema>;

export class CredentialFileError extends Error {
  override name = "CredentialFileError";
}

/**
 * @returns the stored credential, or undefined when the file does not exist
 * @throws CredentialFileError when it exists but cannot be read or is not a credential
 *         file, or is readable by others (a leaked credential must be replaced, not used)
 */
export async function readCredential(path: string): Promise<StoredCredential | undefined> {
  let text: string;
  try {
    const st = await stat(path);
    if ((st.mode & 0o077) !== 0)
      throw new CredentialFileError(
        `${path} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it, or revoke the node and enroll it again`,
      );
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    if (e instanceof CredentialFileError) throw e;
    throw new CredentialFileError(`cannot read the node credential ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new CredentialFileError(`${path} is not a node credential file (not JSON)`);
  }
  const r = CredentialFileSchema.safeParse(json);
  if (!r.success)
    throw new CredentialFileError(
      `${path} is not a node credential file: ${r.error.issues.map((i) => i.path.join(".") || "file").join(", ")} missing or wrong`,
    );
  return r.data;
}

/** Replaces the credential file atomically with mode 0600; creates its directory (0700) if needed. */
export async function writeCredential(path: string, value: StoredCredential): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n", { mode: 0o600 });
}

export async function deleteCredential(path: string): Promise<void> {
  await rm(path, { force: true });
}
