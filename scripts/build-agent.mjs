#!/usr/bin/env node
// Builds the agent artifact that the installer ships to nodes:
//
//   <out>/berth-agent/            berth-agent.mjs (agent/main.ts and its npm dependencies, one ESM file
//                                 for Node 18, what Debian 12 ships), berth-agent-unpack-worker.mjs
//                                 (its layer unpack worker thread), berth-agent (launcher),
//                                 berth-agent-teardown.mjs (removes the agent's containers and data),
//                                 berth-agent.service (systemd unit template), VERSION, and
//                                 node_modules/node-unix-socket-linux-x64-gnu/ (the SOCK_SEQPACKET addon
//                                 for attach, when installed: it is published for linux/x64 only)
//   <out>/berth-agent.tar.gz      the same directory as one tarball (+ .sha256)
//
// Usage: node scripts/build-agent.mjs [--out DIR] [--version VERSION]
//   --out      default dist/
//   --version  default: package.json's version (or BERTH_AGENT_VERSION). It names the install
//              directory on the node and is what the agent reports to the console.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const ADDON = "node-unix-socket-linux-x64-gnu";
/** The line in the agent's sources that holds the version it reports (Docker API and console link). */
const VERSION_FILE = /[\\/]agent[\\/]version\.ts$/;
const VERSION_LINE = /export const BERTH_VERSION = "[^"]*";/;

const { values } = parseArgs({ options: { out: { type: "string" }, version: { type: "string" } } });
const out = resolve(values.out ?? join(ROOT, "dist"));
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const version = values.version ?? process.env.BERTH_AGENT_VERSION ?? pkg.version;
if (!/^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/.test(version)) {
  console.error(`build-agent: version ${JSON.stringify(version)} must be letters, digits and . + _ - (it names a directory on the node)`);
  process.exit(2);
}

const dir = join(out, "berth-agent");
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

/** Stamps the artifact's version into the agent, so the console sees which build a node runs. */
const versionPlugin = {
  name: "berth-version",
  setup(b) {
    b.onLoad({ filter: VERSION_FILE }, (args) => {
      const text = readFileSync(args.path, "utf8");
      if (!VERSION_LINE.test(text)) return { errors: [{ text: `${args.path} no longer has the line ${VERSION_LINE}: update scripts/build-agent.mjs` }] };
      return { contents: text.replace(VERSION_LINE, `export const BERTH_VERSION = ${JSON.stringify(version)};`), loader: "ts" };
    });
  },
};

const common = {
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node18",
  // ws tries these optional native speed-ups inside try/catch; the agent does without them.
  // The addon is loaded at run time by name, from node_modules/ beside the bundle.
  external: ["bufferutil", "utf-8-validate", ADDON],
  banner: {
    js: [
      "// berth-agent " + version + ": bundled by scripts/build-agent.mjs. Sources: agent/ of the Berth repository.",
      // Bundled CommonJS dependencies (pino, socket.io-client) call require() for Node's builtins.
      'import { createRequire as __berthCreateRequire } from "node:module";',
      "const require = __berthCreateRequire(import.meta.url);",
      'process.env.UV_THREADPOOL_SIZE ??= "16";',
    ].join("\n"),
  },
  plugins: [versionPlugin],
  legalComments: "eof",
  logLevel: "warning",
};
// The agent, and the node-side teardown that "remove node and its data" runs with the agent stopped.
await build({ ...common, entryPoints: [join(ROOT, "agent/main.ts")], outfile: join(dir, "berth-agent.mjs") });
await build({ ...common, entryPoints: [join(ROOT, "agent/teardown.ts")], outfile: join(dir, "berth-agent-teardown.mjs") });
// The layer unpack worker thread (agent/engine/layers/unpack-pool.ts starts it from beside the agent's bundle).
await build({ ...common, entryPoints: [join(ROOT, "agent/engine/layers/unpack-worker.ts")], outfile: join(dir, "berth-agent-unpack-worker.mjs") });

const addonDir = join(ROOT, "node_modules", ADDON);
if (existsSync(addonDir)) {
  const to = join(dir, "node_modules", ADDON);
  mkdirSync(to, { recursive: true });
  for (const name of readdirSync(addonDir)) {
    if (name === "package.json" || name.endsWith(".node") || name === "LICENSE") copyFileSync(join(addonDir, name), join(to, name));
  }
} else {
  console.warn(`build-agent: ${ADDON} is not installed: the artifact works, but docker attach and run -it will not`);
}
copyFileSync(join(ROOT, "packaging/berth-agent"), join(dir, "berth-agent"));
chmodSync(join(dir, "berth-agent"), 0o755);
copyFileSync(join(ROOT, "packaging/berth-agent.service"), join(dir, "berth-agent.service"));
writeFileSync(join(dir, "VERSION"), version + "\n");

// The bundle must at least load and parse its flags on this Node.
const help = execFileSync(process.execPath, [join(dir, "berth-agent.mjs"), "--help"], { encoding: "utf8" });
if (!help.startsWith("Usage: berth-agent")) {
  console.error(`build-agent: the bundle does not start: --help printed\n${help}`);
  process.exit(1);
}

const tarball = join(out, "berth-agent.tar.gz");
rmSync(tarball, { force: true });
// Reproducible and owned by root wherever it is built: the node unpacks it as root.
execFileSync("sh", ["-c", 'tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf - -C "$1" berth-agent | gzip -n -9 > "$2"', "sh", out, tarball]);
const sha256 = createHash("sha256").update(readFileSync(tarball)).digest("hex");
writeFileSync(tarball + ".sha256", `${sha256}  berth-agent.tar.gz\n`);
const bytes = readFileSync(tarball).length;
console.log(`build-agent: ${tarball} (berth-agent ${version}, ${(bytes / 1024 / 1024).toFixed(1)} MiB, sha256 ${sha256})`);
