/**
 * Progress of long image work (pull, push, load), as plain events. Each door renders
 * them its own way: the Docker API as JSON progress messages, the console as bars.
 */
export interface ProgressEvent {
  /** The item the event is about (a short layer digest, a tag), or none for a whole-operation line. */
  id?: string;
  status: string;
  current?: number;
  total?: number;
}

export type ProgressSink = (event: ProgressEvent) => void;

export const noProgress: ProgressSink = () => undefined;

/** "sha256:abcdef…" → "abcdef012345", the 12-character form Docker shows. */
export function shortDigest(digest: string): string {
  const hex = digest.includes(":") ? digest.slice(digest.indexOf(":") + 1) : digest;
  return hex.slice(0, 12);
}
