#!/usr/bin/env node
// Entry point of the node agent: loads the TypeScript sources through tsx.
// Layer unpacking is many small file operations plus gunzip, all on libuv's thread
// pool; its default of 4 threads leaves parallel layer downloads waiting on each other.
// (Must be set before the pool's first use, so before anything else is loaded.)
process.env.UV_THREADPOOL_SIZE ??= "16";
const { register } = await import("tsx/esm/api");

register();
await import("../agent/main.ts");
