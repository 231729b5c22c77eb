"use client";
import Link from "next/link";
import { usePathname, useRouter } from "next/navigation";
import { signOut } from "next-auth/react";
import { useCallback, useEffect, useMemo, type ReactNode } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { trpc } from "../lib/trpc.ts";
import { closeLiveSocket, useLive, useLiveConnected } from "../lib/live.ts";
import { NodeRefresher } from "../lib/node-refresh.ts";
import { Toasts } from "../components/toasts.tsx";

const NAV: Array<{ href: string; label: string; admin?: boolean; operate?: boolean; section?: string }> = [
  { href: "/", label: "Fleet" },
  { href: "/images", label: "Images" },
  { href: "/containers", label: "Containers" },
  { href: "/volumes", label: "Volumes" },
  { href: "/networks", label: "Networks" },
  { href: "/jobs", label: "Jobs" },
  { href: "/run", label: "Run a container", operate: true },
  { href: "/admin/users", label: "Users", admin: true, section: "Administration" },
  { href: "/admin/teams", label: "Teams", admin: true },
  { href: "/admin/groups", label: "Node groups", admin: true },
  { href: "/admin/tokens", label: "Join tokens", admin: true },
  { href: "/admin/add-node", label: "Add node", admin: true },
  { href: "/admin/registries", label: "Registries", admin: true },
  { href: "/admin/audit", label: "Audit log", admin: true },
  { href: "/admin/security", label: "Security", admin: true },
];

export default function ConsoleLayout({ children }: { children: ReactNode }) {
  const me = trpc.auth.me.useQuery(undefined, { staleTime: 10_000 });
  const router = useRouter();
  const path = usePathname();
  const utils = trpc.useUtils();
  const connected = useLiveConnected();

  useEffect(() => {
    if (me.isSuccess && me.data === null) router.replace(`/login?next=${encodeURIComponent(path)}`);
    else if ((me.data?.mustChangePassword || me.data?.mustEnrolTwoFactor) && path !== "/account") router.replace("/account");
  }, [me.isSuccess, me.data, path, router]);

  // A change on a node refreshes the queries keyed by that node at once, and the fleet-wide
  // lists at most once per FLEET_REFRESH_MS (see app/lib/node-refresh.ts).
  const queryClient = useQueryClient();
  const refresher = useMemo(() => new NodeRefresher(queryClient), [queryClient]);
  useEffect(() => () => refresher.close(), [refresher]);
  const onNode = useCallback((p: { nodeId: string }) => refresher.nodeChanged(p.nodeId), [refresher]);
  // Progress notices (several a second during a pull) are drawn by the job page itself; lists refetch on status changes only.
  const onJob = useCallback(
    (p: { status?: string; progress?: unknown }) => {
      if (p.progress !== undefined && p.status === "running") return;
      void utils.jobs.invalidate();
    },
    [utils],
  );
  const onAdmin = useCallback(() => void utils.admin.invalidate(), [utils]);
  useLive("node.changed", onNode);
  useLive("job.changed", onJob);
  useLive("admin.changed", onAdmin);

  if (!me.data) return <div className="main muted">{me.error ? me.error.message : "Loading…"}</div>;
  const user = me.data;
  // A page the role cannot use says so, instead of rendering forms whose every call is refused.
  const route = NAV.find((n) => n.href !== "/" && (path === n.href || path.startsWith(`${n.href}/`)));
  const refused =
    route && ((route.admin && !user.can.admin) || (route.operate && !user.can.operate)) ? (route.admin ? "admins" : "operators and admins") : null;
  return (
    <div className="shell">
      <nav className="nav">
        <div className="brand">Berth</div>
        {NAV.filter((n) => (!n.admin || user.can.admin) && (!n.operate || user.can.operate)).map((n) => (
          <div key={n.href}>
            {n.section && <div className="section">{n.section}</div>}
            <Link href={n.href} className={path === n.href || (n.href !== "/" && path.startsWith(n.href)) ? "active" : ""}>
              {n.label}
            </Link>
          </div>
        ))}
      </nav>
      <div className="main">
        <div className="topbar">
          <div />
          <div className="who">
            <span className={`dot ${connected ? "on" : ""}`} title={connected ? "live updates connected" : "live updates disconnected"} />
            <Link href="/account">{user.email}</Link>
            <span className="badge" data-testid="role">
              {user.role}
            </span>
            <button
              onClick={() => {
                closeLiveSocket();
                void signOut({ callbackUrl: "/login" });
              }}
            >
              Sign out
            </button>
          </div>
        </div>
        {refused ? <NotAllowed who={refused} role={user.role} /> : children}
      </div>
      <Toasts />
    </div>
  );
}

function NotAllowed({ who, role }: { who: string; role: string }) {
  return (
    <section className="panel" role="alert" aria-label="not allowed" data-testid="not-allowed" style={{ maxWidth: 560 }}>
      <h1 style={{ marginTop: 0 }}>For {who} only</h1>
      <p>
        This page is for {who}; you are signed in as <b>{role}</b>. An admin can change your role under Users.
      </p>
      <p>
        <Link href="/">Back to the fleet</Link>
      </p>
    </section>
  );
}
