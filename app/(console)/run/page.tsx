"use client";
import { useRouter } from "next/navigation";
import { useId, useState, type FormEvent } from "react";
import { trpc } from "../../lib/trpc.ts";
import { ApiError, useCan } from "../../components/action-bar.tsx";
import { NodeSelect } from "../../components/node-picker.tsx";
import { Field } from "../../components/ui.tsx";

const RESTART = ["no", "always", "on-failure", "unless-stopped"] as const;
const lines = (text: string) => text.split("\n").map((l) => l.trim()).filter(Boolean);

export default function RunPage() {
  const can = useCan();
  const me = trpc.auth.me.useQuery(undefined, { staleTime: 10_000 });
  const router = useRouter();
  const id = useId();
  const [nodeId, setNodeId] = useState("");
  const [image, setImage] = useState("");
  const [name, setName] = useState("");
  const [command, setCommand] = useState("");
  const [env, setEnv] = useState("");
  const [ports, setPorts] = useState("");
  const [volumes, setVolumes] = useState("");
  const [memory, setMemory] = useState("");
  const [cpus, setCpus] = useState("");
  const [pidsLimit, setPidsLimit] = useState("");
  const [restart, setRestart] = useState<(typeof RESTART)[number]>("no");
  const [network, setNetwork] = useState("bridge");
  const [formError, setFormError] = useState<string | null>(null);
  // The chosen node's networks, offered as suggestions for the network field.
  const networks = trpc.inventory.networks.useQuery({ nodeId, pageSize: 500 }, { enabled: !!nodeId && can.operate });
  const run = trpc.jobs.run.useMutation({ onSuccess: (r) => router.push(`/jobs/${r.jobId}`) });

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
    const num = (text: string, what: string, integer: boolean): number | undefined | null => {
      if (!text.trim()) return undefined;
      const v = Number(text.trim());
      if (!Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
        setFormError(`${what} "${text}": write a ${integer ? "whole " : ""}number above 0`);
        return null;
      }
      return v;
    };
    const c = num(cpus, "CPUs", false);
    const p = num(pidsLimit, "PIDs limit", true);
    if (c === null || p === null) return;
    run.mutate({
      nodeId,
      image: image.trim(),
      ...(name.trim() ? { name: name.trim() } : {}),
      ...(command.trim() ? { command } : {}),
      env: lines(env),
      ports: lines(ports),
      volumes: lines(volumes),
      ...(memory.trim() ? { memory: memory.trim() } : {}),
      ...(c !== undefined ? { cpus: c } : {}),
      ...(p !== undefined ? { pidsLimit: p } : {}),
      restart,
      network: network.trim() || "bridge",
    });
  }

  const f = (s: string) => `${id}-${s}`;
  return (
    <>
      <h1>Run a container</h1>
      <form className="panel" onSubmit={submit} style={{ maxWidth: 860 }} aria-label="run a container">
        <div className="grid2">
          <Field label="Node">
            <NodeSelect id={f("node")} value={nodeId} onChange={setNodeId} />
          </Field>
          <Field label="Image">
            <input id={f("image")} value={image} onChange={(e) => setImage(e.target.value)} placeholder="127.0.0.1:5000/library/busybox:latest" required style={{ width: "100%" }} />
          </Field>
          <Field label="Name">
            <input id={f("name")} value={name} onChange={(e) => setName(e.target.value)} placeholder="optional, e.g. web" style={{ width: "100%" }} />
          </Field>
          <Field label="Command">
            <input id={f("command")} value={command} onChange={(e) => setCommand(e.target.value)} placeholder="empty: the image's command" className="mono" style={{ width: "100%" }} />
          </Field>
          <Field label="Environment">
            <textarea id={f("env")} value={env} onChange={(e) => setEnv(e.target.value)} placeholder={"one per line: NAME=value"} rows={4} className="mono" style={{ width: "100%" }} />
          </Field>
          <Field label="Ports">
            <textarea id={f("ports")} value={ports} onChange={(e) => setPorts(e.target.value)} placeholder={"one per line: 8080:80, 127.0.0.1:5353:53/udp"} rows={4} className="mono" style={{ width: "100%" }} />
          </Field>
          <Field label="Volumes">
            <textarea id={f("volumes")} value={volumes} onChange={(e) => setVolumes(e.target.value)} placeholder={"one per line: data:/var/lib/app, /srv/www:/www:ro"} rows={4} className="mono" style={{ width: "100%" }} />
          </Field>
          <div>
            <div className="grid2">
              <Field label="Memory">
                <input id={f("memory")} value={memory} onChange={(e) => setMemory(e.target.value)} placeholder="e.g. 256m" style={{ width: "100%" }} />
              </Field>
              <Field label="CPUs">
                <input id={f("cpus")} value={cpus} onChange={(e) => setCpus(e.target.value)} inputMode="decimal" placeholder="e.g. 0.5" style={{ width: "100%" }} />
              </Field>
              <Field label="PIDs limit">
                <input id={f("pids")} value={pidsLimit} onChange={(e) => setPidsLimit(e.target.value)} inputMode="numeric" placeholder="e.g. 100" style={{ width: "100%" }} />
              </Field>
              <Field label="Restart policy">
                <select id={f("restart")} value={restart} onChange={(e) => setRestart(e.target.value as typeof restart)} style={{ width: "100%" }}>
                  {RESTART.map((r) => (
                    <option key={r} value={r}>
                      {r}
                    </option>
                  ))}
                </select>
              </Field>
            </div>
          </div>
          <Field label="Network">
            <input id={f("network")} value={network} onChange={(e) => setNetwork(e.target.value)} list={f("networks")} style={{ width: "100%" }} />
            <datalist id={f("networks")}>
              {["bridge", "host", "none", ...(networks.data?.items.map((n) => n.name) ?? [])]
                .filter((v, i, a) => a.indexOf(v) === i)
                .map((n) => (
                  <option key={n} value={n} />
                ))}
            </datalist>
          </Field>
        </div>
        {formError && (
          <div className="error" role="alert">
            {formError}
          </div>
        )}
        {!can.admin && <p className="muted">Named volumes are always allowed; host paths (starting with /) and the host network only where your node group&apos;s host access allows them.</p>}
        <ApiError error={run.error} />
        <p className="row">
          <button type="submit" className="primary" disabled={run.isPending}>
            Run
          </button>
          {run.isPending && <span className="muted">starting…</span>}
        </p>
      </form>
    </>
  );
}
