"use client";
// Create volumes and networks on one node or many (each a job), and remove one after a
// confirmation naming what is lost.
import { useState, type FormEvent } from "react";
import { trpc } from "../lib/trpc.ts";
import { ApiError, FieldError, JobNotice } from "./action-bar.tsx";
import { Dialog } from "./dialog.tsx";
import { parseLabelLines } from "./node-panels.tsx";
import { NodeMultiSelect } from "./node-picker.tsx";
import { Field, LinesField, TextField } from "./ui.tsx";

const VOLUME_FIELDS = ["nodeIds", "name", "driverOpts", "labels"] as const;
const NETWORK_FIELDS = ["nodeIds", "name", "subnet", "gateway", "labels"] as const;

function LinesError({
  bad,
  field,
  error,
  fields,
}: {
  bad: number[];
  field: string;
  error: Parameters<typeof FieldError>[0]["error"];
  fields: readonly string[];
}) {
  if (bad.length)
    return (
      <div className="field-error" role="alert" data-field={field}>
        line {bad.join(", ")}: not key=value
      </div>
    );
  return <FieldError error={error} field={field} fields={fields} />;
}

/** "Create volume": a button, its form in a dialog, and the notice of the job started. */
export function CreateVolumeButton({ nodeId }: { nodeId?: string }) {
  const [open, setOpen] = useState(false);
  const [jobId, setJobId] = useState<string | null>(null);
  const [nodeIds, setNodeIds] = useState<string[]>(nodeId ? [nodeId] : []);
  const [name, setName] = useState("");
  const [opts, setOpts] = useState("");
  const [labels, setLabels] = useState("");
  const [bad, setBad] = useState<{ opts: number[]; labels: number[] }>({ opts: [], labels: [] });
  const create = trpc.jobs.createVolume.useMutation({
    onSuccess: (r) => {
      setJobId(r.jobId);
      setOpen(false);
      setName("");
      setOpts("");
      setLabels("");
    },
  });
  function submit(e: FormEvent) {
    e.preventDefault();
    create.reset();
    const o = parseLabelLines(opts);
    const l = parseLabelLines(labels);
    setBad({ opts: o.bad, labels: l.bad });
    if (o.bad.length || l.bad.length) return;
    create.mutate({ nodeIds, ...(name.trim() ? { name: name.trim() } : {}), driverOpts: o.labels, labels: l.labels });
  }
  return (
    <>
      <button type="button" className="primary" onClick={() => (create.reset(), setOpen(true))}>
        Create volume
      </button>
      {jobId && (
        <JobNotice jobIds={[jobId]} onClose={() => setJobId(null)}>
          Volume creation started
        </JobNotice>
      )}
      {open && (
        <Dialog title="Create a volume" onClose={() => setOpen(false)}>
          <form onSubmit={submit} aria-label="create volume">
            <TextField
              label="Name (empty: a random one)"
              id="volume-name"
              value={name}
              onChange={setName}
              error={<FieldError error={create.error} field="name" fields={VOLUME_FIELDS} />}
            />
            {!nodeId && (
              <Field label="Nodes" error={<FieldError error={create.error} field="nodeIds" fields={VOLUME_FIELDS} />}>
                <NodeMultiSelect id="volume-nodes" value={nodeIds} onChange={setNodeIds} />
              </Field>
            )}
            <Field
              label="Driver options of the local driver (key=value a line: type=tmpfs, device=tmpfs, o=size=64m)"
              error={<LinesError bad={bad.opts} field="driverOpts" error={create.error} fields={VOLUME_FIELDS} />}
            >
              <textarea id="volume-opts" value={opts} onChange={(e) => setOpts(e.target.value)} rows={3} style={{ width: "100%" }} />
            </Field>
            <p className="muted" style={{ fontSize: 12, margin: "3px 0" }}>
              Options that bind a host directory (o=bind, device=/path) count as a bind mount of that path: operators need the node group&apos;s host policy to
              allow it.
            </p>
            <LinesField
              label="Labels (key=value a line)"
              id="volume-labels"
              value={labels}
              onChange={setLabels}
              rows={2}
              error={<LinesError bad={bad.labels} field="labels" error={create.error} fields={VOLUME_FIELDS} />}
            />
            <ApiError error={create.error} fields={VOLUME_FIELDS} />
            <p className="row">
              <button type="submit" className="primary" disabled={create.isPending}>
                Create
              </button>
              <button type="button" onClick={() => setOpen(false)}>
                Cancel
              </button>
            </p>
          </form>
        </Dialog>
      )}
    </>
  );
}

/** "Create network": bridge networks with an optional subnet and gateway. */
export function CreateNetworkButton({ nodeId }: { nodeId?: string }) {
  const [open, setOpen] = useState(false);
  const [jobId, setJobId] = useState<string | null>(null);
  const [nodeIds, setNodeIds] = useState<string[]>(nodeId ? [nodeId] : []);
  const [name, setName] = useState("");
  const [subnet, setSubnet] = useState("");
  const [gateway, setGateway] = useState("");
  const [internal, setInternal] = useState(false);
  const [labels, setLabels] = useState("");
  const [bad, setBad] = useState<number[]>([]);
  const create = trpc.jobs.createNetwork.useMutation({
    onSuccess: (r) => {
      setJobId(r.jobId);
      setOpen(false);
      setName("");
      setSubnet("");
      setGateway("");
      setLabels("");
    },
  });
  function submit(e: FormEvent) {
    e.preventDefault();
    create.reset();
    const l = parseLabelLines(labels);
    setBad(l.bad);
    if (l.bad.length) return;
    create.mutate({ nodeIds, name, ...(subnet.trim() ? { subnet } : {}), ...(gateway.trim() ? { gateway } : {}), internal, labels: l.labels });
  }
  return (
    <>
      <button type="button" className="primary" onClick={() => (create.reset(), setOpen(true))}>
        Create network
      </button>
      {jobId && (
        <JobNotice jobIds={[jobId]} onClose={() => setJobId(null)}>
          Network creation started
        </JobNotice>
      )}
      {open && (
        <Dialog title="Create a bridge network" onClose={() => setOpen(false)}>
          <form onSubmit={submit} aria-label="create network">
            <TextField
              label="Name"
              id="network-name"
              value={name}
              onChange={setName}
              error={<FieldError error={create.error} field="name" fields={NETWORK_FIELDS} />}
            />
            {!nodeId && (
              <Field label="Nodes" error={<FieldError error={create.error} field="nodeIds" fields={NETWORK_FIELDS} />}>
                <NodeMultiSelect id="network-nodes" value={nodeIds} onChange={setNodeIds} />
              </Field>
            )}
            <div className="grid2">
              <TextField
                label="Subnet (empty: chosen by the node)"
                id="network-subnet"
                value={subnet}
                onChange={setSubnet}
                placeholder="10.30.0.0/24"
                error={<FieldError error={create.error} field="subnet" fields={NETWORK_FIELDS} />}
              />
              <TextField
                label="Gateway"
                id="network-gateway"
                value={gateway}
                onChange={setGateway}
                placeholder="10.30.0.1"
                error={<FieldError error={create.error} field="gateway" fields={NETWORK_FIELDS} />}
              />
            </div>
            <label htmlFor="network-internal" style={{ fontWeight: 400 }}>
              <input id="network-internal" type="checkbox" checked={internal} onChange={(e) => setInternal(e.target.checked)} /> Internal (no route out of the
              node)
            </label>
            <LinesField
              label="Labels (key=value a line)"
              id="network-labels"
              value={labels}
              onChange={setLabels}
              rows={2}
              error={<LinesError bad={bad} field="labels" error={create.error} fields={NETWORK_FIELDS} />}
            />
            <ApiError error={create.error} fields={NETWORK_FIELDS} />
            <p className="row">
              <button type="submit" className="primary" disabled={create.isPending}>
                Create
              </button>
              <button type="button" onClick={() => setOpen(false)}>
                Cancel
              </button>
            </p>
          </form>
        </Dialog>
      )}
    </>
  );
}

/** A row's Remove: a dialog naming the volume or network, its node and what is lost. */
export function RemoveButton({ kind, nodeId, nodeName, id, name }: { kind: "volume" | "network"; nodeId: string; nodeName: string; id: string; name: string }) {
  const [open, setOpen] = useState(false);
  const [force, setForce] = useState(false);
  const [jobId, setJobId] = useState<string | null>(null);
  const done = { onSuccess: (r: { jobId: string }) => (setJobId(r.jobId), setOpen(false)) };
  const volumes = trpc.jobs.removeVolumes.useMutation(done);
  const networks = trpc.jobs.removeNetworks.useMutation(done);
  const m = kind === "volume" ? volumes : networks;
  return (
    <>
      <button type="button" className="danger" aria-label={`remove ${kind} ${name} on ${nodeName}`} onClick={() => (m.reset(), setForce(false), setOpen(true))}>
        Remove
      </button>
      {jobId && (
        <JobNotice jobIds={[jobId]} onClose={() => setJobId(null)}>
          Removal of {name} started
        </JobNotice>
      )}
      {open && (
        <Dialog title={`Remove ${kind} ${name} on ${nodeName}?`} onClose={() => setOpen(false)}>
          <p>
            {kind === "volume"
              ? "The volume and every file in it are deleted for good. A volume a container uses (running or stopped) is not removed: the job fails and names the containers."
              : "The network is deleted; containers attached to it keep it until they are disconnected, so a network in use is not removed."}
          </p>
          {kind === "volume" && (
            <label htmlFor="remove-volume-force" style={{ fontWeight: 400 }}>
              <input id="remove-volume-force" type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} /> no error if it is already gone
            </label>
          )}
          <ApiError error={m.error} />
          <div className="row" style={{ marginTop: 12 }}>
            <button
              type="button"
              className="danger"
              disabled={m.isPending}
              onClick={() => (kind === "volume" ? volumes.mutate({ targets: [{ nodeId, name: id }], force }) : networks.mutate({ targets: [{ nodeId, id }] }))}
            >
              Confirm: remove {name}
            </button>
            <button type="button" onClick={() => setOpen(false)}>
              Cancel
            </button>
          </div>
        </Dialog>
      )}
    </>
  );
}
