"use client";
// The node page's panels: name and labels (admins), the engine's settings and versions,
// disk use, and the prune actions.
import { useState, type FormEvent } from "react";
import { trpc } from "../lib/trpc.ts";
import { ApiError, FieldError } from "./action-bar.tsx";
import { bytes } from "./format.ts";
import { PruneButton } from "./prune-actions.tsx";
import { ErrorBox, Field } from "./ui.tsx";

const NODE_FIELDS = ["name", "labels"] as const;

/** "env=prod" lines as a label map; the line numbers of the lines that are not key=value. */
export function parseLabelLines(text: string): { labels: Record<string, string>; bad: number[] } {
  const labels: Record<string, string> = {};
  const bad: number[] = [];
  text.split("\n").forEach((line, i) => {
    const l = line.trim();
    if (!l) return;
    const eq = l.indexOf("=");
    if (eq <= 0) bad.push(i + 1);
    else labels[l.slice(0, eq).trim()] = l.slice(eq + 1).trim();
  });
  return { labels, bad };
}

const labelLines = (labels: Record<string, string>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join("\n");

/** Rename and label a node (admins). Starts from the stored values; the page keys it by node, and a save keeps what was typed. */
export function NodeSettings({ node }: { node: { id: string; name: string; labels: Record<string, string> } }) {
  const utils = trpc.useUtils();
  const [name, setName] = useState(node.name);
  const [labels, setLabels] = useState(labelLines(node.labels));
  const [bad, setBad] = useState<number[]>([]);
  const update = trpc.nodes.update.useMutation({ onSuccess: () => void utils.nodes.invalidate() });
  function submit(e: FormEvent) {
    e.preventDefault();
    update.reset();
    const parsed = parseLabelLines(labels);
    setBad(parsed.bad);
    if (parsed.bad.length) return;
    update.mutate({ nodeId: node.id, name, labels: parsed.labels });
  }
  return (
    <form className="panel" onSubmit={submit} aria-label="node name and labels">
      <b>Name and labels</b>
      <div className="grid2">
        <Field label="Name" error={<FieldError error={update.error} field="name" fields={NODE_FIELDS} />}>
          <input id="node-name" value={name} onChange={(e) => setName(e.target.value)} style={{ width: "100%" }} />
        </Field>
        <Field
          label="Labels (one key=value a line)"
          error={
            bad.length ? (
              <div className="field-error" role="alert" data-field="labels">
                line {bad.join(", ")}: not key=value
              </div>
            ) : (
              <FieldError error={update.error} field="labels" fields={NODE_FIELDS} />
            )
          }
        >
          <textarea
            id="node-labels"
            value={labels}
            onChange={(e) => setLabels(e.target.value)}
            rows={3}
            placeholder={"env=prod\nrack=b2"}
            style={{ width: "100%" }}
          />
        </Field>
      </div>
      <ApiError error={update.error} fields={NODE_FIELDS} />
      <p className="row" style={{ marginBottom: 0 }}>
        <button className="primary" type="submit" disabled={update.isPending}>
          Save
        </button>
        {update.isSuccess && <span className="badge ok">Saved.</span>}
      </p>
    </form>
  );
}

function Facts({ rows, testId }: { rows: Array<[string, string]>; testId: string }) {
  return (
    <dl data-testid={testId} style={{ display: "grid", gridTemplateColumns: "repeat(auto-fill, minmax(230px, 1fr))", gap: "8px 20px", margin: 0 }}>
      {rows.map(([k, v]) => (
        <div key={k}>
          <dt className="muted" style={{ fontSize: 12 }}>
            {k}
          </dt>
          <dd style={{ margin: 0, overflowWrap: "anywhere" }} className="mono">
            {v}
          </dd>
        </div>
      ))}
    </dl>
  );
}

/** The engine's settings and versions, read from the node now (`docker info`). */
export function EnginePanel({ nodeId, online }: { nodeId: string; online: boolean }) {
  const info = trpc.nodes.engine.useQuery({ nodeId }, { enabled: online, staleTime: 30_000, retry: false });
  const i = info.data;
  return (
    <section className="panel" aria-label="engine">
      <b>Engine</b>
      {!online && <p className="muted">The node is offline: its engine cannot be asked now.</p>}
      <ErrorBox error={info.error} />
      {i && (
        <Facts
          testId="engine-facts"
          rows={[
            ["Engine version", i.engineVersion],
            ["API version", i.apiVersion],
            ["Agent version", i.agentVersion],
            ["Runtime", i.defaultRuntime ?? "runc"],
            ["Supervised by", i.supervisor === undefined ? "unknown (older agent)" : (i.supervisor ?? "nothing (restart it on the host)")],
            ["Storage driver", i.driver],
            ["Data root", i.dataRoot],
            ["Registry mirrors", i.registryMirrors.length ? i.registryMirrors.join(", ") : "none"],
            ["Insecure registries", i.insecureRegistries.length ? i.insecureRegistries.join(", ") : "none"],
            ["Engine ID", i.engineId],
            ["cgroup", `v${i.facts.cgroupVersion}`],
            ["Clock", new Date(i.systemTime).toLocaleString()],
          ]}
        />
      )}
      {online && !i && !info.error && <p className="muted">Asking the node…</p>}
    </section>
  );
}

/** Disk use by images, containers and volumes (`docker system df`), with the prune actions. */
export function DiskUsagePanel({ nodeId, nodeName, online, canOperate }: { nodeId: string; nodeName: string; online: boolean; canOperate: boolean }) {
  const df = trpc.nodes.diskUsage.useQuery({ nodeId }, { enabled: online, staleTime: 30_000, retry: false });
  const d = df.data;
  return (
    <section className="panel" aria-label="disk use">
      <div className="row" style={{ justifyContent: "space-between" }}>
        <b>Disk use</b>
        {online && (
          <button type="button" onClick={() => void df.refetch()} disabled={df.isFetching}>
            {df.isFetching ? "Measuring…" : "Measure again"}
          </button>
        )}
      </div>
      {!online && <p className="muted">The node is offline: disk use cannot be measured now.</p>}
      <ErrorBox error={df.error} />
      {d && (
        <table data-testid="disk-use" style={{ marginTop: 8 }}>
          <thead>
            <tr>
              <th>Type</th>
              <th className="num">Total</th>
              <th className="num">Active</th>
              <th className="num">Size</th>
            </tr>
          </thead>
          <tbody>
            <tr>
              <td>Images</td>
              <td className="num">{d.images.count}</td>
              <td className="num">{d.images.active}</td>
              <td className="num">{bytes(d.images.size)}</td>
            </tr>
            <tr>
              <td>Containers</td>
              <td className="num">{d.containers.count}</td>
              <td className="num">{d.containers.running}</td>
              <td className="num">{bytes(d.containers.size)}</td>
            </tr>
            <tr>
              <td>Volumes</td>
              <td className="num">{d.volumes.count}</td>
              <td className="num">{d.volumes.inUse}</td>
              <td className="num">{bytes(d.volumes.size)}</td>
            </tr>
          </tbody>
        </table>
      )}
      {canOperate && (
        <div className="row" style={{ marginTop: 10 }}>
          {(["images", "containers", "volumes", "networks"] as const).map((k) => (
            <PruneButton key={k} kind={k} nodeIds={[nodeId]} nodesText={`on ${nodeName}`} />
          ))}
        </div>
      )}
    </section>
  );
}
