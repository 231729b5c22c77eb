"use client";
// Pieces the admin pages share: a two-step confirm (a native confirm() dialog would be
// dismissed by browser automation and is easy to click through), and a one-time secret box.
import { useState, type ReactNode } from "react";

/** A destructive button that asks once more in place: first click arms it, the second acts. */
export function ConfirmButton({
  label,
  confirmLabel,
  onConfirm,
  disabled,
}: {
  label: string;
  confirmLabel: string;
  onConfirm: () => void;
  disabled?: boolean;
}) {
  const [armed, setArmed] = useState(false);
  if (!armed) {
    return (
      <button type="button" className="danger" disabled={disabled} onClick={() => setArmed(true)}>
        {label}
      </button>
    );
  }
  return (
    <span className="row" style={{ display: "inline-flex" }}>
      <button
        type="button"
        className="danger"
        disabled={disabled}
        onClick={() => {
          setArmed(false);
          onConfirm();
        }}
      >
        {confirmLabel}
      </button>
      <button type="button" onClick={() => setArmed(false)}>
        Cancel
      </button>
    </span>
  );
}

/** A secret shown once (a generated password, a join token), with a copy button. */
export function OneTimeSecret({
  title,
  testId,
  value,
  children,
  onDismiss,
}: {
  title: string;
  testId: string;
  value: string;
  children?: ReactNode;
  onDismiss: () => void;
}) {
  const [copied, setCopied] = useState(false);
  return (
    <div className="panel" role="status" aria-label={title}>
      <b>{title}</b> <span className="muted">— shown only this once; copy it now.</span>
      <div className="row" style={{ marginTop: 6 }}>
        <code data-testid={testId} style={{ userSelect: "all", wordBreak: "break-all" }}>
          {value}
        </code>
        <button
          type="button"
          onClick={() => {
            void navigator.clipboard?.writeText(value).then(
              () => setCopied(true),
              () => setCopied(false),
            );
          }}
        >
          {copied ? "Copied" : "Copy"}
        </button>
        <button type="button" onClick={onDismiss}>
          Done
        </button>
      </div>
      {children}
    </div>
  );
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "—" : d.toLocaleString();
}

/** The options of a node-group select: "no group", then every group by name. */
export function NodeGroupOptions({ groups }: { groups: ReadonlyArray<{ id: string; name: string }> | undefined }) {
  return (
    <>
      <option value="">no group</option>
      {groups?.map((g) => (
        <option key={g.id} value={g.id}>
          {g.name}
        </option>
      ))}
    </>
  );
}

/** One labelled text field and a submit button: "create a thing by its name". `onCreate` gets a `clear` to call once it worked. */
export function CreateByNameForm({
  id,
  ariaLabel,
  label,
  button,
  pending,
  onCreate,
}: {
  id: string;
  ariaLabel: string;
  label: string;
  button: string;
  pending: boolean;
  onCreate: (name: string, clear: () => void) => void;
}) {
  const [name, setName] = useState("");
  return (
    <form
      className="panel row"
      aria-label={ariaLabel}
      onSubmit={(e) => {
        e.preventDefault();
        onCreate(name, () => setName(""));
      }}
    >
      <label htmlFor={id} style={{ margin: 0 }}>
        {label}
      </label>
      <input id={id} value={name} onChange={(e) => setName(e.target.value)} required />
      <button className="primary" type="submit" disabled={pending}>
        {button}
      </button>
    </form>
  );
}

/** A labelled select of what may be added and a submit button: "add a member", "give a group". */
export function ChooseAndAddForm({
  id,
  label,
  placeholder,
  options,
  button,
  pending,
  onAdd,
}: {
  id: string;
  label: string;
  placeholder: string;
  options: ReadonlyArray<{ value: string; label: string }>;
  button: string;
  pending: boolean;
  onAdd: (value: string, clear: () => void) => void;
}) {
  const [value, setValue] = useState("");
  return (
    <form
      className="row"
      style={{ marginTop: 8 }}
      onSubmit={(e) => {
        e.preventDefault();
        if (value) onAdd(value, () => setValue(""));
      }}
    >
      <label htmlFor={id} style={{ margin: 0 }}>
        {label}
      </label>
      <select id={id} value={value} onChange={(e) => setValue(e.target.value)}>
        <option value="">{placeholder}</option>
        {options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
      <button type="submit" disabled={!value || pending}>
        {button}
      </button>
    </form>
  );
}
