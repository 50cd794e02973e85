# The Rhone control plane's image: one image, two fly.toml process groups (api and worker).
# TypeScript runs through tsx at run time (a runtime dependency), so there is no build step.
FROM node:20-bookworm-slim

# git: the worker clones the repositories it deploys. ca-certificates: https remotes and APIs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so a source-only change reuses this layer.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# The sources (.dockerignore keeps out tests, benchmarks, local state and secrets).
COPY . .

# The code stays owned by root, read-only to the process; only the data directory is writable.
RUN mkdir -p /app/.rhone && chown node:node /app/.rhone
USER node

EXPOSE 3000
# The api by default; fly.toml's [processes] run the worker from the same image.
CMD ["node", "--import", "tsx", "backend/server.ts"]
