"use client";
// Per-layer progress of a job's steps. The server saves a step's progress once a second
// but sends it to browsers every 150 ms in `job.changed` notices; the bars follow the
// notices and fall back to the saved progress (a page opened after the step ended).
import { useCallback, useState } from "react";
import { useLive } from "../lib/live.ts";
import { bytes } from "./format.ts";
import { ProgressBar } from "./ui.tsx";

export interface LayerProgress {
  id: string;
  status: string;
  current?: number;
  total?: number;
}

export interface StepProgress {
  status: string;
  layers: LayerProgress[];
}

/** The progress a step holds, if it has the expected shape (it is JSON from the database or the socket). */
export function asProgress(v: unknown): StepProgress | null {
  if (!v || typeof v !== "object") return null;
  const o = v as { status?: unknown; layers?: unknown };
  if (!Array.isArray(o.layers)) return null;
  const layers = o.layers.filter((l): l is LayerProgress => !!l && typeof l === "object" && typeof (l as LayerProgress).id === "string");
  return { status: typeof o.status === "string" ? o.status : "", layers };
}

/** Live step progress and status of one job, keyed by step ID. */
export function useLiveSteps(jobId: string): Map<string, { status?: string; progress?: StepProgress }> {
  const [steps, setSteps] = useState(() => new Map<string, { status?: string; progress?: StepProgress }>());
  const onJob = useCallback(
    (p: { jobId: string; stepId?: string; status?: string; progress?: unknown }) => {
      if (p.jobId !== jobId || !p.stepId) return;
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
  return steps;
}

// Every layer row has the same columns so the bars line up from row to row.
const ROW = { display: "grid", gridTemplateColumns: "110px minmax(140px, 1fr) 150px 140px", gap: 10, alignItems: "center", padding: "2px 0" } as const;

const finished = (status: string) => /complete|already exists|pushed|mounted from|^done/i.test(status);

/** One bar per layer: its ID, the engine's status text, and bytes so far of the total. */
export function LayerBars({ progress }: { progress: StepProgress | null }) {
  if (!progress || progress.layers.length === 0) return progress?.status ? <div className="muted">{progress.status}</div> : null;
  return (
    <div style={{ marginTop: 6 }}>
      {progress.layers.map((l) => {
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
      {progress.status && !progress.layers.some((l) => l.status === progress.status) && (
        <div className="muted">
          {progress.status}
        </div>
      )}
    </div>
  );
}
