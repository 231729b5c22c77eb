"use client";
// Job history, newest first, for the fleet or one node (`nodeId`).
import Link from "next/link";
import { useEffect, useState } from "react";
import { trpc } from "../lib/trpc.ts";
import { ago } from "./format.ts";
import { Badge, EmptyRow, ErrorBox, Pager } from "./ui.tsx";

const STATUSES = ["queued", "running", "succeeded", "failed", "partial", "canceled"] as const;
const PAGE_SIZE = 30;

/** A job's kind in words, with what it acted on ("Pull 127.0.0.1:5000/busybox:latest"). */
export function describeJob(kind: string, rawParams: unknown): string {
  const params = (rawParams && typeof rawParams === "object" ? rawParams : {}) as Record<string, unknown>;
  const s = (k: string) => (typeof params[k] === "string" ? (params[k] as string) : undefined);
  const [area, verb = kind] = kind.split(".");
  const Verb = verb[0]?.toUpperCase() + verb.slice(1);
  if (area === "image") {
    if (verb === "tag") return `Tag ${s("source") ?? ""} as ${s("target") ?? ""}`;
    if (verb === "prune") return params.all ? "Prune unused images" : "Prune dangling images";
    return `${Verb} ${s("reference") ?? ""}`.trim();
  }
  if (kind === "container.run") return `Run ${s("image") ?? ""}${s("name") ? ` as ${s("name")}` : ""}`;
  if (area === "container") {
    const n = typeof params.containers === "number" ? params.containers : undefined;
    return `${Verb} ${n ?? ""} container${n === 1 ? "" : "s"}`.replace("  ", " ");
  }
  return kind;
}

export function JobsTable({ nodeId }: { nodeId?: string }) {
  const [status, setStatus] = useState<"" | (typeof STATUSES)[number]>("");
  const [page, setPage] = useState(1);
  const jobs = trpc.jobs.list.useQuery(
    { page, pageSize: PAGE_SIZE, ...(status ? { status } : {}), ...(nodeId ? { nodeId } : {}) },
    { placeholderData: (p) => p },
  );
  const data = jobs.data;
  const pages = data ? Math.max(1, Math.ceil(data.total / data.pageSize)) : 1;
  useEffect(() => {
    if (data && page > pages) setPage(pages);
  }, [data, page, pages]);
  return (
    <>
      <div className="row panel">
        <label htmlFor="job-status" style={{ margin: 0 }}>
          Status
        </label>
        <select
          id="job-status"
          value={status}
          onChange={(e) => {
            setStatus(e.target.value as typeof status);
            setPage(1);
          }}
        >
          <option value="">any</option>
          {STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </div>
      <ErrorBox error={jobs.error} />
      <table data-testid="jobs">
        <thead>
          <tr>
            <th>Job</th>
            <th>Kind</th>
            <th>Status</th>
            <th>Created by</th>
            <th>Created</th>
            <th className="num">Nodes</th>
            <th className="num">Succeeded</th>
            <th className="num">Failed</th>
          </tr>
        </thead>
        <tbody>
          {data?.items.map((j) => (
            <tr key={j.id} data-job={j.id} data-kind={j.kind}>
              <td>
                <Link href={`/jobs/${j.id}`}>{describeJob(j.kind, j.params)}</Link>
              </td>
              <td className="mono">{j.kind}</td>
              <td>
                <Badge kind={j.status}>{j.status}</Badge>
              </td>
              <td>{j.createdBy ?? <span className="muted">system</span>}</td>
              <td title={new Date(j.createdAt).toLocaleString()}>{ago(Date.parse(j.createdAt))}</td>
              <td className="num">{j.nodes}</td>
              <td className="num">
                {j.steps.succeeded} / {j.steps.total}
              </td>
              <td className="num">{j.steps.failed ? <span style={{ color: "var(--bad)" }}>{j.steps.failed}</span> : 0}</td>
            </tr>
          ))}
          {data && data.items.length === 0 && <EmptyRow cols={8}>No jobs{status ? " with that status" : " yet"}.</EmptyRow>}
        </tbody>
      </table>
      {data && pages > 1 && <Pager page={data.page} pages={pages} total={data.total} onPage={setPage} />}
    </>
  );
}
