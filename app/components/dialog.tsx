"use client";
import { useEffect, useId, useRef, type ReactNode } from "react";

/** A modal panel over the page; Escape or the backdrop closes it. */
export function Dialog({ title, onClose, children }: { title: string; onClose: () => void; children: ReactNode }) {
  const titleId = useId();
  const body = useRef<HTMLDivElement>(null);
  // The parent re-renders on every live update; a ref keeps the effect (and the focus) from re-running.
  const close = useRef(onClose);
  useEffect(() => {
    close.current = onClose;
  });
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") close.current();
    };
    document.addEventListener("keydown", onKey);
    // Focus the first field so keyboard users start in the dialog, not behind it.
    body.current?.querySelector<HTMLElement>("input, select, textarea, button")?.focus();
    return () => document.removeEventListener("keydown", onKey);
  }, []);
  return (
    <div
      style={{
        position: "fixed",
        inset: 0,
        background: "rgba(17,24,39,.45)",
        display: "flex",
        alignItems: "flex-start",
        justifyContent: "center",
        paddingTop: "10vh",
        zIndex: 50,
      }}
      onMouseDown={(e) => {
        if (e.target === e.currentTarget) onClose();
      }}
    >
      <div
        role="dialog"
        aria-modal="true"
        aria-labelledby={titleId}
        className="panel"
        style={{ width: "min(560px, 92vw)", maxHeight: "80vh", overflow: "auto" }}
      >
        <div className="row" style={{ justifyContent: "space-between" }}>
          <h2 id={titleId} style={{ margin: 0, fontSize: 17 }}>
            {title}
          </h2>
          <button type="button" onClick={onClose} aria-label="close">
            ×
          </button>
        </div>
        <div ref={body}>{children}</div>
      </div>
    </div>
  );
}
