/**
 * next-auth configuration: email + password (credentials provider), and an OIDC
 * provider when BERTH_OIDC_ISSUER, BERTH_OIDC_CLIENT_ID and BERTH_OIDC_CLIENT_SECRET
 * are set. The JWT next-auth keeps in its cookie carries only our database session
 * token (server/auth/sessions.ts), so sessions end server-side (logout, expiry,
 * disabled user) and roles are read from the database on every request.
 * OIDC signs in only users an admin created (matched by verified email).
 */
import type { AuthOptions, User } from "next-auth";
import CredentialsModule from "next-auth/providers/credentials";
import { cjsDefault } from "../cjs-default.ts";
import { bestEffort } from "../../shared/best-effort.ts";
import type { OAuthConfig } from "next-auth/providers/oauth";
import type { Logger } from "pino";
import type { PrismaClient } from "../db/generated/client.ts";
import { recordAudit } from "../db/audit.ts";
import { normalizeEmail } from "./email.ts";
import { CLIENT_ADDRESS_HEADER } from "./client-address.ts";
import type { SecretBox } from "./secret-box.ts";
import { getSecuritySettings } from "./settings.ts";
import { signInWithPassword } from "./sign-in.ts";
import { createSession, revokeSession, validateSession } from "./sessions.ts";

// next-auth is CommonJS: under Node's ESM loader its default export sits one level down.
const CredentialsProvider = cjsDefault(CredentialsModule);

interface SessionCarrier extends User {
  bst: string;
}

interface OidcProfile {
  sub: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
}

export function oidcProviderFromEnv(env: Record<string, string | undefined> = process.env): OAuthConfig<OidcProfile> | undefined {
  const issuer = env.BERTH_OIDC_ISSUER;
  const clientId = env.BERTH_OIDC_CLIENT_ID;
  const clientSecret = env.BERTH_OIDC_CLIENT_SECRET;
  if (!issuer || !clientId || !clientSecret) return undefined;
  return {
    id: "oidc",
    name: env.BERTH_OIDC_NAME ?? "Single sign-on",
    type: "oauth",
    wellKnown: `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`,
    clientId,
    clientSecret,
    idToken: true,
    checks: ["pkce", "state"],
    authorization: { params: { scope: "openid email profile" } },
    profile: (p) => ({ id: p.sub, email: p.email ?? null, name: p.name ?? null }),
  };
}

/** The cookie outlives any database session (90 days, the longest absolute timeout): the database decides when a session ends. */
const JWT_MAX_AGE_SECONDS = 90 * 24 * 60 * 60;

async function sessionTtlMs(prisma: PrismaClient): Promise<number> {
  return (await getSecuritySettings(prisma)).sessionAbsoluteMinutes * 60_000;
}

/**
 * `secureCookies` (the public URL is https) gives the cookies the Secure flag and the
 * __Secure- prefix, so a browser never sends the session over plain HTTP.
 */
export function buildAuthOptions(deps: {
  prisma: PrismaClient;
  secretBox: SecretBox;
  authSecret: string;
  logger: Logger;
  secureCookies: boolean;
}): AuthOptions {
  const { prisma } = deps;
  const oidc = oidcProviderFromEnv();
  return {
    secret: deps.authSecret,
    useSecureCookies: deps.secureCookies,
    session: { strategy: "jwt", maxAge: JWT_MAX_AGE_SECONDS },
    pages: { signIn: "/login", error: "/login" },
    providers: [
      CredentialsProvider({
        name: "Email and password",
        credentials: {
          email: { label: "Email", type: "email" },
          password: { label: "Password", type: "password" },
          token: { label: "Authenticator code", type: "text" },
          recoveryCode: { label: "Recovery code", type: "text" },
        },
        async authorize(credentials, req) {
          const headers = (req?.headers ?? {}) as Record<string, string | undefined>;
          // Set by the console's HTTP server from the socket (or a trusted proxy), never taken from the client as is.
          const ip = headers[CLIENT_ADDRESS_HEADER] || null;
          const result = await signInWithPassword(
            { prisma, secretBox: deps.secretBox, logger: deps.logger },
            {
              email: String(credentials?.email ?? ""),
              password: String(credentials?.password ?? ""),
              ...(credentials?.token ? { token: String(credentials.token) } : {}),
              ...(credentials?.recoveryCode ? { recoveryCode: String(credentials.recoveryCode) } : {}),
              address: ip,
            },
          );
          // next-auth hands a thrown message to the sign-in form (signIn(…).error).
          if (!result.ok) throw new Error(result.message);
          const { user } = result;
          const s = await createSession(prisma, user.id, {
            ttlMs: await sessionTtlMs(prisma),
            ...(headers["user-agent"] ? { userAgent: headers["user-agent"] } : {}),
            ...(ip ? { ip } : {}),
          });
          return { id: user.id, email: user.email, name: user.name, bst: s.token } satisfies SessionCarrier;
        },
      }),
      ...(oidc ? [oidc] : []),
    ],
    callbacks: {
      async signIn({ user, account, profile }) {
        if (account?.provider !== "oidc") return true;
        const p = profile as OidcProfile | undefined;
        if (!p?.email || p.email_verified === false) return "/login?error=oidc-email";
        const known = await prisma.user.findUnique({ where: { email: normalizeEmail(p.email) }, select: { id: true, disabled: true } });
        const ok = !!known && !known.disabled;
        await recordAudit(prisma, {
          actorUserId: known?.id ?? null,
          actorLabel: p.email,
          action: "auth.login",
          outcome: ok ? "success" : "denied",
          details: { method: "oidc" },
        }).catch((err: unknown) => deps.logger.error({ err, email: p.email }, "could not write the audit record of an OIDC sign-in"));
        if (!ok) return "/login?error=oidc-unknown";
        await prisma.account.upsert({
          where: { provider_providerAccountId: { provider: "oidc", providerAccountId: account.providerAccountId } },
          create: { provider: "oidc", providerAccountId: account.providerAccountId, userId: known.id },
          update: {},
        });
        (user as Partial<SessionCarrier>).id = known.id;
        return true;
      },
      async jwt({ token, user, account }) {
        if (user && "bst" in user && typeof user.bst === "string") {
          token.bst = user.bst;
        } else if (user && account?.provider === "oidc") {
          token.bst = (await createSession(prisma, user.id, { ttlMs: await sessionTtlMs(prisma) })).token;
        }
        return token;
      },
      async session({ session }) {
        // The browser learns who it is from tRPC's auth.me; the session token stays in the encrypted cookie.
        return session;
      },
    },
    events: {
      async signOut({ token }) {
        if (typeof token?.bst !== "string") return;
        // Sign-out goes on whatever fails here (the cookie is cleared anyway), but a session left valid is news.
        const session = await validateSession(prisma, token.bst).catch(bestEffort(deps.logger, "look up the session being signed out"));
        await revokeSession(prisma, token.bst).catch((err: unknown) =>
          deps.logger.error({ err, userId: session?.user.id }, "could not revoke a session at sign-out"),
        );
        if (session)
          await recordAudit(prisma, { actorUserId: session.user.id, actorLabel: session.user.email, action: "auth.logout", outcome: "success" }).catch(
            (err: unknown) => deps.logger.error({ err, userId: session.user.id }, "could not write the audit record of a sign-out"),
          );
      },
    },
  };
}
