/**
 * Install and removal runs the console started, kept in memory for the browser to follow:
 * each run's steps with status and output lines, the preflight checklist, the rollback,
 * and how it ended. The durable record is the audit log (start and end with the outcome);
 * this store only keeps the recent runs (a bounded history) and refuses a second run on a
 * host:port while one is active there — two installers writing the same files would undo
 * each other's work.
 *
 * Output lines are scrubbed of the run's own secrets (passwords, passphrase, join token)
 * before they are kept: a command echoing one must not put it on an admin's screen.
 */
import { randomUUID } from "node:crypto";
import type { StepId } from "./errors.ts";
import type { PreflightCheck } from "./preflight.ts";
import type { InstallEvent, StepStatus } from "./steps.ts";

export type RunKind = "install" | "remove";
export type RunStatus = "running" | "succeeded" | "failed";

export interface RunStepView {
  step: StepId;
  label: string;
  status: StepStatus;
  detail?: string;
  output: Array<{ stream: "stdout" | "stderr"; line: string }>;
  /** Output lines dropped from the front of `output` (the view keeps the last ones). */
  droppedLines: number;
}

export interface RunView {
  id: string;
  kind: RunKind;
  host: string;
  port: number;
  status: RunStatus;
  startedAt: string;
  endedAt?: string;
  steps: RunStepView[];
  checklist?: PreflightCheck[];
  rollback: Array<{ step: StepId; label: string; status: "running" | "ok" | "failed"; detail?: string }>;
  result?: { nodeId: string; version?: string; upgraded?: boolean; found?: boolean; dataRemoved?: boolean };
  error?: { step: StepId; kind: string; message: string };
}

export class RunConflictError extends Error {
  override name = "RunConflictError";
}

export interface InstallRunsOptions {
  /** Finished runs kept for the browser (default 50); running ones are always kept. */
  history?: number;
  /** Output lines kept per step (default 400). */
  linesPerStep?: number;
}

const REDACTED = "[redacted]";

export type RunChange = { step: string; status: string; line?: string };
type ChangeListener = (run: InstallRun, change: RunChange) => void;

export class InstallRun {
  readonly view: RunView;
  /** Aborted when the console shuts down: the run rolls back what it did instead of stopping half-way. */
  readonly #abort = new AbortController();
  readonly #secrets: string[];
  readonly #linesPerStep: number;
  readonly #onChange: ChangeListener;

  constructor(view: RunView, secrets: string[], linesPerStep: number, onChange: ChangeListener) {
    this.view = view;
    // Longest first: a secret that contains another is replaced whole.
    this.#secrets = secrets.filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);
    this.#linesPerStep = linesPerStep;
    this.#onChange = onChange;
  }

  get key(): string {
    return hostKey(this.view.host, this.view.port);
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  abort(reason: string): void {
    this.#abort.abort(new Error(reason));
  }

  scrub(text: string): string {
    let out = text;
    for (const s of this.#secrets) out = out.split(s).join(REDACTED);
    return out;
  }

  #step(step: StepId, label?: string): RunStepView {
    let s = this.view.steps.find((x) => x.step === step);
    if (!s) {
      s = { step, label: label ?? step, status: "running", output: [], droppedLines: 0 };
      this.view.steps.push(s);
    }
    return s;
  }

  /** Records one installer event (the EventSink of installAgent/removeAgent). */
  record(e: InstallEvent): void {
    switch (e.type) {
      case "step": {
        const s = this.#step(e.step, e.label);
        s.label = e.label;
        s.status = e.status;
        if (e.detail !== undefined) s.detail = this.scrub(e.detail);
        else delete s.detail;
        this.#onChange(this, { step: e.step, status: e.status });
        return;
      }
      case "output": {
        const s = this.#step(e.step);
        for (const raw of e.text.replace(/\n$/, "").split("\n")) {
          const line = this.scrub(raw);
          s.output.push({ stream: e.stream, line });
          if (s.output.length > this.#linesPerStep) {
            s.output.shift();
            s.droppedLines += 1;
          }
          this.#onChange(this, { step: e.step, status: "output", line });
        }
        return;
      }
      case "checklist":
        this.view.checklist = e.checks.map((c) => ({ ...c, detail: this.scrub(c.detail) }));
        this.#onChange(this, { step: "preflight", status: "checklist" });
        return;
      case "rollback": {
        const existing = this.view.rollback.find((r) => r.step === e.step && r.label === e.label);
        const entry = { step: e.step, label: this.scrub(e.label), status: e.status, ...(e.detail !== undefined ? { detail: this.scrub(e.detail) } : {}) };
        if (existing) Object.assign(existing, entry);
        else this.view.rollback.push(entry);
        this.#onChange(this, { step: e.step, status: `rollback-${e.status}` });
        return;
      }
    }
  }

  succeed(result: NonNullable<RunView["result"]>): void {
    this.view.status = "succeeded";
    this.view.result = result;
    this.view.endedAt = new Date().toISOString();
    this.#onChange(this, { step: "run", status: "succeeded" });
  }

  fail(error: NonNullable<RunView["error"]>): void {
    this.view.status = "failed";
    this.view.error = { ...error, message: this.scrub(error.message) };
    this.view.endedAt = new Date().toISOString();
    this.#onChange(this, { step: "run", status: "failed" });
  }
}

export function hostKey(host: string, port: number): string {
  return `${host.trim().toLowerCase()}:${port}`;
}

export class InstallRuns {
  readonly #runs = new Map<string, InstallRun>();
  readonly #history: number;
  readonly #linesPerStep: number;
  readonly #listeners = new Set<ChangeListener>();

  constructor(opts: InstallRunsOptions = {}) {
    this.#history = opts.history ?? 50;
    this.#linesPerStep = opts.linesPerStep ?? 400;
  }

  /** Called on every change of every run (the console pushes it to admin browsers). */
  onChange(listener: ChangeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The run active on host:port, if any. */
  active(host: string, port: number): InstallRun | undefined {
    const key = hostKey(host, port);
    for (const r of this.#runs.values()) if (r.view.status === "running" && r.key === key) return r;
    return undefined;
  }

  /**
   * Starts recording a run.
   * @param secrets values scrubbed from everything the run keeps (output, details, error).
   * @throws RunConflictError when a run is active on the same host:port.
   */
  begin(kind: RunKind, host: string, port: number, secrets: string[] = []): InstallRun {
    const busy = this.active(host, port);
    if (busy) throw new RunConflictError(`an ${busy.view.kind} run (${busy.view.id}) is still going on ${host}:${port}: wait for it to end`);
    const view: RunView = {
      id: randomUUID(),
      kind,
      host: host.trim().toLowerCase(),
      port,
      status: "running",
      startedAt: new Date().toISOString(),
      steps: [],
      rollback: [],
    };
    const run = new InstallRun(view, secrets, this.#linesPerStep, (r, change) => {
      for (const l of this.#listeners) {
        try {
          l(r, change);
        } catch {
          /* a listener's failure is not the run's */
        }
      }
    });
    this.#runs.set(view.id, run);
    this.#prune();
    return run;
  }

  /** Aborts the runs still going (console shutdown). */
  close(): void {
    for (const r of this.#runs.values()) if (r.view.status === "running") r.abort("the console is shutting down");
  }

  get(id: string): InstallRun | undefined {
    return this.#runs.get(id);
  }

  list(): RunView[] {
    return [...this.#runs.values()].map((r) => r.view).reverse();
  }

  /** Drops the oldest finished runs beyond the history size (Map keeps insertion order). */
  #prune(): void {
    let finished = 0;
    for (const r of this.#runs.values()) if (r.view.status !== "running") finished += 1;
    for (const [id, r] of this.#runs) {
      if (finished <= this.#history) break;
      if (r.view.status === "running") continue;
      this.#runs.delete(id);
      finished -= 1;
    }
  }
}
