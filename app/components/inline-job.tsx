"use client";
// A job followed where it was started: its steps' status, per-layer bars and errors on the
// page, with a link to the job's own page.
import Link from "next/link";
import { trpc } from "../lib/trpc.ts";
import { asProgress, LayerBars, useLiveJob } from "./job-progress.tsx";
import { Badge } from "./ui.tsx";

export function InlineJob({ jobId, title, onClose }: { jobId: string; title: string; onClose?: () => void }) {
  const job = trpc.jobs.get.useQuery({ jobId });
  const live = useLiveJob(jobId);
  const j = job.data;
  const status = live.status ?? j?.status ?? "queued";
  return (
    <div className="panel" role="status" data-testid="inline-job" data-status={status}>
      <div className="row" style={{ justifyContent: "space-between" }}>
        <span>
          {title} <Badge kind={status}>{status}</Badge> <Link href={`/jobs/${jobId}`}>view job</Link>
        </span>
        {onClose && (
          <button type="button" onClick={onClose} aria-label="dismiss">
            ×
          </button>
        )}
      </div>
      {j?.steps.map((s) => {
        const l = live.steps.get(s.id);
        const st = l?.status ?? s.status;
        return (
          <div key={s.id} style={{ marginTop: 6 }}>
            {j.steps.length > 1 && (
              <span className="mono">
                {s.nodeName} <Badge kind={st}>{st}</Badge>
              </span>
            )}
            {s.error && (st === "failed" || st === "skipped") && (
              <div className="error" data-testid="inline-job-error">
                {s.error}
              </div>
            )}
            <LayerBars progress={l?.progress ?? asProgress(s.progress)} />
          </div>
        );
      })}
    </div>
  );
}
