// Expected values are what Docker Engine 20.10 shows for the same inputs (docker inspect's
// Config.Env, `env` in the container, the committed image's Config.Env), measured with the
// docker CLI; test/containers-inspect-parity.test.ts checks the same against a live Docker.
import assert from "node:assert/strict";
import { test } from "node:test";
import { containerEnv, DEFAULT_PATH_ENV, mergeEnv, processEnv } from "./env.ts";

const IMAGE = [DEFAULT_PATH_ENV, "LANG=C.UTF-8"];

test("containerEnv: the create request's entries as given, then the image's the request does not name", () => {
  const table: Array<[string, string[] | null, string[] | null, string[]]> = [
    ["nothing given: the image's env", IMAGE, null, IMAGE],
    ["an image without env, nothing given", null, [], []],
    ["-e A=1", IMAGE, ["A=1"], ["A=1", ...IMAGE]],
    ["-e FOO (not set in the client's env): kept bare", IMAGE, ["FOO", "A=1"], ["FOO", "A=1", ...IMAGE]],
    ["-e LANG=fr overrides the image's by key", IMAGE, ["LANG=fr"], ["LANG=fr", DEFAULT_PATH_ENV]],
    ["-e LANG (bare) still hides the image's LANG", IMAGE, ["LANG"], ["LANG", DEFAULT_PATH_ENV]],
    ["duplicates kept as given", IMAGE, ["A=1", "A=2"], ["A=1", "A=2", ...IMAGE]],
    ["a value with '='", null, ["X=a=b"], ["X=a=b"]],
    ["an image without PATH keeps none in Config.Env", ["A=1"], ["B=2"], ["B=2", "A=1"]],
  ];
  for (const [what, image, create, want] of table) assert.deepEqual(containerEnv(image, create), want, what);
});

test("processEnv: Docker's defaults (PATH, HOSTNAME, TERM with a TTY) overridden by Config.Env", () => {
  const env = (config: string[], tty = false) => processEnv(config, { hostname: "0123456789ab", tty });
  const table: Array<[string, string[], boolean, string[]]> = [
    ["an image without PATH gets Docker's default", [], false, [DEFAULT_PATH_ENV, "HOSTNAME=0123456789ab"]],
    ["TERM with a TTY", [], true, [DEFAULT_PATH_ENV, "HOSTNAME=0123456789ab", "TERM=xterm"]],
    // The probe `docker run -e FOO -e BAR= -e A=1 -e A=2 -e PATH=/x:/bin busybox env` printed
    // PATH=/x:/bin HOSTNAME=… BAR= A=2 (then HOME, set by the runtime).
    [
      "Docker's probe",
      containerEnv(IMAGE.slice(0, 1), ["FOO", "BAR=", "A=1", "A=2", "PATH=/x:/bin"]),
      false,
      ["PATH=/x:/bin", "HOSTNAME=0123456789ab", "BAR=", "A=2"],
    ],
    ["a bare key unsets a default", ["PATH"], false, ["HOSTNAME=0123456789ab"]],
    ["a bare key of nothing set is dropped", ["FOO", "B=1"], false, [DEFAULT_PATH_ENV, "HOSTNAME=0123456789ab", "B=1"]],
    ["HOSTNAME and TERM can be overridden in place", ["TERM=vt100", "HOSTNAME=other"], true, [DEFAULT_PATH_ENV, "HOSTNAME=other", "TERM=vt100"]],
    ["an empty value is a value", ["E="], false, [DEFAULT_PATH_ENV, "HOSTNAME=0123456789ab", "E="]],
  ];
  for (const [what, config, tty, want] of table) assert.deepEqual(env(config, tty), want, what);
});

test("mergeEnv: in place by key, new keys appended, later wins, a bare key removes (exec -e, ENV of --change)", () => {
  const table: Array<[string, string[], string[], string[]]> = [
    ["replace in place", ["A=1", "B=2"], ["A=3"], ["A=3", "B=2"]],
    ["append", ["A=1"], ["C=3"], ["A=1", "C=3"]],
    ["later wins", [], ["D=1", "D=2"], ["D=2"]],
    ["bare removes", ["A=1", "B=2"], ["A"], ["B=2"]],
    ["removed then set again", ["A=1"], ["A", "A=4"], ["A=4"]],
    ["bare of an absent key: nothing", ["A=1"], ["Z"], ["A=1"]],
  ];
  for (const [what, base, over, want] of table) assert.deepEqual(mergeEnv(base, over), want, what);
});

test("commit records Config.Env: `docker run -e FOO -e A=1` then commit gives [FOO, A=1, PATH…] as Docker 20.10 does", () => {
  assert.deepEqual(containerEnv([DEFAULT_PATH_ENV], ["FOO", "A=1"]), ["FOO", "A=1", DEFAULT_PATH_ENV]);
});
