# The Berth console as a container image (docker-compose.yml runs it with PostgreSQL).
# Agents are not containers: they are the container engine of their node (systemd service,
# installed by the console's Add node or install.sh with the artifact this image carries).
#
#   docker build -t berth-console .
#   docker build --build-arg BASE=my-registry/node:20-bookworm-slim -t berth-console .
#
# BASE must be Debian-based with Node.js 20 and npm on the PATH and a `node` user (uid 1000),
# as the official node images are; CI builds from a locally made one (test/console-image.test.ts).
ARG BASE=node:20-bookworm-slim

# ---- build: every dependency, the Prisma client, the UI, the agent artifact
FROM ${BASE} AS build
WORKDIR /opt/berth
ENV CHECKPOINT_DISABLE=1 NEXT_TELEMETRY_DISABLED=1 PRISMA_HIDE_UPDATE_MESSAGE=1
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run prisma:generate \
 && npm run build:ui \
 && npm run build:agent \
 && rm -rf .next/cache dist/berth-agent \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# ---- the console: production dependencies, the built UI and artifact, the sources tsx runs
FROM ${BASE}
WORKDIR /opt/berth
ENV NODE_ENV=production \
    NEXT_TELEMETRY_DISABLED=1 \
    BERTH_PORT=8080 \
    BERTH_DATA_DIR=/var/lib/berth-console
# The build's tree as it is after the prune: the sources tsx runs (bin, server, agent, shared, ...),
# the pruned node_modules, .next, the Prisma client, prisma/migrations, public/, dist/ (the
# .dockerignore kept tests, .git and local output out). Owned by root, read-only to the console's
# user: only the data directory is its own.
COPY --from=build /opt/berth ./
RUN mkdir -p /var/lib/berth-console && chown node:node /var/lib/berth-console && chmod 0700 /var/lib/berth-console
USER node
EXPOSE 8080
VOLUME ["/var/lib/berth-console"]
# Slim images have no curl: a Node probe of /api/health on loopback (http, or https with BERTH_TLS_*).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["node", "bin/berth-console-healthcheck.mjs"]
CMD ["node", "bin/berth-console.mjs"]
