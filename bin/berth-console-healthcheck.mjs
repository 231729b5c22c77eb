#!/usr/bin/env node
// The console image's HEALTHCHECK (slim images have no curl): exits 0 when /api/health on this
// container's loopback answers {"ok":true}, else 1 with the reason on stderr (`docker inspect`
// shows it). With BERTH_TLS_CERT the console speaks HTTPS only; its certificate names the public
// host, not 127.0.0.1, so this loopback probe does not verify it.
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

const port = Number(process.env.BERTH_PORT ?? 8080);
const tls = !!process.env.BERTH_TLS_CERT;
const request = tls ? httpsRequest : httpRequest;
const req = request({ host: "127.0.0.1", port, path: "/api/health", timeout: 4000, rejectUnauthorized: false }, (res) => {
  let body = "";
  res.setEncoding("utf8");
  res.on("data", (d) => (body += d));
  res.on("error", (e) => fail(e.message));
  res.on("end", () => {
    let ok = false;
    try {
      ok = JSON.parse(body).ok === true;
    } catch {
      // reported below with the body
    }
    if (res.statusCode === 200 && ok) process.exit(0);
    fail(`HTTP ${res.statusCode}: ${body.slice(0, 200)}`);
  });
});
req.on("timeout", () => req.destroy(new Error("no answer within 4 s")));
req.on("error", (e) => fail(e.message));
req.end();

function fail(why) {
  console.error(`${tls ? "https" : "http"}://127.0.0.1:${port}/api/health: ${why}`);
  process.exit(1);
}
