"use client";
// A container's log as it is written (`docker logs -f`), over the browser socket.
import { useEffect, useRef, useState } from "react";
import type { LogLine } from "../../agent/link/contract.ts";
import { liveSocket } from "../lib/live.ts";

/** Lines kept on the page; older ones scroll away. */
const MAX_LINES = 5_000;

export function LiveLogs({ nodeId, containerId, tail }: { nodeId: string; containerId: string; tail: number }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [status, setStatus] = useState("connecting…");
  const box = useRef<HTMLPreElement>(null);

  useEffect(() => {
    const socket = liveSocket();
    let sessionId: string | undefined;
    let gone = false;
    setLines([]);
    const onLine = (m: { sessionId: string; line: LogLine }) => {
      if (m.sessionId === sessionId) setLines((prev) => (prev.length >= MAX_LINES ? [...prev.slice(-MAX_LINES + 1), m.line] : [...prev, m.line]));
    };
    const onEnd = (m: { sessionId: string; error?: string }) => {
      if (m.sessionId === sessionId) setStatus(m.error ? `stopped: ${m.error}` : "the container stopped");
    };
    socket.on("logs.line", onLine);
    socket.on("logs.end", onEnd);
    socket.emit("logs.follow", { nodeId, containerId, tail }, (r) => {
      if (gone) {
        if (r.ok) socket.emit("logs.stop", { sessionId: r.sessionId });
        return;
      }
      if (r.ok) {
        sessionId = r.sessionId;
        setStatus("following");
      } else setStatus(r.error);
    });
    return () => {
      gone = true;
      if (sessionId) socket.emit("logs.stop", { sessionId });
      socket.off("logs.line", onLine);
      socket.off("logs.end", onEnd);
    };
  }, [nodeId, containerId, tail]);

  useEffect(() => {
    box.current?.scrollTo({ top: box.current.scrollHeight });
  }, [lines]);

  return (
    <>
      <span className="muted" data-testid="follow-status">
        {status}
      </span>
      <pre className="logs" data-testid="live-logs" ref={box}>
        {lines.length === 0 ? "(no output yet)" : lines.map((l) => (l.stream === "stderr" ? `[err] ${l.text}` : l.text)).join("")}
      </pre>
    </>
  );
}
