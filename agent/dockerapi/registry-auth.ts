import type { IncomingMessage } from "node:http";
import type { Credentials } from "../engine/registry/client.ts";

/** Decodes Docker's X-Registry-Auth header (base64url JSON of the AuthConfig). */
export function credentialsFromHeader(req: IncomingMessage): Credentials | undefined {
  const raw = req.headers["x-registry-auth"];
  if (typeof raw !== "string" || !raw) return undefined;
  try {
    const json = JSON.parse(Buffer.from(raw.replace(/-/g, "+").replace(/_/g, "/"), "base64").toString("utf8")) as Record<string, unknown>;
    const str = (k: string) => (typeof json[k] === "string" && json[k] ? (json[k] as string) : undefined);
    const creds: Credentials = {
      username: str("username"),
      password: str("password"),
      identitytoken: str("identitytoken"),
      registrytoken: str("registrytoken"),
    };
    return creds.username || creds.identitytoken || creds.registrytoken ? creds : undefined;
  } catch {
    // A malformed header means "no credentials", as in Docker.
    return undefined;
  }
}

/** "https://index.docker.io/v1/" → "docker.io"; "127.0.0.1:5000" stays. */
export function registryDomain(serverAddress: string | undefined): string {
  if (!serverAddress) return "docker.io";
  let host = serverAddress.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
  if (host === "index.docker.io" || host === "registry-1.docker.io" || host === "docker.io") host = "docker.io";
  return host;
}
