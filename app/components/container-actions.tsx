"use client";
// Lifecycle actions on containers, shared by the containers table and the container page:
// Kill and Remove ask first and say what is lost (force is chosen per action), every
// action marks its containers pending until its job ends, and its outcome is a toast.
import { useId, useState, type ReactNode } from "react";
import { trpc } from "../lib/trpc.ts";
import { errorText } from "./action-bar.tsx";
import { Dialog } from "./dialog.tsx";
import { containerKey, markPending, showToast, usePending, type Pending } from "./toasts.tsx";

export const STATES = ["created", "running", "paused", "restarting", "removing", "exited", "dead"] as const;
export type State = (typeof STATES)[number];
export type Lifecycle = "start" | "stop" | "restart" | "pause" | "unpause" | "kill" | "remove";
export const ACTIONS: readonly Lifecycle[] = ["start", "stop", "restart", "pause", "unpause", "kill", "remove"];
export const actionLabel = (a: Lifecycle) => a[0]!.toUpperCase() + a.slice(1);
const PENDING_WORDS: Record<string, string> = {
  start: "starting…",
  stop: "stopping…",
  restart: "restarting…",
  pause: "pausing…",
  unpause: "unpausing…",
  kill: "killing…",
  remove: "removing…",
};
export const pendingWord = (p: Pending) => PENDING_WORDS[p.action] ?? `${p.action}…`;

/**
 * What each pending action makes pointless or contradictory until it ends (the console
 * orders what is sent anyway: a Pause during a Restart waits for it, so it stays allowed).
 */
const CONFLICTS: Record<Lifecycle, readonly Lifecycle[]> = {
  start: ["start", "unpause"],
  stop: ["start", "stop", "restart", "pause", "unpause"],
  restart: ["start", "restart", "unpause"],
  pause: ["pause", "unpause", "start"],
  unpause: ["unpause", "pause", "start"],
  kill: ["start", "stop", "restart", "pause", "unpause", "kill"],
  remove: ACTIONS,
};
export const conflicts = (p: Pending | undefined, a: Lifecycle) => !!p && (CONFLICTS[p.action as Lifecycle] ?? ACTIONS).includes(a);

/** The actions that make sense in a state (the engine would refuse the others). */
export function actionsFor(state: State): Lifecycle[] {
  switch (state) {
    case "running":
      return ["stop", "restart", "pause", "kill", "remove"];
    case "paused":
      return ["unpause", "stop", "kill", "remove"];
    case "restarting":
      return ["stop", "kill", "remove"];
    case "removing":
      return [];
    default:
      return ["start", "remove"];
  }
}

export interface Target {
  nodeId: string;
  id: string;
  name: string;
  state: State;
}

const live = (t: Target) => t.state === "running" || t.state === "paused" || t.state === "restarting";
const names = (ts: readonly Target[]) =>
  ts.length <= 3
    ? ts.map((t) => t.name).join(", ")
    : `${ts
        .slice(0, 3)
        .map((t) => t.name)
        .join(", ")} and ${ts.length - 3} more`;

/** `request(action, targets)` runs an action, asking first for Kill and Remove; render `dialog`. */
export function useContainerActions(): { request: (a: Lifecycle, targets: Target[]) => void; dialog: ReactNode; busy: boolean } {
  const mutation = trpc.jobs.container.useMutation();
  const [asking, setAsking] = useState<{ action: "kill" | "remove"; targets: Target[] } | null>(null);
  const run = async (action: Lifecycle, targets: Target[], force = false) => {
    try {
      const { jobId } = await mutation.mutateAsync({
        action,
        targets: targets.map(({ nodeId, id }) => ({ nodeId, id })),
        ...(action === "remove" ? { force } : {}),
      });
      markPending(
        targets.map((t) => containerKey(t.nodeId, t.id)),
        { action, jobId },
      );
      showToast({ text: `${actionLabel(action)} ${names(targets)}:`, jobId });
    } catch (e) {
      showToast({ text: `${actionLabel(action)} ${names(targets)} refused: ${errorText(e as { message: string }) ?? String(e)}`, error: true });
    }
  };
  const request = (action: Lifecycle, targets: Target[]) => {
    if (!targets.length) return;
    if (action === "kill" || action === "remove") setAsking({ action, targets });
    else void run(action, targets);
  };
  const dialog = asking ? (
    <ConfirmAction
      action={asking.action}
      targets={asking.targets}
      onCancel={() => setAsking(null)}
      onConfirm={(force) => {
        const { action, targets } = asking;
        setAsking(null);
        void run(action, targets, force);
      }}
    />
  ) : null;
  return { request, dialog, busy: mutation.isPending };
}

/** Kill or Remove, with what it destroys spelled out; Remove of a running container needs its force box ticked. */
function ConfirmAction({
  action,
  targets,
  onCancel,
  onConfirm,
}: {
  action: "kill" | "remove";
  targets: Target[];
  onCancel: () => void;
  onConfirm: (force: boolean) => void;
}) {
  const id = useId();
  const running = targets.filter(live);
  const [force, setForce] = useState(false);
  const blocked = action === "remove" && running.length > 0 && !force;
  return (
    <Dialog title={`${actionLabel(action)} ${targets.length === 1 ? targets[0]!.name : `${targets.length} containers`}?`} onClose={onCancel}>
      <div data-testid="confirm-action">
        {action === "kill" ? (
          <p>
            <b>{names(targets)}</b> {targets.length === 1 ? "gets" : "get"} SIGKILL now: no clean shutdown. Whatever the processes hold in memory and have not
            written is lost, and open connections are cut.
          </p>
        ) : (
          <>
            <p>
              <b>{names(targets)}</b> will be deleted with {targets.length === 1 ? "its" : "their"} writable layer: every file written in the container outside
              volumes is lost, and so are its logs. Named volumes stay; anonymous volumes stay too (until a volume prune).
            </p>
            {running.length > 0 && (
              <>
                <p>
                  {running.length === 1 ? `${running[0]!.name} is` : `${names(running)} are`} running: removing needs force, which kills{" "}
                  {running.length === 1 ? "it" : "them"} first (SIGKILL, no clean shutdown).
                </p>
                <div className="row">
                  <input id={`${id}-force`} type="checkbox" checked={force} onChange={(e) => setForce(e.target.checked)} />
                  <label htmlFor={`${id}-force`} style={{ margin: 0 }}>
                    Force: kill and remove
                  </label>
                </div>
              </>
            )}
          </>
        )}
        <p className="row">
          <button type="button" className="danger" disabled={blocked} onClick={() => onConfirm(force)}>
            {action === "kill" ? "Kill" : force ? "Kill and remove" : "Remove"}
          </button>
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
        </p>
      </div>
    </Dialog>
  );
}

/** One container's buttons, disabled while a conflicting action of it is pending. */
export function ContainerButtons({ target, request, busy }: { target: Target; request: (a: Lifecycle, t: Target[]) => void; busy: boolean }) {
  const pending = usePending().get(containerKey(target.nodeId, target.id));
  return (
    <div className="row" style={{ gap: 4, flexWrap: "nowrap" }}>
      {pending && (
        <span className="badge warn" data-testid="pending">
          {pendingWord(pending)}
        </span>
      )}
      {actionsFor(target.state).map((a) => (
        <button
          key={a}
          type="button"
          className={a === "remove" || a === "kill" ? "danger" : ""}
          disabled={busy || conflicts(pending, a)}
          onClick={() => request(a, [target])}
        >
          {actionLabel(a)}
        </button>
      ))}
    </div>
  );
}
