/**
 * Encryption at rest for secrets the console must be able to read back (registry
 * passwords): AES-256-GCM with a key given to the console in BERTH_SECRET_KEY.
 *
 * The key is 32 bytes, written as 64 hex characters or as base64/base64url
 * (`openssl rand -hex 32` makes one). A sealed value reads
 *
 *   v1.<key id>.<iv>.<ciphertext>.<tag>        (base64url parts)
 *
 * where the key id is the first 8 hex digits of SHA-256(key): opening a value with
 * another key fails with a message that says so instead of a bare "auth tag" error.
 * Each value is bound to a purpose string (AES-GCM additional data, e.g.
 * "registry-password:<registry address>") so a sealed value cannot be moved to
 * another row or column and still open.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";

export const SECRET_KEY_ENV = "BERTH_SECRET_KEY";

export class SecretKeyError extends Error {
  override name = "SecretKeyError";
}

/** Parses a 32-byte key from hex or base64. @throws SecretKeyError naming what is wrong. */
export function parseSecretKey(text: string): Buffer {
  const s = text.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(s)) key = Buffer.from(s, "hex");
  else if (/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(s)) key = Buffer.from(s.replace(/-/g, "+").replace(/_/g, "/"), "base64");
  if (!key || key.length !== 32) {
    throw new SecretKeyError(`${SECRET_KEY_ENV} must be 32 bytes written as 64 hex characters or base64 (make one with: openssl rand -hex 32)`);
  }
  return key;
}

/**
 * Reads the key from the environment.
 * @throws SecretKeyError when BERTH_SECRET_KEY is missing or malformed.
 */
export function secretKeyFromEnv(env: Record<string, string | undefined> = process.env): Buffer {
  const value = env[SECRET_KEY_ENV];
  if (!value) {
    throw new SecretKeyError(
      `${SECRET_KEY_ENV} is not set: the console needs it to encrypt registry credentials at rest. ` +
        `Generate one with \`openssl rand -hex 32\`, keep it with your backups (without it stored credentials cannot be read), and start the console with ${SECRET_KEY_ENV}=<key>.`,
    );
  }
  return parseSecretKey(value);
}

const VERSION = "v1";
const IV_BYTES = 12;

export class SecretBox {
  readonly #key: Buffer;
  /** First 8 hex digits of SHA-256(key): names the key without revealing it. */
  readonly keyId: string;

  constructor(key: Buffer) {
    if (key.length !== 32) throw new SecretKeyError("the secret key must be exactly 32 bytes");
    this.#key = Buffer.from(key);
    this.keyId = createHash("sha256").update(key).digest("hex").slice(0, 8);
  }

  /** Encrypts `plaintext` for `purpose`; a new random IV each time. */
  seal(plaintext: string, purpose: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv);
    cipher.setAAD(Buffer.from(purpose, "utf8"));
    const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [VERSION, this.keyId, iv.toString("base64url"), ct.toString("base64url"), tag.toString("base64url")].join(".");
  }

  /**
   * Decrypts a value made by seal() with the same key and purpose.
   * @throws SecretKeyError when the value was sealed with another key, for another
   *   purpose, or was altered.
   */
  open(sealed: string, purpose: string): string {
    const parts = sealed.split(".");
    if (parts.length !== 5 || parts[0] !== VERSION) throw new SecretKeyError("not a sealed secret (expected v1.<key id>.<iv>.<ciphertext>.<tag>)");
    const [, keyId, ivText, ctText, tagText] = parts as [string, string, string, string, string];
    if (keyId !== this.keyId) {
      throw new SecretKeyError(`this secret was sealed with another ${SECRET_KEY_ENV} (key id ${keyId}, the console has ${this.keyId})`);
    }
    const decipher = createDecipheriv("aes-256-gcm", this.#key, Buffer.from(ivText, "base64url"));
    decipher.setAAD(Buffer.from(purpose, "utf8"));
    decipher.setAuthTag(Buffer.from(tagText, "base64url"));
    try {
      return Buffer.concat([decipher.update(Buffer.from(ctText, "base64url")), decipher.final()]).toString("utf8");
    } catch (cause) {
      throw new SecretKeyError("a sealed secret failed authentication: it was altered or belongs to another record", { cause });
    }
  }
}
