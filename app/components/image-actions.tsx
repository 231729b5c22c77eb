"use client";
// The image actions (pull, tag, remove, push, distribute, prune) as dialogs. Each one
// starts a job and stays on the page: the dialog closes and a toast follows the job
// (red with the node's error if it fails), with a link to its page.
import { createContext, useContext, useId, useState, type FormEvent, type ReactNode } from "react";
import { trpc } from "../lib/trpc.ts";
import { ApiError } from "./action-bar.tsx";
import { Dialog } from "./dialog.tsx";
import { NodeMultiSelect, NodeSelect } from "./node-picker.tsx";
import { showToast } from "./toasts.tsx";

export type ImageAction =
  | { kind: "pull"; reference?: string; nodeIds?: string[] }
  | { kind: "tag"; source: string; nodeIds: string[] }
  | { kind: "remove"; reference: string; nodeIds: string[] }
  | { kind: "push"; reference: string; nodeIds: string[] }
  | { kind: "distribute"; reference?: string; sourceNodeId?: string }
  | { kind: "prune"; nodeIds?: string[] };

const TITLES: Record<ImageAction["kind"], string> = {
  pull: "Pull an image",
  tag: "Tag an image",
  remove: "Remove an image",
  push: "Push an image",
  distribute: "Distribute an image",
  prune: "Prune unused images",
};

const Closing = createContext<{ close: () => void; title: string }>({ close: () => undefined, title: "" });

export function ImageActionDialog({ action, onClose }: { action: ImageAction; onClose: () => void }) {
  return (
    <Closing.Provider value={{ close: onClose, title: TITLES[action.kind] }}>
      <Dialog title={TITLES[action.kind]} onClose={onClose}>
        {action.kind === "pull" && <PullForm initial={action} />}
        {action.kind === "tag" && <TagForm initial={action} />}
        {action.kind === "remove" && <RemoveForm initial={action} />}
        {action.kind === "push" && <PushForm initial={action} />}
        {action.kind === "distribute" && <DistributeForm initial={action} />}
        {action.kind === "prune" && <PruneForm initial={action} />}
      </Dialog>
    </Closing.Provider>
  );
}

/** Once the job exists: the dialog closes and a toast follows the job. */
function useOpenJob() {
  const { close, title } = useContext(Closing);
  return {
    onSuccess: (r: { jobId: string }) => {
      showToast({ text: `${title}:`, jobId: r.jobId });
      close();
    },
  };
}

function Form({
  onSubmit,
  error,
  pending,
  submit,
  danger,
  children,
}: {
  onSubmit: () => void;
  error: { message: string } | null;
  pending: boolean;
  submit: string;
  danger?: boolean;
  children: ReactNode;
}) {
  return (
    <form
      onSubmit={(e: FormEvent) => {
        e.preventDefault();
        onSubmit();
      }}
    >
      {children}
      <ApiError error={error} />
      <p className="row">
        <button type="submit" className={danger ? "danger" : "primary"} disabled={pending}>
          {submit}
        </button>
        {pending && <span className="muted">starting…</span>}
      </p>
    </form>
  );
}

function PullForm({ initial }: { initial: { reference?: string; nodeIds?: string[] } }) {
  const id = useId();
  const [reference, setReference] = useState(initial.reference ?? "");
  const [nodeIds, setNodeIds] = useState<string[]>(initial.nodeIds ?? []);
  const m = trpc.jobs.pull.useMutation(useOpenJob());
  return (
    <Form onSubmit={() => m.mutate({ reference, nodeIds })} error={m.error} pending={m.isPending} submit="Pull">
      <label htmlFor={`${id}-ref`}>Image reference</label>
      <input
        id={`${id}-ref`}
        value={reference}
        onChange={(e) => setReference(e.target.value)}
        placeholder="registry.example.com/team/app:1.2"
        required
        style={{ width: "100%" }}
      />
      <label htmlFor={`${id}-nodes`}>Nodes</label>
      <NodeMultiSelect id={`${id}-nodes`} value={nodeIds} onChange={setNodeIds} />
    </Form>
  );
}

function TagForm({ initial }: { initial: { source: string; nodeIds: string[] } }) {
  const id = useId();
  const [source, setSource] = useState(initial.source);
  const [target, setTarget] = useState("");
  const [nodeIds, setNodeIds] = useState<string[]>(initial.nodeIds);
  const m = trpc.jobs.tag.useMutation(useOpenJob());
  return (
    <Form onSubmit={() => m.mutate({ source, target, nodeIds })} error={m.error} pending={m.isPending} submit="Tag">
      <label htmlFor={`${id}-src`}>Source image</label>
      <input id={`${id}-src`} value={source} onChange={(e) => setSource(e.target.value)} required style={{ width: "100%" }} />
      <label htmlFor={`${id}-target`}>New reference</label>
      <input
        id={`${id}-target`}
        value={target}
        onChange={(e) => setTarget(e.target.value)}
        placeholder="127.0.0.1:5000/team/app:v2"
        required
        style={{ width: "100%" }}
      />
      <label htmlFor={`${id}-nodes`}>Nodes</label>
      <NodeMultiSelect id={`${id}-nodes`} value={nodeIds} onChange={setNodeIds} />
    </Form>
  );
}

function RemoveForm({ initial }: { initial: { reference: string; nodeIds: string[] } }) {
  const id = useId();
  const [reference, setReference] = useState(initial.reference);
  const [force, setForce] = useState(false);
  const [nodeIds, setNodeIds] = useState<string[]>(initial.nodeIds);
  const m = trpc.jobs.removeImage.useMutation(useOpenJob());
  return (
    <Form onSubmit={() => m.mutate({ reference, force, nodeIds })} error={m.error} pending={m.isPending} submit="Remove" danger>
      <label htmlFor={`${id}-ref`}>Image</label>
      <input id={`${id}-ref`} value={reference} onChange={(e) => setReference(e.target.value)} required style={{ width: "100%" }} />
      <label htmlFor={`${id}-nodes`}>Nodes</label>
      <NodeMultiSelect id={`${id}-nodes`} value={nodeIds} onChange={setNodeIds} />
      <p data-testid="remove-loss">
        Removed on each node: this tag
        {force ? ", and the image itself even when containers use it or other tags name it" : "; the image's layers too when no other tag names it"}. Containers
        made from it later pull it again.
      </p>
      <div className="row" style={{ marginTop: 8 }}>
        <input id={`${id}-force`} type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} />
        <label htmlFor={`${id}-force`} style={{ margin: 0 }}>
          Force (remove even if containers use it or it has other tags)
        </label>
      </div>
    </Form>
  );
}

function PushForm({ initial }: { initial: { reference: string; nodeIds: string[] } }) {
  const id = useId();
  const [reference, setReference] = useState(initial.reference);
  const [nodeIds, setNodeIds] = useState<string[]>(initial.nodeIds);
  const m = trpc.jobs.push.useMutation(useOpenJob());
  return (
    <Form onSubmit={() => m.mutate({ reference, nodeIds })} error={m.error} pending={m.isPending} submit="Push">
      <label htmlFor={`${id}-ref`}>Image reference</label>
      <input id={`${id}-ref`} value={reference} onChange={(e) => setReference(e.target.value)} required style={{ width: "100%" }} />
      <p className="muted" style={{ margin: "4px 0" }}>
        Pushed to the registry the reference names, with that registry&apos;s credentials from Registries.
      </p>
      <label htmlFor={`${id}-nodes`}>Nodes</label>
      <NodeMultiSelect id={`${id}-nodes`} value={nodeIds} onChange={setNodeIds} />
    </Form>
  );
}

function DistributeForm({ initial }: { initial: { reference?: string; sourceNodeId?: string } }) {
  const id = useId();
  const [reference, setReference] = useState(initial.reference ?? "");
  const [sourceNodeId, setSource] = useState(initial.sourceNodeId ?? "");
  const [targetNodeIds, setTargets] = useState<string[]>([]);
  const m = trpc.jobs.distribute.useMutation(useOpenJob());
  return (
    <Form
      onSubmit={() => m.mutate({ reference, sourceNodeId, targetNodeIds: targetNodeIds.filter((t) => t !== sourceNodeId) })}
      error={m.error}
      pending={m.isPending}
      submit="Distribute"
    >
      <p className="muted" style={{ margin: "4px 0" }}>
        The source node pushes the image to its registry; then every target node pulls it.
      </p>
      <label htmlFor={`${id}-ref`}>Image reference</label>
      <input
        id={`${id}-ref`}
        value={reference}
        onChange={(e) => setReference(e.target.value)}
        placeholder="127.0.0.1:5000/team/app:1.2"
        required
        style={{ width: "100%" }}
      />
      <label htmlFor={`${id}-src`}>Source node</label>
      <NodeSelect id={`${id}-src`} value={sourceNodeId} onChange={setSource} />
      <label htmlFor={`${id}-targets`}>Target nodes</label>
      <NodeMultiSelect id={`${id}-targets`} value={targetNodeIds} onChange={setTargets} exclude={sourceNodeId ? [sourceNodeId] : []} />
    </Form>
  );
}

function PruneForm({ initial }: { initial: { nodeIds?: string[] } }) {
  const id = useId();
  const [nodeIds, setNodeIds] = useState<string[]>(initial.nodeIds ?? []);
  const [all, setAll] = useState(false);
  const m = trpc.jobs.prune.useMutation(useOpenJob());
  return (
    <Form onSubmit={() => m.mutate({ nodeIds, all })} error={m.error} pending={m.isPending} submit="Prune" danger>
      <label htmlFor={`${id}-nodes`}>Nodes</label>
      <NodeMultiSelect id={`${id}-nodes`} value={nodeIds} onChange={setNodeIds} />
      <p data-testid="prune-loss">
        Deleted on each node: {all ? "every image no container uses, tagged or not" : "untagged (dangling) images no container uses"}. A container made later
        from a deleted image pulls it again, which needs its registry.
      </p>
      <div className="row" style={{ marginTop: 8 }}>
        <input id={`${id}-all`} type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} />
        <label htmlFor={`${id}-all`} style={{ margin: 0 }}>
          Every image no container uses (not only untagged ones)
        </label>
      </div>
    </Form>
  );
}
