"use client";
// A shell in a running container (xterm.js over the browser socket's exec.* events).
import { useEffect, useRef, useState } from "react";
import "@xterm/xterm/css/xterm.css";
import { liveSocket } from "../lib/live.ts";

/** `cmd`: the program and its arguments (default: /bin/sh); `user`: as `docker exec --user` (default: the container's). */
export function ContainerTerminal({
  nodeId,
  containerId,
  cmd,
  user,
  onClose,
}: {
  nodeId: string;
  containerId: string;
  cmd?: string[];
  user?: string;
  onClose: () => void;
}) {
  const box = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState("connecting…");
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let disposed = false;
    let sessionId: string | undefined;
    const socket = liveSocket();
    const cleanups: Array<() => void> = [];
    void (async () => {
      const { Terminal } = await import("@xterm/xterm");
      if (disposed || !box.current) return;
      const term = new Terminal({ cols: 100, rows: 24, convertEol: false, cursorBlink: true, fontSize: 13 });
      term.open(box.current);
      term.focus();
      cleanups.push(() => term.dispose());
      const onOutput = (m: { sessionId: string; data: string }) => {
        if (m.sessionId === sessionId) term.write(Uint8Array.from(atob(m.data), (ch) => ch.charCodeAt(0)));
      };
      const onExit = (m: { sessionId: string; exitCode?: number; error?: string }) => {
        if (m.sessionId !== sessionId) return;
        setStatus(m.error ? "ended" : `exited with code ${m.exitCode ?? 0}`);
        if (m.error) setError(m.error);
        sessionId = undefined;
      };
      socket.on("exec.output", onOutput);
      socket.on("exec.exit", onExit);
      cleanups.push(() => {
        socket.off("exec.output", onOutput);
        socket.off("exec.exit", onExit);
      });
      const input = term.onData((data) => {
        if (sessionId) socket.emit("exec.input", { sessionId, data });
      });
      cleanups.push(() => input.dispose());
      socket.emit("exec.start", { nodeId, containerId, ...(cmd?.length ? { cmd } : {}), ...(user ? { user } : {}), cols: term.cols, rows: term.rows }, (r) => {
        if (disposed) return;
        if (!r.ok) {
          setStatus("refused");
          setError(r.error);
          return;
        }
        sessionId = r.sessionId;
        setStatus("connected");
      });
    })();
    return () => {
      disposed = true;
      if (sessionId) socket.emit("exec.close", { sessionId });
      for (const c of cleanups.reverse()) c();
    };
    // A new command or user is a new session: the key is their text, not the array's identity.
  }, [nodeId, containerId, (cmd ?? []).join("\u0000"), user]);

  return (
    <div className="panel" data-testid="terminal">
      <div className="row" style={{ justifyContent: "space-between" }}>
        <b>Terminal</b>
        <span className="muted" data-testid="terminal-status">
          {status}
        </span>
        <button type="button" onClick={onClose}>
          Close terminal
        </button>
      </div>
      {error && (
        <div className="error" role="alert">
          {error}
        </div>
      )}
      <div ref={box} style={{ background: "#000", padding: 4, marginTop: 8 }} />
    </div>
  );
}
