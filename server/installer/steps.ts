/**
 * Runs the steps of one install or removal: announces each (running → ok | failed |
 * skipped), streams command output line by line, and keeps the undo actions the steps
 * register so that a failure rolls back exactly what this run changed, newest first.
 */
import { InstallError, type StepId } from "./errors.ts";
import type { PreflightCheck } from "./preflight.ts";

export type StepStatus = "running" | "ok" | "failed" | "skipped";

export type InstallEvent =
  | { type: "step"; step: StepId; label: string; status: StepStatus; detail?: string }
  /** Output of the commands a step runs on the node, in whole lines (each ends with "\n"). */
  | { type: "output"; step: StepId; stream: "stdout" | "stderr"; text: string }
  /** The preflight checklist, once it is known. */
  | { type: "checklist"; checks: PreflightCheck[] }
  /** Undoing a step's changes after a failure. */
  | { type: "rollback"; step: StepId; label: string; status: "running" | "ok" | "failed"; detail?: string };

export type EventSink = (event: InstallEvent) => void;

export interface StepContext {
  /** Feeds command output to the event stream (line-buffered per stream). */
  output: (text: string, stream: "stdout" | "stderr") => void;
  /** Registers how to undo something this step just changed. Runs only if the run fails. */
  onUndo: (label: string, undo: () => Promise<void>) => void;
  /** A short result shown with the step's ok/skipped status. */
  detail: (text: string) => void;
  signal: AbortSignal | undefined;
}

/** Returned by a step's body to report it as skipped, with the reason. */
export class Skipped<T = undefined> {
  constructor(
    readonly reason: string,
    readonly value: T,
  ) {}
}

export function skipped(reason: string): Skipped<undefined>;
export function skipped<T>(reason: string, value: T): Skipped<T>;
export function skipped<T>(reason: string, value?: T): Skipped<T | undefined> {
  return new Skipped(reason, value);
}

interface Undo {
  step: StepId;
  label: string;
  run: () => Promise<void>;
}

export class StepRunner {
  readonly #emit: EventSink;
  readonly #signal: AbortSignal | undefined;
  readonly #undos: Undo[] = [];
  /** Steps reported as skipped, with their reason. */
  readonly skippedSteps: Array<{ step: StepId; reason: string }> = [];

  constructor(emit: EventSink, signal?: AbortSignal) {
    // A listener that throws must not break the installer half-way.
    this.#emit = (e) => {
      try {
        emit(e);
      } catch {
        /* the caller's problem, not the install's */
      }
    };
    this.#signal = signal;
  }

  emit(event: InstallEvent): void {
    this.#emit(event);
  }

  async step<T>(step: StepId, label: string, body: (ctx: StepContext) => Promise<T | Skipped<T>>): Promise<T> {
    if (this.#signal?.aborted) throw new InstallError(step, "canceled", `canceled before: ${label}`);
    this.#emit({ type: "step", step, label, status: "running" });
    const pending: Record<"stdout" | "stderr", string> = { stdout: "", stderr: "" };
    const flush = (stream: "stdout" | "stderr", all: boolean) => {
      const text = pending[stream];
      const cut = all ? text.length : text.lastIndexOf("\n") + 1;
      if (cut <= 0) return;
      let chunk = text.slice(0, cut);
      pending[stream] = text.slice(cut);
      if (!chunk.endsWith("\n")) chunk += "\n";
      this.#emit({ type: "output", step, stream, text: chunk });
    };
    let detail: string | undefined;
    const ctx: StepContext = {
      output: (text, stream) => {
        pending[stream] += text.replace(/\r\n?/g, "\n");
        flush(stream, false);
      },
      onUndo: (undoLabel, run) => this.#undos.push({ step, label: undoLabel, run }),
      detail: (text) => (detail = text),
      signal: this.#signal,
    };
    try {
      const result = await body(ctx);
      flush("stdout", true);
      flush("stderr", true);
      if (result instanceof Skipped) {
        this.skippedSteps.push({ step, reason: result.reason });
        this.#emit({ type: "step", step, label, status: "skipped", detail: result.reason });
        return result.value as T;
      }
      this.#emit({ type: "step", step, label, status: "ok", ...(detail !== undefined ? { detail } : {}) });
      return result;
    } catch (e) {
      flush("stdout", true);
      flush("stderr", true);
      const err =
        this.#signal?.aborted && !(e instanceof InstallError && e.kind === "canceled")
          ? new InstallError(step, "canceled", `canceled during: ${label}`, { cause: e })
          : toInstallError(e, step, label);
      this.#emit({ type: "step", step, label, status: "failed", detail: err.message });
      throw err;
    }
  }

  /**
   * What a run throws when it failed: `e` as an InstallError (any other error counts as a
   * failed command), after rolling back; the message says when the rollback was incomplete.
   */
  async failWith(e: unknown): Promise<InstallError> {
    const err = e instanceof InstallError ? e : new InstallError("connect", "command", (e as Error).message, { cause: e });
    err.rollbackFailures = await this.rollback();
    if (err.rollbackFailures.length) err.message += ` (rollback incomplete: ${err.rollbackFailures.join("; ")})`;
    return err;
  }

  /** Runs the registered undo actions newest first; returns those that failed (and keeps going). */
  async rollback(): Promise<string[]> {
    const failures: string[] = [];
    while (this.#undos.length) {
      const u = this.#undos.pop()!;
      this.#emit({ type: "rollback", step: u.step, label: u.label, status: "running" });
      try {
        await u.run();
        this.#emit({ type: "rollback", step: u.step, label: u.label, status: "ok" });
      } catch (e) {
        const msg = `${u.label}: ${(e as Error).message}`;
        failures.push(msg);
        this.#emit({ type: "rollback", step: u.step, label: u.label, status: "failed", detail: (e as Error).message });
      }
    }
    return failures;
  }

  /** Forgets the undo actions: the run succeeded and its changes stay. */
  commit(): void {
    this.#undos.length = 0;
  }
}

export function toInstallError(e: unknown, step: StepId, label: string): InstallError {
  if (e instanceof InstallError) return e;
  return new InstallError(step, "command", `${label}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}
