// Prisma CLI configuration (Prisma 6.19). Prisma cannot download its native engines
// on these machines, so everything here runs without them:
// - the client is the Rust-free `prisma-client` generator (engineType "client"),
//   talking to PostgreSQL through @prisma/adapter-pg;
// - the schema engine is the WebAssembly one (`engine: "js"`), reaching the database
//   through the same adapter (only `prisma migrate diff` / `db pull` need it; the
//   console applies migrations itself, see server/db/migrate.ts);
// - the two variables below name an existing file so that the CLI skips the download
//   of native engines it would not use.
import { defineConfig } from "prisma/config";
import { PrismaPg } from "@prisma/adapter-pg";

process.env.PRISMA_SCHEMA_ENGINE_BINARY ??= "/bin/true";
process.env.PRISMA_QUERY_ENGINE_LIBRARY ??= "/bin/true";
process.env.CHECKPOINT_DISABLE ??= "1";
process.env.PRISMA_HIDE_UPDATE_MESSAGE ??= "1";

export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  experimental: { adapter: true },
  engine: "js",
  adapter: async () => {
    const url = process.env.DATABASE_URL;
    if (!url) throw new Error("DATABASE_URL is not set: the Prisma CLI needs a PostgreSQL database for this command");
    return new PrismaPg({ connectionString: url });
  },
});
