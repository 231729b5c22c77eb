// Test helper (not a test): plays an agent that creates and starts one container under
// conmon, reports `{ pid, monitorPid }` as one JSON line on stdout, and then waits to be
// killed. conmon.test.ts SIGKILLs it and checks that the container outlives it.
//
// Usage: node --import tsx testing-child.ts '<JSON of ChildInput>'
import { ConmonMonitor } from "./conmon.ts";
import type { CreateOptions } from "./monitor.ts";

export interface ChildInput {
  runcRoot: string;
  monitorCgroup?: string;
  create: CreateOptions;
}

const input = JSON.parse(process.argv[2] ?? "{}") as ChildInput;
const monitor = new ConmonMonitor({ runcRoot: input.runcRoot, monitorCgroup: input.monitorCgroup });
const created = await monitor.create(input.create);
await monitor.start(input.create.id, input.create);
process.stdout.write(`${JSON.stringify(created)}\n`);
setInterval(() => undefined, 1 << 30);
