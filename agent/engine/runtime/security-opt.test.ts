import assert from "node:assert/strict";
import { test } from "node:test";
import { isEngineError } from "../errors.ts";
import { parseSecurityOpts } from "./security-opt.ts";

test("--security-opt values with Docker's meaning", () => {
  assert.deepEqual(parseSecurityOpts([]), { noNewPrivileges: false });
  assert.deepEqual(parseSecurityOpts(["no-new-privileges"]), { noNewPrivileges: true });
  assert.deepEqual(parseSecurityOpts(["no-new-privileges:true"]), { noNewPrivileges: true });
  assert.deepEqual(parseSecurityOpts(["no-new-privileges", "no-new-privileges=false"]), { noNewPrivileges: false });
  assert.deepEqual(parseSecurityOpts(["seccomp=unconfined"]), { noNewPrivileges: false, seccompProfile: "unconfined" });
  assert.deepEqual(parseSecurityOpts(["seccomp:unconfined"]), { noNewPrivileges: false, seccompProfile: "unconfined" });
  assert.deepEqual(parseSecurityOpts(["seccomp=builtin"]), { noNewPrivileges: false, seccompProfile: undefined });
  assert.deepEqual(parseSecurityOpts(['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']), {
    noNewPrivileges: false,
    seccompProfile: '{"defaultAction":"SCMP_ACT_ALLOW"}',
  });
  assert.deepEqual(parseSecurityOpts(["label=disable", "disable", "apparmor=unconfined"]), { noNewPrivileges: false });

  const refused = (opt: string, message: string | RegExp) =>
    assert.throws(
      () => parseSecurityOpts([opt]),
      (e) => isEngineError(e, "InvalidArgument") && (typeof message === "string" ? e.message === message : message.test(e.message)),
    );
  refused("bogus", 'invalid --security-opt 1: "bogus"');
  refused("bogus=1", 'invalid --security-opt 2: "bogus=1"');
  refused("no-new-privileges=maybe", 'invalid --security-opt 2: "no-new-privileges=maybe"');
  refused("apparmor=docker-default", /AppArmor profiles are not supported by Berth/);
  refused("label=user:system_u", /SELinux labels are not supported by Berth/);
});
