/**
 * One SSH connection to a node (npm `ssh2`), with the host key checked before any
 * credential leaves the console: ssh2 calls `hostVerifier` during the key exchange, and
 * authentication starts only after it said yes. An unpinned or changed key ends the
 * connection there, with an InstallError that carries the fingerprint the host showed.
 */
import { Client, type ConnectConfig, type SFTPWrapper } from "ssh2";
import { InstallError, type StepId } from "./errors.ts";
import { hostKeyOf, normalizeHostFingerprint, type HostKey } from "./host-key.ts";
import { q } from "./shell.ts";

/** What the admin typed in "Add node". Kept only if they ask (sealed, see known-hosts.ts), never logged. */
export interface SshCredentials {
  password?: string;
  /** OpenSSH or PEM private key text. */
  privateKey?: string;
  passphrase?: string;
  /** For sudo when the user is not root; defaults to `password`. */
  sudoPassword?: string;
}

export interface SshTarget {
  host: string;
  /** Default 22. */
  port?: number;
  username: string;
  credentials: SshCredentials;
  /**
   * The host key fingerprint ("SHA256:…") the admin confirmed, i.e. the pin. Absent or null on
   * first contact: the run stops with kind "host-key-unknown" before authenticating, carrying
   * the fingerprint to show.
   */
  hostKeyFingerprint?: string | null;
  /** Limit for TCP connect + SSH handshake + authentication (default 20 s). */
  connectTimeoutMs?: number;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Written to the command's stdin, then stdin is closed. */
  stdin?: string;
  /** Receives output as it arrives. */
  onOutput?: (text: string, stream: "stdout" | "stderr") => void;
  signal?: AbortSignal;
}

/** How commands reach root on this host. */
export type Privilege = "root" | "sudo-password" | "sudo-nopasswd";

const KEEP_OUTPUT = 1 << 20;

function describeTarget(t: { host: string; port?: number }): string {
  const port = t.port ?? 22;
  return t.host.includes(":") ? `[${t.host}]:${port}` : `${t.host}:${port}`;
}

/** Maps an ssh2/socket error to the installer's kinds, in words an admin can act on. */
function connectError(e: unknown, where: string, username: string): InstallError {
  const err = e as Error & { level?: string; code?: string };
  const code = err.code ?? "";
  if (err.level === "client-authentication") {
    return new InstallError("connect", "auth", `authentication failed for ${username}@${where}: the host refused the password or key (${err.message})`, {
      cause: e,
    });
  }
  if (/Cannot parse privateKey/.test(err.message)) {
    return new InstallError(
      "connect",
      "bad-key",
      `the private key cannot be used: ${err.message.replace(/^Cannot parse privateKey: /, "")} (wrong or missing passphrase, or not a private key)`,
      { cause: e },
    );
  }
  if (code === "ECONNREFUSED")
    return new InstallError("connect", "unreachable", `cannot connect to ${where}: connection refused (no SSH server listens on that port)`, { cause: e });
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || err.level === "client-dns")
    return new InstallError("connect", "unreachable", `cannot connect to ${where}: the host name does not resolve`, { cause: e });
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH")
    return new InstallError("connect", "unreachable", `cannot connect to ${where}: no route to host`, { cause: e });
  if (code === "ETIMEDOUT" || err.level === "client-timeout")
    return new InstallError("connect", "unreachable", `cannot connect to ${where}: no answer in time (host down, or a firewall drops the connection)`, {
      cause: e,
    });
  if (code === "ECONNRESET" || err.level === "client-socket" || err.level === "protocol" || err.level === "handshake") {
    return new InstallError("connect", "unreachable", `the SSH connection to ${where} failed: ${err.message}`, { cause: e });
  }
  return new InstallError("connect", "unreachable", `cannot connect to ${where}: ${err.message}`, { cause: e });
}

/**
 * Connects only far enough to see the host key (no authentication is attempted) and returns
 * it, for the admin to confirm on first contact.
 * @throws InstallError kind "unreachable" when no SSH server answers.
 */
export async function probeHost(target: { host: string; port?: number; timeoutMs?: number }): Promise<HostKey> {
  const where = describeTarget(target);
  const client = new Client();
  try {
    return await new Promise<HostKey>((resolve, reject) => {
      let key: HostKey | undefined;
      // on, not once: ssh2 may report a second error while closing, and an unheard one would crash the console.
      client.on("error", (e) => (key ? resolve(key) : reject(connectError(e, where, "(probe)"))));
      client.once("ready", () => reject(new InstallError("connect", "invalid", `${where} accepted an unauthenticated login; refusing to treat it as a node`)));
      client.once("close", () =>
        key ? resolve(key) : reject(new InstallError("connect", "unreachable", `${where} closed the connection before showing a host key`)),
      );
      client.connect({
        host: target.host,
        port: target.port ?? 22,
        username: "berth-probe",
        readyTimeout: target.timeoutMs ?? 15_000,
        hostVerifier: (blob: Buffer) => {
          key = hostKeyOf(blob);
          return false; // stop before authentication: only the key was wanted
        },
      });
    });
  } finally {
    client.end();
  }
}

export class SshSession {
  readonly hostKey: HostKey;
  readonly where: string;
  /** The login user's uid on the node. */
  readonly uid: number;
  #privilege: Privilege | undefined;
  readonly #client: Client;
  readonly #target: SshTarget;
  #closed = false;

  private constructor(client: Client, target: SshTarget, hostKey: HostKey, uid: number) {
    this.#client = client;
    this.#target = target;
    this.hostKey = hostKey;
    this.where = describeTarget(target);
    this.uid = uid;
    if (uid === 0) this.#privilege = "root";
  }

  /**
   * Connects, checks the host key against the pin, then authenticates.
   * @throws InstallError (step "connect") of kind host-key-unknown, host-key-mismatch, auth,
   *   bad-key, unreachable or canceled.
   */
  static async open(target: SshTarget, signal?: AbortSignal): Promise<SshSession> {
    const where = describeTarget(target);
    const expected = target.hostKeyFingerprint ? normalizeHostFingerprint(target.hostKeyFingerprint) : undefined;
    const client = new Client();
    let presented: HostKey | undefined;
    let refusal: InstallError | undefined;
    const creds = target.credentials;
    if (!creds.password && !creds.privateKey) throw new InstallError("connect", "invalid", "give a password or a private key for the SSH login");
    const config: ConnectConfig = {
      host: target.host,
      port: target.port ?? 22,
      username: target.username,
      readyTimeout: target.connectTimeoutMs ?? 20_000,
      // Password logins are often offered as keyboard-interactive (PAM) only.
      tryKeyboard: creds.password !== undefined,
      hostVerifier: (blob: Buffer) => {
        presented = hostKeyOf(blob);
        if (!expected) {
          refusal = new InstallError(
            "connect",
            "host-key-unknown",
            `first contact with ${where}: its ${presented.algorithm} host key is ${presented.fingerprint}; confirm it to continue (nothing was sent to the host)`,
            { fingerprint: presented.fingerprint },
          );
          return false;
        }
        if (presented.fingerprint !== expected) {
          refusal = new InstallError(
            "connect",
            "host-key-mismatch",
            `the host key of ${where} changed: it presented ${presented.algorithm} ${presented.fingerprint}, the pinned key is ${expected}. No credential was sent. If the host was reinstalled, verify the new key and pin it again; otherwise someone may be intercepting the connection`,
            { fingerprint: presented.fingerprint, expectedFingerprint: expected },
          );
          return false;
        }
        return true;
      },
    };
    if (creds.password !== undefined) config.password = creds.password;
    if (creds.privateKey !== undefined) config.privateKey = creds.privateKey;
    if (creds.passphrase !== undefined) config.passphrase = creds.passphrase;

    const ready = new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(new InstallError("connect", "canceled", "canceled while connecting"));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      client.on("keyboard-interactive", (_name, _instructions, _lang, prompts, finish) => finish(prompts.map(() => creds.password ?? "")));
      client.once("ready", () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      // on, not once: errors after the connection is up (a reset mid-install) must not go unheard
      // and crash the console; the command that was running sees its channel close.
      client.on("error", (e) => {
        signal?.removeEventListener("abort", onAbort);
        reject(refusal ?? connectError(e, where, target.username));
      });
      client.once("close", () => reject(refusal ?? new InstallError("connect", "unreachable", `${where} closed the connection during the SSH handshake`)));
    });
    try {
      client.connect(config);
      await ready;
    } catch (e) {
      client.end();
      if (e instanceof InstallError) throw e;
      throw connectError(e, where, target.username);
    }
    try {
      const r = await execOn(client, "id -u");
      const uid = Number(r.stdout.trim());
      if (r.code !== 0 || !Number.isInteger(uid))
        throw new InstallError("connect", "command", `\`id -u\` failed on ${where}: ${r.stderr.trim() || r.stdout.trim()}`);
      return new SshSession(client, target, presented!, uid);
    } catch (e) {
      client.end();
      throw e instanceof InstallError ? e : new InstallError("connect", "command", `cannot run commands on ${where}: ${(e as Error).message}`, { cause: e });
    }
  }

  get privilege(): Privilege | undefined {
    return this.#privilege;
  }

  /** Runs `command` through the login user's shell. Resolves whatever the exit code. */
  exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    if (this.#closed) return Promise.reject(new Error("the SSH session is closed"));
    return execOn(this.#client, command, opts);
  }

  /**
   * Works out how to become root: already root, sudo with the sudo password (or the login
   * password), or sudo without one. Says why not otherwise.
   */
  async checkPrivilege(): Promise<{ ok: boolean; detail: string }> {
    if (this.uid === 0) return { ok: true, detail: `logged in as root (${this.#target.username})` };
    const user = this.#target.username;
    const has = await this.exec("command -v sudo");
    if (has.code !== 0) return { ok: false, detail: `${user} is not root and sudo is not installed` };
    const password = this.#target.credentials.sudoPassword ?? this.#target.credentials.password;
    if (password !== undefined) {
      const r = await this.exec("sudo -k -S -p '' true", { stdin: password + "\n" });
      if (r.code === 0) {
        this.#privilege = "sudo-password";
        return { ok: true, detail: `sudo works for ${user}` };
      }
      return { ok: false, detail: `sudo refused ${user}: ${sudoReason(r.stderr)}` };
    }
    const r = await this.exec("sudo -n true");
    if (r.code === 0) {
      this.#privilege = "sudo-nopasswd";
      return { ok: true, detail: `sudo works for ${user} without a password` };
    }
    return { ok: false, detail: `sudo refused ${user}: ${sudoReason(r.stderr)} (give the sudo password)` };
  }

  /** Runs a shell script as root (directly, or through sudo as checkPrivilege() found). */
  root(script: string, opts: Omit<ExecOptions, "stdin"> = {}): Promise<ExecResult> {
    // Appended, not prepended: the login environment decides first (sudo applies its secure_path anyway).
    const body = `export LC_ALL=C PATH="$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"; ${script}`;
    switch (this.#privilege) {
      case "root":
        return this.exec(`sh -c ${q(body)}`, opts);
      case "sudo-password": {
        const password = this.#target.credentials.sudoPassword ?? this.#target.credentials.password ?? "";
        // -k: always read the password, so the line we send is never left for the script;
        // the script's own stdin is /dev/null in any case.
        return this.exec(`sudo -k -S -p '' sh -c ${q("exec </dev/null; " + body)}`, { ...opts, stdin: password + "\n" });
      }
      case "sudo-nopasswd":
        return this.exec(`sudo -n sh -c ${q("exec </dev/null; " + body)}`, opts);
      default:
        return Promise.reject(new Error("root() before checkPrivilege(): it is not known how to become root"));
    }
  }

  /** root() that must succeed. @throws InstallError(step, kind) with the command's own error output. */
  async rootOk(
    step: StepId,
    what: string,
    script: string,
    opts: Omit<ExecOptions, "stdin"> = {},
    kind: "command" | "package" = "command",
  ): Promise<ExecResult> {
    const r = await this.root(script, opts);
    if (opts.signal?.aborted) throw new InstallError(step, "canceled", `canceled while trying to ${what}`);
    if (r.code !== 0) throw new InstallError(step, kind, `${what} failed on ${this.where} (exit ${r.code}): ${lastLines(r.stderr || r.stdout)}`);
    return r;
  }

  /** Copies a local file to the node over SFTP. */
  async upload(localPath: string, remotePath: string, mode = 0o600): Promise<void> {
    const sftp = await this.#sftp();
    try {
      await new Promise<void>((resolve, reject) => sftp.fastPut(localPath, remotePath, { mode }, (e) => (e ? reject(e) : resolve())));
    } finally {
      sftp.end();
    }
  }

  /** Writes `data` to a file on the node over SFTP (owned by the login user). */
  async writeFile(remotePath: string, data: string | Buffer, mode = 0o600): Promise<void> {
    const sftp = await this.#sftp();
    try {
      await new Promise<void>((resolve, reject) => sftp.writeFile(remotePath, data, { mode }, (e) => (e ? reject(e) : resolve())));
    } finally {
      sftp.end();
    }
  }

  #sftp(): Promise<SFTPWrapper> {
    return new Promise((resolve, reject) => this.#client.sftp((e, sftp) => (e ? reject(e) : resolve(sftp))));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.end();
  }
}

function sudoReason(stderr: string): string {
  const s = stderr.trim();
  if (/not in the sudoers|not allowed to execute|may not run sudo/i.test(s)) return "the user may not use sudo";
  if (/incorrect password|Sorry, try again|no password was provided|a password is required/i.test(s)) return "wrong or missing sudo password";
  if (/must have a tty|requiretty/i.test(s)) return "sudo requires a terminal (Defaults requiretty)";
  return s.split("\n").slice(-2).join(" ") || "unknown error";
}

export function lastLines(text: string, n = 6): string {
  const lines = text.trim().split("\n").filter(Boolean);
  return lines.slice(-n).join("\n") || "(no output)";
}

function execOn(client: Client, command: string, opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(new Error("canceled"));
    client.exec(command, (err, channel) => {
      if (err) return reject(err);
      let stdout = "";
      let stderr = "";
      let code = -1;
      const keep = (acc: string, text: string) => {
        const next = acc + text;
        return next.length > KEEP_OUTPUT ? next.slice(-KEEP_OUTPUT) : next;
      };
      const onAbort = () => {
        channel.signal("KILL");
        channel.close();
      };
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      channel.on("data", (d: Buffer) => {
        const t = d.toString("utf8");
        stdout = keep(stdout, t);
        opts.onOutput?.(t, "stdout");
      });
      channel.stderr.on("data", (d: Buffer) => {
        const t = d.toString("utf8");
        stderr = keep(stderr, t);
        opts.onOutput?.(t, "stderr");
      });
      channel.on("exit", (c: number | null, signalName?: string) => {
        code = typeof c === "number" ? c : signalName ? 128 : -1;
      });
      channel.on("close", () => {
        opts.signal?.removeEventListener("abort", onAbort);
        resolve({ code, stdout, stderr });
      });
      if (opts.stdin !== undefined) channel.end(opts.stdin);
      else channel.end();
    });
  });
}
