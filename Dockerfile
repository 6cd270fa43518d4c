# The pgops worker. PostgreSQL client tools must match the servers' major version (18).
# zstd compresses the WAL that base backups stream (pg_wal.tar).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates postgresql-common \
 && /usr/share/postgresql-common/pgdg/apt.postgresql.org.sh -y \
 && apt-get install -y --no-install-recommends postgresql-client-18 zstd \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
ENV NODE_ENV=production \
    PGOPS_PG_BIN_DIR=/usr/lib/postgresql/18/bin \
    PGOPS_STAGING_DIR=/var/lib/pgops/staging \
    PGOPS_WAL_SPOOL_DIR=/var/lib/pgops/wal-spool
# zstd compresses WAL segments on their way to S3; the archiver runs pg_receivewal under setpriv and flock (util-linux, in the base image).
RUN mkdir -p /var/lib/pgops/staging /var/lib/pgops/wal-spool && chown node /var/lib/pgops/staging /var/lib/pgops/wal-spool
USER node
# SIGTERM starts a graceful shutdown; compose's stop_grace_period must cover PGOPS_WORKER_SHUTDOWN_GRACE.
CMD ["node", "dist/src/worker.js"]
