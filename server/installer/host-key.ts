import { createHash } from "node:crypto";

/** An SSH host key as the admin sees it: `ssh-keygen -lf` prints the same fingerprint. */
export interface HostKey {
  /** The key type from the key blob: "ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa", … */
  algorithm: string;
  /** "SHA256:" + unpadded base64 of SHA-256 over the key blob. */
  fingerprint: string;
}

/** Reads the type and fingerprint of a raw public key blob (RFC 4253 §6.6: string type, then key data). */
export function hostKeyOf(blob: Buffer): HostKey {
  let algorithm = "unknown";
  if (blob.length >= 4) {
    const len = blob.readUInt32BE(0);
    if (len > 0 && len < 64 && 4 + len <= blob.length) algorithm = blob.subarray(4, 4 + len).toString("latin1");
  }
  return { algorithm, fingerprint: sha256Fingerprint(blob) };
}

export function sha256Fingerprint(blob: Buffer): string {
  return "SHA256:" + createHash("sha256").update(blob).digest("base64").replace(/=+$/, "");
}

/** Accepts what an admin may paste: with or without the "SHA256:" prefix, padded or not. */
export function normalizeHostFingerprint(text: string): string {
  const t = text
    .trim()
    .replace(/^SHA256:/i, "")
    .replace(/=+$/, "");
  if (!/^[A-Za-z0-9+/]{43}$/.test(t))
    throw new TypeError(`not a SHA256 host key fingerprint (expected SHA256: and 43 base64 characters): ${JSON.stringify(text)}`);
  return "SHA256:" + t;
}
