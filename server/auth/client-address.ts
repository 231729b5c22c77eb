/**
 * The address a request came from, for throttling and the audit log. A client can put
 * anything in X-Forwarded-For, so it counts only when the console is told it sits
 * behind a proxy (`trustProxy`), and then only its last entry (the one the proxy
 * appended). The console's HTTP server writes the result into CLIENT_ADDRESS_HEADER
 * before Next.js (and next-auth inside it) sees the request, replacing whatever the
 * client sent under that name.
 */
import type { IncomingMessage } from "node:http";

export const CLIENT_ADDRESS_HEADER = "x-berth-client-address";

export function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  const socket = (req.socket.remoteAddress ?? "").replace(/^::ffff:/, "");
  if (!trustProxy) return socket;
  const forwarded = req.headers["x-forwarded-for"];
  const last = (Array.isArray(forwarded) ? forwarded.join(",") : (forwarded ?? ""))
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .at(-1);
  return last && /^[0-9a-fA-F.:]{2,45}$/.test(last) ? last.replace(/^::ffff:/, "") : socket;
}

/** Stamps the trusted client address on a request (dropping any the client sent). */
export function stampClientAddress(req: IncomingMessage, trustProxy: boolean): string {
  const address = clientAddress(req, trustProxy);
  req.headers[CLIENT_ADDRESS_HEADER] = address;
  return address;
}
