"use client";
// One install or removal run as it happens: each step with its status and output lines,
// the preflight checklist, the rollback after a failure, and how it ended. The server
// pushes a small `install.output` notice per change; the view refetches the run (at most
// every 150 ms) and also polls while it runs, in case the live socket is down.
import Link from "next/link";
import { useCallback, useEffect, useRef } from "react";
import { trpc, type RouterOutputs } from "../lib/trpc.ts";
import { useLive } from "../lib/live.ts";
import { Badge, ErrorBox } from "./ui.tsx";

type Check = NonNullable<RouterOutputs["installer"]["run"]["checklist"]>[number];

const STEP_KIND: Record<string, string> = { ok: "ok", running: "warn", failed: "bad", skipped: "" };

export function Checklist({ checks }: { checks: Check[] }) {
  return (
    <table data-testid="preflight">
      <thead>
        <tr>
          <th>Check</th>
          <th>Result</th>
          <th>Reason</th>
        </tr>
      </thead>
      <tbody>
        {checks.map((c) => (
          <tr key={c.id} data-testid="preflight-check" data-check={c.id} data-ok={c.ok ? "yes" : "no"}>
            <td>{c.label}</td>
            <td>
              <Badge kind={c.ok ? "ok" : "bad"}>{c.ok ? "pass" : "fail"}</Badge>
            </td>
            <td>{c.detail}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function InstallRunView({ runId }: { runId: string }) {
  const run = trpc.installer.run.useQuery({ runId }, { refetchInterval: (q) => (q.state.data?.status === "running" ? 2_000 : false) });
  const utils = trpc.useUtils();
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const onOutput = useCallback(
    (p: { runId: string }) => {
      if (p.runId !== runId || timer.current) return;
      timer.current = setTimeout(() => {
        timer.current = undefined;
        void utils.installer.run.invalidate({ runId });
      }, 150);
    },
    [runId, utils],
  );
  useLive("install.output", onOutput);
  useEffect(() => () => clearTimeout(timer.current), []);

  const v = run.data;
  if (!v) return <ErrorBox error={run.error} />;
  return (
    <div className="panel" data-testid="install-run" data-status={v.status}>
      <b>
        {v.kind === "install" ? "Install" : "Removal"} on {v.host}:{v.port}
      </b>{" "}
      <Badge kind={v.status}>{v.status}</Badge>
      {v.checklist && (
        <details open={v.checklist.some((c) => !c.ok)} style={{ marginTop: 8 }}>
          <summary>Preflight checklist</summary>
          <Checklist checks={v.checklist} />
        </details>
      )}
      <ol style={{ paddingLeft: 20 }}>
        {v.steps.map((s) => (
          <li key={s.step} data-testid="install-step" data-step={s.step} data-status={s.status} style={{ margin: "6px 0" }}>
            <span>{s.label}</span> <Badge kind={STEP_KIND[s.status] ?? ""}>{s.status}</Badge>
            {s.detail && <div className="muted">{s.detail}</div>}
            {s.output.length > 0 && (
              <pre
                className="mono"
                data-testid="install-output"
                style={{ maxHeight: 220, overflow: "auto", background: "#f6f8fa", padding: 6, fontSize: 12, whiteSpace: "pre-wrap" }}
              >
                {s.droppedLines > 0 && `… ${s.droppedLines} earlier lines\n`}
                {s.output.map((o) => o.line).join("\n")}
              </pre>
            )}
          </li>
        ))}
      </ol>
      {v.rollback.length > 0 && (
        <div data-testid="install-rollback">
          <b>Rollback</b>
          <ul>
            {v.rollback.map((r, i) => (
              <li key={i}>
                {r.label} <Badge kind={STEP_KIND[r.status] ?? ""}>{r.status}</Badge>
                {r.detail && <span className="muted"> {r.detail}</span>}
              </li>
            ))}
          </ul>
        </div>
      )}
      {v.status === "succeeded" && v.result && (
        <div data-testid="install-result" data-outcome="succeeded">
          {v.kind === "install" ? (
            <>
              <Badge kind="online">online</Badge> Node{" "}
              <Link href={`/nodes/${v.result.nodeId}`} data-testid="install-node-link">
                {v.result.nodeId}
              </Link>{" "}
              {v.result.upgraded ? "upgraded to" : "enrolled with"} berth-agent {v.result.version}.
            </>
          ) : (
            <>
              <Badge kind="ok">removed</Badge> {v.result.found ? `berth-agent ${v.result.version ?? ""} removed` : "no agent was installed there"}
              {v.result.dataRemoved ? ", with its data" : ""}; node {v.result.nodeId} revoked.
            </>
          )}
        </div>
      )}
      {v.status === "failed" && v.error && (
        <div className="error" role="alert" data-testid="install-result" data-outcome="failed">
          Failed at step <b>{v.error.step}</b> ({v.error.kind}): {v.error.message}
        </div>
      )}
    </div>
  );
}
