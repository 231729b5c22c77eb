/**
 * Name resolution on user-defined networks, as Docker's embedded DNS server
 * (127.0.0.11) gives it: containers resolve their peers by name, alias and short
 * ID, an alias several containers share answers with all their addresses, and
 * other names are forwarded to the host's resolvers.
 *
 * Why Debian's `aardvark-dns` (podman's server) rather than a server in the
 * agent: it is packaged, kept, and driven by plain config files plus SIGHUP, so
 * the agent only writes files; a server of our own would need a DNS-packet
 * library we do not have (package.json has none), and hand-written packet code
 * is exactly the kind of parser that should not live in a root daemon.
 *
 * How: one config file per user network that has members (`<dir>/networks/<network id>`):
 * the first line is the network's gateway (the address aardvark listens on, port
 * 53, in the host's namespace), then one line per member: container ID, its
 * address, no IPv6, and its names (name, aliases, short ID). A container's
 * resolv.conf names the gateway of its first user network. aardvark answers a
 * client only with names of the networks the client is on, and forwards other
 * names to the resolvers of the host's /etc/resolv.conf (which it reads in the
 * host's namespace, so a 127.x resolver such as systemd-resolved works too).
 * Differences from Docker: several addresses behind one name come in a fixed
 * order (Docker shuffles them); the server address is the gateway, not 127.0.0.11.
 *
 * Ownership: the process is ours (its pid file is in our directory): started
 * when the first member appears, told to reload on every change, and it exits
 * by itself when the last config file is gone (aardvark does that on SIGHUP with
 * an empty directory). It is left running when the agent stops, as containers
 * are, so running containers keep resolving; `sync()` at start-up adopts it.
 */
import { spawn } from "node:child_process";
import { access, mkdir, open, readdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { endianness } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "pino";

/** Where Debian/Ubuntu and Fedora/RHEL put it (package `aardvark-dns`). */
export const AARDVARK_BINS = ["/usr/lib/podman/aardvark-dns", "/usr/libexec/podman/aardvark-dns"];
const PID_FILE = "aardvark.pid";

export interface DnsMember {
  containerId: string;
  ipAddress: string;
  /** Name, aliases, short ID: lower-cased by aardvark. */
  names: string[];
}

export interface DnsNetwork {
  id: string;
  gateway: string;
  members: DnsMember[];
}

export class EmbeddedDns {
  private bin: string | undefined;
  private available: boolean | undefined;
  /** What the files hold, by network id (no rewrite, no reload when nothing changed). */
  private written = new Map<string, string>();
  /** aardvark reads every file of its directory as a network but its pid file: the log lives beside it. */
  private readonly dir: string;
  private readonly logFile: string;
  private readonly unserved = new Map<string, number>();

  constructor(
    base: string,
    private readonly log: Logger,
    private readonly bins = AARDVARK_BINS,
    private readonly port = 53,
  ) {
    this.dir = join(base, "networks");
    this.logFile = join(base, "aardvark.log");
  }

  /** Whether the server can run here; without it, user networks resolve through hosts files only. */
  async isAvailable(): Promise<boolean> {
    if (this.available === undefined) {
      for (const b of this.bins) {
        if (
          await access(b).then(
            () => true,
            () => false,
          )
        ) {
          this.bin = b;
          break;
        }
      }
      this.available = this.bin !== undefined;
      if (!this.available)
        this.log.warn(
          { looked: this.bins },
          "aardvark-dns not installed: containers on user networks resolve each other through /etc/hosts only (apt-get install aardvark-dns)",
        );
    }
    return this.available;
  }

  /**
   * Brings the config files and the server to `networks` (those with members). Failures are
   * logged: name resolution degrades to hosts files, nothing else depends on it.
   */
  async sync(networks: DnsNetwork[]): Promise<void> {
    if (!(await this.isAvailable())) return;
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      const want = new Map<string, string>();
      for (const n of networks) {
        const lines = [n.gateway];
        for (const m of n.members) {
          // Names with blanks or commas would break the line format: never written (as in hosts files).
          const names = [...new Set(m.names.filter((x) => /^[^\s,]+$/.test(x)))];
          if (names.length > 0) lines.push(`${m.containerId} ${m.ipAddress}  ${names.join(",")}`);
        }
        if (lines.length > 1) want.set(n.id, lines.join("\n") + "\n");
      }
      let changed = false;
      for (const f of await readdir(this.dir)) {
        if (f === PID_FILE || want.has(f)) continue;
        await rm(join(this.dir, f), { force: true });
        changed = true;
      }
      for (const [id, text] of want) {
        if (this.written.get(id) === text) continue;
        await writeFile(join(this.dir, id), text, { mode: 0o644 });
        changed = true;
      }
      this.written = want;
      const pid = await this.runningPid();
      if (pid !== undefined) {
        if (changed) process.kill(pid, "SIGHUP");
      } else if (want.size > 0) {
        await this.start();
      }
    } catch (err) {
      this.written.clear(); // rewrite everything next time
      this.log.warn({ err }, "cannot update the DNS server of user networks");
    }
  }

  /**
   * Whether the server listens on `ip` port 53 (UDP), waiting up to `ms` for a reload to take
   * effect. False where it cannot bind (another DNS server holds 0.0.0.0:53): the container then
   * gets the host's resolvers instead of a nameserver that never answers.
   */
  async serving(ip: string, ms = 2000): Promise<boolean> {
    // A gateway found unserved is not waited for again for a while (each start would pay the wait).
    if ((this.unserved.get(ip) ?? 0) > Date.now()) return false;
    const o = ip.split(".").map(Number);
    const b = Buffer.from(o);
    const want = `${(endianness() === "LE" ? b.readUInt32LE(0) : b.readUInt32BE(0)).toString(16).toUpperCase().padStart(8, "0")}:${this.port.toString(16).toUpperCase().padStart(4, "0")}`;
    const deadline = Date.now() + ms;
    for (;;) {
      const table = await readFile("/proc/net/udp", "utf8").catch(() => "");
      const inodes = table.split("\n").flatMap((l) => {
        const f = l.trim().split(/\s+/);
        return f[1] === want && f[9] ? [f[9]] : [];
      });
      // Our server's socket, not another program's on the same address.
      const ours = inodes.length > 0 ? await this.serverSockets() : new Set<string>();
      if (inodes.some((i) => ours.has(i))) {
        this.unserved.delete(ip);
        return true;
      }
      if (Date.now() >= deadline) {
        this.unserved.set(ip, Date.now() + 30_000);
        this.log.warn(
          { ip, port: this.port, log: this.logFile },
          "the DNS server does not listen on the network's gateway (is port 53 taken?): containers use the host's resolvers",
        );
        return false;
      }
      await delay(50);
    }
  }

  /** Inodes of the sockets our server holds. */
  private async serverSockets(): Promise<Set<string>> {
    const out = new Set<string>();
    const pid = await this.runningPid();
    if (pid === undefined) return out;
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => []);
    for (const fd of fds) {
      const m = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ""));
      if (m) out.add(m[1]!);
    }
    return out;
  }

  /** The server's pid if our server runs (the pid file names a live aardvark-dns reading our directory). */
  private async runningPid(): Promise<number | undefined> {
    const pid = Number((await readFile(join(this.dir, PID_FILE), "utf8").catch(() => "")).trim());
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    // A zombie (exited, not yet reaped) or a reused pid is not our server.
    if (!cmdline.includes("aardvark-dns") || !cmdline.split("\0").includes(this.dir) || / Z /.test(stat.slice(stat.lastIndexOf(")")))) return undefined;
    return pid;
  }

  /** `aardvark-dns run` forks the server and returns once it serves (or failed). */
  private async start(): Promise<void> {
    // The forked server keeps the output it inherits for its whole life: a file, never a pipe of ours.
    const out = await open(this.logFile, "a", 0o600);
    try {
      const code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn(this.bin!, ["--config", this.dir, "--port", String(this.port), "run"], { stdio: ["ignore", out.fd, out.fd] });
        child.on("error", reject);
        child.on("exit", resolve);
      });
      if (code !== 0) {
        const said = (await readFile(this.logFile, "utf8").catch(() => ""))
          .split("\n")
          .filter((l) => l.trim() && !l.includes("syslog"))
          .slice(-3)
          .join("; ");
        throw new Error(`aardvark-dns exited with ${code}: ${said}`);
      }
    } finally {
      await out.close();
    }
    this.log.info({ dir: this.dir }, "DNS server for user networks started");
  }
}
