// next-auth's endpoints (sign-in, sign-out, CSRF, session). The options come from the
// console process (server/console.ts builds them with its database), so this bundle
// holds no database code.
import NextAuthModule, { type AuthOptions } from "next-auth";
import { cjsDefault } from "../../../../server/cjs-default.ts";

const NextAuth = cjsDefault(NextAuthModule);

type RouteContext = { params: Promise<{ nextauth: string[] }> };

async function handler(req: Request, context: RouteContext): Promise<Response> {
  const options = (globalThis as { berthAuthOptions?: AuthOptions }).berthAuthOptions;
  if (!options) return new Response("the Berth console is not running in this process", { status: 503 });
  const params = await context.params;
  return (NextAuth(options) as (r: Request, c: { params: { nextauth: string[] } }) => Promise<Response>)(req, { params });
}

export { handler as GET, handler as POST };
