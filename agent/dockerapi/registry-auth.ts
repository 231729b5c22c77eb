import type { IncomingMessage } from "node:http";
import type { Credentials } from "../engine/registry/client.ts";
import { AuthConfigSchema } from "./schemas.ts";

/** Decodes Docker's X-Registry-Auth header (base64url JSON of the AuthConfig). */
export function credentialsFromHeader(req: IncomingMessage): Credentials | undefined {
  const raw = req.headers["x-registry-auth"];
  if (typeof raw !== "string" || !raw) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(raw.replace(/-/g, "+").replace(/_/g, "/"), "base64").toString("utf8"));
  } catch {
    // A malformed header means "no credentials", as in Docker (pull and push both default to none).
    return undefined;
  }
  const parsed = AuthConfigSchema.safeParse(json);
  if (!parsed.success || !parsed.data) return undefined;
  const str = (v: string | null | undefined) => v || undefined;
  const creds: Credentials = {
    username: str(parsed.data.username),
    password: str(parsed.data.password),
    identitytoken: str(parsed.data.identitytoken),
    registrytoken: str(parsed.data.registrytoken),
  };
  return creds.username || creds.identitytoken || creds.registrytoken ? creds : undefined;
}

/** "https://index.docker.io/v1/" → "docker.io"; "127.0.0.1:5000" stays. */
export function registryDomain(serverAddress: string | undefined): string {
  if (!serverAddress) return "docker.io";
  let host = serverAddress.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
  if (host === "index.docker.io" || host === "registry-1.docker.io" || host === "docker.io") host = "docker.io";
  return host;
}
