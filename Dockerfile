# The Berth console as a container image (docker-compose.yml runs it with PostgreSQL).
# Agents are not containers: they are the container engine of their node (systemd service).
FROM node:20-bookworm-slim
WORKDIR /opt/berth
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run prisma:generate && npm run build:ui && npm run build:agent
ENV BERTH_PORT=8080 BERTH_DATA_DIR=/var/lib/berth-console NODE_ENV=production
EXPOSE 8080
VOLUME ["/var/lib/berth-console"]
CMD ["node", "bin/berth-console.mjs"]
