/**
 * The session behind an HTTP request or a websocket handshake. next-auth keeps its
 * encrypted JWT in a cookie; inside it is our own database session token (`bst_…`),
 * so every request is checked against the sessions table and the user row: a logout,
 * an expired session, a disabled user or a changed role applies to the next request.
 */
import { decode } from "next-auth/jwt";
import type { PrismaClient } from "../db/generated/client.ts";
import { validateSession, type ValidSession } from "./sessions.ts";

export const SESSION_COOKIE = "next-auth.session-token";
export const SECURE_SESSION_COOKIE = "__Secure-next-auth.session-token";

export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(";")) {
    const i = part.indexOf("=");
    if (i <= 0) continue;
    const name = part.slice(0, i).trim();
    const raw = part.slice(i + 1).trim();
    try {
      out.set(name, decodeURIComponent(raw));
    } catch {
      out.set(name, raw);
    }
  }
  return out;
}

/** next-auth splits a large JWT into `name.0`, `name.1`…; joins them back. */
function sessionCookieValue(cookies: Map<string, string>): string | undefined {
  for (const name of [SECURE_SESSION_COOKIE, SESSION_COOKIE]) {
    const whole = cookies.get(name);
    if (whole) return whole;
    const chunks: string[] = [];
    for (let i = 0; cookies.has(`${name}.${i}`); i++) chunks.push(cookies.get(`${name}.${i}`) ?? "");
    if (chunks.length) return chunks.join("");
  }
  return undefined;
}

/** The database session token inside the next-auth JWT cookie, or undefined. */
export async function sessionTokenFromCookie(cookieHeader: string | undefined, authSecret: string): Promise<string | undefined> {
  const jwt = sessionCookieValue(parseCookies(cookieHeader));
  if (!jwt) return undefined;
  try {
    const payload = await decode({ token: jwt, secret: authSecret });
    return typeof payload?.bst === "string" ? payload.bst : undefined;
  } catch {
    return undefined;
  }
}

export async function sessionFromCookie(prisma: PrismaClient, cookieHeader: string | undefined, authSecret: string): Promise<ValidSession | null> {
  const token = await sessionTokenFromCookie(cookieHeader, authSecret);
  return token ? validateSession(prisma, token) : null;
}
