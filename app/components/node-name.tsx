"use client";
// How a node is named on screen, everywhere: its name, its short ID and first address, so
// two nodes with one hostname never look alike; and the "last known" mark of an offline
// node's inventory.
import Link from "next/link";
import { ago } from "./format.ts";

export interface NodeNaming {
  id: string;
  name: string;
  shortId?: string;
  /** The first address, or the list of them. */
  address?: string | null;
  addresses?: readonly string[];
}

const firstAddress = (n: NodeNaming): string | null => n.address ?? n.addresses?.[0] ?? null;
const short = (n: NodeNaming): string => n.shortId ?? n.id.replace(/-/g, "").slice(0, 8);

/** "web-1 · 3f2a9c1d · 10.0.0.5": for <option>s and other plain text. */
export function nodeLabel(n: NodeNaming): string {
  const a = firstAddress(n);
  return `${n.name} · ${short(n)}${a ? ` · ${a}` : ""}`;
}

/** A node's name with its short ID and address beside it, linked to its page unless `link` is false. */
export function NodeName({ node, link = true, muted = false }: { node: NodeNaming; link?: boolean; muted?: boolean }) {
  const a = firstAddress(node);
  const name = link ? (
    <Link href={`/nodes/${node.id}`} className={muted ? "muted" : ""}>
      {node.name}
    </Link>
  ) : (
    <span>{node.name}</span>
  );
  return (
    <span className="node-name" data-node-id={node.id}>
      {name}{" "}
      <span className="muted mono" title={node.id}>
        {short(node)}
      </span>
      {a && <span className="muted mono"> · {a}</span>}
    </span>
  );
}

/** "last known · 5 min ago": what is listed for an offline node is its inventory of then. */
export function LastKnown({ asOf }: { asOf: number | null | undefined }) {
  if (asOf === undefined) return null;
  return (
    <span className="badge warn" data-testid="last-known" title={asOf ? new Date(asOf).toLocaleString() : "no inventory received yet"}>
      last known · {asOf ? ago(asOf) : "never"}
    </span>
  );
}

/** A node cell of an inventory table: the node, and for an offline one the age of what is shown. */
export function NodeRefCell({ node }: { node: NodeNaming & { online: boolean; asOf?: number | null } }) {
  return (
    <td>
      <NodeName node={node} muted={!node.online} />
      {!node.online && (
        <div>
          <LastKnown asOf={node.asOf ?? null} />
        </div>
      )}
    </td>
  );
}
