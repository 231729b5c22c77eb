import { test } from "node:test";
import assert from "node:assert/strict";
import { isEngineError } from "../errors.ts";
import { formatPlatform, normalizePlatform, platformFromNode, selectPlatformManifest } from "./platform.ts";
import type { Descriptor } from "./types.ts";

const entry = (architecture: string, variant?: string, os = "linux"): Descriptor => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: `sha256:${(architecture + (variant ?? "") + os)
    .padEnd(64, "0")
    .slice(0, 64)
    .replace(/[^0-9a-f]/g, "a")}`,
  size: 100,
  platform: variant ? { os, architecture, variant } : { os, architecture },
});

test("platformFromNode maps Node's arch names", () => {
  assert.deepEqual(platformFromNode("x64", "linux"), { os: "linux", architecture: "amd64" });
  assert.deepEqual(platformFromNode("arm64", "linux"), { os: "linux", architecture: "arm64", variant: "v8" });
  assert.equal(platformFromNode("arm", "linux").architecture, "arm");
  assert.match(platformFromNode("arm", "linux").variant ?? "", /^v\d$/);
  assert.deepEqual(platformFromNode("ia32", "linux"), { os: "linux", architecture: "386" });
  assert.deepEqual(platformFromNode("s390x", "linux"), { os: "linux", architecture: "s390x" });
  assert.deepEqual(platformFromNode("riscv64", "linux"), { os: "linux", architecture: "riscv64" });
});

test("normalizePlatform", () => {
  assert.deepEqual(normalizePlatform({ os: "Linux", architecture: "x86_64" }), { os: "linux", architecture: "amd64" });
  assert.deepEqual(normalizePlatform({ os: "linux", architecture: "aarch64" }), { os: "linux", architecture: "arm64", variant: "v8" });
  assert.deepEqual(normalizePlatform({ os: "linux", architecture: "arm64", variant: "8" }), { os: "linux", architecture: "arm64", variant: "v8" });
  assert.deepEqual(normalizePlatform({ os: "linux", architecture: "arm" }), { os: "linux", architecture: "arm", variant: "v7" });
  assert.deepEqual(normalizePlatform({ os: "linux", architecture: "armhf" }), { os: "linux", architecture: "arm", variant: "v7" });
});

test("selectPlatformManifest: os+arch, variants preferred, attestations skipped", () => {
  const list = [
    entry("unknown", undefined, "unknown"),
    entry("arm", "v6"),
    entry("arm64"),
    entry("amd64"),
    entry("arm", "v7"),
    entry("amd64", undefined, "windows"),
  ];
  assert.equal(selectPlatformManifest(list, { os: "linux", architecture: "amd64" }), list[3]);
  assert.equal(selectPlatformManifest(list, { os: "linux", architecture: "arm64", variant: "v8" }), list[2], "arm64 entry without variant serves v8");
  assert.equal(selectPlatformManifest(list, { os: "linux", architecture: "arm", variant: "v7" }), list[4], "exact variant beats an earlier compatible one");
  assert.equal(selectPlatformManifest(list, { os: "linux", architecture: "arm", variant: "v6" }), list[1]);
  assert.equal(
    selectPlatformManifest([entry("arm", "v5"), entry("arm", "v6")], { os: "linux", architecture: "arm", variant: "v7" }).platform?.variant,
    "v6",
    "closest older variant",
  );
  assert.equal(selectPlatformManifest(list, { os: "windows", architecture: "amd64" }), list[5]);
  assert.throws(
    () => selectPlatformManifest([entry("arm", "v8")], { os: "linux", architecture: "arm", variant: "v7" }),
    (e: unknown) => isEngineError(e, "NotFound") && e.message === "no matching manifest for linux/arm/v7 in the manifest list entries",
  );
  assert.throws(
    () => selectPlatformManifest([entry("arm64", "v8")], { os: "linux", architecture: "amd64" }),
    (e: unknown) => isEngineError(e, "NotFound") && e.message === "no matching manifest for linux/amd64 in the manifest list entries",
  );
  assert.equal(formatPlatform({ os: "linux", architecture: "arm64", variant: "v8" }), "linux/arm64/v8");
});
