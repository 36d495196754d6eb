# syntax=docker/dockerfile:1
# Two images from one build, both on distroless Node.js 24 (no shell, no npm, uid 65532):
#   docker build -t aws-secret-injector .                      the webhook (default, last target)
#   docker build --target fetcher -t aws-secret-injector-fetcher .   the init container
# The fetcher image holds only the fetcher: one executable (/app/fetcher, its bundle compiled by
# Bun with its bytecode and the runtime; scripts/bundle.mjs): every annotated pod pulls it, so it
# carries nothing of the webhook, certificates, YAML or HTTP server code, and needs only glibc.

# Base images are pinned by the digests of their multi-architecture indexes (README: Images says
# how to refresh them); the build stage's Node major matches the runtime's.
ARG BUILD_IMAGE=node:24-bookworm-slim@sha256:3638d9a6fe4030bd716be989438248074489337ba3275657f93595428be4fc03
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot@sha256:14d42e2511532589a7c7e01a753667a74fcc96266e137e8125006b87b0c32d0a

# The bundles are plain JavaScript: a multi-platform build makes them on the builder's platform, and
# compiles the fetcher for the target's (TARGETARCH; its runtime comes from the npm registry at the
# version package-lock.json pins).
FROM --platform=$BUILDPLATFORM ${BUILD_IMAGE} AS build
ARG TARGETARCH
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY scripts/bundle.mjs scripts/bun.mjs scripts/code-cache.mjs scripts/
COPY bin bin
COPY certs certs
COPY fetcher fetcher
COPY webhook webhook
COPY store store
# The webhook checks `inject --values` against the chart's schema, which it bundles.
COPY charts/aws-secret-injector/values.schema.json charts/aws-secret-injector/
# The bundles need no node_modules at run time; only they leave this stage.
RUN FETCHER_ARCH=$TARGETARCH BUNDLE_OUT=/out node scripts/bundle.mjs

FROM ${RUNTIME_IMAGE} AS fetcher
COPY --from=build /out/fetcher /app/fetcher
USER 65532:65532
ENTRYPOINT ["/app/fetcher"]
CMD ["fetch"]

FROM ${RUNTIME_IMAGE} AS webhook
COPY --from=build /out/cli.mjs /app/cli.mjs
COPY --from=build /out/chunks /app/chunks
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/nodejs/bin/node", "/app/cli.mjs"]
CMD ["webhook"]
