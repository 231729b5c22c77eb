/**
 * The console's settings from its environment, validated once at start (server/main.ts),
 * so a typo says which variable and why instead of surfacing later as an odd behaviour.
 * Flags given on the command line win over these.
 */
import { z } from "zod";

const flag = z
  .string()
  .trim()
  .toLowerCase()
  .refine((v) => ["", "0", "1", "true", "false", "yes", "no"].includes(v), "must be 1 or 0 (true/false)")
  .transform((v) => ["1", "true", "yes"].includes(v));

export const PortSchema = z.coerce
  .number({ error: "must be a port number" })
  .int("must be a port number")
  .min(0, "must be a port number (0-65535)")
  .max(65535, "must be a port number (0-65535)");

export const PublicUrlSchema = z.string().regex(/^https?:\/\/[^/\s]+/, "must be an http:// or https:// URL");

const ConsoleEnvSchema = z.object({
  BERTH_PORT: PortSchema.optional(),
  BERTH_HOST: z.string().min(1).optional(),
  BERTH_DATA_DIR: z.string().startsWith("/", "must be an absolute path").optional(),
  BERTH_PUBLIC_URL: PublicUrlSchema.optional(),
  BERTH_TLS_CERT: z.string().min(1).optional(),
  BERTH_TLS_KEY: z.string().min(1).optional(),
  BERTH_TRUST_PROXY: flag.optional(),
  BERTH_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).optional(),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgres:// or postgresql:// URL")
    .optional(),
  BERTH_SECRET_KEY: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, "must be 64 hexadecimal characters (openssl rand -hex 32)")
    .optional(),
  BERTH_OIDC_ISSUER: z.url({ error: "must be the issuer's URL" }).optional(),
  BERTH_OIDC_CLIENT_ID: z.string().min(1).optional(),
  BERTH_OIDC_CLIENT_SECRET: z.string().min(1).optional(),
});
export type ConsoleEnv = z.output<typeof ConsoleEnvSchema>;

/** Variables that only make sense together (checked on what is given, whatever else is wrong). */
function pairingProblems(e: Record<string, string | undefined>): string[] {
  const out: string[] = [];
  if (!!e.BERTH_TLS_CERT !== !!e.BERTH_TLS_KEY) out.push("BERTH_TLS_CERT and BERTH_TLS_KEY go together");
  const oidc = [e.BERTH_OIDC_ISSUER, e.BERTH_OIDC_CLIENT_ID, e.BERTH_OIDC_CLIENT_SECRET].filter(Boolean).length;
  if (oidc !== 0 && oidc !== 3) out.push("single sign-on needs all three of BERTH_OIDC_ISSUER, BERTH_OIDC_CLIENT_ID and BERTH_OIDC_CLIENT_SECRET");
  return out;
}

const SECRET_VARIABLES = new Set(["DATABASE_URL", "BERTH_SECRET_KEY", "BERTH_OIDC_CLIENT_SECRET"]);

/** Empty variables count as unset (as `VAR= cmd` means "not set" to most people). */
export function parseConsoleEnv(env: Record<string, string | undefined>): { ok: true; env: ConsoleEnv } | { ok: false; problems: string[] } {
  const given = Object.fromEntries(Object.entries(env).filter(([k, v]) => (k.startsWith("BERTH_") || k === "DATABASE_URL") && v !== undefined && v !== ""));
  const r = ConsoleEnvSchema.safeParse(given);
  const pairing = pairingProblems(given);
  if (r.success && !pairing.length) return { ok: true, env: r.data };
  return {
    ok: false,
    problems: [...pairing, ...(r.success ? [] : r.error.issues)].map((i) => {
      if (typeof i === "string") return i;
      const name = String(i.path[0] ?? "environment");
      const value = given[name];
      // Secrets and URLs that may hold a password are named, never echoed.
      const shown = value !== undefined && !SECRET_VARIABLES.has(name) ? ` (got ${JSON.stringify(value)})` : "";
      return `${name}: ${i.message}${shown}`;
    }),
  };
}
