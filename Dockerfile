# Portico's image for users with a container engine (docker/podman/buildah build .).
# `npm run image` (hack/image.ts) builds the same layout without an engine: node + glibc +
# libstdc++ at the bottom, /app/dist and production node_modules on top, user 65532, entrypoint
# `portico`. One image serves `portico controller` and `portico speaker` (pass the command as args).
# The root filesystem can be mounted read-only: Portico writes nothing to disk.
ARG NODE_IMAGE=docker.io/library/node:22.23.5-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
# Product code only: dev tools (hack/, the demo, the test control plane) never ship.
COPY src ./src
RUN ./node_modules/.bin/tsc -p tsconfig.build.json --outDir /app/dist \
 && cp package.json package-lock.json /app/ \
 && cd /app \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && rm -f package-lock.json node_modules/.package-lock.json

# distroless cc: glibc, libgcc and libstdc++ (what node links against), no shell, user 65532.
FROM ${RUNTIME_IMAGE}
COPY --from=build /usr/local/bin/node /usr/local/bin/node
COPY --from=build /app /app
USER 65532:65532
WORKDIR /app
ENV NODE_ENV=production
# IMAGE_ENV in hack/image.ts; a test keeps them equal.
ENV MALLOC_ARENA_MAX=2
# NODE_FLAGS in hack/image.ts (why: docs/controller.md, "Memory and CPU"); a test keeps them equal.
ENTRYPOINT ["/usr/local/bin/node", "--max-semi-space-size=2", "--v8-pool-size=2", "/app/dist/src/cli.js"]
CMD ["--help"]
