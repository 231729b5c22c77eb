import { conflict, invalidArgument } from "../errors.ts";
import type { NetworkAttachment } from "./container-record.ts";
import type { ContainerCore } from "./container-core.ts";
import { defaultNetworks, withShortIdAliases } from "./run-options.ts";

/** The networks a container joins by hand (`docker network connect/disconnect`), under its lock. */
export class ContainerNetworking {
  constructor(private readonly core: ContainerCore) {}

  /**
   * `docker network connect`. A running container joins at once; a created or stopped one gets the
   * network recorded and joins it at its next start (as Docker: compose disconnects and reconnects
   * containers it has just created).
   * @throws NotFound container or network; Conflict host/none modes, a container being removed; and
   *         the network manager's errors (address in use, aliases or `--ip` where Docker refuses them).
   */
  async connect(idOrName: string, networkName: string, cfg: Partial<Omit<NetworkAttachment, "name">>): Promise<void> {
    const record = this.core.get(idOrName);
    await this.core.withLock(record.id, async () => {
      if (record.state.status === "removing" || record.state.status === "dead")
        throw conflict(`container ${record.id} is marked for removal and cannot be connected or disconnected to the network`);
      const net = await this.core.deps.network.inspect(networkName === "default" ? "bridge" : networkName);
      const mode = record.options.networkMode;
      if (mode === "host" || net.driver === "host") throw conflict("container cannot be disconnected from host network or connected to host network");
      if (mode === "none" || net.driver === "null")
        throw conflict("container cannot be connected to multiple networks with one of the networks in private (none) mode");
      const desired = record.networks ?? defaultNetworks(record.options);
      const [attachment] = withShortIdAliases(record, [
        { name: net.name, aliases: cfg.aliases ?? [], ipv4Address: cfg.ipv4Address || undefined, links: cfg.links ?? [], driverOpts: cfg.driverOpts ?? {} },
      ]);
      if (record.state.status === "running" || record.state.status === "paused") {
        const ep = await this.core.deps.network.connect(record.id, { network: net.id, aliases: attachment!.aliases, ipv4Address: attachment!.ipv4Address });
        record.endpoints = [...record.endpoints.filter((e) => e.networkId !== ep.networkId), ep];
        attachment!.networkId = ep.networkId;
      } else {
        if (desired.some((n) => n.name === net.name)) return; // Docker keeps the first settings
        if (net.name === "bridge" && attachment!.aliases.length > 0)
          throw invalidArgument("network-scoped alias is supported only for containers in user defined networks");
        if (attachment!.ipv4Address && (net.name === "bridge" || !net.userSubnet)) {
          throw invalidArgument(
            net.name === "bridge"
              ? "user specified IP address is supported on user defined networks only"
              : "user specified IP address is supported only when connecting to networks with user configured subnets",
          );
        }
      }
      record.networks = [...desired.filter((n) => n.name !== net.name), attachment!];
      await this.core.deps.store.save(record);
    });
  }

  /**
   * `docker network disconnect`: off the network now if running, and in any case not joined again
   * at the next start. `force`: also for a network that no longer exists.
   */
  async disconnect(idOrName: string, networkName: string, force: boolean): Promise<void> {
    const record = this.core.get(idOrName);
    await this.core.withLock(record.id, async () => {
      const net = await this.core.deps.network.inspect(networkName).catch((e: unknown) => {
        if (force) return undefined;
        throw e;
      });
      const name = net?.name ?? networkName;
      if (record.options.networkMode === "host" || net?.driver === "host")
        throw conflict("container cannot be disconnected from host network or connected to host network");
      const desired = record.networks ?? defaultNetworks(record.options);
      if (record.state.status === "running" || record.state.status === "paused") {
        if (net) await this.core.deps.network.disconnect(record.id, net.id, force);
        record.endpoints = record.endpoints.filter((e) => e.networkName !== name && e.networkId !== net?.id);
      } else if (!desired.some((n) => n.name === name) && !force) {
        throw conflict(`container ${record.id} is not connected to the network ${name}`);
      }
      record.networks = desired.filter((n) => n.name !== name);
      await this.core.deps.store.save(record);
    });
  }
}
