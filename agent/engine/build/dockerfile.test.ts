// Pure parts of the builder: Docker's variable substitution, the Dockerfile checks, COPY's wildcards.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDockerfile, parseTrigger } from "./dockerfile.ts";
import { processWord, processWords } from "./shell-lex.ts";
import { globRegExp } from "./copy.ts";

const env = new Map<string, string | undefined>([
  ["A", "1"],
  ["EMPTY", ""],
  ["SPACED", "x y"],
]);

test("processWord: quotes, escapes and Docker's substitution forms", () => {
  assert.equal(processWord("$A${A}", env), "11");
  assert.equal(processWord("'$A'", env), "$A");
  assert.equal(processWord('"$A b"', env), "1 b");
  assert.equal(processWord("\\$A", env), "$A");
  assert.equal(processWord("${MISSING:-def}-${EMPTY:-e}-${EMPTY-keep}", env), "def-e-");
  assert.equal(processWord("${A:+set}${MISSING:+no}${EMPTY+plus}", env), "setplus");
  assert.equal(processWord("a\\ b", env), "a b");
  assert.equal(processWord("`$A", env, "`"), "$A");
  assert.throws(() => processWord("${MISSING:?must be set}", env), /MISSING: must be set/);
  assert.throws(() => processWord("'open", env), /matching single-quote/);
  assert.throws(() => processWord("${A", env), /missing '}'/);
});

test("processWords: unquoted variables split, quoted ones do not", () => {
  assert.deepEqual(processWords('$SPACED "$SPACED" c\\ d', env), ["x", "y", "x y", "c d"]);
  assert.deepEqual(processWords("  src/  /dst/ ", env), ["src/", "/dst/"]);
});

test("parseDockerfile: stages, meta ARGs, continuations, escape directive, JSON forms", () => {
  const df = parseDockerfile(
    [
      "# escape=`",
      "ARG V=1",
      "FROM busybox:${V} AS b",
      "RUN echo a `",
      "  # a comment inside",
      "  && echo b",
      'CMD ["sh", "-c", "x y"]',
      "FROM b",
      "COPY --from=b /a /b",
    ].join("\n"),
  );
  assert.equal(df.escape, "`");
  assert.deepEqual(
    df.metaArgs.map((a) => a.original),
    ["ARG V=1"],
  );
  assert.equal(df.stages.length, 2);
  const [run, cmd] = df.stages[0]!.commands;
  assert.equal(run!.original, "RUN echo a   && echo b");
  assert.equal(run!.line, 4);
  assert.deepEqual(cmd!.json, ["sh", "-c", "x y"]);
  assert.equal(df.stages[1]!.commands[0]!.flags.get("from"), "b");
});

test("parseDockerfile: Docker's errors, with the line", () => {
  assert.throws(() => parseDockerfile("FROM busybox\nRUNN x\n"), /dockerfile parse error on line 2: unknown instruction: RUNN/);
  assert.throws(() => parseDockerfile("FROM busybox\nCOPY --link a b\n"), /line 2: unknown flag: link/);
  assert.throws(() => parseDockerfile("RUN true\nFROM busybox\n"), /line 1: no build stage in current context/);
  assert.throws(() => parseDockerfile("FROM busybox\nSHELL /bin/bash -c\n"), /SHELL requires the arguments to be in JSON form/);
  assert.throws(() => parseDockerfile("FROM busybox\nONBUILD ONBUILD RUN x\n"), /Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed/);
  assert.throws(() => parseDockerfile("FROM busybox\nONBUILD FROM x\n"), /FROM isn't allowed as an ONBUILD trigger/);
  assert.throws(() => parseDockerfile("  \n"), /cannot be empty/);
  assert.equal(parseTrigger("RUN echo hi", 3).keyword, "RUN");
});

test("globRegExp: Go's filepath.Match, never across a slash", () => {
  assert.ok(globRegExp("*.txt").test("a.txt"));
  assert.ok(!globRegExp("*.txt").test("dir/a.txt"));
  assert.ok(globRegExp("dir/?.t[xy]t").test("dir/a.tyt"));
  assert.ok(!globRegExp("f[^0-4]").test("f3"));
  assert.ok(globRegExp("f[^0-4]").test("f7"));
  assert.ok(globRegExp("a\\*").test("a*"));
});
