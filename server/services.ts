/** What the console's procedures and socket handlers work with; built once by server/console.ts. */
import type { Logger } from "pino";
import type { PrismaClient } from "./db/generated/client.ts";
import type { DbNodeRegistry } from "./db/node-registry-db.ts";
import type { RegistryStore } from "./db/registries.ts";
import type { SecretBox } from "./auth/secret-box.ts";
import type { AgentHub } from "./hub/agent-hub.ts";
import type { JobService } from "./jobs/job-service.ts";
import type { LiveUpdates } from "./live/live-updates.ts";
import type { InstallRuns } from "./installer/runs.ts";

export interface ConsoleServices {
  prisma: PrismaClient;
  hub: AgentHub;
  nodeRegistry: DbNodeRegistry;
  registries: RegistryStore;
  secretBox: SecretBox;
  jobs: JobService;
  live: LiveUpdates;
  /** Install and remove runs over SSH (in memory; the audit log keeps their outcome). */
  installs: InstallRuns;
  logger: Logger;
  /** The console's own URL as browsers and agents reach it (https://console.example:8443). */
  publicUrl: string;
  /** The console's data directory (embedded PostgreSQL, secret key, the first admin's kept login). */
  dataDir: string;
}
