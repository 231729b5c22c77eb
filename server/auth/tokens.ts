/**
 * Bearer secrets the console hands out once and stores only as a hash: join tokens,
 * node credentials, session tokens. Each is 256 random bits, base64url, behind a
 * short prefix that says what it is (so a leaked one is recognisable in logs and
 * secret scanners): `bjt_` join token, `bnc_` node credential, `bst_` session.
 *
 * Because the secrets are uniformly random and long, a plain SHA-256 is the right
 * stored form (a slow KDF is for low-entropy passwords); lookups go by hash.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

export type TokenKind = "bjt" | "bnc" | "bst";

const TOKEN_BYTES = 32;
const TOKEN_RE = /^(bjt|bnc|bst)_[A-Za-z0-9_-]{43}$/;

/** A fresh random token of the given kind. */
export function generateToken(kind: TokenKind): string {
  return `${kind}_${randomBytes(TOKEN_BYTES).toString("base64url")}`;
}

/** True when `token` has the shape of a token of `kind` (checked before any lookup). */
export function isTokenOfKind(token: unknown, kind: TokenKind): token is string {
  return typeof token === "string" && TOKEN_RE.test(token) && token.startsWith(`${kind}_`);
}

/** The stored form of a token: SHA-256, lower-case hex. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/** Constant-time comparison of two hex hashes of equal length. */
export function hashesEqual(a: string, b: string): boolean {
  const ba = Buffer.from(a, "hex");
  const bb = Buffer.from(b, "hex");
  return ba.length === bb.length && ba.length > 0 && timingSafeEqual(ba, bb);
}
