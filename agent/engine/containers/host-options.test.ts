import assert from "node:assert/strict";
import { test } from "node:test";
import { isEngineError } from "../errors.ts";
import { CreateOptionsSchema } from "./container-record.ts";
import { checkHostOptions, logsReadable } from "./host-options.ts";

const options = (more: Record<string, unknown>) => CreateOptionsSchema.parse({ image: "busybox", ...more });

test("checkHostOptions: Docker's texts for what Docker refuses at create; what it accepts passes", () => {
  const refused: Array<[Record<string, unknown>, "InvalidArgument" | "NotImplemented", string]> = [
    [{ logConfig: { type: "nosuch" } }, "InvalidArgument", 'error looking up logging plugin nosuch: plugin "nosuch" not found'],
    [{ logConfig: { type: "syslog" } }, "NotImplemented", "logging driver syslog is not supported by Berth (it writes json-file, local, none)"],
    [{ logConfig: { type: "json-file", config: { "max-sise": "1m" } } }, "InvalidArgument", "unknown log opt 'max-sise' for json-file log driver"],
    [{ logConfig: { type: "none", config: { "max-size": "1m" } } }, "InvalidArgument", "unknown log opt 'max-size' for none log driver"],
    [{ runtime: "kata" }, "InvalidArgument", "unknown or invalid runtime name: kata"],
    [{ isolation: "hyperv" }, "InvalidArgument", `Invalid isolation: "hyperv" - linux only supports 'default'`],
    [{ volumeDriver: "nfs" }, "InvalidArgument", 'error looking up volume plugin nfs: plugin "nfs" not found'],
    [{ macAddress: "02:42:zz:00:00:01" }, "InvalidArgument", "invalid MAC address: 02:42:zz:00:00:01"],
    [{ volumesFrom: ["other:rx"] }, "InvalidArgument", "invalid mode: rx"],
  ];
  for (const [more, kind, message] of refused) {
    assert.throws(
      () => checkHostOptions(options(more)),
      (e) => isEngineError(e, kind) && e.message === message,
      JSON.stringify(more),
    );
  }
  const ok = options({
    logConfig: { type: "", config: {} },
    runtime: "",
    isolation: "default",
    volumeDriver: "local",
    macAddress: "02:42:AC:11:00:99",
    volumesFrom: ["a", "b:ro", "c:rw"],
  });
  checkHostOptions(ok);
  assert.deepEqual(ok.logConfig, { type: "json-file", config: {} }, "an empty driver is Docker's default");
  assert.equal(ok.runtime, "runc");
  assert.equal(logsReadable(ok), true);
  assert.equal(logsReadable(options({ logConfig: { type: "none" } })), false);
});
