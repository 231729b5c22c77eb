import { join } from "node:path";
import pino from "pino";
import { AGENT_USAGE, chainPrefixOf, ConfigError, loadAgentConfig } from "./config.ts";
import { createEngine } from "./engine/engine.ts";
import { serveDockerApi } from "./dockerapi/server.ts";
import { checkLinkConfig, ConsoleLink, LinkConfigError } from "./link/link-client.ts";
import { CredentialFileError } from "./link/credential-file.ts";

/** berth-agent: the container engine of one node, with its Docker API door. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadAgentConfig(process.argv.slice(2));
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`berth-agent: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  if (config === "help") {
    process.stdout.write(AGENT_USAGE);
    return;
  }
  if (config.link) {
    // Refuse a link that cannot work before touching the host (bridge, firewall, containers).
    try {
      await checkLinkConfig({
        url: config.link.consoleUrl,
        credentialFile: config.link.credentialFile,
        joinToken: config.link.joinToken,
        fingerprint: config.link.consoleFingerprint,
      });
    } catch (e) {
      if (!(e instanceof LinkConfigError || e instanceof CredentialFileError)) throw e;
      process.stderr.write(`berth-agent: ${e.message}\n`);
      process.exit(2);
    }
  }
  const logger = pino({ level: config.logLevel, base: { service: "berth-agent", pid: process.pid } });
  // Last resort: every stream and promise has its error handled where it is made. Should
  // one still escape, the engine's state is unknown, so the agent says what happened
  // (with the stack) and exits for its service manager to start it afresh.
  const fatal = (what: string) => (err: unknown) => {
    logger.fatal({ err }, what);
    logger.flush();
    process.exit(1);
  };
  process.on("uncaughtException", fatal("uncaught exception: the agent exits"));
  process.on("unhandledRejection", fatal("unhandled promise rejection: the agent exits"));
  const engine = await createEngine(
    {
      dataRoot: config.dataRoot,
      registryMirrors: config.registryMirrors,
      insecureRegistries: config.insecureRegistries,
      registryStallTimeoutMs: config.registryStallTimeoutMs,
      execRoot: config.execRoot,
      runtime: config.runtime,
      bridgeName: config.bridge,
      bridgeSubnet: config.bridgeSubnet,
      chainPrefix: chainPrefixOf(config.bridge),
    },
    logger,
  );
  const api = await serveDockerApi(engine, config.dockerSocket, logger, config.dockerSocketGroup !== undefined ? { group: config.dockerSocketGroup } : {});
  let link: ConsoleLink | undefined;
  if (config.link) {
    link = new ConsoleLink({
      url: config.link.consoleUrl,
      engine,
      credentialFile: config.link.credentialFile,
      joinToken: config.link.joinToken,
      fingerprint: config.link.consoleFingerprint,
      requestJournal: join(config.dataRoot, "link", "requests.journal"),
      supervisor: config.supervisor,
      logger,
    });
    await link.start();
  }
  logger.info({ dataRoot: config.dataRoot, socket: config.dockerSocket, console: config.link?.consoleUrl }, "berth-agent started");

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "stopping");
    await link?.stop();
    await api.close();
    engine.close();
    logger.info("stopped");
    logger.flush();
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  // Asked by the console (agent.restart, only when supervised): stop as on SIGTERM, for the supervisor to start the agent again.
  link?.on("restart", () => void stop("restart asked by the console"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

main().catch((e: unknown) => {
  process.stderr.write(`berth-agent: ${(e as Error).stack ?? String(e)}\n`);
  process.exit(1);
});
