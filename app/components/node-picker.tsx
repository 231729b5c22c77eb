"use client";
// Node choosers for action forms: a single select (run, distribute source) and a
// multi-select (pull, push, tag…). Revoked nodes are left out: nothing can run there.
// Each node shows as name · short ID · address, so two nodes with one hostname differ;
// the multi-select also chooses by label ("env=prod").
import { useEffect, useState } from "react";
import { trpc } from "../lib/trpc.ts";
import { nodeLabel } from "./node-name.tsx";

export interface NodeOption {
  id: string;
  name: string;
  shortId: string;
  addresses: string[];
  labels: Record<string, string>;
  online: boolean;
}

export function useNodeOptions(): { nodes: NodeOption[]; loading: boolean; error: { message: string } | null } {
  const q = trpc.nodes.list.useQuery(undefined, { staleTime: 5_000 });
  const nodes = (q.data?.nodes ?? [])
    .filter((n) => !n.revoked)
    .map((n) => ({ id: n.id, name: n.name, shortId: n.shortId, addresses: n.addresses, labels: n.labels, online: n.online }));
  return { nodes, loading: q.isLoading, error: q.error };
}

const label = (n: NodeOption) => (n.online ? nodeLabel(n) : `${nodeLabel(n)} (offline)`);

/**
 * The nodes a label selector picks: "env=prod" (that value), "env" or "env=" (any value);
 * several selectors separated by commas must all hold. Null when the text is no selector.
 */
export function nodesWithLabels<T extends { labels: Record<string, string> }>(nodes: readonly T[], selector: string): T[] | null {
  const parts = selector
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  if (!parts.length) return null;
  const wants = parts.map((p) => {
    const i = p.indexOf("=");
    return i < 0 ? { key: p, value: "" } : { key: p.slice(0, i).trim(), value: p.slice(i + 1).trim() };
  });
  return nodes.filter((n) => wants.every((w) => w.key in n.labels && (w.value === "" || n.labels[w.key] === w.value)));
}

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
  const [selector, setSelector] = useState("");
  const picked = nodesWithLabels(choices, selector);
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
        ·
        <input
          value={selector}
          onChange={(e) => setSelector(e.target.value)}
          placeholder="label, e.g. env=prod"
          aria-label="select by label"
          style={{ width: 150, fontSize: 12, padding: "2px 6px" }}
          onKeyDown={(e) => {
            if (e.key === "Enter") {
              e.preventDefault();
              if (picked) onChange(picked.map((n) => n.id));
            }
          }}
        />
        <button type="button" onClick={() => picked && onChange(picked.map((n) => n.id))} disabled={!picked}>
          {picked ? `all ${picked.length} with ${selector.trim()}` : "all with label"}
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
          {nodeLabel(n)}
        </option>
      ))}
    </select>
  );
}
