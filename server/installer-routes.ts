/** Downloads the console serves to nodes it cannot reach over SSH (filled in by the installer). */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ConsoleServices } from "./services.ts";

export function handleDownloads(_req: IncomingMessage, _res: ServerResponse, _services: ConsoleServices): boolean {
  return false;
}
