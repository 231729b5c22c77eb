/**
 * Password hashing for console users: scrypt (memory-hard, node:crypto) with a
 * random 16-byte salt, stored as a self-describing string so the cost can be raised
 * later without invalidating existing hashes:
 *
 *   $scrypt$ln=16,r=8,p=1$<salt base64>$<hash base64>
 *
 * ln is log2(N). The default (N=2^16, r=8, p=1) uses 64 MiB and about 0.1–0.2 s per
 * hash on one core; verifyPassword() compares in constant time and accepts any
 * stored cost within sane bounds, and needsRehash() says when a hash is weaker than
 * the current default (rehash on the next successful login).
 */
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from "node:crypto";

export interface ScryptCost {
  /** log2 of N, the CPU/memory cost. */
  ln: number;
  r: number;
  p: number;
}

export const DEFAULT_COST: ScryptCost = { ln: 16, r: 8, p: 1 };
/** The weakest cost verifyPassword() accepts (N=2^15, as OWASP's floor). */
const MIN_LN = 15;
/** Refuse stored parameters that would make one verification a denial of service. */
const MAX_LN = 20;
const MAX_R = 32;
const MAX_P = 16;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
/** Longer inputs are refused: a hash is not a place to stream megabytes through. */
export const MAX_PASSWORD_BYTES = 1024;

function scrypt(password: string, salt: Buffer, cost: ScryptCost): Promise<Buffer> {
  const N = 2 ** cost.ln;
  const options: ScryptOptions = { N, r: cost.r, p: cost.p, maxmem: 256 * N * cost.r + 1024 * 1024 };
  return new Promise((resolve, reject) => {
    scryptCb(password.normalize("NFC"), salt, KEY_BYTES, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function checkPasswordInput(password: string): void {
  if (typeof password !== "string" || password.length === 0) throw new TypeError("password must be a non-empty string");
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) throw new RangeError(`password is longer than ${MAX_PASSWORD_BYTES} bytes`);
}

/** Hashes a password for storage. @throws TypeError/RangeError for an empty or over-long password. */
export async function hashPassword(password: string, cost: ScryptCost = DEFAULT_COST): Promise<string> {
  checkPasswordInput(password);
  if (cost.ln < MIN_LN || cost.ln > MAX_LN) throw new RangeError(`scrypt ln must be within ${MIN_LN}..${MAX_LN}`);
  const salt = randomBytes(SALT_BYTES);
  const key = await scrypt(password, salt, cost);
  return `$scrypt$ln=${cost.ln},r=${cost.r},p=${cost.p}$${salt.toString("base64")}$${key.toString("base64")}`;
}

interface ParsedHash {
  cost: ScryptCost;
  salt: Buffer;
  key: Buffer;
}

function parseHash(stored: string): ParsedHash | null {
  const m = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/.exec(stored);
  if (!m) return null;
  const cost = { ln: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (cost.ln < MIN_LN || cost.ln > MAX_LN || cost.r < 1 || cost.r > MAX_R || cost.p < 1 || cost.p > MAX_P) return null;
  const salt = Buffer.from(m[4]!, "base64");
  const key = Buffer.from(m[5]!, "base64");
  if (salt.length < 16 || key.length < 16 || key.length > 64) return null;
  return { cost, salt, key };
}

/**
 * True when `password` matches `stored`. A malformed or out-of-bounds stored hash
 * (or a null one, for users without a password) verifies as false; so does a
 * password over MAX_PASSWORD_BYTES.
 */
export async function verifyPassword(password: string, stored: string | null | undefined): Promise<boolean> {
  if (typeof password !== "string" || password.length === 0 || Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return false;
  const parsed = stored ? parseHash(stored) : null;
  if (!parsed) return false;
  const key = await scrypt(password, parsed.salt, parsed.cost);
  return key.length === parsed.key.length && timingSafeEqual(key, parsed.key);
}

/** True when `stored` was made with weaker parameters than `cost` (or cannot be read). */
export function needsRehash(stored: string, cost: ScryptCost = DEFAULT_COST): boolean {
  const parsed = parseHash(stored);
  if (!parsed) return true;
  return parsed.cost.ln < cost.ln || parsed.cost.r < cost.r || parsed.cost.p < cost.p;
}

/**
 * Spends about the time of one verification, for logins with an unknown email, so
 * that response time does not tell which emails exist.
 */
let dummyHash: Promise<string> | undefined;
export async function verifyAgainstDummy(password: string): Promise<false> {
  dummyHash ??= hashPassword(randomBytes(16).toString("hex"));
  await verifyPassword(password || "x", await dummyHash);
  return false;
}
