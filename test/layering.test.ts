// The project's import arrows, checked on the sources: the engine knows neither door,
// the two doors (Docker API, console link) do not reach into each other, the link
// contract and shared/ are leaves, and the console (server/, app/) imports nothing of the
// engine or the doors but the link contract (the installer also writes the agent's config
// file, whose type agent/config.ts holds).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "..");

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(join(ROOT, dir))) {
    if (name === "node_modules" || name.startsWith(".") || name === "generated") continue;
    const p = join(dir, name);
    if (statSync(join(ROOT, p)).isDirectory()) sources(p, out);
    else if (/\.(ts|tsx|mts)$/.test(name)) out.push(p);
  }
  return out;
}

/** The project files a source imports (relative specifiers, resolved from the root); packages are left out. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)/g)].map((m) => m[1] ?? m[2]!);
  return specs.filter((s) => s.startsWith(".")).map((s) => relative(ROOT, resolve(ROOT, dirname(file), s)));
}

function violations(files: string[], allowed: (target: string) => boolean): string[] {
  return files.flatMap((f) =>
    importsOf(f)
      .filter((t) => !allowed(t))
      .map((t) => `${f} imports ${t}`),
  );
}

const under = (t: string, ...dirs: string[]) => dirs.some((d) => t.startsWith(d + "/"));
const isTest = (f: string) => f.endsWith(".test.ts");

test("the console (server/, app/) imports nothing of the engine or the doors but the link contract", () => {
  const files = [...sources("server"), ...sources("app")].filter((f) => !isTest(f));
  assert.deepEqual(
    violations(files, (t) => !under(t, "agent/engine", "agent/dockerapi", "agent/link") || t === "agent/link/contract.ts"),
    [],
  );
});

test("the link contract and shared/ are leaves: they import only shared/", () => {
  const files = ["agent/link/contract.ts", ...sources("shared").filter((f) => !isTest(f))];
  assert.deepEqual(
    violations(files, (t) => under(t, "shared")),
    [],
  );
});

test("the engine imports neither door; the doors do not import each other", () => {
  const engine = sources("agent/engine").filter((f) => !isTest(f));
  assert.deepEqual(
    violations(engine, (t) => !under(t, "agent/dockerapi", "agent/link") && t !== "agent/main.ts"),
    [],
  );
  const link = sources("agent/link").filter((f) => !isTest(f));
  assert.deepEqual(
    violations(link, (t) => !under(t, "agent/dockerapi")),
    [],
  );
  const dockerapi = sources("agent/dockerapi").filter((f) => !isTest(f));
  assert.deepEqual(
    violations(dockerapi, (t) => !under(t, "agent/link")),
    [],
  );
});

test("the import scan sees imports (a check that cannot pass vacuously)", () => {
  assert.ok(importsOf("agent/link/contract.ts").includes("shared/errors.ts"));
  assert.ok(importsOf("server/hub/agent-hub.ts").includes("agent/link/contract.ts"));
  assert.ok(importsOf("agent/link/link-client.ts").includes("agent/version.ts"));
});
