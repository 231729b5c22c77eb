#!/usr/bin/env node
// Entry point of the node agent: loads the TypeScript sources through tsx.
import { register } from "tsx/esm/api";

register();
await import("../agent/main.ts");
