/**
 * Add node over SSH (admin only): check and pin the host key, run the preflight checklist,
 * install or upgrade the agent as a background run the browser follows, remove it again.
 *
 * The order the page enforces is also enforced here: nothing authenticates to a host whose
 * key is not pinned (probe → the admin confirms → trust), and a changed key is refused until
 * the admin forgets the old pin. Credentials arrive with each call and are kept only when the
 * admin ticks "Keep credentials" (sealed, see installer/known-hosts.ts); the audit log
 * redacts them by key name, and run output is scrubbed of them (installer/runs.ts).
 *
 * Runs live in memory (InstallRuns, one per console); the audit log has each run's start
 * (the mutation's own entry) and end (installer.install.finished / installer.remove.finished).
 */
import { TRPCError } from "@trpc/server";
import { z } from "zod";
import { recordAudit } from "../../db/audit.ts";
import {
  checkHost,
  installAgent,
  InstallError,
  KnownHosts,
  nodeWaiter,
  probeHost,
  removeAgent,
  type SshCredentials,
  type SshTarget,
} from "../../installer/index.ts";
import { normalizeHostFingerprint } from "../../installer/host-key.ts";
import { RunConflictError, type InstallRun, type InstallRuns } from "../../installer/runs.ts";
import { normalizePrefix } from "../../installer/shell.ts";
import type { ConsoleServices } from "../../services.ts";
import { adminProcedure, router, type AuthedContext } from "../trpc.ts";
import { startJob } from "../start-job.ts";
import { upgradeAvailability, type UpgradeDeps } from "../../installer/upgrade.ts";
import { bestEffort } from "../../../shared/best-effort.ts";

// ---------------------------------------------------------------- inputs

const Host = z
  .string({ error: "host is required" })
  .trim()
  .min(1, "host is required")
  .max(253, "host is longer than 253 characters")
  .regex(/^[A-Za-z0-9._:-]+$/, "host must be a host name or an IP address");
const Port = z
  .number({ error: "port must be a number" })
  .int("port must be a whole number")
  .min(1, "port must be 1..65535")
  .max(65535, "port must be 1..65535");
const Prefix = z
  .string()
  .trim()
  .max(200, "install prefix is longer than 200 characters")
  .refine((p) => {
    try {
      normalizePrefix(p || "/");
      return true;
    } catch {
      return false;
    }
  }, 'install prefix must be "/" or an absolute path of letters, digits, ".", "_", "-"')
  .optional();
const Secret = (what: string) => z.string().max(16_384, `${what} is too long`).optional();

const Target = z.object({
  host: Host,
  port: Port.default(22),
  username: z
    .string({ error: "user is required" })
    .trim()
    .min(1, "user is required")
    .max(64, "user is longer than 64 characters")
    .regex(/^[A-Za-z0-9._-]+$/, "user may hold letters, digits, '.', '_', '-'"),
  password: Secret("password"),
  privateKey: Secret("private key"),
  passphrase: Secret("passphrase"),
  sudoPassword: Secret("sudo password"),
  prefix: Prefix,
});
type TargetInput = z.infer<typeof Target>;

// ---------------------------------------------------------------- helpers

function credentialsOf(input: Partial<Pick<TargetInput, "password" | "privateKey" | "passphrase" | "sudoPassword">>): SshCredentials {
  const c: SshCredentials = {};
  if (input.password) c.password = input.password;
  if (input.privateKey) c.privateKey = input.privateKey;
  if (input.passphrase) c.passphrase = input.passphrase;
  if (input.sudoPassword) c.sudoPassword = input.sudoPassword;
  return c;
}

function secretsOf(c: SshCredentials, more: string[] = []): string[] {
  return [c.password, c.passphrase, c.sudoPassword, ...more].filter((s): s is string => !!s);
}

const KIND_CODES: Record<string, TRPCError["code"]> = {
  auth: "BAD_REQUEST",
  "bad-key": "BAD_REQUEST",
  invalid: "BAD_REQUEST",
  unreachable: "BAD_GATEWAY",
  "host-key-unknown": "PRECONDITION_FAILED",
  "host-key-mismatch": "PRECONDITION_FAILED",
  "unsupported-os": "PRECONDITION_FAILED",
  "no-sudo": "PRECONDITION_FAILED",
  preflight: "PRECONDITION_FAILED",
  canceled: "CLIENT_CLOSED_REQUEST",
};

/** An installer failure as the admin should read it (never UNAUTHORIZED: that means the console session). */
function toTrpc(e: unknown): TRPCError {
  if (e instanceof TRPCError) return e;
  if (e instanceof InstallError) return new TRPCError({ code: KIND_CODES[e.kind] ?? "INTERNAL_SERVER_ERROR", message: e.message, cause: e });
  if (e instanceof TypeError || e instanceof RangeError) return new TRPCError({ code: "BAD_REQUEST", message: e.message, cause: e });
  return new TRPCError({ code: "INTERNAL_SERVER_ERROR", message: (e as Error)?.message ?? String(e), cause: e });
}

function knownHosts(ctx: AuthedContext): KnownHosts {
  return new KnownHosts(ctx.services.prisma, ctx.services.secretBox);
}

/** The pinned fingerprint, or a refusal telling the admin to check the host key first. */
async function pinOrThrow(kh: KnownHosts, host: string, port: number): Promise<string> {
  const fp = await kh.fingerprint(host, port);
  if (!fp) throw new TRPCError({ code: "PRECONDITION_FAILED", message: `${host}:${port} has no pinned host key: check the host key and trust it first` });
  return fp;
}

function sshTarget(input: TargetInput, credentials: SshCredentials, fingerprint: string): SshTarget {
  return { host: input.host, port: input.port, username: input.username, credentials, hostKeyFingerprint: fingerprint };
}

function requireLogin(c: SshCredentials): void {
  if (!c.password && !c.privateKey) throw new TRPCError({ code: "BAD_REQUEST", message: "give a password or a private key for the SSH login" });
}

async function auditEnd(
  services: ConsoleServices,
  ctx: AuthedContext,
  action: string,
  run: InstallRun,
  extra: Record<string, unknown>,
  nodeId?: string,
): Promise<void> {
  const v = run.view;
  const target = v.result?.nodeId ?? nodeId;
  await recordAudit(services.prisma, {
    actorUserId: ctx.user.id,
    actorLabel: ctx.user.email,
    action,
    targetNodeIds: target ? [target] : [],
    outcome: v.status === "succeeded" ? "success" : "failure",
    details: { runId: v.id, host: v.host, port: v.port, ...extra, ...(v.result ? { result: v.result } : {}), ...(v.error ? { error: v.error } : {}) },
    ip: ctx.ip ?? null,
  }).catch((e: unknown) => services.logger.error({ err: e, action }, "cannot write the audit log"));
}

function beginRun(runs: InstallRuns, kind: "install" | "remove", host: string, port: number, secrets: string[]): InstallRun {
  try {
    return runs.begin(kind, host, port, secrets);
  } catch (e) {
    if (e instanceof RunConflictError) throw new TRPCError({ code: "CONFLICT", message: e.message });
    throw e;
  }
}

function upgradeDeps(s: ConsoleServices): UpgradeDeps {
  return { prisma: s.prisma, hub: s.hub, secretBox: s.secretBox, installs: s.installs, publicUrl: s.publicUrl, logger: s.logger };
}

// ---------------------------------------------------------------- the router

export const installerRouter = router({
  /** Pinned hosts, with whether credentials are kept (never the credentials themselves). */
  hosts: adminProcedure.query(async ({ ctx }) => {
    const rows = await knownHosts(ctx).list();
    const nodeIds = rows.map((r) => r.nodeId).filter((id): id is string => !!id);
    const nodes = nodeIds.length
      ? await ctx.services.prisma.node.findMany({ where: { id: { in: nodeIds } }, select: { id: true, name: true, revokedAt: true } })
      : [];
    const runs = ctx.services.installs;
    return rows.map((r) => {
      const n = nodes.find((x) => x.id === r.nodeId);
      const active = runs.active(r.host, r.port);
      return {
        host: r.host,
        port: r.port,
        algorithm: r.hostKey.algorithm,
        fingerprint: r.hostKey.fingerprint,
        username: r.username,
        installPrefix: r.installPrefix,
        node: n ? { id: n.id, name: n.name, revoked: n.revokedAt !== null, online: ctx.services.hub.node(n.id)?.online ?? false } : null,
        hasCredentials: r.hasCredentials,
        activeRunId: active?.view.id ?? null,
        updatedAt: r.updatedAt.toISOString(),
      };
    });
  }),

  /** Connects far enough to see the host key (no login) and compares it with the pin. */
  probe: adminProcedure.input(z.object({ host: Host, port: Port })).mutation(async ({ ctx, input }) => {
    try {
      const key = await probeHost({ host: input.host, port: input.port });
      const pinned = await knownHosts(ctx).fingerprint(input.host, input.port);
      ctx.audit.details.fingerprint = key.fingerprint;
      return { algorithm: key.algorithm, fingerprint: key.fingerprint, pinned, matches: pinned === key.fingerprint };
    } catch (e) {
      throw toTrpc(e);
    }
  }),

  /**
   * Pins the key the admin confirmed. The host is probed again: the key it presents now must
   * be the one the admin saw, or nothing is pinned.
   */
  trust: adminProcedure
    .input(z.object({ host: Host, port: Port, fingerprint: z.string().trim().min(1, "fingerprint is required").max(100) }))
    .mutation(async ({ ctx, input }) => {
      let confirmed: string;
      try {
        confirmed = normalizeHostFingerprint(input.fingerprint);
      } catch (e) {
        throw toTrpc(e);
      }
      const kh = knownHosts(ctx);
      const pinned = await kh.fingerprint(input.host, input.port);
      if (pinned && pinned !== confirmed) {
        throw new TRPCError({
          code: "CONFLICT",
          message: `${input.host}:${input.port} is pinned to another host key (${pinned}); if the host was reinstalled, forget the pinned key first`,
        });
      }
      let key;
      try {
        key = await probeHost({ host: input.host, port: input.port });
      } catch (e) {
        throw toTrpc(e);
      }
      if (key.fingerprint !== confirmed) {
        throw new TRPCError({
          code: "PRECONDITION_FAILED",
          message: `${input.host}:${input.port} now presents ${key.fingerprint}, not the ${confirmed} you confirmed: check the host key again`,
        });
      }
      const row = await kh.pin(input.host, input.port, key);
      ctx.audit.details.fingerprint = key.fingerprint;
      ctx.services.live.adminChanged("ssh-hosts");
      return { host: row.host, port: row.port, algorithm: row.hostKey.algorithm, fingerprint: row.hostKey.fingerprint };
    }),

  /** Forgets a pin and any credentials kept with it. */
  forget: adminProcedure.input(z.object({ host: Host, port: Port })).mutation(async ({ ctx, input }) => {
    if (ctx.services.installs.active(input.host, input.port))
      throw new TRPCError({ code: "CONFLICT", message: `a run is going on ${input.host}:${input.port}: wait for it to end` });
    const removed = await knownHosts(ctx).forget(input.host, input.port);
    if (!removed) throw new TRPCError({ code: "NOT_FOUND", message: `${input.host}:${input.port} has no pinned host key` });
    ctx.services.live.adminChanged("ssh-hosts");
    return { ok: true };
  }),

  /** The preflight checklist (logs in with the pinned key checked; changes nothing on the host). */
  preflight: adminProcedure.input(Target).mutation(async ({ ctx, input }) => {
    const credentials = credentialsOf(input);
    requireLogin(credentials);
    const fingerprint = await pinOrThrow(knownHosts(ctx), input.host, input.port);
    try {
      const r = await checkHost({ target: sshTarget(input, credentials, fingerprint), consoleUrl: ctx.services.publicUrl, prefix: input.prefix || "/" });
      ctx.audit.details.ok = r.ok;
      return { ok: r.ok, checks: r.checks, installedVersion: r.installedVersion ?? null, fingerprint: r.hostKey.fingerprint };
    } catch (e) {
      throw toTrpc(e);
    }
  }),

  /** Starts an install (or an upgrade, where an agent is installed) in the background; follow it with `run`. */
  install: adminProcedure
    .input(
      Target.extend({
        keepCredentials: z.boolean().default(false),
        nodeGroupId: z.uuid({ error: "not a node group ID" }).nullish(),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const { services } = ctx;
      const credentials = credentialsOf(input);
      requireLogin(credentials);
      const kh = knownHosts(ctx);
      const fingerprint = await pinOrThrow(kh, input.host, input.port);
      if (input.nodeGroupId) {
        const g = await services.prisma.nodeGroup.findUnique({ where: { id: input.nodeGroupId }, select: { name: true } });
        if (!g) throw new TRPCError({ code: "NOT_FOUND", message: `node group ${input.nodeGroupId} does not exist` });
        ctx.audit.details.group = g.name;
      }
      const runs = services.installs;
      // Refused before a join token is made: a conflicting run must leave nothing behind.
      if (runs.active(input.host, input.port)) beginRun(runs, "install", input.host, input.port, []);
      const pin = await kh.get(input.host, input.port);
      const issued = await services.nodeRegistry.createJoinToken({
        ...(input.nodeGroupId ? { nodeGroupId: input.nodeGroupId } : {}),
        note: `ssh install ${input.host}`,
        createdById: ctx.user.id,
      });
      let run: InstallRun;
      try {
        run = beginRun(runs, "install", input.host, input.port, secretsOf(credentials, [issued.token]));
      } catch (e) {
        await services.prisma.joinToken
          .deleteMany({ where: { id: issued.id, usedAt: null } })
          .catch((err: unknown) => services.logger.warn({ err }, "could not delete an unused join token; it stays valid until it expires"));
        throw e;
      }
      ctx.audit.details.runId = run.view.id;
      ctx.audit.details.joinTokenId = issued.id;
      const prefix = input.prefix || "/";
      // Both waiters start their clock now; installAgent says which case it is.
      const enrollWaiter = nodeWaiter({ hub: services.hub, prisma: services.prisma, joinTokenId: issued.id });
      const upgradeWaiter = pin?.nodeId ? nodeWaiter({ hub: services.hub, prisma: services.prisma, nodeId: pin.nodeId }) : undefined;
      const actor = { ...ctx };
      (async () => {
        try {
          const result = await installAgent(
            {
              target: sshTarget(input, credentials, fingerprint),
              consoleUrl: services.publicUrl,
              joinToken: issued.token,
              prefix,
              waitForNode: (w) => (w.upgrade && upgradeWaiter ? upgradeWaiter(w) : enrollWaiter(w)),
              logger: services.logger,
            },
            (e) => run.record(e),
            run.signal,
          );
          await kh
            .remember(input.host, input.port, {
              nodeId: result.nodeId,
              username: input.username,
              installPrefix: prefix,
              credentials: input.keepCredentials ? credentials : null,
            })
            .catch((e: unknown) => services.logger.error({ err: e, host: input.host }, "cannot record the installed node with its pinned host"));
          run.succeed({ nodeId: result.nodeId, version: result.version, upgraded: result.upgraded });
        } catch (e) {
          const err = e instanceof InstallError ? e : new InstallError("connect", "command", (e as Error)?.message ?? String(e));
          run.fail({ step: err.step, kind: err.kind, message: err.message });
        } finally {
          // An unused token is a live bearer secret: gone once the run no longer needs it.
          await services.prisma.joinToken
            .deleteMany({ where: { id: issued.id, usedAt: null } })
            .catch((err: unknown) => services.logger.warn({ err }, "could not delete an unused join token; it stays valid until it expires"));
          services.live.adminChanged("ssh-hosts");
          await auditEnd(services, actor, "installer.install.finished", run, { prefix, keepCredentials: input.keepCredentials });
        }
      })().catch((err: unknown) => services.logger.error({ err, runId: run.view.id }, "the install run's clean-up or audit failed"));
      return { runId: run.view.id };
    }),

  /** Whether "Upgrade agent" can run for a node (installed over SSH from here, with its login kept), or why not. */
  upgradeAvailability: adminProcedure.input(z.object({ nodeId: z.uuid({ error: "not a node ID" }) })).query(async ({ ctx, input }) => {
    return upgradeAvailability(upgradeDeps(ctx.services), input.nodeId);
  }),

  /**
   * Upgrades a node's agent through the installer, as a durable job (one console-run step:
   * upload the console's agent artifact, switch, restart the unit, wait for the node).
   */
  upgrade: adminProcedure.input(z.object({ nodeId: z.uuid({ error: "not a node ID" }) })).mutation(async ({ ctx, input }) => {
    ctx.audit.nodeIds.add(input.nodeId);
    const a = await upgradeAvailability(upgradeDeps(ctx.services), input.nodeId);
    if (!a.available) throw new TRPCError({ code: "PRECONDITION_FAILED", message: a.reason });
    if (ctx.services.installs.active(a.host, a.port))
      throw new TRPCError({ code: "CONFLICT", message: `a run is going on ${a.host}:${a.port}: wait for it to end` });
    ctx.audit.details.host = `${a.host}:${a.port}`;
    ctx.audit.details.version = a.version;
    return startJob(ctx, "agent.upgrade", { host: `${a.host}:${a.port}`, version: a.version }, [{ nodeId: input.nodeId, action: "agent.upgrade", params: {} }]);
  }),

  /** A run's state: steps with output, checklist, rollback, and the result or error. */
  run: adminProcedure.input(z.object({ runId: z.uuid({ error: "not a run ID" }) })).query(({ ctx, input }) => {
    const run = ctx.services.installs.get(input.runId);
    if (!run)
      throw new TRPCError({ code: "NOT_FOUND", message: `install run ${input.runId} is not known (runs are kept in memory; the audit log has its outcome)` });
    return run.view;
  }),

  /**
   * Removes the agent from the host the node was installed on (its pinned host), with the
   * kept credentials or the ones given, then revokes the node. In the background; returns {runId}.
   */
  remove: adminProcedure
    .input(
      z.object({
        nodeId: z.uuid({ error: "not a node ID" }),
        removeData: z.boolean().default(false),
        credentials: z
          .object({
            username: z.string().trim().max(64).optional(),
            password: Secret("password"),
            privateKey: Secret("private key"),
            passphrase: Secret("passphrase"),
            sudoPassword: Secret("sudo password"),
          })
          .optional(),
      }),
    )
    .mutation(async ({ ctx, input }) => {
      const { services } = ctx;
      const kh = knownHosts(ctx);
      const [pin] = await kh.byNode(input.nodeId);
      if (!pin)
        throw new TRPCError({
          code: "NOT_FOUND",
          message: `node ${input.nodeId} was not installed over SSH from this console (no pinned host): remove the agent on the host itself`,
        });
      let credentials = input.credentials ? credentialsOf(input.credentials) : {};
      if (!credentials.password && !credentials.privateKey) {
        credentials =
          (await kh.credentials(pin.host, pin.port).catch((err: unknown) => {
            services.logger.warn({ err, host: pin.host, port: pin.port }, "could not read the SSH credentials kept for a host");
            return null;
          })) ?? {};
        if (!credentials.password && !credentials.privateKey)
          throw new TRPCError({
            code: "PRECONDITION_FAILED",
            message: `no credentials are kept for ${pin.host}:${pin.port}: give the SSH login to remove the agent`,
          });
      }
      const username = input.credentials?.username || pin.username;
      if (!username) throw new TRPCError({ code: "BAD_REQUEST", message: `no SSH user is known for ${pin.host}:${pin.port}: give one` });
      const run = beginRun(services.installs, "remove", pin.host, pin.port, secretsOf(credentials));
      ctx.audit.details.runId = run.view.id;
      ctx.audit.details.host = `${pin.host}:${pin.port}`;
      const actor = { ...ctx };
      (async () => {
        try {
          const r = await removeAgent(
            {
              target: { host: pin.host, port: pin.port, username, credentials, hostKeyFingerprint: pin.hostKey.fingerprint },
              prefix: pin.installPrefix,
              removeData: input.removeData,
            },
            (e) => run.record(e),
            run.signal,
          );
          await services.hub.revoke(input.nodeId, "agent removed over SSH");
          await kh
            .remember(pin.host, pin.port, { nodeId: null, credentials: null })
            .catch(bestEffort(services.logger, `forget the node of ${pin.host}:${pin.port}`));
          run.succeed({ nodeId: input.nodeId, found: r.found, dataRemoved: r.dataRemoved, ...(r.version ? { version: r.version } : {}) });
        } catch (e) {
          const err = e instanceof InstallError ? e : new InstallError("stop", "command", (e as Error)?.message ?? String(e));
          run.fail({ step: err.step, kind: err.kind, message: err.message });
        } finally {
          services.live.adminChanged("ssh-hosts");
          await auditEnd(services, actor, "installer.remove.finished", run, { removeData: input.removeData }, input.nodeId);
        }
      })().catch((err: unknown) => services.logger.error({ err, runId: run.view.id }, "the remove run's audit failed"));
      return { runId: run.view.id };
    }),
});
