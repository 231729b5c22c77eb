"use client";
// Prune on one node or many, as a job, after a confirmation that names what is lost.
import { useState } from "react";
import { trpc } from "../lib/trpc.ts";
import { ApiError, JobNotice } from "./action-bar.tsx";
import { Dialog } from "./dialog.tsx";
import { NodeMultiSelect } from "./node-picker.tsx";

export type PruneKind = "images" | "containers" | "volumes" | "networks";

const TEXT: Record<PruneKind, { title: string; lost: string; all?: { label: string; lost: string } }> = {
  images: {
    title: "Prune images",
    lost: "Removes dangling images: untagged and used by no container. Their layers are deleted.",
    all: {
      label: "every unused image, tagged or not",
      lost: "Also removes every tagged image no container uses: nodes must pull them again before running them.",
    },
  },
  containers: {
    title: "Prune stopped containers",
    lost: "Removes every stopped container (exited, created or dead) with its writable layer and its logs: whatever they wrote outside volumes is lost.",
  },
  volumes: {
    title: "Prune volumes",
    lost: "Removes anonymous volumes no container uses, with the data in them.",
    all: { label: "named volumes too", lost: "Also removes every named volume no container uses: the data in them is lost for good." },
  },
  networks: { title: "Prune networks", lost: "Removes user-defined networks no container is attached to; containers created later cannot join them." },
};

/**
 * A "Prune …" button; the job starts only from its dialog's confirm button. Without
 * `nodeIds` the dialog asks on which nodes.
 */
export function PruneButton({
  kind,
  nodeIds: fixed,
  nodesText: fixedText,
}: {
  kind: PruneKind;
  nodeIds?: readonly string[];
  /** "on web-1" */ nodesText?: string;
}) {
  const [chosen, setChosen] = useState<string[]>([]);
  const nodeIds = fixed ?? chosen;
  const nodesText = fixedText ?? `on ${chosen.length} node${chosen.length === 1 ? "" : "s"}`;
  const [open, setOpen] = useState(false);
  const [all, setAll] = useState(false);
  const [jobId, setJobId] = useState<string | null>(null);
  const done = { onSuccess: (r: { jobId: string }) => (setJobId(r.jobId), setOpen(false)) };
  const images = trpc.jobs.prune.useMutation(done);
  const containers = trpc.jobs.pruneContainers.useMutation(done);
  const volumes = trpc.jobs.pruneVolumes.useMutation(done);
  const networks = trpc.jobs.pruneNetworks.useMutation(done);
  const m = { images, containers, volumes, networks }[kind];
  const t = TEXT[kind];
  const confirm = () => {
    const ids = [...nodeIds];
    if (kind === "images") images.mutate({ nodeIds: ids, all });
    else if (kind === "containers") containers.mutate({ nodeIds: ids });
    else if (kind === "volumes") volumes.mutate({ nodeIds: ids, all });
    else networks.mutate({ nodeIds: ids });
  };
  return (
    <>
      <button
        type="button"
        className="danger"
        disabled={fixed !== undefined && !fixed.length}
        onClick={() => {
          m.reset();
          setAll(false);
          setOpen(true);
        }}
      >
        {t.title}
      </button>
      {jobId && (
        <JobNotice jobIds={[jobId]} onClose={() => setJobId(null)}>
          {t.title} started {nodesText}
        </JobNotice>
      )}
      {open && (
        <Dialog title={`${t.title} ${nodesText}?`} onClose={() => setOpen(false)}>
          {!fixed && (
            <>
              <label htmlFor={`prune-nodes-${kind}`}>Nodes</label>
              <NodeMultiSelect id={`prune-nodes-${kind}`} value={chosen} onChange={setChosen} />
            </>
          )}
          <p data-testid="prune-lost">{t.lost}</p>
          {t.all && (
            <label htmlFor={`prune-all-${kind}`} style={{ fontWeight: 400 }}>
              <input id={`prune-all-${kind}`} type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} /> {t.all.label}
            </label>
          )}
          {all && t.all && <p className="error">{t.all.lost}</p>}
          <ApiError error={m.error} />
          <div className="row" style={{ marginTop: 12 }}>
            <button type="button" className="danger" onClick={confirm} disabled={m.isPending || !nodeIds.length}>
              Confirm: {t.title.toLowerCase()}
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
