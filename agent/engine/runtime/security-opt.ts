/**
 * `--security-opt` values with Docker's meaning (moby `daemon/daemon_unix.go`
 * parseSecurityOpt): `no-new-privileges[=|:true|false]`, `seccomp=unconfined|builtin|<profile JSON>`
 * (the docker CLI reads `seccomp=FILE` and sends the file's content). What Berth
 * cannot honour is refused by name rather than ignored: SELinux labels other than
 * `label=disable` and AppArmor profiles other than `apparmor=unconfined` (nodes run
 * containers with neither).
 */
import { invalidArgument } from "../errors.ts";

export interface SecurityOptions {
  noNewPrivileges: boolean;
  /** Absent: Docker's default profile. */
  seccompProfile?: string;
}

const TRUE = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const FALSE = new Set(["0", "f", "F", "FALSE", "false", "False"]);

/** @throws InvalidArgument with Docker's message (`invalid --security-opt 2: "x=y"`) */
export function parseSecurityOpts(opts: readonly string[]): SecurityOptions {
  const out: SecurityOptions = { noNewPrivileges: false };
  for (const opt of opts) {
    if (opt === "no-new-privileges") {
      out.noNewPrivileges = true;
      continue;
    }
    if (opt === "disable") continue;
    // "=" is the separator; "key:value" is Docker's deprecated form, still accepted.
    const sep = opt.includes("=") ? "=" : opt.includes(":") ? ":" : undefined;
    if (!sep) throw invalidArgument(`invalid --security-opt 1: ${JSON.stringify(opt)}`);
    const key = opt.slice(0, opt.indexOf(sep));
    const value = opt.slice(opt.indexOf(sep) + 1);
    switch (key) {
      case "no-new-privileges":
        if (TRUE.has(value)) out.noNewPrivileges = true;
        else if (FALSE.has(value)) out.noNewPrivileges = false;
        else throw invalidArgument(`invalid --security-opt 2: ${JSON.stringify(opt)}`);
        break;
      case "seccomp":
        out.seccompProfile = value === "builtin" ? undefined : value;
        break;
      case "label":
        if (value !== "disable")
          throw invalidArgument(
            `--security-opt ${opt}: SELinux labels are not supported by Berth (containers run without SELinux; only label=disable is accepted)`,
          );
        break;
      case "apparmor":
        if (value !== "unconfined")
          throw invalidArgument(
            `--security-opt ${opt}: AppArmor profiles are not supported by Berth (containers run without AppArmor; only apparmor=unconfined is accepted)`,
          );
        break;
      default:
        throw invalidArgument(`invalid --security-opt 2: ${JSON.stringify(opt)}`);
    }
  }
  return out;
}
