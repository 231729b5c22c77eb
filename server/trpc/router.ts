/** The console's whole API; the browser imports only its type. */
import { router } from "./trpc.ts";
import { authRouter } from "./routers/auth.ts";
import { nodesRouter } from "./routers/nodes.ts";
import { inventoryRouter } from "./routers/inventory.ts";
import { jobsRouter } from "./routers/jobs.ts";
import { adminRouter } from "./routers/admin.ts";
import { installerRouter } from "./routers/installer.ts";

export const appRouter = router({
  auth: authRouter,
  nodes: nodesRouter,
  inventory: inventoryRouter,
  jobs: jobsRouter,
  admin: adminRouter,
  installer: installerRouter,
});

export type AppRouter = typeof appRouter;
