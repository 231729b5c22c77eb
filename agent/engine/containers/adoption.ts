import { join } from "node:path";
import type { ExitStatus } from "../monitor/monitor.ts";
import { isMounted, unmountAll } from "../snapshots/mount.ts";
import { bestEffort } from "../../../shared/best-effort.ts";
import type { ContainerRecord } from "./container-record.ts";
import type { ContainerCore } from "./container-core.ts";
import type { HealthMonitor, HealthProbe } from "./health.ts";
import { RUNNING } from "./rootfs-mounts.ts";
import { NEVER } from "./run-options.ts";

/** What adoption needs of the lifecycle: the shared core and the lifecycle's own steps. */
export interface Adopter {
  core: ContainerCore;
  health: HealthMonitor;
  healthProbeOf(record: ContainerRecord): Promise<HealthProbe | undefined>;
  finishRemove(record: ContainerRecord, opts: { volumes: boolean }): Promise<void>;
  handleExit(record: ContainerRecord, status: ExitStatus, opts: { adopting?: boolean; monitorDied?: boolean }): Promise<void>;
  watchExit(record: ContainerRecord): void;
  start(id: string): Promise<boolean>;
}

/**
 * Adopts every container found on disk with its true state: running ones are
 * watched again; those that exited while the agent was away get their exit
 * handled (resources released, restart policy applied); leftovers of crashed
 * operations (a half-created or half-removed container, orphan snapshots, runc
 * state, mounts) are cleaned up.
 */
export async function adoptContainers(a: Adopter): Promise<void> {
  const { store, network, snapshots, runc, logger } = a.core.deps;
  const records = await store.load();
  const live: ContainerRecord[] = [];
  const removing: ContainerRecord[] = [];
  for (const r of records) {
    if (r.state.status === "removing") removing.push(r);
    else if (["running", "paused", "restarting"].includes(r.state.status)) live.push(r);
  }
  const stillRunning: ContainerRecord[] = [];
  for (const r of live) {
    const paths = a.core.paths(r.id);
    const state = await runc.state(r.id).catch(bestEffort(a.core.deps.logger, `runc state ${r.id}`));
    const alive = state && (state.status === "running" || state.status === "paused") && (await a.core.deps.monitor.monitorAlive(paths));
    if (alive) {
      r.state.status = state.status === "paused" ? "paused" : "running";
      r.state.pid = state.pid ?? r.state.pid;
      stillRunning.push(r);
    }
  }
  await network.init(stillRunning.map((r) => r.id));
  // Removals cut short by a crash are finished (they need the network manager initialised).
  for (const r of removing) {
    await a.finishRemove(r, { volumes: false }).catch((err: unknown) => logger.warn({ err, id: r.id }, "could not finish an interrupted remove"));
  }
  for (const r of stillRunning) {
    a.core.rootfsMounts.adopt(r.id, RUNNING);
    // As Docker at daemon start: the check starts again, from "starting".
    a.health.start(r, await a.healthProbeOf(r));
    if (r.state.status === "paused") await a.health.stop(r); // as at pause()
    await store.save(r);
    a.watchExit(r);
    logger.info({ id: r.id, name: r.name }, "adopted a running container");
  }
  // Orphans, before any restart policy can start a container again: runc containers and
  // rootfs mounts of every container that is not running (a start cut short after `runc
  // create` leaves a "created" runc container, its init process and cgroups), and runc
  // state and snapshots without a record.
  const running = new Set(stillRunning.map((r) => r.id));
  const known = new Set(store.list().map((r) => r.id));
  for (const s of await runc.list().catch(() => [])) {
    if (running.has(s.id)) continue;
    if (known.has(s.id)) logger.info({ id: s.id, status: s.status }, "removing the runc container of a container that is not running");
    await runc.delete(s.id, { force: true }).catch((err: unknown) => logger.warn({ err, id: s.id }, "could not delete an orphan runc container"));
  }
  for (const s of await snapshots.list()) {
    if (!known.has(s.key)) {
      await unmountAll(join(store.dir(s.key), "rootfs"), { detach: true }).catch(bestEffort(a.core.deps.logger, "unmount a leftover root"));
      await snapshots.remove(s.key).catch((err: unknown) => logger.warn({ err, key: s.key }, "could not remove an orphan snapshot"));
    }
  }
  for (const r of store.list()) {
    if (running.has(r.id)) continue;
    const { rootfs } = a.core.paths(r.id);
    if (await isMounted(rootfs)) await unmountAll(rootfs, { detach: true }).catch(bestEffort(a.core.deps.logger, `unmount ${rootfs}`));
  }
  await snapshots.removeStale();
  for (const r of live) {
    if (stillRunning.includes(r)) continue;
    const recorded = await a.core.deps.monitor.exitStatus(a.core.paths(r.id)).catch(bestEffort(a.core.deps.logger, `read the recorded exit of ${r.id}`));
    const status = recorded ?? { exitCode: 255, oomKilled: false, finishedAt: new Date().toISOString() };
    logger.info({ id: r.id, exitCode: status.exitCode, monitorDied: !recorded }, "container exited while the agent was away");
    await a.handleExit(r, status, { adopting: true, monitorDied: !recorded });
  }
  // Restart policies that apply after a host reboot or agent restart. As Docker at daemon
  // start: `always` even when it was stopped by hand, `unless-stopped` only if it was not.
  for (const r of store.list()) {
    if (r.state.status === "running" || r.state.status === "paused") continue;
    const p = r.options.restartPolicy.name;
    if ((p === "always" || (p === "unless-stopped" && !r.state.stoppedByUser)) && r.state.startedAt !== NEVER) {
      a.start(r.id).catch((err: unknown) => logger.warn({ err, id: r.id }, "restart policy: start failed"));
    }
  }
}
