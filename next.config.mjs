/** Next.js serves app/ inside the console process (server/console.ts). */
const config = {
  // `npm test` type-checks the whole repository with tsc (strict); Next need not do it again.
  typescript: { ignoreBuildErrors: true },
  eslint: { ignoreDuringBuilds: true },
  poweredByHeader: false,
  reactStrictMode: true,
  // The custom server owns /api/trpc, /socket.io and /api/health; Next only renders pages and next-auth.
  serverExternalPackages: ["next-auth"],
};
export default config;
