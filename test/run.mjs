// Runs every test file (agent/**, server/**, shared/**, test/**) with Node's test runner, one file
// at a time: the integration tests share root-only resources (mounts, iptables, ports).
// `--unit`: only the unit tests beside the code (agent/, server/, shared/): a quick check that
// needs no build (npm run test:unit). Otherwise the arguments name the files to run.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function collect(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) collect(p, out);
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const args = process.argv.slice(2);
const unit = args[0] === "--unit";
const only = unit ? [] : args;
const files = (
  only.length
    ? only
    : (unit ? ["agent", "server", "shared"] : ["agent", "server", "shared", "test"]).flatMap((d) => {
        try {
          return collect(d, []);
        } catch {
          return [];
        }
      })
).sort();
if (files.length === 0) {
  console.error("no test files found");
  process.exit(1);
}
const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=1", "--test-reporter=spec", ...files], { stdio: "inherit" });
process.exit(r.status ?? 1);
