"use client";
import { isValidElement, useEffect, type ReactNode } from "react";
import { errorText, type ApiErrorLike } from "../lib/form-errors.ts";

export function Badge({ kind, children }: { kind?: string; children: ReactNode }) {
  return <span className={`badge ${kind ?? ""}`}>{children}</span>;
}

/** A tRPC error as the user should read it: the server's message, validation issues as "field: message" lines. */
export function ErrorBox({ error }: { error: ApiErrorLike | null | undefined }) {
  const text = errorText(error);
  if (!text) return null;
  return (
    <div className="error" role="alert">
      {text}
    </div>
  );
}

/** A labelled form control: the label points at the control's own `id`, so the two cannot drift apart. */
export function Field({
  label,
  children,
  error,
}: {
  label: string;
  children: ReactNode;
  /** the field's own message (<FieldError>), under the control */ error?: ReactNode;
}) {
  const id = isValidElement<{ id?: string }>(children) ? children.props.id : undefined;
  return (
    <div>
      <label htmlFor={id}>{label}</label>
      {children}
      {error}
    </div>
  );
}

interface TextFieldProps {
  label: string;
  id: string;
  value: string;
  onChange: (value: string) => void;
  placeholder?: string;
  /** monospace: commands, paths, key=value lines */ mono?: boolean;
  required?: boolean;
  error?: ReactNode;
}

/** What an input and a text area of a field share: its value, its look, its width. */
function controlProps({ id, value, onChange, placeholder, mono, required }: TextFieldProps) {
  return {
    id,
    value,
    onChange: (e: { target: { value: string } }) => onChange(e.target.value),
    placeholder,
    className: mono ? "mono" : undefined,
    required,
    style: { width: "100%" },
  };
}

/** A labelled one-line text input, the width of its column. */
export function TextField(props: TextFieldProps & { inputMode?: "decimal" | "numeric"; list?: string }) {
  return (
    <Field label={props.label} error={props.error}>
      <input {...controlProps(props)} inputMode={props.inputMode} list={props.list} />
    </Field>
  );
}

/** A labelled text area (usually one entry a line), the width of its column. */
export function LinesField(props: TextFieldProps & { rows?: number; spellCheck?: boolean }) {
  return (
    <Field label={props.label} error={props.error}>
      <textarea {...controlProps(props)} rows={props.rows ?? 4} spellCheck={props.spellCheck} />
    </Field>
  );
}

export function Pager({ page, pages, total, onPage }: { page: number; pages: number; total: number; onPage: (p: number) => void }) {
  return (
    <div className="pager">
      <button disabled={page <= 1} onClick={() => onPage(page - 1)}>
        ‹ Previous
      </button>
      <span className="muted">
        page {page} of {pages} · {total} in all
      </span>
      <button disabled={page >= pages} onClick={() => onPage(page + 1)}>
        Next ›
      </button>
    </div>
  );
}

/** Under a paginated table: the pager when there is more than one page, else the count. */
export function PageFooter({ data, onPage }: { data: { page: number; pages: number; total: number } | undefined; onPage: (p: number) => void }) {
  if (!data) return null;
  if (data.pages > 1) return <Pager page={data.page} pages={data.pages} total={data.total} onPage={onPage} />;
  return (
    <div className="muted" style={{ marginTop: 6 }}>
      {data.total} in all
    </div>
  );
}

/** The one row of an empty table, saying why it is empty. */
export function EmptyRow({ cols, children }: { cols: number; children: ReactNode }) {
  return (
    <tr>
      <td colSpan={cols} className="muted">
        {children}
      </td>
    </tr>
  );
}

export function ProgressBar({ current, total }: { current?: number; total?: number }) {
  const pct = total && total > 0 ? Math.min(100, Math.round(((current ?? 0) / total) * 100)) : 0;
  return (
    <div className="bar" role="progressbar" aria-valuenow={pct} aria-valuemin={0} aria-valuemax={100}>
      <div style={{ width: `${pct}%` }} />
    </div>
  );
}

/** Moves back to the last page when the list shrank below the page shown (a filter, removals). */
export function useClampPage(pages: number | undefined, page: number, setPage: (p: number) => void): void {
  useEffect(() => {
    if (pages !== undefined && page > pages) setPage(pages);
  }, [pages, page, setPage]);
}
