"use client";
import Link from "next/link";
import { NodeName } from "../../../components/node-name.tsx";
import { useParams } from "next/navigation";
import { useEffect } from "react";
import { trpc } from "../../../lib/trpc.ts";
import { ApiError, useCan } from "../../../components/action-bar.tsx";
import { ago } from "../../../components/format.ts";
import { asProgress, BuildLog, LayerBars, useLiveJob } from "../../../components/job-progress.tsx";
import { describeJob } from "../../../components/jobs-table.tsx";
import { Badge, ErrorBox } from "../../../components/ui.tsx";

// A live notice and a refetch can arrive in either order; the later state wins.
const RANK: Record<string, number> = { pending: 0, queued: 0, running: 1, succeeded: 2, failed: 2, partial: 2, canceled: 2, skipped: 2 };
const later = (a: string, b: string | undefined) => (b !== undefined && (RANK[b] ?? 0) > (RANK[a] ?? 0) ? b : a);

function duration(from: string | null, to: string | null, now = Date.now()): string {
  if (!from) return "";
  const ms = (to ? Date.parse(to) : now) - Date.parse(from);
  return ms < 1000 ? `${ms} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60_000)} min`;
}

function ResultCell({ action, result }: { action: string; result: unknown }) {
  if (!result || typeof result !== "object" || Object.keys(result).length === 0) return null;
  const r = result as Record<string, unknown>;
  if (action === "image.build" && typeof r.imageId === "string") {
    const tags = Array.isArray(r.tags) ? r.tags.filter((t): t is string => typeof t === "string") : [];
    return (
      <div data-testid="build-result">
        built <span className="mono">{r.imageId.replace(/^sha256:/, "").slice(0, 12)}</span>
        {tags.length > 0 && (
          <>
            {" "}
            tagged <span className="mono">{tags.join(", ")}</span>
          </>
        )}
      </div>
    );
  }
  if (action === "container.run" && typeof r.name === "string") {
    return (
      <div>
        container <Link href="/containers">{r.name}</Link> <span className="muted mono">{String(r.id ?? "").slice(0, 12)}</span>
      </div>
    );
  }
  return (
    <details>
      <summary className="muted">result</summary>
      <pre className="mono" style={{ whiteSpace: "pre-wrap", margin: 0 }}>
        {JSON.stringify(result, null, 2)}
      </pre>
    </details>
  );
}

export default function JobPage() {
  const { id } = useParams<{ id: string }>();
  const can = useCan();
  const job = trpc.jobs.get.useQuery({ jobId: id });
  const live = useLiveJob(id);
  const cancel = trpc.jobs.cancel.useMutation();
  const j = job.data;
  // Node status for the steps: a step waiting on an offline node says so (the list refreshes on node changes).
  const nodes = trpc.nodes.list.useQuery(undefined, { staleTime: 5_000 });
  const nodeOf = new Map((nodes.data?.nodes ?? []).map((n) => [n.id, n]));
  const steps = (j?.steps ?? []).map((s) => {
    const l = live.steps.get(s.id);
    return { ...s, status: later(s.status, l?.status), progress: l?.progress ?? asProgress(s.progress) };
  });
  const status = j ? later(j.status, live.status) : "";
  // Live notices carry status and progress, not a step's result: read the job again once it ends.
  const refetch = job.refetch;
  const ended = (RANK[live.status ?? ""] ?? 0) === 2;
  useEffect(() => {
    if (ended) void refetch();
  }, [ended, refetch]);
  const count = (st: string) => steps.filter((s) => s.status === st).length;
  const stages = j ? new Set(j.steps.map((s) => s.seq)).size : 0;
  return (
    <>
      <p>
        <Link href="/jobs">‹ Jobs</Link>
      </p>
      <ErrorBox error={job.error} />
      {j && (
        <>
          <div className="row" style={{ justifyContent: "space-between" }}>
            <h1 style={{ margin: "0 0 8px" }}>{describeJob(j.kind, j.params)}</h1>
            {can.operate && (status === "running" || status === "queued") && (
              <button type="button" className="danger" onClick={() => cancel.mutate({ jobId: j.id })} disabled={cancel.isPending}>
                Cancel
              </button>
            )}
          </div>
          <ApiError error={cancel.error} />
          <div className="panel row" style={{ gap: 18 }}>
            <span>
              <Badge kind={status}>{status}</Badge>
            </span>
            <span className="mono">{j.kind}</span>
            <span>by {j.createdBy ?? "system"}</span>
            <span title={new Date(j.createdAt).toLocaleString()}>created {ago(Date.parse(j.createdAt))}</span>
            {j.startedAt && (
              <span>
                ran {duration(j.startedAt, j.finishedAt)}
                {j.finishedAt ? "" : " so far"}
              </span>
            )}
            <span>
              {count("succeeded")} of {steps.length} steps succeeded
              {count("failed") ? `, ${count("failed")} failed` : ""}
              {count("skipped") ? `, ${count("skipped")} skipped` : ""}
            </span>
          </div>
          <table data-testid="steps">
            <thead>
              <tr>
                <th>Node</th>
                {stages > 1 && <th>Stage</th>}
                <th>Action</th>
                <th>Status</th>
                <th>Time</th>
                <th style={{ width: "55%" }}>Progress / error</th>
              </tr>
            </thead>
            <tbody>
              {steps.map((s) => {
                return (
                  <tr key={s.id} data-testid="step" data-node={s.nodeName} data-status={s.status}>
                    <td>
                      <NodeName node={nodeOf.get(s.nodeId) ?? { id: s.nodeId, name: s.nodeName }} />
                    </td>
                    {stages > 1 && <td className="num">{s.seq + 1}</td>}
                    <td className="mono">{s.action}</td>
                    <td>
                      <Badge kind={s.status}>{s.status}</Badge>
                    </td>
                    <td className="muted">{duration(s.startedAt, s.finishedAt)}</td>
                    <td>
                      {s.error && (s.status === "failed" || s.status === "skipped" || s.status === "canceled") && (
                        <div className="error" style={{ margin: "0 0 4px" }} data-testid="step-error">
                          {s.error}
                        </div>
                      )}
                      {(s.status === "running" || s.status === "pending") && nodeOf.get(s.nodeId)?.online === false && (
                        <div className="badge warn" role="status" data-testid="step-waiting">
                          waiting for {s.nodeName} to come back online{nodeOf.get(s.nodeId)?.revoked ? " (it is revoked: the step will fail)" : ""}
                        </div>
                      )}
                      <LayerBars progress={s.progress} />
                      <BuildLog progress={s.progress} />
                      <ResultCell action={s.action} result={s.result} />
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          <details style={{ marginTop: 12 }}>
            <summary className="muted">Parameters</summary>
            <pre className="mono">{JSON.stringify(j.params, null, 2)}</pre>
          </details>
        </>
      )}
      {!j && !job.error && <p className="muted">Loading…</p>}
    </>
  );
}
