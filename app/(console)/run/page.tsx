"use client";
// The Run form (`docker run`'s flags as fields). With `?from=<node>/<container>&mode=recreate`
// it is filled from that container and replaces it (removed first, then run again under
// its name); `mode=duplicate` fills it the same way for a new container beside it. The
// job's outcome shows on this page: the new container's link, or why it failed.
import Link from "next/link";
import { useSearchParams } from "next/navigation";
import { Suspense, useEffect, useId, useRef, useState, type FormEvent } from "react";
import { trpc, type RouterOutputs } from "../../lib/trpc.ts";
import { ApiError, useCan } from "../../components/action-bar.tsx";
import { NodeSelect } from "../../components/node-picker.tsx";
import { showToast } from "../../components/toasts.tsx";
import { Badge, Field, LinesField, TextField } from "../../components/ui.tsx";

const RESTART = ["no", "always", "on-failure", "unless-stopped"] as const;
const lines = (text: string) =>
  text
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
type Inspect = RouterOutputs["inventory"]["containerInspect"];

/** Words back into one command line the form's splitter reads the same way. */
const quote = (words: readonly string[]) => words.map((w) => (w === "" || /[\s"'\\]/.test(w) ? `'${w.replace(/'/g, `'"'"'`)}'` : w)).join(" ");

function formOf(c: Inspect, mode: "recreate" | "duplicate") {
  const o = c.options;
  return {
    nodeId: c.node.id,
    image: o.image,
    name: mode === "recreate" ? c.name : `${c.name}-copy`,
    command: o.cmd ? quote(o.cmd) : "",
    entrypoint: Array.isArray(o.entrypoint) ? quote(o.entrypoint) : "",
    workdir: o.workingDir ?? "",
    user: o.user ?? "",
    labels: Object.entries(o.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n"),
    tty: o.tty,
    env: o.env.join("\n"),
    ports: o.ports
      .map((p) => `${p.hostIp ? `${p.hostIp}:` : ""}${p.hostPort ? `${p.hostPort}:` : p.hostIp ? ":" : ""}${p.containerPort}/${p.protocol}`)
      .join("\n"),
    volumes: o.mounts.map((m) => (m.anonymous || !m.source ? m.destination : `${m.source}:${m.destination}${m.readonly ? ":ro" : ""}`)).join("\n"),
    memory: o.memory ? `${Math.round(o.memory / 1024 / 1024)}m` : "",
    cpus: o.nanoCpus ? String(o.nanoCpus / 1e9) : "",
    pidsLimit: o.pidsLimit ? String(o.pidsLimit) : "",
    restart: o.restartPolicy.name,
    restartRetries: o.restartPolicy.maximumRetryCount ? String(o.restartPolicy.maximumRetryCount) : "",
    network: o.networkMode || "bridge",
  };
}

/**
 * Keep volumes: the old container's anonymous volumes (its own `-v /path` and the image's
 * VOLUMEs) are mounted by name in the new one instead of new empty ones.
 */
function keepingVolumes(volumes: string[], c: Inspect): string[] {
  const anonymous = c.mounts.filter((m) => m.type === "volume" && m.anonymous);
  const out = volumes.map((v) =>
    anonymous.find((m) => m.destination === v.trim()) ? `${anonymous.find((m) => m.destination === v.trim())!.source}:${v.trim()}` : v,
  );
  for (const m of anonymous) if (!out.some((v) => v.split(":")[1] === m.destination || v === m.destination)) out.push(`${m.source}:${m.destination}`);
  return out;
}

export default function RunPage() {
  return (
    <Suspense>
      <RunForm />
    </Suspense>
  );
}

function RunForm() {
  const can = useCan();
  const me = trpc.auth.me.useQuery(undefined, { staleTime: 10_000 });
  const params = useSearchParams();
  const from = params.get("from");
  const mode = params.get("mode") === "recreate" ? "recreate" : from ? "duplicate" : null;
  const [fromNode, fromId] = from ? [from.slice(0, from.indexOf("/")), from.slice(from.indexOf("/") + 1)] : ["", ""];
  const source = trpc.inventory.containerInspect.useQuery(
    { nodeId: fromNode, id: fromId },
    { enabled: !!from && !!fromNode && !!fromId, retry: false, staleTime: Infinity, refetchOnWindowFocus: false },
  );
  const id = useId();
  const [nodeId, setNodeId] = useState("");
  const [image, setImage] = useState("");
  const [name, setName] = useState("");
  const [command, setCommand] = useState("");
  const [entrypoint, setEntrypoint] = useState("");
  const [workdir, setWorkdir] = useState("");
  const [user, setUser] = useState("");
  const [labels, setLabels] = useState("");
  const [tty, setTty] = useState(false);
  const [env, setEnv] = useState("");
  const [ports, setPorts] = useState("");
  const [volumes, setVolumes] = useState("");
  const [memory, setMemory] = useState("");
  const [cpus, setCpus] = useState("");
  const [pidsLimit, setPidsLimit] = useState("");
  const [restart, setRestart] = useState<(typeof RESTART)[number]>("no");
  const [restartRetries, setRestartRetries] = useState("");
  const [network, setNetwork] = useState("bridge");
  const [pullLatest, setPullLatest] = useState(false);
  const [keepVolumes, setKeepVolumes] = useState(true);
  const [formError, setFormError] = useState<string | null>(null);
  const [jobId, setJobId] = useState<string | null>(null);
  // The chosen node's networks, for the network picker.
  const networks = trpc.inventory.networks.useQuery({ nodeId, pageSize: 500 }, { enabled: !!nodeId && can.operate });
  const run = trpc.jobs.run.useMutation({
    onSuccess: (r) => {
      setJobId(r.jobId);
      showToast({ text: `${mode === "recreate" ? "Recreate" : "Run"} ${name.trim() || image.trim()}:`, jobId: r.jobId });
    },
  });

  const c = source.data;
  // Filled once per source: a refetch (the node reported a change) must not undo the user's edits.
  const filled = useRef<string | null>(null);
  useEffect(() => {
    if (!c || !mode || filled.current === `${mode}:${c.id}`) return;
    filled.current = `${mode}:${c.id}`;
    const f = formOf(c, mode);
    setNodeId(f.nodeId);
    setImage(f.image);
    setName(f.name);
    setCommand(f.command);
    setEntrypoint(f.entrypoint);
    setWorkdir(f.workdir);
    setUser(f.user);
    setLabels(f.labels);
    setTty(f.tty);
    setEnv(f.env);
    setPorts(f.ports);
    setVolumes(f.volumes);
    setMemory(f.memory);
    setCpus(f.cpus);
    setPidsLimit(f.pidsLimit);
    setRestart(f.restart);
    setRestartRetries(f.restartRetries);
    setNetwork(f.network);
  }, [c, mode]);

  if (me.data && !can.operate) {
    return (
      <>
        <h1>Run a container</h1>
        <p className="muted">Running containers needs the operator or admin role.</p>
      </>
    );
  }

  function submit(e: FormEvent) {
    e.preventDefault();
    setFormError(null);
    setJobId(null);
    const num = (text: string, what: string, integer: boolean, min = 1): number | undefined | null => {
      if (!text.trim()) return undefined;
      const v = Number(text.trim());
      if (!Number.isFinite(v) || v < min || (min > 0 && v <= 0) || (integer && !Number.isInteger(v))) {
        setFormError(`${what} "${text}": write a ${integer ? "whole " : ""}number ${min > 0 ? "above 0" : "of 0 or more"}`);
        return null;
      }
      return v;
    };
    const cpu = num(cpus, "CPUs", false);
    const p = num(pidsLimit, "PIDs limit", true);
    const retries = restart === "on-failure" ? num(restartRetries, "Retries", true, 0) : undefined;
    if (cpu === null || p === null || retries === null) return;
    const recreate = mode === "recreate" && c ? { id: c.id, keepVolumes } : undefined;
    run.mutate({
      nodeId,
      image: image.trim(),
      ...(name.trim() ? { name: name.trim() } : {}),
      ...(command.trim() ? { command } : {}),
      ...(entrypoint.trim() ? { entrypoint } : {}),
      ...(workdir.trim() ? { workdir: workdir.trim() } : {}),
      ...(user.trim() ? { user: user.trim() } : {}),
      labels: lines(labels),
      tty,
      env: lines(env),
      ports: lines(ports),
      volumes: recreate?.keepVolumes && c ? keepingVolumes(lines(volumes), c) : lines(volumes),
      ...(memory.trim() ? { memory: memory.trim() } : {}),
      ...(cpu !== undefined ? { cpus: cpu } : {}),
      ...(p !== undefined ? { pidsLimit: p } : {}),
      restart,
      ...(retries !== undefined ? { restartRetries: retries } : {}),
      network: network.trim() || "bridge",
      pullLatest,
      ...(recreate ? { replace: recreate } : {}),
    });
  }

  const f = (s: string) => `${id}-${s}`;
  const networkNames = ["bridge", "host", "none", ...(networks.data?.items.map((n) => n.name) ?? []), network].filter((v, i, a) => v && a.indexOf(v) === i);
  const title =
    mode === "recreate" ? `Recreate ${c?.name ?? "a container"}` : mode === "duplicate" ? `Duplicate ${c?.name ?? "a container"}` : "Run a container";
  return (
    <>
      <h1>{title}</h1>
      {mode && !c && <ApiError error={source.error} />}
      {mode === "recreate" && c && (
        <p className="muted">
          {c.name} is removed (with force) when this runs, then created again from the fields below under its name. Its writable layer is lost;{" "}
          {keepVolumes ? "its volumes are kept and mounted again" : "its anonymous volumes are removed too"}.
        </p>
      )}
      <form className="panel" onSubmit={submit} style={{ maxWidth: 860 }} aria-label="run a container">
        <div className="grid2">
          <Field label="Node">
            <NodeSelect id={f("node")} value={nodeId} onChange={setNodeId} />
          </Field>
          <TextField label="Image" id={f("image")} value={image} onChange={setImage} placeholder="127.0.0.1:5000/library/busybox:latest" required />
          <TextField label="Name" id={f("name")} value={name} onChange={setName} placeholder="optional, e.g. web" />
          <TextField label="Command" id={f("command")} value={command} onChange={setCommand} placeholder="empty: the image's command" mono />
          <TextField label="Entrypoint" id={f("entrypoint")} value={entrypoint} onChange={setEntrypoint} placeholder="empty: the image's entrypoint" mono />
          <div className="grid2">
            <TextField label="Working directory" id={f("workdir")} value={workdir} onChange={setWorkdir} placeholder="e.g. /app" mono />
            <TextField label="User" id={f("user")} value={user} onChange={setUser} placeholder="e.g. 1000:1000" mono />
          </div>
          <LinesField label="Environment" id={f("env")} value={env} onChange={setEnv} placeholder={"one per line: NAME=value"} rows={4} mono />
          <LinesField
            label="Ports"
            id={f("ports")}
            value={ports}
            onChange={setPorts}
            placeholder={"one per line: 8080:80, 127.0.0.1:5353:53/udp"}
            rows={4}
            mono
          />
          <LinesField
            label="Volumes"
            id={f("volumes")}
            value={volumes}
            onChange={setVolumes}
            placeholder={"one per line: data:/var/lib/app, /srv/www:/www:ro"}
            rows={4}
            mono
          />
          <LinesField label="Labels" id={f("labels")} value={labels} onChange={setLabels} placeholder={"one per line: key=value"} rows={4} mono />
          <div>
            <div className="grid2">
              <TextField label="Memory" id={f("memory")} value={memory} onChange={setMemory} placeholder="e.g. 256m" />
              <TextField label="CPUs" id={f("cpus")} value={cpus} onChange={setCpus} placeholder="e.g. 0.5" inputMode="decimal" />
              <TextField label="PIDs limit" id={f("pids")} value={pidsLimit} onChange={setPidsLimit} placeholder="e.g. 100" inputMode="numeric" />
              <Field label="Restart policy">
                <select id={f("restart")} value={restart} onChange={(e) => setRestart(e.target.value as typeof restart)} style={{ width: "100%" }}>
                  {RESTART.map((r) => (
                    <option key={r} value={r}>
                      {r}
                    </option>
                  ))}
                </select>
              </Field>
              {restart === "on-failure" && (
                <TextField
                  label="Retries (0: no limit)"
                  id={f("retries")}
                  value={restartRetries}
                  onChange={setRestartRetries}
                  placeholder="e.g. 5"
                  inputMode="numeric"
                />
              )}
            </div>
          </div>
          <div>
            <Field label="Network">
              <select id={f("network")} value={network} onChange={(e) => setNetwork(e.target.value)} style={{ width: "100%" }}>
                {networkNames.map((n) => (
                  <option key={n} value={n}>
                    {n}
                  </option>
                ))}
              </select>
            </Field>
            <div className="row" style={{ marginTop: 10 }}>
              <input id={f("tty")} type="checkbox" checked={tty} onChange={(e) => setTty(e.target.checked)} />
              <label htmlFor={f("tty")} style={{ margin: 0, fontWeight: 400 }}>
                Terminal (tty) for the main process
              </label>
            </div>
            <div className="row">
              <input id={f("pull")} type="checkbox" checked={pullLatest} onChange={(e) => setPullLatest(e.target.checked)} />
              <label htmlFor={f("pull")} style={{ margin: 0, fontWeight: 400 }}>
                Pull latest before running
              </label>
            </div>
            {mode === "recreate" && (
              <div className="row">
                <input id={f("keep")} type="checkbox" checked={keepVolumes} onChange={(e) => setKeepVolumes(e.target.checked)} />
                <label htmlFor={f("keep")} style={{ margin: 0, fontWeight: 400 }}>
                  Keep volumes
                </label>
              </div>
            )}
          </div>
        </div>
        {formError && (
          <div className="error" role="alert">
            {formError}
          </div>
        )}
        {!can.admin && (
          <p className="muted">
            Named volumes are always allowed; host paths (starting with /) and the host network only where your node group&apos;s host access allows them.
          </p>
        )}
        <ApiError error={run.error} />
        <p className="row">
          <button type="submit" className="primary" disabled={run.isPending || (!!mode && !c)}>
            {mode === "recreate" ? "Recreate" : "Run"}
          </button>
          {run.isPending && <span className="muted">starting…</span>}
        </p>
        {jobId && <RunOutcome jobId={jobId} nodeId={nodeId} />}
      </form>
    </>
  );
}

/** The run's job as it goes: its steps, then the new container's page or the reason it failed. */
function RunOutcome({ jobId, nodeId }: { jobId: string; nodeId: string }) {
  const job = trpc.jobs.get.useQuery(
    { jobId },
    { refetchInterval: (q) => (q.state.data && !["queued", "running"].includes(q.state.data.status) ? false : 2000) },
  );
  const j = job.data;
  if (!j) return <p className="muted">starting…</p>;
  const runStep = j.steps.find((s) => s.action === "container.run");
  const created = runStep?.status === "succeeded" ? (runStep.result as { id?: string; name?: string } | null) : null;
  const failed = j.status === "failed" || j.status === "partial";
  return (
    <div className={failed ? "error" : "panel"} role={failed ? "alert" : "status"} data-testid="run-outcome" data-status={j.status}>
      <div className="row">
        <Badge kind={j.status}>{j.status}</Badge>
        {j.steps.map((s) => (
          <span key={s.id} className="muted">
            {s.action.replace("container.", "").replace("image.", "")}: {s.status}
          </span>
        ))}
        <Link href={`/jobs/${jobId}`}>view job</Link>
        {created?.id && <Link href={`/containers/${nodeId}/${created.id}`}>open {created.name ?? "the container"}</Link>}
      </div>
      {j.steps
        .filter((s) => s.error)
        .map((s) => (
          <div key={s.id} className="mono" style={{ marginTop: 4 }}>
            {s.error}
          </div>
        ))}
    </div>
  );
}
