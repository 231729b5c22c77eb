"use client";
// The outcome of an action, shown where it was taken: a toast per started job that
// follows the job (running → succeeded, or red with the step's error), and the pending
// actions per container that rows and buttons show ("stopping…") until their job ends.
import Link from "next/link";
import { useCallback, useEffect, useSyncExternalStore } from "react";
import { trpc } from "../lib/trpc.ts";
import { useLive } from "../lib/live.ts";

export interface Toast {
  id: number;
  text: string;
  jobId?: string;
  /** An error that needs no job (the API refused the action). */
  error?: boolean;
}

const FINAL = new Set(["succeeded", "failed", "partial", "canceled"]);

/** A tiny store both lists share, outside React so any page can add to them. */
function store<T>(initial: T) {
  let value = initial;
  const listeners = new Set<() => void>();
  return {
    get: () => value,
    set(next: T) {
      value = next;
      for (const l of listeners) l();
    },
    subscribe(l: () => void) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
}

const toasts = store<Toast[]>([]);
let nextId = 1;

export function showToast(t: Omit<Toast, "id">): void {
  toasts.set([...toasts.get(), { ...t, id: nextId++ }].slice(-6));
}
const dismiss = (id: number) => toasts.set(toasts.get().filter((t) => t.id !== id));

/** Container key → the action running on it and its job. */
export interface Pending {
  action: string;
  jobId: string;
}
const pending = store<ReadonlyMap<string, Pending>>(new Map());
export const containerKey = (nodeId: string, id: string) => `${nodeId}|${id}`;

export function markPending(keys: readonly string[], p: Pending): void {
  const next = new Map(pending.get());
  for (const k of keys) next.set(k, p);
  pending.set(next);
}
function jobEnded(jobId: string): void {
  const next = new Map([...pending.get()].filter(([, p]) => p.jobId !== jobId));
  if (next.size !== pending.get().size) pending.set(next);
}

/** The pending actions by container key (re-renders when they change). */
export function usePending(): ReadonlyMap<string, Pending> {
  return useSyncExternalStore(pending.subscribe, pending.get, pending.get);
}

/** Rendered once by the console layout. */
export function Toasts() {
  const list = useSyncExternalStore(toasts.subscribe, toasts.get, toasts.get);
  const onJob = useCallback((p: { jobId: string; stepId?: string; status?: string }) => {
    if (!p.stepId && p.status && FINAL.has(p.status)) jobEnded(p.jobId);
  }, []);
  useLive("job.changed", onJob);
  return (
    <div
      style={{ position: "fixed", right: 16, bottom: 16, display: "flex", flexDirection: "column", gap: 8, zIndex: 60, width: "min(420px, 90vw)" }}
      aria-live="polite"
    >
      {list.map((t) => (t.jobId ? <JobToast key={t.id} toast={t as Toast & { jobId: string }} /> : <Plain key={t.id} toast={t} />))}
    </div>
  );
}

function Frame({ toast, bad, children }: { toast: Toast; bad: boolean; children: React.ReactNode }) {
  return (
    <div
      className={`panel ${bad ? "error" : ""}`}
      role={bad ? "alert" : "status"}
      data-testid="toast"
      data-bad={bad ? "true" : "false"}
      style={{ margin: 0, boxShadow: "0 4px 16px rgba(0,0,0,.15)" }}
    >
      <div className="row" style={{ justifyContent: "space-between", flexWrap: "nowrap", alignItems: "flex-start" }}>
        <div style={{ minWidth: 0 }}>{children}</div>
        <button type="button" aria-label="dismiss" onClick={() => dismiss(toast.id)}>
          ×
        </button>
      </div>
    </div>
  );
}

function Plain({ toast }: { toast: Toast }) {
  return (
    <Frame toast={toast} bad={!!toast.error}>
      {toast.text}
    </Frame>
  );
}

function JobToast({ toast }: { toast: Toast & { jobId: string } }) {
  const job = trpc.jobs.get.useQuery({ jobId: toast.jobId }, { refetchInterval: (q) => (q.state.data && FINAL.has(q.state.data.status) ? false : 3000) });
  const status = job.data?.status ?? "queued";
  const bad = status === "failed" || status === "partial";
  const errors = job.data?.steps.filter((s) => s.error).map((s) => s.error!) ?? [];
  const waiting = job.data?.steps.some(
    (s) => s.status === "running" && /waiting for an earlier/.test(String((s.progress as { status?: string } | null)?.status ?? "")),
  );
  useEffect(() => {
    if (FINAL.has(status)) jobEnded(toast.jobId);
    if (status !== "succeeded") return;
    const t = setTimeout(() => dismiss(toast.id), 8000);
    return () => clearTimeout(t);
  }, [status, toast.id, toast.jobId]);
  return (
    <Frame toast={toast} bad={bad}>
      <div>
        {toast.text} <b data-testid="toast-status">{status}</b>
        {waiting ? <span className="muted"> (waits for an earlier action on the container)</span> : null} · <Link href={`/jobs/${toast.jobId}`}>view job</Link>
      </div>
      {errors.slice(0, 3).map((e, i) => (
        <div key={i} className="mono" style={{ marginTop: 4, whiteSpace: "pre-wrap" }}>
          {e}
        </div>
      ))}
    </Frame>
  );
}
