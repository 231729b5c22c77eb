/**
 * Downloads the console serves to nodes it cannot reach over SSH (Add node → Manual install):
 *
 *   GET /install.sh?token=bjt_…          the install script with that join token embedded
 *   GET /downloads/berth-agent.tar.gz    the agent artifact the script downloads
 *
 * The script is served only for a join token that exists, is unused and unexpired: anyone
 * could ask for /install.sh, and a script for a dead token would fail later, on the node,
 * with a less useful message. A refusal is a script too, one `echo` line that exits 1, served
 * with status 200: `curl -fsSL … | sudo bash` (the command the console shows) would turn an
 * error status into curl's bare "error: 404" and an empty script, hiding why. The token is
 * never logged.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { hashToken, isTokenOfKind } from "./auth/tokens.ts";
import { defaultArtifactPath, readArtifact, type AgentArtifact } from "./installer/artifact.ts";
import { manualInstallScript } from "./installer/manual-script.ts";
import type { ConsoleServices } from "./services.ts";

export const INSTALL_SCRIPT_PATH = "/install.sh";
export const ARTIFACT_DOWNLOAD_PATH = "/downloads/berth-agent.tar.gz";

function nullIfMissing(e: unknown): null {
  if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
  throw e;
}

/** Hashing the artifact reads all of it: remembered per file until it changes. */
const artifactCache = new Map<string, { mtimeMs: number; size: number; artifact: AgentArtifact }>();

async function currentArtifact(path: string): Promise<AgentArtifact | null> {
  const st = await stat(path).catch(nullIfMissing);
  if (!st?.isFile()) return null;
  const hit = artifactCache.get(path);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.artifact;
  const artifact = await readArtifact(path);
  artifactCache.set(path, { mtimeMs: st.mtimeMs, size: st.size, artifact });
  return artifact;
}

const NOT_BUILT = "the agent artifact is not built on the console: run npm run build:agent there";

/** A shell line that says why, for a script piped into bash; exits non-zero. */
function refuseScript(res: ServerResponse, why: string): void {
  const text = `echo ${shellQuote(`berth-install: ${why}`)} >&2; exit 1\n`;
  res.writeHead(200, { "content-type": "text/x-shellscript; charset=utf-8", "cache-control": "no-store" }).end(text);
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

async function serveScript(url: URL, res: ServerResponse, services: ConsoleServices): Promise<void> {
  const token = url.searchParams.get("token");
  if (!token) return refuseScript(res, "no join token in the URL: create one in the console (Add node → Manual install)");
  if (!isTokenOfKind(token, "bjt")) return refuseScript(res, "that is not a join token: copy the whole command from the console again");
  const row = await services.prisma.joinToken.findUnique({ where: { tokenHash: hashToken(token) }, select: { usedAt: true, expiresAt: true } });
  if (!row) return refuseScript(res, "unknown join token (revoked, or from another console): create a new one in the console");
  if (row.usedAt) return refuseScript(res, "this join token was already used to enroll a node: create a new one in the console");
  if (row.expiresAt.getTime() <= Date.now()) return refuseScript(res, "this join token has expired: create a new one in the console");
  const artifact = await currentArtifact(defaultArtifactPath());
  if (!artifact) return refuseScript(res, NOT_BUILT);
  const base = services.publicUrl;
  const script = manualInstallScript({ consoleUrl: base, joinToken: token, artifactUrl: `${base}${ARTIFACT_DOWNLOAD_PATH}`, artifactSha256: artifact.sha256 });
  res.writeHead(200, { "content-type": "text/x-shellscript; charset=utf-8", "cache-control": "no-store" }).end(script);
}

async function serveArtifact(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = defaultArtifactPath();
  const st = await stat(path).catch(nullIfMissing);
  if (!st?.isFile()) {
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end(`${NOT_BUILT}\n`);
    return;
  }
  res.writeHead(200, { "content-type": "application/gzip", "content-length": st.size, "cache-control": "no-store" });
  if (req.method === "HEAD") return void res.end();
  const file = createReadStream(path);
  file.on("error", () => res.destroy());
  file.pipe(res);
}

/**
 * Answers the download routes; false for any other request (the console goes on to Next.js).
 * The work is asynchronous: the response is written when it is done.
 */
export function handleDownloads(req: IncomingMessage, res: ServerResponse, services: ConsoleServices): boolean {
  const url = new URL(req.url ?? "/", "http://console");
  if (url.pathname !== INSTALL_SCRIPT_PATH && url.pathname !== ARTIFACT_DOWNLOAD_PATH) return false;
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" }).end("method not allowed\n");
    return true;
  }
  const work = url.pathname === INSTALL_SCRIPT_PATH ? serveScript(url, res, services) : serveArtifact(req, res);
  work.catch((e: unknown) => {
    // The URL holds the token: log the path only.
    services.logger.error({ path: url.pathname, err: e }, "download failed");
    if (!res.headersSent) {
      if (url.pathname === INSTALL_SCRIPT_PATH) refuseScript(res, "the console failed to make the install script; see its log");
      else res.writeHead(500, { "content-type": "text/plain" }).end("internal error\n");
    } else res.destroy();
  });
  return true;
}
