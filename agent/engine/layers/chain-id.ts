import { createHash } from "node:crypto";
import { parseDigest } from "../content/store.ts";
import { invalidArgument } from "../errors.ts";

/**
 * The OCI chain ID of the topmost layer of a stack, from the diff IDs of all
 * layers bottom first:
 *   ChainID(L0) = DiffID(L0)
 *   ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))
 * @throws InvalidArgument on an empty list or a malformed diff ID.
 */
export function chainIdOf(diffIds: readonly string[]): string {
  if (diffIds.length === 0) throw invalidArgument("cannot compute a chain ID from an empty list of diff IDs");
  let chain: string | undefined;
  for (const d of diffIds) {
    parseDigest(d);
    chain = chain === undefined ? d : `sha256:${createHash("sha256").update(`${chain} ${d}`).digest("hex")}`;
  }
  return chain!;
}
