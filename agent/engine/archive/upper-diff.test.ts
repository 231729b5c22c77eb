import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { EXPECTED_DIFF, setUpScenario } from "./testing-overlay.ts";
import { diffUpper, type Change } from "./upper-diff.ts";

const LETTER = ["C", "A", "D"] as const;
const show = (changes: Change[]) => changes.map((c) => [LETTER[c.kind], c.path] as [string, string]);

test("diffUpper: Docker's A/C/D list for changes made through a real overlay mount", async (t) => {
  const s = await setUpScenario(t);
  assert.deepEqual(show(await diffUpper(s.upper, s.lowers)), EXPECTED_DIFF);

  // Excluded paths disappear, and so do directories that hold nothing else (/home, /home/u).
  const excluded = show(await diffUpper(s.upper, s.lowers, { exclude: ["/home/u/mnt", "/newdir", "/var/cache/b"] }));
  assert.deepEqual(
    excluded,
    EXPECTED_DIFF.filter(([, p]) => !p.startsWith("/home") && !p.startsWith("/newdir") && p !== "/var/cache/b"),
  );

  // An unchanged container has no changes.
  const fresh = join(s.base, "fresh-upper");
  await mkdir(fresh);
  assert.deepEqual(await diffUpper(fresh, s.lowers), []);
});
