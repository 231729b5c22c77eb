"use client";
// One container: live usage charts, what it runs with (env with secrets masked, mounts,
// ports as links, networks, labels, health), its logs and a terminal, the inspect
// document, and the actions, including Recreate and Duplicate through the Run form.
import Link from "next/link";
import { useParams } from "next/navigation";
import { useId, useState } from "react";
import { containerStatusText } from "../../../../../shared/container-status-text.ts";
import { trpc, type RouterOutputs } from "../../../../lib/trpc.ts";
import { useCan } from "../../../../components/action-bar.tsx";
import { ContainerButtons, useContainerActions } from "../../../../components/container-actions.tsx";
import { useClock } from "../../../../components/containers-table.tsx";
import { shortId } from "../../../../components/format.ts";
import { LiveLogs } from "../../../../components/live-logs.tsx";
import { StatsCharts } from "../../../../components/stats-charts.tsx";
import { ContainerTerminal } from "../../../../components/terminal.tsx";
import { Badge, ErrorBox } from "../../../../components/ui.tsx";

type Inspect = RouterOutputs["inventory"]["containerInspect"];

const TABS = ["Overview", "Environment", "Mounts", "Networks", "Labels", "Health", "Logs", "Terminal", "Inspect"] as const;
type Tab = (typeof TABS)[number];

/** Keys whose values are secrets more often than not. */
const SECRET_KEY = /pass(word|wd)?|secret|token|key|credential|private|auth|pwd|cert/i;
const isSecretKey = (k: string) => SECRET_KEY.test(k);
const MASK = "••••••••";
const splitEnv = (e: string): [string, string] => {
  const i = e.indexOf("=");
  return i < 0 ? [e, ""] : [e.slice(0, i), e.slice(i + 1)];
};
const maskEnv = (env: readonly string[]) => env.map((e) => (isSecretKey(splitEnv(e)[0]) ? `${splitEnv(e)[0]}=${MASK}` : e));

const LOOPBACK = /^(127\.|::1$|localhost$)/;

/** Where a published port is reached from the browser: its bound address, else the node's. */
function portHost(hostIp: string, nodeAddress: string | null): string {
  if (hostIp && hostIp !== "0.0.0.0" && hostIp !== "::" && !LOOPBACK.test(hostIp)) return hostIp;
  // A node linked over loopback runs where the console does: the browser reaches it under the console's name.
  if (!nodeAddress || LOOPBACK.test(nodeAddress)) return typeof window === "undefined" ? "localhost" : window.location.hostname;
  return nodeAddress.includes(":") ? `[${nodeAddress}]` : nodeAddress;
}

export default function ContainerPage() {
  const { node: nodeId, id } = useParams<{ node: string; id: string }>();
  const can = useCan();
  const now = useClock(5_000);
  const [tab, setTab] = useState<Tab>("Overview");
  const inspect = trpc.inventory.containerInspect.useQuery({ nodeId, id: decodeURIComponent(id) }, { retry: false, placeholderData: (p) => p });
  const node = trpc.nodes.get.useQuery({ nodeId }, { retry: false });
  const actions = useContainerActions();
  const c = inspect.data;
  const running = c?.state.status === "running" || c?.state.status === "paused";

  return (
    <>
      <div className="row" style={{ justifyContent: "space-between" }}>
        <h1 style={{ margin: 0 }} data-testid="container-name">
          {c?.name ?? decodeURIComponent(id)} {c && <Badge kind={c.state.status}>{c.state.status}</Badge>}
        </h1>
        <Link href="/containers">All containers</Link>
      </div>
      <p className="muted" style={{ marginTop: 4 }}>
        {c ? (
          <>
            <span className="mono">{shortId(c.id)}</span> · {c.imageName} · on <Link href={`/nodes/${nodeId}`}>{node.data?.name ?? c.node.hostname}</Link> ·{" "}
            {containerStatusText({ state: c.state.status, exitCode: c.state.exitCode, startedAt: c.state.startedAt, finishedAt: c.state.finishedAt }, now)}
            {c.state.restartCount ? ` · restarted ${c.state.restartCount}×` : ""}
            {c.node.online ? "" : " · node offline: this is what it last reported"}
          </>
        ) : null}
      </p>
      <ErrorBox error={inspect.error} />
      {c && can.operate && (
        <div className="panel row" data-testid="container-actions">
          <ContainerButtons target={{ nodeId, id: c.id, name: c.name, state: c.state.status }} request={actions.request} busy={actions.busy} />
          <span className="muted">|</span>
          <Link className="button" href={`/run?from=${encodeURIComponent(`${nodeId}/${c.id}`)}&mode=recreate`}>
            Recreate…
          </Link>
          <Link className="button" href={`/run?from=${encodeURIComponent(`${nodeId}/${c.id}`)}&mode=duplicate`}>
            Duplicate and edit…
          </Link>
        </div>
      )}
      {actions.dialog}
      {c && (
        <>
          <div className="tabs" role="tablist">
            {TABS.map((t) => (
              <button key={t} type="button" role="tab" aria-selected={tab === t} onClick={() => setTab(t)}>
                {t}
              </button>
            ))}
          </div>
          {tab === "Overview" && <Overview c={c} running={running} nodeId={nodeId} />}
          {tab === "Environment" && <Environment env={c.config.env} />}
          {tab === "Mounts" && <Mounts c={c} />}
          {tab === "Networks" && <Networks c={c} />}
          {tab === "Labels" && <Labels labels={c.config.labels} />}
          {tab === "Health" && <Health c={c} />}
          {tab === "Logs" && <Logs nodeId={nodeId} id={c.id} />}
          {tab === "Terminal" && <TerminalTab nodeId={nodeId} c={c} canExec={can.exec} />}
          {tab === "Inspect" && <InspectJson c={c} />}
        </>
      )}
    </>
  );
}

function Overview({ c, running, nodeId }: { c: Inspect; running: boolean; nodeId: string }) {
  return (
    <>
      <div className="panel">
        <StatsCharts nodeId={nodeId} containerId={c.id} running={c.state.status === "running"} />
        {!running && <p className="muted">Charts show while the container runs.</p>}
      </div>
      <div className="grid2">
        <table className="kv panel">
          <tbody>
            <tr>
              <th>ID</th>
              <td className="mono">{c.id}</td>
            </tr>
            <tr>
              <th>Image</th>
              <td className="mono">
                {c.imageName} <span className="muted">{shortId(c.imageId)}</span>
              </td>
            </tr>
            <tr>
              <th>Process</th>
              <td className="mono">{[c.path, ...c.args].join(" ")}</td>
            </tr>
            <tr>
              <th>User</th>
              <td className="mono">{c.config.user || "(image default: root)"}</td>
            </tr>
            <tr>
              <th>Working directory</th>
              <td className="mono">{c.config.workingDir || "/"}</td>
            </tr>
            <tr>
              <th>Restart policy</th>
              <td>
                {c.options.restartPolicy.name}
                {c.options.restartPolicy.name === "on-failure" && c.options.restartPolicy.maximumRetryCount
                  ? `:${c.options.restartPolicy.maximumRetryCount}`
                  : ""}
              </td>
            </tr>
            <tr>
              <th>Created</th>
              <td>{new Date(c.created).toLocaleString()}</td>
            </tr>
            {c.state.error && (
              <tr>
                <th>Error</th>
                <td className="error">{c.state.error}</td>
              </tr>
            )}
          </tbody>
        </table>
        <div className="panel">
          <b>Ports</b>
          <Ports c={c} />
          <b>Networks</b>
          <p className="mono">{c.networks.map((n) => `${n.name} ${n.ipAddress || ""}`).join(", ") || c.options.networkMode}</p>
        </div>
      </div>
    </>
  );
}

function Ports({ c }: { c: Inspect }) {
  const published = c.ports.length ? c.ports : c.options.ports;
  if (!published.length) return <p className="muted">No published ports.</p>;
  return (
    <ul data-testid="ports">
      {published.map((p, i) => {
        const text = `${p.hostIp || "0.0.0.0"}:${p.hostPort || "?"} → ${p.containerPort}/${p.protocol}`;
        if (!p.hostPort || p.protocol !== "tcp")
          return (
            <li key={i} className="mono">
              {text}
            </li>
          );
        const href = `http://${portHost(p.hostIp, c.node.address)}:${p.hostPort}`;
        return (
          <li key={i} className="mono">
            <a href={href} target="_blank" rel="noreferrer">
              {href}
            </a>{" "}
            <span className="muted">
              → {p.containerPort}/{p.protocol}
            </span>
          </li>
        );
      })}
    </ul>
  );
}

function Environment({ env }: { env: readonly string[] }) {
  const [shown, setShown] = useState<Set<string>>(new Set());
  if (!env.length) return <p className="muted">No environment variables.</p>;
  return (
    <table data-testid="env">
      <thead>
        <tr>
          <th>Name</th>
          <th>Value</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {env.map((e) => {
          const [k, v] = splitEnv(e);
          const secret = isSecretKey(k);
          const visible = !secret || shown.has(k);
          return (
            <tr key={k} data-env={k}>
              <td className="mono">{k}</td>
              <td className="mono" style={{ wordBreak: "break-all" }}>
                {visible ? v : MASK}
              </td>
              <td>
                {secret && (
                  <button
                    type="button"
                    onClick={() =>
                      setShown((s) => {
                        const n = new Set(s);
                        if (n.has(k)) n.delete(k);
                        else n.add(k);
                        return n;
                      })
                    }
                  >
                    {visible ? "Hide" : "Reveal"}
                  </button>
                )}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

function Mounts({ c }: { c: Inspect }) {
  if (!c.mounts.length) return <p className="muted">No mounts.</p>;
  return (
    <table data-testid="mounts">
      <thead>
        <tr>
          <th>Type</th>
          <th>Source</th>
          <th>Destination</th>
          <th>Mode</th>
        </tr>
      </thead>
      <tbody>
        {c.mounts.map((m) => (
          <tr key={m.destination}>
            <td>
              {m.type}
              {m.anonymous ? " (anonymous)" : ""}
            </td>
            <td className="mono">{m.source}</td>
            <td className="mono">{m.destination}</td>
            <td>{m.readonly ? "read-only" : "read-write"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Networks({ c }: { c: Inspect }) {
  if (!c.networks.length)
    return (
      <p className="muted">
        Network mode {c.options.networkMode}
        {c.state.status === "running" ? "" : " (addresses are given while it runs)"}.
      </p>
    );
  return (
    <table data-testid="networks">
      <thead>
        <tr>
          <th>Network</th>
          <th>IP address</th>
          <th>Gateway</th>
          <th>MAC</th>
          <th>Aliases</th>
        </tr>
      </thead>
      <tbody>
        {c.networks.map((n) => (
          <tr key={n.name}>
            <td>{n.name}</td>
            <td className="mono">{n.ipAddress ? `${n.ipAddress}/${n.prefixLen}` : "—"}</td>
            <td className="mono">{n.gateway || "—"}</td>
            <td className="mono">{n.macAddress || "—"}</td>
            <td className="mono">{n.aliases.join(", ") || "—"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Labels({ labels }: { labels: Record<string, string> }) {
  const entries = Object.entries(labels);
  if (!entries.length) return <p className="muted">No labels.</p>;
  return (
    <table data-testid="labels">
      <tbody>
        {entries.map(([k, v]) => (
          <tr key={k}>
            <td className="mono">{k}</td>
            <td className="mono">{v}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Health({ c }: { c: Inspect }) {
  if (!c.health)
    return (
      <p className="muted" data-testid="health">
        No health check runs for this container.
      </p>
    );
  return (
    <div data-testid="health">
      <p>
        <Badge kind={c.health.status === "healthy" ? "ok" : c.health.status === "unhealthy" ? "bad" : "warn"}>{c.health.status}</Badge>{" "}
        {c.health.failingStreak ? `${c.health.failingStreak} failures in a row` : ""}
      </p>
      <table>
        <thead>
          <tr>
            <th>Started</th>
            <th>Exit code</th>
            <th>Output</th>
          </tr>
        </thead>
        <tbody>
          {c.health.log.map((l, i) => (
            <tr key={i}>
              <td>{new Date(l.start).toLocaleString()}</td>
              <td>{l.exitCode}</td>
              <td className="mono" style={{ whiteSpace: "pre-wrap" }}>
                {l.output}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Logs({ nodeId, id }: { nodeId: string; id: string }) {
  const fid = useId();
  const [tail, setTail] = useState(200);
  const [follow, setFollow] = useState(true);
  const logs = trpc.inventory.containerLogs.useQuery(
    { nodeId, id, tail },
    { enabled: !follow, staleTime: Infinity, refetchOnWindowFocus: false, retry: false },
  );
  return (
    <div className="panel">
      <div className="row">
        <label htmlFor={`${fid}-tail`} style={{ margin: 0, fontWeight: 400 }}>
          last lines
        </label>
        <select id={`${fid}-tail`} value={tail} onChange={(e) => setTail(Number(e.target.value))}>
          {[50, 200, 1000, 5000].map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
        <label style={{ margin: 0, fontWeight: 400 }}>
          <input type="checkbox" checked={follow} onChange={(e) => setFollow(e.target.checked)} /> Follow
        </label>
        {!follow && (
          <button type="button" onClick={() => void logs.refetch()} disabled={logs.isFetching}>
            Refresh
          </button>
        )}
        {logs.data?.truncated && <span className="muted">(earlier lines left out)</span>}
      </div>
      {follow && <LiveLogs nodeId={nodeId} containerId={id} tail={tail} />}
      {!follow && <ErrorBox error={logs.error} />}
      {!follow && logs.data && (
        <pre className="logs" data-testid="logs">
          {logs.data.lines.length === 0 ? "(no output)" : logs.data.lines.map((l) => (l.stream === "stderr" ? `[err] ${l.text}` : l.text)).join("")}
        </pre>
      )}
    </div>
  );
}

function TerminalTab({ nodeId, c, canExec }: { nodeId: string; c: Inspect; canExec: boolean }) {
  const fid = useId();
  const [command, setCommand] = useState("sh");
  const [user, setUser] = useState("");
  const [open, setOpen] = useState<{ cmd: string[]; user: string } | null>(null);
  if (!canExec) return <p className="muted">Terminals need the operator or admin role.</p>;
  if (c.state.status !== "running") return <p className="muted">A terminal opens in a running container.</p>;
  if (open) return <ContainerTerminal nodeId={nodeId} containerId={c.id} cmd={open.cmd} user={open.user || undefined} onClose={() => setOpen(null)} />;
  return (
    <form
      className="panel row"
      onSubmit={(e) => {
        e.preventDefault();
        const cmd = command.trim().split(/\s+/).filter(Boolean);
        setOpen({ cmd: cmd.length ? cmd : ["sh"], user: user.trim() });
      }}
    >
      <label htmlFor={`${fid}-cmd`} style={{ margin: 0 }}>
        Command
      </label>
      <input id={`${fid}-cmd`} className="mono" value={command} onChange={(e) => setCommand(e.target.value)} placeholder="sh" />
      <label htmlFor={`${fid}-user`} style={{ margin: 0 }}>
        User
      </label>
      <input id={`${fid}-user`} className="mono" value={user} onChange={(e) => setUser(e.target.value)} placeholder={c.config.user || "the container's user"} />
      <button type="submit" className="primary">
        Open terminal
      </button>
    </form>
  );
}

function InspectJson({ c }: { c: Inspect }) {
  const [reveal, setReveal] = useState(false);
  const { node: _node, ...doc } = c;
  const shown = reveal ? doc : { ...doc, options: { ...doc.options, env: maskEnv(doc.options.env) }, config: { ...doc.config, env: maskEnv(doc.config.env) } };
  return (
    <div className="panel">
      <div className="row">
        <label style={{ margin: 0, fontWeight: 400 }}>
          <input type="checkbox" checked={reveal} onChange={(e) => setReveal(e.target.checked)} /> Show secret-looking values
        </label>
        <button type="button" onClick={() => void navigator.clipboard?.writeText(JSON.stringify(shown, null, 2))}>
          Copy
        </button>
      </div>
      <pre className="logs" data-testid="inspect-json" style={{ maxHeight: 640 }}>
        {JSON.stringify(shown, null, 2)}
      </pre>
    </div>
  );
}
