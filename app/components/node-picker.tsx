"use client";
// Node choosers for action forms: a single select (run, distribute source) and a
// multi-select (pull, push, tag…). Revoked nodes are left out: nothing can run there.
import { useEffect } from "react";
import { trpc } from "../lib/trpc.ts";

export interface NodeOption {
  id: string;
  name: string;
  online: boolean;
}

export function useNodeOptions(): { nodes: NodeOption[]; loading: boolean; error: { message: string } | null } {
  const q = trpc.nodes.list.useQuery(undefined, { staleTime: 5_000 });
  const nodes = (q.data?.nodes ?? []).filter((n) => !n.revoked).map((n) => ({ id: n.id, name: n.name, online: n.online }));
  return { nodes, loading: q.isLoading, error: q.error };
}

const label = (n: NodeOption) => (n.online ? n.name : `${n.name} (offline)`);

/** A node `<select>`; with one node only, it is chosen already. */
export function NodeSelect({
  id,
  value,
  onChange,
  exclude,
  required = true,
}: {
  id: string;
  value: string;
  onChange: (id: string) => void;
  exclude?: readonly string[];
  required?: boolean;
}) {
  const { nodes } = useNodeOptions();
  const choices = nodes.filter((n) => !exclude?.includes(n.id));
  const only = choices.length === 1 ? choices[0]?.id : undefined;
  useEffect(() => {
    if (!value && only) onChange(only);
  }, [value, only, onChange]);
  return (
    <select id={id} value={value} onChange={(e) => onChange(e.target.value)} required={required}>
      <option value="">choose a node…</option>
      {choices.map((n) => (
        <option key={n.id} value={n.id}>
          {label(n)}
        </option>
      ))}
    </select>
  );
}

/** A node `<select multiple>`; with one node only, it is chosen already. */
export function NodeMultiSelect({
  id,
  value,
  onChange,
  exclude,
}: {
  id: string;
  value: readonly string[];
  onChange: (ids: string[]) => void;
  exclude?: readonly string[];
}) {
  const { nodes } = useNodeOptions();
  const choices = nodes.filter((n) => !exclude?.includes(n.id));
  const only = choices.length === 1 ? choices[0]?.id : undefined;
  useEffect(() => {
    if (value.length === 0 && only) onChange([only]);
    // Only the arrival of the node list should pre-select, not every change of the selection.
  }, [only]);
  return (
    <>
      <select
        id={id}
        multiple
        size={Math.min(8, Math.max(3, choices.length))}
        value={[...value]}
        onChange={(e) => onChange([...e.target.selectedOptions].map((o) => o.value))}
        style={{ width: "100%" }}
      >
        {choices.map((n) => (
          <option key={n.id} value={n.id}>
            {label(n)}
          </option>
        ))}
      </select>
      <div className="row muted" style={{ fontSize: 12, marginTop: 3 }}>
        {value.length} of {choices.length} chosen ·
        <button type="button" onClick={() => onChange(choices.map((n) => n.id))} disabled={!choices.length}>
          all
        </button>
        <button type="button" onClick={() => onChange(choices.filter((n) => n.online).map((n) => n.id))} disabled={!choices.length}>
          online
        </button>
        <button type="button" onClick={() => onChange([])} disabled={!value.length}>
          none
        </button>
      </div>
    </>
  );
}

/** A filter `<select>` over the nodes ("" = every node). */
export function NodeFilter({ value, onChange }: { value: string; onChange: (id: string) => void }) {
  const q = trpc.nodes.list.useQuery(undefined, { staleTime: 5_000 });
  return (
    <select value={value} onChange={(e) => onChange(e.target.value)} aria-label="node">
      <option value="">every node</option>
      {q.data?.nodes.map((n) => (
        <option key={n.id} value={n.id}>
          {n.name}
        </option>
      ))}
    </select>
  );
}
