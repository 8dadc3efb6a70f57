# syntax=docker/dockerfile:1
# The chat server in a container: compiled in a build stage, run on Node 20 (Debian slim) with
# the runtime dependencies only, as the unprivileged user `node`.
#
#   docker build -t chat-rebuild .
#   docker run --rm -p 50051:50051 chat-rebuild            # flags go after the image name
#   docker stop -t 15 <container>                          # see STOPSIGNAL below
#
# Configure it with environment variables (PORT, DRAIN_MS, ...; `docker run chat-rebuild --help`
# lists them): the HEALTHCHECK probe reads HOST and PORT from the same environment.

ARG NODE_IMAGE=node:20-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY server/package.json ./server/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig*.json ./
COPY generated ./generated
COPY src ./src
RUN npm run build

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
COPY server/package.json ./server/
# The server's run-time dependencies (the workspace package server/, @chat-rebuild/server) and
# the root's; --ignore-scripts: the root's prepare builds the SDK, which needs the dev tools.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund -w @chat-rebuild/server --include-workspace-root && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/generated ./dist/generated
USER node
EXPOSE 50051
# SIGTERM starts the drain: health says NOT_SERVING for DRAIN_MS (5 s), then calls in flight get
# SHUTDOWN_GRACE_MS (5 s). That can outlast docker stop's default 10 s before SIGKILL: give it 15.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["node", "dist/src/server/healthcheck.js"]
# The production command, the one the tests spawn (test/server/docker.test.ts checks they agree).
# node itself is PID 1: it handles SIGTERM and SIGINT, and starts no children to reap. Give it a
# key source by environment, such as AUTH_JWKS_FILE=/run/secrets/jwks.json (mounted), AUTH_JWKS_URL
# or AUTH_HS256_SECRET_FILE, so it checks bearer tokens; without one it checks none and warns.
ENTRYPOINT ["node", "dist/src/server/main.js"]
