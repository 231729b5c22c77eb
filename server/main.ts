/**
 * `berth-console`: starts the console. Options (flags, or the environment in brackets):
 *   --port N            [BERTH_PORT, default 8080]
 *   --host ADDR         [BERTH_HOST, default 0.0.0.0]
 *   --data-dir DIR      [BERTH_DATA_DIR, default /var/lib/berth-console]
 *   --public-url URL    [BERTH_PUBLIC_URL] the URL browsers and agents use (the join and install
 *                       commands name it); default when listening on all interfaces: this host's
 *                       primary address (the default route's), else the listen address
 *   --tls-cert FILE --tls-key FILE   [BERTH_TLS_CERT, BERTH_TLS_KEY] serve HTTPS
 *   --trust-proxy       [BERTH_TRUST_PROXY=1] the console is behind a reverse proxy: take the
 *                       client's address (sign-in throttling, audit log) from the last entry of
 *                       X-Forwarded-For, which the proxy appends; never set it without a proxy,
 *                       or any client can claim any address
 *   --dev               Next.js development mode
 *   --join-token-file F a fresh join token (single use, 1 h) written to F (0600) at each start,
 *                       for an agent on the same machine to enroll with (bin/berth-up)
 * DATABASE_URL selects an external PostgreSQL (else an embedded one in the data dir);
 * BERTH_SECRET_KEY the key for secrets at rest (else <data dir>/secret.key). Every variable is
 * validated at start (server/env.ts).
 */
import { chmod, readFile, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { startConsole } from "./console.ts";
import { firstAdminMessage } from "./auth/first-admin.ts";
import { primaryAddress } from "./net/primary-address.ts";
import { parseConsoleEnv, PortSchema, PublicUrlSchema } from "./env.ts";
import type { z } from "zod";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    host: { type: "string" },
    "data-dir": { type: "string" },
    "public-url": { type: "string" },
    "tls-cert": { type: "string" },
    "tls-key": { type: "string" },
    dev: { type: "boolean", default: false },
    "trust-proxy": { type: "boolean", default: false },
    "join-token-file": { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log("usage: berth-console [--port N] [--host ADDR] [--data-dir DIR] [--public-url URL] [--tls-cert FILE --tls-key FILE] [--trust-proxy] [--dev]");
  process.exit(0);
}
const parsedEnv = parseConsoleEnv(process.env);
if (!parsedEnv.ok) {
  for (const p of parsedEnv.problems) console.error(`berth-console: ${p}`);
  process.exit(2);
}
const env = parsedEnv.env;
function flagOr<T>(name: string, value: string | undefined, schema: z.ZodType<T>, fallback: T | undefined): T | undefined {
  if (value === undefined) return fallback;
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  console.error(`berth-console: --${name} ${r.error.issues[0]?.message ?? "is not valid"}, got ${JSON.stringify(value)}`);
  process.exit(2);
}
const port = flagOr("port", values.port, PortSchema, env.BERTH_PORT) ?? 8080;
const certFile = values["tls-cert"] ?? env.BERTH_TLS_CERT;
const keyFile = values["tls-key"] ?? env.BERTH_TLS_KEY;
if (!!certFile !== !!keyFile) {
  console.error("berth-console: --tls-cert and --tls-key go together");
  process.exit(2);
}
const host = values.host ?? env.BERTH_HOST;
const givenPublicUrl = flagOr("public-url", values["public-url"], PublicUrlSchema, env.BERTH_PUBLIC_URL);
const listensEverywhere = !host || host === "0.0.0.0" || host === "::";
const publicUrl = givenPublicUrl ?? (listensEverywhere ? `${certFile ? "https" : "http"}://${primaryAddress()}:${port}` : undefined);
const trustProxy = values["trust-proxy"] || (env.BERTH_TRUST_PROXY ?? false);
const dataDir = values["data-dir"] ?? env.BERTH_DATA_DIR ?? "/var/lib/berth-console";

/** One line saying what went wrong and what to do, for the errors a first start meets. */
function startFailure(e: Error & { code?: string; path?: string }): string {
  switch (e.code) {
    case "EADDRINUSE":
      return `port ${port} is already in use (see \`ss -ltnp 'sport = :${port}'\`): stop what holds it, or choose another port with --port or BERTH_PORT`;
    case "EACCES":
      if (e.path === undefined) return `may not listen on port ${port} (${e.message}): choose a port above 1023 or run as root`;
      return `no permission for ${e.path}: run as root, or choose another data directory with --data-dir or BERTH_DATA_DIR`;
    case "EROFS":
      return `the data directory ${dataDir} is on a read-only filesystem: choose another with --data-dir or BERTH_DATA_DIR`;
    case "ENOSPC":
      return `no space left on the filesystem of ${dataDir}: free some, or choose another data directory with --data-dir`;
    default:
      return e.message;
  }
}

try {
  const running = await startConsole({
    port,
    dataDir,
    ...(host ? { host } : {}),
    ...(env.DATABASE_URL ? { databaseUrl: env.DATABASE_URL } : {}),
    ...(publicUrl ? { publicUrl } : {}),
    ...(certFile && keyFile ? { tls: { cert: await readFile(certFile, "utf8"), key: await readFile(keyFile, "utf8") } } : {}),
    dev: values.dev,
    trustProxy,
  });
  // The first admin's login goes to stdout, plainly, for the person who started the console.
  if (running.firstAdmin.created) console.log(`\n${firstAdminMessage(running.firstAdmin, running.url)}\n`);
  const tokenFile = values["join-token-file"];
  if (tokenFile) {
    const { token } = await running.services.nodeRegistry.createJoinToken({ note: "local agent (berth-up)" });
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    await chmod(tokenFile, 0o600);
  }
  console.log(`Berth console: ${running.url} (listening on ${running.listenAddress})`);
  if (givenPublicUrl === undefined && publicUrl !== undefined) {
    console.log(`  ${publicUrl} is this host's primary address, used in the join and install commands; change it with --public-url or BERTH_PUBLIC_URL`);
  }
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} catch (e) {
  console.error(`berth-console: ${startFailure(e as Error)}`);
  process.exit(1);
}
