"use client";
// Add node (admin only): install the agent on a host over SSH, step by step — check the host
// key (and trust it on first contact), run the preflight checklist, install and follow the
// run live. A changed host key stops here: the only way on is to forget the old pin (after
// making sure the host was really reinstalled). Also the one-line manual install, and the
// pinned hosts with Forget and Remove agent.
import Link from "next/link";
import { useCallback, useState, type FormEvent } from "react";
import { trpc, type RouterOutputs } from "../../../lib/trpc.ts";
import { useLive } from "../../../lib/live.ts";
import { Badge, EmptyRow, ErrorBox, Field } from "../../../components/ui.tsx";
import { ConfirmButton, NodeGroupOptions, OneTimeSecret, when } from "../../../components/admin-ui.tsx";
import { Checklist, InstallRunView } from "../../../components/install-run.tsx";

type Probe = RouterOutputs["installer"]["probe"];
type Preflight = RouterOutputs["installer"]["preflight"];
type Host = RouterOutputs["installer"]["hosts"][number];
type Issued = RouterOutputs["admin"]["tokens"]["create"];

const wide = { width: "100%" } as const;

export default function AddNodePage() {
  const groups = trpc.admin.groups.list.useQuery();
  const hosts = trpc.installer.hosts.useQuery();
  const utils = trpc.useUtils();
  const refreshHosts = useCallback(() => void utils.installer.hosts.invalidate(), [utils]);
  useLive("admin.changed", refreshHosts);
  // The pinned hosts show their nodes' status and names, not inventory: inventory notices (many a second in a big fleet) are not theirs.
  const onNode = useCallback((p: { what: string }) => p.what !== "inventory" && refreshHosts(), [refreshHosts]);
  useLive("node.changed", onNode);

  const [host, setHost] = useState("");
  const [port, setPort] = useState("22");
  const [username, setUsername] = useState("root");
  const [password, setPassword] = useState("");
  const [privateKey, setPrivateKey] = useState("");
  const [passphrase, setPassphrase] = useState("");
  const [sudoPassword, setSudoPassword] = useState("");
  const [prefix, setPrefix] = useState("/");
  const [groupId, setGroupId] = useState("");
  const [keep, setKeep] = useState(false);

  const [probe, setProbe] = useState<Probe | null>(null);
  const [preflight, setPreflight] = useState<Preflight | null>(null);
  const [runId, setRunId] = useState<string | null>(null);

  // A different host (or port) starts over: its key must be checked first.
  const reset = () => {
    setProbe(null);
    setPreflight(null);
  };
  const target = () => ({
    host: host.trim(),
    port: Number(port),
    username: username.trim(),
    ...(password ? { password } : {}),
    ...(privateKey ? { privateKey } : {}),
    ...(passphrase ? { passphrase } : {}),
    ...(sudoPassword ? { sudoPassword } : {}),
    prefix: prefix.trim() || "/",
  });

  const probeM = trpc.installer.probe.useMutation({ onSuccess: (r) => (setProbe(r), setPreflight(null)) });
  const trustM = trpc.installer.trust.useMutation({
    onSuccess: (r) => {
      setProbe((p) => (p ? { ...p, pinned: r.fingerprint, matches: true } : p));
      refreshHosts();
    },
  });
  const forgetM = trpc.installer.forget.useMutation({
    onSuccess: (_r, vars) => {
      refreshHosts();
      if (vars.host === host.trim() && vars.port === Number(port)) reset();
    },
  });
  const preflightM = trpc.installer.preflight.useMutation({ onSuccess: setPreflight });
  const installM = trpc.installer.install.useMutation({ onSuccess: (r) => setRunId(r.runId) });

  const checkKey = (e: FormEvent) => {
    e.preventDefault();
    trustM.reset();
    preflightM.reset();
    probeM.mutate({ host: host.trim(), port: Number(port) });
  };

  const keyState = !probe ? null : probe.matches ? "pinned" : probe.pinned ? "changed" : "new";
  const keyOk = keyState === "pinned";

  return (
    <>
      <h1>Add node</h1>
      <p className="muted">
        Installs the Berth agent on a Linux host over SSH as the systemd service berth-agent, and enrolls it. The host key is checked before any credential is
        sent. Credentials are used for this run only, unless you ask to keep them (then they are encrypted at rest).
      </p>

      <form className="panel" onSubmit={checkKey} aria-label="SSH host">
        <div className="grid2">
          <Field label="Host">
            <input
              id="an-host"
              value={host}
              onChange={(e) => (setHost(e.target.value), reset())}
              placeholder="node7.example.com or 10.0.0.7"
              required
              style={wide}
            />
          </Field>
          <Field label="Port">
            <input id="an-port" type="number" min={1} max={65535} value={port} onChange={(e) => (setPort(e.target.value), reset())} required />
          </Field>
          <Field label="User">
            <input id="an-user" value={username} onChange={(e) => setUsername(e.target.value)} required autoComplete="off" />
          </Field>
          <Field label="Password">
            <input id="an-password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="new-password" />
          </Field>
          <Field label="Private key">
            <textarea
              id="an-key"
              value={privateKey}
              onChange={(e) => setPrivateKey(e.target.value)}
              rows={3}
              placeholder="-----BEGIN OPENSSH PRIVATE KEY-----"
              className="mono"
              style={wide}
            />
          </Field>
          <Field label="Passphrase">
            <input id="an-passphrase" type="password" value={passphrase} onChange={(e) => setPassphrase(e.target.value)} autoComplete="new-password" />
          </Field>
          <Field label="Sudo password">
            <input
              id="an-sudo"
              type="password"
              value={sudoPassword}
              onChange={(e) => setSudoPassword(e.target.value)}
              placeholder="the login password if empty"
              autoComplete="new-password"
            />
          </Field>
          <Field label="Node group">
            <select id="an-group" value={groupId} onChange={(e) => setGroupId(e.target.value)}>
              <NodeGroupOptions groups={groups.data} />
            </select>
          </Field>
        </div>
        <p className="row">
          <input id="an-keep" type="checkbox" checked={keep} onChange={(e) => setKeep(e.target.checked)} />
          <label htmlFor="an-keep">Keep credentials</label>
          <span className="muted">(encrypted at rest; lets the console upgrade or remove the agent later without asking)</span>
        </p>
        <details>
          <summary>Advanced</summary>
          <label htmlFor="an-prefix">Install prefix</label>
          <input id="an-prefix" value={prefix} onChange={(e) => (setPrefix(e.target.value), setPreflight(null))} className="mono" />
          <span className="muted"> "/" installs for real; another directory keeps every file under it and leaves systemd alone (testing).</span>
        </details>
        <p>
          <button className="primary" type="submit" disabled={probeM.isPending || !host.trim()}>
            {probeM.isPending ? "Checking…" : "Check host key"}
          </button>
        </p>
        <ErrorBox error={probeM.error} />
      </form>

      {probe && (
        <div className="panel" data-testid="host-key" data-state={keyState}>
          <div>
            Host key ({probe.algorithm}): <code data-testid="host-fingerprint">{probe.fingerprint}</code>{" "}
            <Badge kind={keyState === "pinned" ? "ok" : keyState === "changed" ? "bad" : "warn"}>
              {keyState === "pinned" ? "pinned" : keyState === "changed" ? "changed" : "new"}
            </Badge>
          </div>
          {keyState === "new" && (
            <>
              <p className="muted">
                First contact with this host. Compare the fingerprint with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host before trusting it.
              </p>
              <button
                type="button"
                className="primary"
                disabled={trustM.isPending}
                onClick={() => trustM.mutate({ host: host.trim(), port: Number(port), fingerprint: probe.fingerprint })}
              >
                Trust this key
              </button>
            </>
          )}
          {keyState === "changed" && (
            <>
              <div className="error" role="alert" data-testid="host-key-changed">
                The host key has changed: it was pinned as {probe.pinned}. The connection was refused before any credential was sent. If the host was
                reinstalled, forget the pinned key and check again; otherwise someone may be intercepting the connection.
              </div>
              <p>
                <ConfirmButton
                  label="Forget pinned key"
                  confirmLabel="Really forget the pinned key"
                  disabled={forgetM.isPending}
                  onConfirm={() => forgetM.mutate({ host: host.trim(), port: Number(port) })}
                />
              </p>
            </>
          )}
          <ErrorBox error={trustM.error ?? forgetM.error} />
          {keyOk && (
            <div style={{ marginTop: 10 }}>
              <p className="row">
                <button type="button" disabled={preflightM.isPending} onClick={() => preflightM.mutate(target())}>
                  {preflightM.isPending ? "Checking the host…" : "Run preflight"}
                </button>
                <button
                  type="button"
                  className="primary"
                  disabled={!preflight?.ok || installM.isPending}
                  title={preflight?.ok ? undefined : "run the preflight first; every check must pass"}
                  onClick={() => installM.mutate({ ...target(), keepCredentials: keep, nodeGroupId: groupId || null })}
                >
                  {preflight?.installedVersion ? `Install (upgrade ${preflight.installedVersion})` : "Install"}
                </button>
              </p>
              <ErrorBox error={preflightM.error ?? installM.error} />
              {preflight && (
                <>
                  <p>
                    <Badge kind={preflight.ok ? "ok" : "bad"}>{preflight.ok ? "all checks pass" : "some checks fail"}</Badge>
                    {preflight.installedVersion && (
                      <span className="muted"> berth-agent {preflight.installedVersion} is installed: installing again upgrades it in place.</span>
                    )}
                  </p>
                  <Checklist checks={preflight.checks} />
                </>
              )}
            </div>
          )}
        </div>
      )}

      {runId && <InstallRunView runId={runId} />}

      <ManualInstall groups={groups.data ?? []} />

      <h2>Pinned hosts</h2>
      <ErrorBox error={hosts.error} />
      <table data-testid="pinned-hosts">
        <thead>
          <tr>
            <th>Host</th>
            <th>Host key</th>
            <th>Node</th>
            <th>Credentials</th>
            <th>Updated</th>
            <th>Actions</th>
          </tr>
        </thead>
        <tbody>
          {hosts.data?.map((h) => (
            <PinnedRow key={`${h.host}:${h.port}`} h={h} onForget={() => forgetM.mutate({ host: h.host, port: h.port })} forgetting={forgetM.isPending} />
          ))}
          {hosts.data?.length === 0 && <EmptyRow cols={6}>No pinned hosts yet.</EmptyRow>}
        </tbody>
      </table>
    </>
  );
}

function PinnedRow({ h, onForget, forgetting }: { h: Host; onForget: () => void; forgetting: boolean }) {
  const [removeData, setRemoveData] = useState(false);
  const [rmPassword, setRmPassword] = useState("");
  const [removeRun, setRemoveRun] = useState<string | null>(null);
  const removeM = trpc.installer.remove.useMutation({ onSuccess: (r) => setRemoveRun(r.runId) });
  const id = `${h.host}-${h.port}`.replace(/[^A-Za-z0-9-]/g, "-");
  return (
    <>
      <tr data-host={`${h.host}:${h.port}`}>
        <td>
          {h.host}:{h.port}
          {h.username && <div className="muted">as {h.username}</div>}
        </td>
        <td>
          <code>{h.fingerprint}</code>
          <div className="muted">{h.algorithm}</div>
        </td>
        <td>
          {h.node ? (
            <>
              <Link href={`/nodes/${h.node.id}`}>{h.node.name}</Link>{" "}
              <Badge kind={h.node.revoked ? "revoked" : h.node.online ? "online" : "offline"}>
                {h.node.revoked ? "revoked" : h.node.online ? "online" : "offline"}
              </Badge>
            </>
          ) : (
            <span className="muted">—</span>
          )}
        </td>
        <td>{h.hasCredentials ? <Badge kind="warn">kept</Badge> : <span className="muted">not kept</span>}</td>
        <td>{when(h.updatedAt)}</td>
        <td>
          <div className="row">
            <ConfirmButton label="Forget" confirmLabel="Really forget" disabled={forgetting || !!h.activeRunId} onConfirm={onForget} />
            {h.node && !h.node.revoked && (
              <span className="row" style={{ display: "inline-flex" }}>
                <input id={`rm-data-${id}`} type="checkbox" checked={removeData} onChange={(e) => setRemoveData(e.target.checked)} />
                <label htmlFor={`rm-data-${id}`}>Also remove containers, images and volumes</label>
                {!h.hasCredentials && (
                  <input
                    aria-label={`SSH password for ${h.host}`}
                    type="password"
                    placeholder="SSH password"
                    value={rmPassword}
                    onChange={(e) => setRmPassword(e.target.value)}
                  />
                )}
                <ConfirmButton
                  label="Remove agent"
                  confirmLabel={removeData ? "Really remove agent and data" : "Really remove agent"}
                  disabled={removeM.isPending || !!h.activeRunId}
                  onConfirm={() => removeM.mutate({ nodeId: h.node!.id, removeData, ...(rmPassword ? { credentials: { password: rmPassword } } : {}) })}
                />
              </span>
            )}
          </div>
          <ErrorBox error={removeM.error} />
        </td>
      </tr>
      {removeRun && (
        <tr>
          <td colSpan={6}>
            <InstallRunView runId={removeRun} />
          </td>
        </tr>
      )}
    </>
  );
}

function ManualInstall({ groups }: { groups: Array<{ id: string; name: string }> }) {
  const [groupId, setGroupId] = useState("");
  const [issued, setIssued] = useState<Issued | null>(null);
  const create = trpc.admin.tokens.create.useMutation({ onSuccess: setIssued });
  return (
    <section className="panel" aria-label="Manual install">
      <h2>Manual install</h2>
      <p className="muted">
        For a host the console cannot reach over SSH: this makes a join token (valid 24 hours, one node) and a command to run on the host as root.
      </p>
      <div className="row">
        <label htmlFor="mi-group">Group of the new node</label>
        <select id="mi-group" value={groupId} onChange={(e) => setGroupId(e.target.value)}>
          <option value="">no group</option>
          {groups.map((g) => (
            <option key={g.id} value={g.id}>
              {g.name}
            </option>
          ))}
        </select>
        <button type="button" disabled={create.isPending} onClick={() => create.mutate({ note: "manual install", nodeGroupId: groupId || null, ttlHours: 24 })}>
          Create install command
        </button>
      </div>
      <ErrorBox error={create.error} />
      {issued && (
        <OneTimeSecret title="Install command" testId="manual-install-command" value={issued.installCommand} onDismiss={() => setIssued(null)}>
          <p className="muted">Valid until {when(issued.expiresAt)}. It holds the join token: treat it as a secret.</p>
        </OneTimeSecret>
      )}
    </section>
  );
}
