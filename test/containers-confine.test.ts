// Docker's run-time confinement through the real docker CLI against a real agent (issue 11,
// items 7 and 8): the default seccomp profile, --security-opt (seccomp=unconfined|FILE,
// no-new-privileges), --privileged, --pid/--uts/--ipc host, --pid container:, --device,
// --sysctl, and the refusals of what Berth does not do (never a flag silently dropped).
//
// Every test uses its own names (uniq()) and registers its cleanup before it creates anything.
import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, readlink, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { hostname as hostHostname } from "node:os";
import { join } from "node:path";
import { docker, dockerOk, type AgentHandle } from "./helpers/agent.ts";
import { startBusyboxAgent, type BusyboxAgent } from "./helpers/busybox-agent.ts";

const uniq = (prefix: string) => `${prefix}-${randomBytes(3).toString("hex")}`;
/** The `Seccomp:` mode of a process in a container: 0 none, 2 filter. */
const SECCOMP = ["grep", "^Seccomp:", "/proc/self/status"];

describe("confinement: seccomp, security options, privileged, host namespaces, devices", () => {
  let agent: AgentHandle;
  let work: string;
  const removeAfter = (t: TestContext, ...names: string[]) => t.after(async () => void (await docker(agent, ["rm", "-fv", ...names])));
  const inspect = async (name: string, format: string) => (await dockerOk(agent, ["inspect", "--format", format, name])).trim();
  /** A `docker run` that must fail: its stderr. */
  const refused = async (args: string[]) => {
    const r = await docker(agent, ["run", "--rm", ...args]);
    assert.notEqual(r.code, 0, `docker run ${args.join(" ")} should have failed: ${r.stdout}`);
    return r.stderr;
  };

  /** One Docker API request on the agent's socket: its status and message. */
  const api = (method: string, path: string, body: unknown) =>
    new Promise<{ status: number; message?: string }>((resolve, reject) => {
      const data = Buffer.from(JSON.stringify(body));
      const req = request(
        { socketPath: agent.socket, method, path: `/v1.47${path}`, headers: { "Content-Type": "application/json", "Content-Length": data.length } },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => (text += d.toString()));
          res.on("error", reject);
          res.on("end", () => resolve({ status: res.statusCode ?? 0, message: (JSON.parse(text || "{}") as { message?: string }).message }));
        },
      );
      req.on("error", reject);
      req.end(data);
    });

  let suite: BusyboxAgent | undefined;
  before(async () => void ({ agent, work } = suite = await startBusyboxAgent("confine")));
  after(() => suite?.stop());

  test("every container runs under Docker's default seccomp profile: filter mode, unshare refused, also in exec", async (t) => {
    assert.equal(await dockerOk(agent, ["run", "--rm", "busybox", ...SECCOMP]), "Seccomp:\t2\n");
    assert.equal((await dockerOk(agent, ["info", "--format", "{{json .SecurityOptions}}"])).trim(), '["name=seccomp,profile=default"]');
    // Creating a user namespace needs no capability: only the profile (unshare needs CAP_SYS_ADMIN there) stops it.
    const userns = await docker(agent, ["run", "--rm", "busybox", "unshare", "-U", "true"]);
    assert.notEqual(userns.code, 0);
    assert.match(userns.stderr + userns.stdout, /Operation not permitted/);
    const netns = await docker(agent, ["run", "--rm", "busybox", "unshare", "-r", "true"]);
    assert.notEqual(netns.code, 0);
    assert.match(netns.stderr + netns.stdout, /Operation not permitted/);
    // Everyday calls still work: threads/fork (clone without namespace flags), sockets, chroot (CAP_SYS_CHROOT).
    assert.equal(await dockerOk(agent, ["run", "--rm", "busybox", "sh", "-c", "(echo child) & wait; chroot / true && echo chroot-ok"]), "child\nchroot-ok\n");

    const c = uniq("sc-exec");
    removeAfter(t, c);
    await dockerOk(agent, ["run", "-d", "--name", c, "busybox", "sleep", "300"]);
    assert.equal(await dockerOk(agent, ["exec", c, ...SECCOMP]), "Seccomp:\t2\n");
    const inExec = await docker(agent, ["exec", c, "unshare", "-U", "true"]);
    assert.notEqual(inExec.code, 0);
    assert.match(inExec.stderr + inExec.stdout, /Operation not permitted/);
    assert.equal(await inspect(c, "{{json .HostConfig.SecurityOpt}}"), "null");
    // exec --privileged: every capability (the agent's), still under the container's filter, as in Docker.
    const hostCapEff = /^CapEff:\s*(\S+)$/m.exec(await readFile("/proc/self/status", "utf8"))![1];
    assert.equal(
      await dockerOk(agent, ["exec", "--privileged", c, "sh", "-c", "grep -E '^(CapEff|Seccomp):' /proc/self/status"]),
      `CapEff:\t${hostCapEff}\nSeccomp:\t2\n`,
    );
    assert.equal(await dockerOk(agent, ["exec", c, "grep", "^CapEff:", "/proc/self/status"]), "CapEff:\t00000000a80425fb\n", "Docker's default set otherwise");
  });

  test("--security-opt seccomp=unconfined: no filter, unshare -U works; shown in inspect", async (t) => {
    assert.equal(await dockerOk(agent, ["run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", ...SECCOMP]), "Seccomp:\t0\n");
    assert.equal(
      await dockerOk(agent, ["run", "--rm", "--security-opt", "seccomp=unconfined", "busybox", "sh", "-c", "unshare -U true && echo userns-ok"]),
      "userns-ok\n",
    );
    const c = uniq("sc-unconf");
    removeAfter(t, c);
    await dockerOk(agent, ["create", "--name", c, "--security-opt", "seccomp=unconfined", "busybox", "true"]);
    assert.equal(await inspect(c, "{{json .HostConfig.SecurityOpt}}"), '["seccomp=unconfined"]');
  });

  test("--cap-add SYS_ADMIN opens what the profile keeps for it, as in Docker", async () => {
    assert.equal(await dockerOk(agent, ["run", "--rm", "--cap-add", "SYS_ADMIN", "busybox", "sh", "-c", "unshare -U true && echo userns-ok"]), "userns-ok\n");
  });

  test("--security-opt seccomp=FILE: the profile of one's own is applied", async (t) => {
    const profile = join(work, "no-mkdir.json");
    await writeFile(
      profile,
      JSON.stringify({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO", errnoRet: 13 }] }, null, 2),
    );
    const r = await docker(agent, [
      "run",
      "--rm",
      "--security-opt",
      `seccomp=${profile}`,
      "busybox",
      "sh",
      "-c",
      "grep ^Seccomp: /proc/self/status; touch /tmp/f && echo touch-ok; mkdir /tmp/d",
    ]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "Seccomp:\t2\ntouch-ok\n");
    assert.match(r.stderr, /mkdir: can't create directory '\/tmp\/d': Permission denied/);
    // Under this profile unshare is allowed: the default profile is replaced, not added to.
    assert.equal(
      await dockerOk(agent, ["run", "--rm", "--security-opt", `seccomp=${profile}`, "busybox", "sh", "-c", "unshare -U true && echo userns-ok"]),
      "userns-ok\n",
    );

    const c = uniq("sc-file");
    removeAfter(t, c);
    await dockerOk(agent, ["create", "--name", c, "--security-opt", `seccomp=${profile}`, "busybox", "true"]);
    const opts = JSON.parse(await inspect(c, "{{json .HostConfig.SecurityOpt}}")) as string[];
    assert.equal(opts.length, 1);
    assert.ok(opts[0]!.startsWith("seccomp={"), opts[0]);
    assert.deepEqual(JSON.parse(opts[0]!.slice("seccomp=".length)).syscalls[0].names, ["mkdir", "mkdirat"]);

    const bad = join(work, "bad.json");
    await writeFile(bad, JSON.stringify({ defaultAction: "SCMP_ACT_ALLOW", syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_BOGUS" }] }));
    assert.match(
      await refused(["--security-opt", `seccomp=${bad}`, "busybox", "true"]),
      /Error response from daemon: Decoding seccomp profile failed: syscalls\[0\]: unknown action "SCMP_ACT_BOGUS"/,
    );
  });

  test("no-new-privileges and its :true/:false forms", async () => {
    const nnp = (opt: string[]) => dockerOk(agent, ["run", "--rm", ...opt, "busybox", "grep", "^NoNewPrivs:", "/proc/self/status"]);
    assert.equal(await nnp([]), "NoNewPrivs:\t0\n");
    assert.equal(await nnp(["--security-opt", "no-new-privileges"]), "NoNewPrivs:\t1\n");
    assert.equal(await nnp(["--security-opt", "no-new-privileges:true"]), "NoNewPrivs:\t1\n");
    assert.equal(await nnp(["--security-opt", "no-new-privileges=false"]), "NoNewPrivs:\t0\n");
  });

  test("an unknown --security-opt is refused with Docker's message; nothing is created", async () => {
    const before = (await dockerOk(agent, ["ps", "-aq"])).trim();
    assert.match(await refused(["--security-opt", "bogus=1", "busybox", "true"]), /docker: Error response from daemon: invalid --security-opt 2: "bogus=1"/);
    assert.match(await refused(["--security-opt", "no-new-privileges=maybe", "busybox", "true"]), /invalid --security-opt 2: "no-new-privileges=maybe"/);
    assert.match(await refused(["--security-opt", "apparmor=docker-default", "busybox", "true"]), /AppArmor profiles are not supported by Berth/);
    assert.equal((await dockerOk(agent, ["ps", "-aq"])).trim(), before);
  });

  test("--privileged: every capability, the host's devices, writable /sys, no seccomp, no masked paths", async (t) => {
    assert.equal(await dockerOk(agent, ["run", "--rm", "--privileged", "busybox", ...SECCOMP]), "Seccomp:\t0\n");
    const capEff = (await dockerOk(agent, ["run", "--rm", "--privileged", "busybox", "grep", "^CapEff:", "/proc/self/status"])).trim().split(/\s+/)[1]!;
    const hostCapEff = /^CapEff:\s*(\S+)$/m.exec(await readFile("/proc/self/status", "utf8"))![1];
    assert.equal(capEff, hostCapEff, "the full capability set, as the (root) agent has it");
    // Masked paths (/proc/timer_list is /dev/null by default) and the read-only /sys are Docker's defaults only.
    const look = "stat -c %F /proc/timer_list; grep -q ' /sys sysfs rw' /proc/mounts && echo sys-rw || echo sys-ro";
    assert.equal(await dockerOk(agent, ["run", "--rm", "--privileged", "busybox", "sh", "-c", look]), "regular empty file\nsys-rw\n");
    assert.equal(await dockerOk(agent, ["run", "--rm", "busybox", "sh", "-c", look]), "character special file\nsys-ro\n");
    if (existsSync("/dev/kmsg")) {
      assert.equal(await dockerOk(agent, ["run", "--rm", "--privileged", "busybox", "sh", "-c", "test -c /dev/kmsg && echo kmsg"]), "kmsg\n");
      assert.equal(await dockerOk(agent, ["run", "--rm", "busybox", "sh", "-c", "test -e /dev/kmsg || echo no-kmsg"]), "no-kmsg\n");
    }
    const c = uniq("priv");
    removeAfter(t, c);
    await dockerOk(agent, ["create", "--name", c, "--privileged", "busybox", "true"]);
    assert.equal(
      await inspect(c, "{{.HostConfig.Privileged}} {{json .HostConfig.MaskedPaths}} {{json .HostConfig.SecurityOpt}}"),
      'true null ["label=disable"]',
    );
  });

  test("--pid host sees the host's PID 1; --pid container:NAME shares another container's processes", async (t) => {
    const hostInit = (await readFile("/proc/1/comm", "utf8")).trim();
    assert.equal((await dockerOk(agent, ["run", "--rm", "--pid", "host", "busybox", "cat", "/proc/1/comm"])).trim(), hostInit);
    assert.equal((await dockerOk(agent, ["run", "--rm", "busybox", "cat", "/proc/1/comm"])).trim(), "cat", "a container of its own is its own PID 1");
    assert.equal(
      (await dockerOk(agent, ["run", "--rm", "--pid", "host", "busybox", "readlink", "/proc/self/ns/pid"])).trim(),
      await readlink("/proc/self/ns/pid"),
    );

    const donor = uniq("pid-donor");
    const c = uniq("pid-host");
    removeAfter(t, donor, c);
    await dockerOk(agent, ["run", "-d", "--name", donor, "busybox", "sleep", "321"]);
    const ps = await dockerOk(agent, ["run", "--rm", "--pid", `container:${donor}`, "busybox", "ps", "-o", "pid,args"]);
    assert.match(ps, /^\s*1\s+sleep 321$/m, ps);
    await dockerOk(agent, ["create", "--name", c, "--pid", "host", "busybox", "true"]);
    assert.equal(await inspect(c, "{{.HostConfig.PidMode}} {{json .HostConfig.SecurityOpt}}"), 'host ["label=disable"]', "as Docker 20.10 records it");

    const stopped = uniq("pid-stopped");
    removeAfter(t, stopped);
    await dockerOk(agent, ["create", "--name", stopped, "busybox", "true"]);
    assert.match(await refused(["--pid", `container:${stopped}`, "busybox", "true"]), /cannot join PID of a non running container/);
    assert.match(await refused(["--pid", "container:no-such-container-x", "busybox", "true"]), /No such container: no-such-container-x/);
  });

  test("--uts host: the host's hostname (and --hostname with it is refused); --ipc host: the host's IPC namespace", async (t) => {
    assert.equal((await dockerOk(agent, ["run", "--rm", "--uts", "host", "busybox", "hostname"])).trim(), hostHostname());
    assert.equal(
      (await dockerOk(agent, ["run", "--rm", "--uts", "host", "busybox", "readlink", "/proc/self/ns/uts"])).trim(),
      await readlink("/proc/self/ns/uts"),
    );
    assert.match(
      await refused(["--uts", "host", "--hostname", "x", "busybox", "true"]),
      /Error response from daemon: conflicting options: hostname and the UTS mode/,
    );

    assert.equal(
      (await dockerOk(agent, ["run", "--rm", "--ipc", "host", "busybox", "readlink", "/proc/self/ns/ipc"])).trim(),
      await readlink("/proc/self/ns/ipc"),
    );
    assert.notEqual((await dockerOk(agent, ["run", "--rm", "busybox", "readlink", "/proc/self/ns/ipc"])).trim(), await readlink("/proc/self/ns/ipc"));
    // The host's /dev/shm comes with it: a file made there is seen by the host.
    const marker = uniq("berth-shm");
    t.after(() => rm(`/dev/shm/${marker}`, { force: true }));
    await dockerOk(agent, ["run", "--rm", "--ipc", "host", "busybox", "touch", `/dev/shm/${marker}`]);
    assert.ok(existsSync(`/dev/shm/${marker}`));
    assert.equal(await dockerOk(agent, ["run", "--rm", "--ipc", "none", "busybox", "sh", "-c", "test -e /dev/shm || echo no-shm"]), "no-shm\n");
    assert.match(await refused(["--ipc", "container:x", "busybox", "true"]), /--ipc container:x is not supported by Berth/);

    const c = uniq("ns-modes");
    removeAfter(t, c);
    await dockerOk(agent, ["create", "--name", c, "--uts", "host", "--ipc", "host", "busybox", "true"]);
    assert.equal(await inspect(c, "{{.HostConfig.UTSMode}} {{.HostConfig.IpcMode}} {{.HostConfig.PidMode}}|"), "host host |");
    const d = uniq("ns-default");
    removeAfter(t, d);
    await dockerOk(agent, ["create", "--name", d, "busybox", "true"]);
    assert.equal(await inspect(d, "{{.HostConfig.UTSMode}}|{{.HostConfig.IpcMode}}|{{.HostConfig.PidMode}}|"), "|private||");
  });

  test("--device and --device-cgroup-rule: the node is made in the container and usable, cgroup permissions hold, inspect shows them", async (t) => {
    assert.equal(
      await dockerOk(agent, [
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/mynull",
        "busybox",
        "sh",
        "-c",
        "echo hi > /dev/mynull && stat -c '%F %t:%T' /dev/mynull",
      ]),
      "character special file 1:3\n",
    );
    // A device outside Docker's default allow-list (null, zero, tty… are always rwm): its node and
    // cgroup rule come only with --device, and "r" lets it be opened for reading only.
    assert.ok(existsSync("/dev/loop-control"), "the host has /dev/loop-control (10:237)");
    const openBoth = "exec 3</dev/lc && echo read-open-ok; exec 4>/dev/lc && echo write-open-ok";
    const none = await docker(agent, ["run", "--rm", "busybox", "sh", "-c", "test -e /dev/loop-control || echo absent"]);
    assert.equal(none.stdout, "absent\n");
    assert.equal(
      await dockerOk(agent, ["run", "--rm", "--device", "/dev/loop-control:/dev/lc:rw", "busybox", "sh", "-c", openBoth]),
      "read-open-ok\nwrite-open-ok\n",
    );
    const ro = await docker(agent, ["run", "--rm", "--device", "/dev/loop-control:/dev/lc:r", "busybox", "sh", "-c", openBoth]);
    assert.equal(ro.stdout, "read-open-ok\n");
    assert.match(ro.stderr, /can't create \/dev\/lc: Operation not permitted/);
    assert.match(
      await refused(["--device", "/dev/no-such-device", "busybox", "true"]),
      /error gathering device information while adding custom device "\/dev\/no-such-device": no such file or directory/,
    );
    assert.match(
      await refused(["--device", "/etc/hostname:/dev/x", "busybox", "true"]),
      /error gathering device information while adding custom device "\/etc\/hostname": not a device node/,
    );

    // --device-cgroup-rule: a node the container makes itself (CAP_MKNOD) opens only with a rule allowing it.
    const own = "mknod /dev/lc c 10 237 && exec 3</dev/lc && echo opened";
    const denied = await docker(agent, ["run", "--rm", "busybox", "sh", "-c", own]);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /can't open \/dev\/lc: Operation not permitted/);
    assert.equal(await dockerOk(agent, ["run", "--rm", "--device-cgroup-rule", "c 10:237 r", "busybox", "sh", "-c", own]), "opened\n");
    // The CLI checks the syntax too; other clients meet the agent's check.
    const badRule = await api("POST", "/containers/create", { Image: "busybox", HostConfig: { DeviceCgroupRules: ["c 10:237 rx"] } });
    assert.deepEqual([badRule.status, badRule.message], [400, "invalid device cgroup rule format: 'c 10:237 rx'"]);

    const c = uniq("dev");
    removeAfter(t, c);
    await dockerOk(agent, ["create", "--name", c, "--device", "/dev/null:/dev/mynull:rw", "--device-cgroup-rule", "c 10:237 r", "busybox", "true"]);
    assert.equal(await inspect(c, "{{json .HostConfig.Devices}}"), '[{"PathOnHost":"/dev/null","PathInContainer":"/dev/mynull","CgroupPermissions":"rw"}]');
    assert.equal(await inspect(c, "{{json .HostConfig.DeviceCgroupRules}}"), '["c 10:237 r"]');
  });

  test("--security-opt systempaths=unconfined lifts the masked and read-only paths; --cgroupns private", async () => {
    const look = "stat -c %F /proc/timer_list; grep -q ' /proc/sys proc ro' /proc/mounts && echo sys-ro || echo sys-rw";
    assert.equal(
      await dockerOk(agent, ["run", "--rm", "--security-opt", "systempaths=unconfined", "busybox", "sh", "-c", look]),
      "regular empty file\nsys-rw\n",
    );
    assert.equal(await dockerOk(agent, ["run", "--rm", "busybox", "sh", "-c", look]), "character special file\nsys-ro\n");
    const hostCgroupns = await readlink("/proc/self/ns/cgroup");
    assert.equal(
      (await dockerOk(agent, ["run", "--rm", "busybox", "readlink", "/proc/self/ns/cgroup"])).trim(),
      hostCgroupns,
      "Docker's default on cgroup v1: the host's",
    );
    const own = await dockerOk(agent, [
      "run",
      "--rm",
      "--cgroupns",
      "private",
      "busybox",
      "sh",
      "-c",
      "readlink /proc/self/ns/cgroup; grep -v ':/$' /proc/self/cgroup | wc -l",
    ]);
    const [ns, notRoot] = own.trim().split("\n");
    assert.notEqual(ns, hostCgroupns);
    assert.equal(notRoot, "0", "every hierarchy is rooted at the container's own cgroup");
  });

  test("--sysctl: namespaced parameters are set; others, and net.* with the host's network, are refused", async () => {
    assert.equal(
      await dockerOk(agent, [
        "run",
        "--rm",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--sysctl",
        "kernel.shmmni=1234",
        "busybox",
        "cat",
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/kernel/shmmni",
      ]),
      "1\n1234\n",
    );
    // The docker CLI itself refuses what is not namespaced; other clients meet the agent's refusal.
    const vm = await api("POST", "/containers/create", { Image: "busybox", HostConfig: { Sysctls: { "vm.swappiness": "10" } } });
    assert.equal(vm.status, 400);
    assert.equal(vm.message, 'sysctl "vm.swappiness" is not in a separate kernel namespace');
    assert.match(await refused(["--network", "host", "--sysctl", "net.ipv4.ip_forward=1", "busybox", "true"]), /not allowed in host network namespace/);
  });

  test("security-relevant flags Berth does not implement are refused, never dropped", async () => {
    assert.match(await refused(["--ulimit", "nofile=10:10", "busybox", "true"]), /--ulimit is not supported by Berth/);
    assert.match(await refused(["--cgroup-parent", "/elsewhere", "busybox", "true"]), /--cgroup-parent is not supported by Berth/);
    assert.match(await refused(["--oom-score-adj", "500", "busybox", "true"]), /--oom-score-adj is not supported by Berth/);
    const userns = await api("POST", "/containers/create", { Image: "busybox", HostConfig: { UsernsMode: "private" } });
    assert.deepEqual([userns.status, userns.message], [400, '--userns is not supported by Berth (HostConfig.UsernsMode: "private")']);
  });
});
