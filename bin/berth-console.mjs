#!/usr/bin/env node
// Entry point of the console: loads the TypeScript sources through tsx.
const { register } = await import("tsx/esm/api");

register();
await import("../server/main.ts");
