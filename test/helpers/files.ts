import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

/** Files of a directory to write: text content, or a function that makes the entry at its path. */
export type Files = Record<string, string | ((path: string) => Promise<void>)>;

/** Writes `files` (names may hold subdirectories) under `dir`, made if missing; returns `dir`. */
export async function writeTree(dir: string, files: Files): Promise<string> {
  await mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    const p = join(dir, name);
    await mkdir(join(p, ".."), { recursive: true });
    if (typeof content === "string") await writeFile(p, content);
    else await content(p);
  }
  return dir;
}

/** A self-signed P-256 certificate for 127.0.0.1 (CN berth-console) made by openssl in `dir`: key.pem and cert.pem. */
export async function selfSignedCert(dir: string): Promise<{ keyPath: string; certPath: string; key: string; cert: string }> {
  const keyPath = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  await promisify(execFile)("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    keyPath,
    "-out",
    certPath,
    "-days",
    "1",
    "-subj",
    "/CN=berth-console",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
  ]);
  return { keyPath, certPath, key: await readFile(keyPath, "utf8"), cert: await readFile(certPath, "utf8") };
}
