/**
 * A real OpenSSH server (Debian's openssh-server) for the installer tests, on a free
 * 127.0.0.1 port, with its host key, config, authorized keys and log in a temporary
 * directory: the machine's own sshd config and keys are not touched. Plus test users
 * (useradd, a password, optionally sudo with that password) that are removed again.
 *
 * Needs root (sshd checks passwords from /etc/shadow) and the openssh-server and sudo
 * packages (scripts/debian-packages-test.txt).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, rmSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileP = promisify(execFile);
const SSHD = "/usr/sbin/sshd";

/** Servers and users of this test process, removed if it ends without cleaning up (a failed hook). */
const liveServers = new Set<ChildProcess>();
const liveDirs = new Set<string>();
const liveUsers = new Set<string>();
process.once("exit", () => {
  for (const c of liveServers) c.kill("SIGKILL");
  // An exit handler cannot wait: synchronous removal.
  for (const d of liveDirs) rmSync(d, { recursive: true, force: true });
  for (const u of liveUsers) {
    rmSync(`/etc/sudoers.d/${u}`, { force: true });
    try {
      execFileSync("userdel", ["-f", "-r", u], { stdio: "ignore" });
    } catch {
      /* already gone */
    }
  }
});

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface SshdOptions {
  /** PATH for every session (sshd SetEnv), e.g. with a directory of fake tools first. */
  sessionPath?: string;
}

export interface SshdHandle {
  host: "127.0.0.1";
  port: number;
  dir: string;
  /** The host key's fingerprint as `ssh-keygen -lf` prints it ("SHA256:…"). */
  fingerprint(): Promise<string>;
  /** Authorizes a public key for `user` (AuthorizedKeysFile in the temporary directory). */
  authorize(user: string, publicKey: string): Promise<void>;
  /** The log so far (LogLevel DEBUG1). */
  log(): Promise<string>;
  /** A mark in the log: logSince(mark) returns what came after. */
  mark(): Promise<number>;
  logSince(mark: number): Promise<string>;
  /** A new host key, as after a reinstall of the host (same port). */
  replaceHostKey(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts sshd with a fresh ed25519 host key. */
export async function startSshd(opts: SshdOptions = {}): Promise<SshdHandle> {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: apt-get install openssh-server (scripts/debian-packages-test.txt)`);
  // sshd's privilege separation directory; systemd's tmpfiles make it on a normal boot.
  await mkdir("/run/sshd", { recursive: true, mode: 0o755 });
  const dir = await mkdtemp(join(tmpdir(), "berth-sshd-"));
  liveDirs.add(dir);
  const port = await freePort();
  const hostKey = join(dir, "ssh_host_ed25519_key");
  const logFile = join(dir, "sshd.log");
  await mkdir(join(dir, "authorized_keys"), { mode: 0o755 });
  const newKey = async () => {
    await rm(hostKey, { force: true });
    await rm(hostKey + ".pub", { force: true });
    await execFileP("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "berth-test-host", "-f", hostKey]);
  };
  await newKey();
  const config = [
    `Port ${port}`,
    "ListenAddress 127.0.0.1",
    `HostKey ${hostKey}`,
    `PidFile ${join(dir, "sshd.pid")}`,
    "LogLevel DEBUG1",
    // The authorized keys live in the temporary directory, whose parents sshd would judge.
    "StrictModes no",
    "PermitRootLogin yes",
    "PasswordAuthentication yes",
    "KbdInteractiveAuthentication no",
    "PubkeyAuthentication yes",
    `AuthorizedKeysFile ${join(dir, "authorized_keys")}/%u`,
    "UsePAM no",
    "Subsystem sftp internal-sftp",
    "MaxStartups 100",
    "MaxAuthTries 3",
    ...(opts.sessionPath ? [`SetEnv PATH=${opts.sessionPath}`] : []),
  ].join("\n");
  await writeFile(join(dir, "sshd_config"), config + "\n");
  await execFileP(SSHD, ["-t", "-f", join(dir, "sshd_config")]).catch((e: { stderr?: string }) => {
    throw new Error(`sshd refuses the test config: ${e.stderr ?? e}`);
  });

  let child: ChildProcess | undefined;
  const launch = async () => {
    const c = spawn(SSHD, ["-D", "-f", join(dir, "sshd_config"), "-E", logFile], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    c.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    liveServers.add(c);
    c.once("exit", () => liveServers.delete(c));
    child = c;
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`sshd exited with ${c.exitCode}: ${err}${await readFile(logFile, "utf8").catch(() => "")}`);
      const log = await readFile(logFile, "utf8").catch(() => "");
      if (log.includes(`Server listening on 127.0.0.1 port ${port}`)) return;
      if (Date.now() > deadline) throw new Error(`sshd did not listen on ${port} in 10 s:\n${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async () => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((r) => {
      c.once("exit", () => r());
      c.kill("SIGTERM");
    });
  };
  try {
    await launch();
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
    throw e;
  }

  return {
    host: "127.0.0.1",
    port,
    dir,
    fingerprint: async () => {
      const { stdout } = await execFileP("ssh-keygen", ["-lf", hostKey + ".pub"]);
      const fp = stdout.split(/\s+/)[1];
      if (!fp?.startsWith("SHA256:")) throw new Error(`unexpected ssh-keygen -lf output: ${stdout}`);
      return fp;
    },
    authorize: async (user, publicKey) => {
      await writeFile(join(dir, "authorized_keys", user), publicKey.trim() + "\n", { mode: 0o644 });
    },
    log: () => readFile(logFile, "utf8").catch(() => ""),
    mark: async () => (await readFile(logFile, "utf8").catch(() => "")).length,
    logSince: async (mark) => (await readFile(logFile, "utf8").catch(() => "")).slice(mark),
    replaceHostKey: async () => {
      await stop();
      await newKey();
      await launch();
    },
    stop: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
      liveDirs.delete(dir);
    },
  };
}

export interface TestUser {
  name: string;
  password: string;
  /** Removes the user, its home and its sudoers entry. Idempotent. */
  remove(): Promise<void>;
}

/**
 * Creates a local user with a random password; with sudo: "password", it may run anything
 * through sudo after giving that password (like a member of Debian's sudo group).
 */
export async function createTestUser(opts: { sudo?: "password" | "none" } = {}): Promise<TestUser> {
  const name = `berth${randomBytes(3).toString("hex")}`;
  const password = `pw-${randomBytes(12).toString("base64url")}`;
  const sudoers = `/etc/sudoers.d/${name}`;
  liveUsers.add(name);
  await execFileP("useradd", ["-m", "-s", "/bin/bash", name]);
  let removed = false;
  const remove = async () => {
    if (removed) return;
    removed = true;
    await rm(sudoers, { force: true });
    // -f: its SSH sessions may still be closing.
    await execFileP("userdel", ["-f", "-r", name]).catch(() => undefined);
    liveUsers.delete(name);
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const c = spawn("chpasswd", [], { stdio: ["pipe", "ignore", "pipe"] });
      let err = "";
      c.stderr.on("data", (d: Buffer) => (err += d.toString()));
      c.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`chpasswd failed: ${err}`))));
      c.stdin.end(`${name}:${password}\n`);
    });
    if (opts.sudo === "password") {
      await writeFile(sudoers, `${name} ALL=(ALL:ALL) ALL\n`, { mode: 0o440 });
      await execFileP("visudo", ["-c", "-q", "-f", sudoers]);
    }
  } catch (e) {
    await remove();
    throw e;
  }
  return { name, password, remove };
}

/** An ed25519 key pair for the client side (private key in OpenSSH format). */
export async function clientKey(passphrase = ""): Promise<{ privateKey: string; publicKey: string }> {
  const dir = await mkdtemp(join(tmpdir(), "berth-key-"));
  try {
    const file = join(dir, "id_ed25519");
    await execFileP("ssh-keygen", ["-q", "-t", "ed25519", "-N", passphrase, "-C", "berth-test-client", "-f", file]);
    return { privateKey: await readFile(file, "utf8"), publicKey: await readFile(file + ".pub", "utf8") };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
