"use client";
// Per-layer progress of a job's steps. The server saves a step's progress once a second
// but sends it to browsers every 150 ms in `job.changed` notices; the bars follow the
// notices and fall back to the saved progress (a page opened after the step ended).
import { useCallback, useState } from "react";
import { useLive } from "../lib/live.ts";
import { bytes } from "./format.ts";
import { ProgressBar } from "./ui.tsx";

import type { LayerProgress, StepProgress } from "../../server/jobs/job-service.ts";

export type { LayerProgress, StepProgress };

/** The progress a step holds, if it has the expected shape (it is JSON from the database or the socket). */
export function asProgress(v: unknown): StepProgress | null {
  if (!v || typeof v !== "object") return null;
  const o = v as { status?: unknown; layers?: unknown };
  if (!Array.isArray(o.layers)) return null;
  const layers = o.layers.filter((l): l is LayerProgress => !!l && typeof l === "object" && typeof (l as LayerProgress).id === "string");
  const log = (v as { log?: unknown }).log;
  return { status: typeof o.status === "string" ? o.status : "", layers, ...(typeof log === "string" ? { log } : {}) };
}

/** A build's output as it arrives, kept scrolled to its end while the step runs. */
export function BuildLog({ progress }: { progress: StepProgress | null }) {
  if (!progress?.log) return null;
  return (
    <pre
      className="mono"
      data-testid="build-output"
      ref={(el) => {
        if (el) el.scrollTop = el.scrollHeight;
      }}
      style={{ whiteSpace: "pre-wrap", maxHeight: 420, overflow: "auto", margin: "6px 0", padding: 8, background: "var(--panel, #f6f6f6)" }}
    >
      {progress.log}
    </pre>
  );
}

export interface LiveJob {
  /** The job's own status from the last notice without a step. */
  status?: string;
  steps: Map<string, { status?: string; progress?: StepProgress }>;
}

/** Live status and step progress of one job (steps keyed by step ID). */
export function useLiveJob(jobId: string): LiveJob {
  const [status, setStatus] = useState<string | undefined>();
  const [steps, setSteps] = useState(() => new Map<string, { status?: string; progress?: StepProgress }>());
  const onJob = useCallback(
    (p: { jobId: string; stepId?: string; status?: string; progress?: unknown }) => {
      if (p.jobId !== jobId) return;
      if (!p.stepId) {
        if (p.status) setStatus(p.status);
        return;
      }
      const stepId = p.stepId;
      const progress = asProgress(p.progress);
      setSteps((prev) => {
        const next = new Map(prev);
        const old = next.get(stepId) ?? {};
        next.set(stepId, { status: p.status ?? old.status, progress: progress ?? old.progress });
        return next;
      });
    },
    [jobId],
  );
  useLive("job.changed", onJob);
  return { status, steps };
}

// Every layer row has the same columns so the bars line up from row to row.
const ROW = { display: "grid", gridTemplateColumns: "110px minmax(140px, 1fr) 150px 140px", gap: 10, alignItems: "center", padding: "2px 0" } as const;

const finished = (status: string) => /complete|already exists|pushed|mounted from|^done/i.test(status);

/** One bar per layer: its ID, the engine's status text, and bytes so far of the total. */
// Docker's stream opens with "<tag>: Pulling from <repo>" (or "The push refers to…") under
// the tag's ID: a heading, not a layer.
const isHeading = (l: LayerProgress) => /^(Pulling from|The push refers to)/.test(l.status) && !/^[0-9a-f]{12,}$/.test(l.id);

export function LayerBars({ progress }: { progress: StepProgress | null }) {
  if (!progress) return null;
  const headings = progress.layers.filter(isHeading);
  const layers = progress.layers.filter((l) => !isHeading(l));
  const shown = new Set(progress.layers.map((l) => l.status));
  return (
    <div style={{ marginTop: 6 }}>
      {headings.map((h) => (
        <div key={h.id} className="mono">
          {h.id}: {h.status}
        </div>
      ))}
      {layers.map((l) => {
        const done = finished(l.status);
        const total = l.total && l.total > 0 ? l.total : undefined;
        return (
          <div key={l.id} data-testid="layer-progress" data-layer={l.id} data-status={l.status} style={ROW}>
            <span className="mono">{l.id.replace(/^sha256:/, "").slice(0, 12)}</span>
            <ProgressBar current={done ? 1 : (l.current ?? 0)} total={done ? 1 : total} />
            <span>{l.status}</span>
            <span className="mono muted" style={{ textAlign: "right" }}>
              {total ? `${bytes(Math.min(l.current ?? 0, total))} / ${bytes(total)}` : l.current ? bytes(l.current) : ""}
            </span>
          </div>
        );
      })}
      {progress.status && !shown.has(progress.status) && <div className="muted">{progress.status}</div>}
    </div>
  );
}
