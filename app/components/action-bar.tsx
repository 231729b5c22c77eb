"use client";
// Shared pieces of the pages that start jobs: who may act, readable API errors, and the
// notice that links to a job just started.
import Link from "next/link";
import type { ReactNode } from "react";
import { trpc } from "../lib/trpc.ts";
import { errorText, formErrors, type ApiErrorLike } from "../lib/form-errors.ts";

/** What the signed-in user may do; false while loading, so action buttons never flash for viewers. */
export function useCan(): { operate: boolean; exec: boolean; admin: boolean } {
  const me = trpc.auth.me.useQuery(undefined, { staleTime: 10_000 });
  return me.data?.can ?? { operate: false, exec: false, admin: false };
}

/** A tRPC error as text: validation issues as "field: message" lines, never zod's JSON. */
export { errorText };

/**
 * The form-level part of an error: the server's message, or the validation issues of
 * fields the form does not show under a control (those in `fields` go to <FieldError>).
 */
export function ApiError({ error, fields }: { error: ApiErrorLike | null | undefined; fields?: readonly string[] }) {
  const text = formErrors(error, fields).form;
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

/** The message of one field, under its control (empty when the error is not about it). */
export function FieldError({ error, field, fields }: { error: ApiErrorLike | null | undefined; field: string; fields: readonly string[] }) {
  const m = formErrors(error, fields).fields[field];
  if (!m) return null;
  return (
    <div className="field-error" role="alert" data-field={field}>
      {m}
    </div>
  );
}
