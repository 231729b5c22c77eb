"use client";
// The browser's end of the live updates (server/live/live-updates.ts): a socket.io
// connection to /ui that turns notices into query refreshes.
import { useEffect, useState } from "react";
import { io, type Socket } from "socket.io-client";
import type { UiServerEvents } from "../../server/live/live-updates.ts";
import type { SessionClientEvents } from "../../server/live/container-sessions.ts";

let shared: Socket<UiServerEvents, SessionClientEvents> | undefined;

export function liveSocket(): Socket<UiServerEvents, SessionClientEvents> {
  shared ??= io("/ui", { path: "/socket.io", withCredentials: true, transports: ["websocket", "polling"] });
  return shared;
}

/** Calls `handler` on every `event` while the component is mounted. */
export function useLive<E extends keyof UiServerEvents>(event: E, handler: UiServerEvents[E]): void {
  useEffect(() => {
    const s = liveSocket();
    s.on(event, handler as never);
    return () => {
      s.off(event, handler as never);
    };
  }, [event, handler]);
}

/** Whether the live socket is connected (shown in the header). */
export function useLiveConnected(): boolean {
  const [connected, setConnected] = useState(false);
  useEffect(() => {
    const s = liveSocket();
    const on = () => setConnected(true);
    const off = () => setConnected(false);
    setConnected(s.connected);
    s.on("connect", on);
    s.on("disconnect", off);
    s.on("connect_error", off);
    return () => {
      s.off("connect", on);
      s.off("disconnect", off);
      s.off("connect_error", off);
    };
  }, []);
  return connected;
}

export function closeLiveSocket(): void {
  shared?.disconnect();
  shared = undefined;
}
