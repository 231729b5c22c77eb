"use client";
// Shared pieces of the pages that start jobs: who may act, readable API errors, and the
// notice that links to a job just started.
import Link from "next/link";
import type { ReactNode } from "react";
import { trpc } from "../lib/trpc.ts";

/** What the signed-in user may do; false while loading, so action buttons never flash for viewers. */
export function useCan(): { operate: boolean; exec: boolean; admin: boolean } {
  const me = trpc.auth.me.useQuery(undefined, { staleTime: 10_000 });
  return me.data?.can ?? { operate: false, exec: false, admin: false };
}

/**
 * A tRPC error as text. Input validation errors arrive as zod's JSON list of issues;
 * those read better as "field: message" lines than as JSON.
 */
export function errorText(error: { message: string } | null | undefined): string | null {
  if (!error) return null;
  const m = error.message;
  if (m.startsWith("[")) {
    try {
      const issues = JSON.parse(m) as Array<{ path?: Array<string | number>; message?: string }>;
      if (Array.isArray(issues) && issues.length) {
        return issues
          .map(
            (i) =>
              (i.path?.length
                ? `${i.path
                    .map((p) => (typeof p === "number" ? `[${p}]` : p))
                    .join(".")
                    .replace(/\.\[/g, "[")}: `
                : "") + (i.message ?? ""),
          )
          .join("\n");
      }
    } catch {
      // not JSON after all: show it as it is
    }
  }
  return m;
}

/** Like ui.tsx's ErrorBox, with validation issues spelled out. */
export function ApiError({ error }: { error: { message: string } | null | undefined }) {
  const text = errorText(error);
  if (!text) return null;
  return (
    <div className="error" role="alert">
      {text}
    </div>
  );
}

/** "Stop started on 2 containers — view job" after an action that stays on the page. */
export function JobNotice({ jobIds, children, onClose }: { jobIds: readonly string[]; children: ReactNode; onClose?: () => void }) {
  return (
    <div className="panel row" role="status" data-testid="job-notice">
      <span>{children}</span>
      {jobIds.map((id, i) => (
        <Link key={id} href={`/jobs/${id}`}>
          {jobIds.length === 1 ? "view job" : `job ${i + 1}`}
        </Link>
      ))}
      {onClose && (
        <button type="button" onClick={onClose} aria-label="dismiss">
          ×
        </button>
      )}
    </div>
  );
}

/** A row of buttons above a table, right of its title. */
export function Toolbar({ children }: { children: ReactNode }) {
  return (
    <div className="row" style={{ marginBottom: 8 }}>
      {children}
    </div>
  );
}
