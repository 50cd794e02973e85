# The Rhone control plane's image: one image, two fly.toml process groups (api and worker).
# TypeScript runs through tsx at run time (a runtime dependency); only the dashboard is built (Vite).

# The build tools the worker runs, pinned. RAILPACK_VERSION must equal RAILPACK_VERSION in
# backend/builder/railpack.ts: builds use the railpack-frontend image of that version, which must
# match the CLI that wrote the plan. BUILDKIT_VERSION is the builder's (builder-image/Dockerfile).
# test/dockerfile.test.ts checks both.
ARG RAILPACK_VERSION=0.37.0
ARG BUILDKIT_VERSION=v0.32.2
# Node.js of the control plane: an LTS line still under maintenance (Node 20 reached its end of
# life in April 2026; 22 is maintained until April 2027). Development and CI may run 20.11+.
ARG NODE_IMAGE=22-bookworm-slim

# buildctl: the BuildKit client of production builds, from the same release as the builder.
FROM moby/buildkit:${BUILDKIT_VERSION} AS buildkit

# railpack: the CLI production's analyze stage runs (`railpack prepare`). The release archive is
# checked against the checksums.txt published with it (goreleaser's "<sha256>  <file>" lines)
# and, when RAILPACK_SHA256 is given (--build-arg), against that pinned digest too.
FROM debian:bookworm-slim AS railpack
ARG RAILPACK_VERSION
ARG RAILPACK_SHA256=
ARG TARGETARCH
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /tmp/railpack
RUN set -eu; \
    case "${TARGETARCH:-amd64}" in \
      amd64) target=x86_64-unknown-linux-musl ;; \
      arm64) target=arm64-unknown-linux-musl ;; \
      *) echo "railpack publishes no Linux build for ${TARGETARCH}" >&2; exit 1 ;; \
    esac; \
    archive="railpack-v${RAILPACK_VERSION}-${target}.tar.gz"; \
    base="https://github.com/railwayapp/railpack/releases/download/v${RAILPACK_VERSION}"; \
    curl -fsSL --retry 3 -o "$archive" "$base/$archive"; \
    curl -fsSL --retry 3 -o checksums.txt "$base/checksums.txt"; \
    grep " ${archive}\$" checksums.txt > archive.sha256; \
    sha256sum --check --strict archive.sha256; \
    if [ -n "${RAILPACK_SHA256}" ]; then echo "${RAILPACK_SHA256}  ${archive}" | sha256sum --check --strict -; fi; \
    tar -xzf "$archive" railpack; \
    install -m 0755 railpack /usr/local/bin/railpack; \
    /usr/local/bin/railpack --version

# The dashboard: Vite's build of frontend/, with its gzip copies (the api serves frontend/dist).
FROM node:${NODE_IMAGE} AS dashboard
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend ./frontend
COPY backend/lib ./backend/lib
COPY backend/cli/frontend.ts ./backend/cli/frontend.ts
RUN node --import tsx backend/cli/frontend.ts

FROM node:${NODE_IMAGE}

# git: the worker clones the repositories it deploys. ca-certificates: https remotes and APIs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY --from=railpack /usr/local/bin/railpack /usr/local/bin/railpack
COPY --from=buildkit /usr/bin/buildctl /usr/local/bin/buildctl

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so a source-only change reuses this layer.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# The sources (.dockerignore keeps out tests, benchmarks, local state and secrets), then the
# dashboard built above.
COPY . .
COPY --from=dashboard /app/frontend/dist ./frontend/dist

# The code stays owned by root, read-only to the process; only the data directory is writable.
RUN mkdir -p /app/.rhone && chown node:node /app/.rhone
USER node

EXPOSE 3000
# The api by default; fly.toml's [processes] run the worker from the same image.
CMD ["node", "--import", "tsx", "backend/server.ts"]
