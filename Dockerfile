# syntax=docker/dockerfile:1
# Two images from one build, both on distroless Node.js 20 (no shell, no npm, uid 65532):
#   docker build -t aws-secret-injector .                      the webhook (default, last target)
#   docker build --target fetcher -t aws-secret-injector-fetcher .   the init container
# The fetcher image holds only the fetcher's startup snapshot (fetcher.blob, made from
# dist/fetcher.cjs): every annotated pod pulls it, so it carries nothing of the webhook,
# certificates, YAML or HTTP server code.

# Base images are pinned by digest; refresh the digests together with the tags.
ARG BUILD_IMAGE=node:20-bookworm-slim@sha256:2cf067cfed83d5ea958367df9f966191a942351a2df77d6f0193e162b5febfc0
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot@sha256:2cd820156cf039c8b54ae2d2a97e424b6729070714de8707a6b79f20d56f6a9a

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY scripts/bundle.mjs scripts/
COPY bin bin
COPY certs certs
COPY fetcher fetcher
COPY webhook webhook
# The bundles need no node_modules at run time; only they leave this stage.
RUN BUNDLE_OUT=/out node scripts/bundle.mjs

# The fetcher's V8 startup snapshot, made by the runtime image's own node: a snapshot starts only
# on the binary that built it. Exec form, as the image has no shell; root only to write /snapshot,
# and nothing of this stage but the blob goes on.
FROM ${RUNTIME_IMAGE} AS fetcher-snapshot
COPY --from=build /out/fetcher.cjs /snapshot/fetcher.cjs
USER 0:0
RUN ["/nodejs/bin/node", "--snapshot-blob", "/snapshot/fetcher.blob", "--build-snapshot", "/snapshot/fetcher.cjs"]

FROM ${RUNTIME_IMAGE} AS fetcher
COPY --from=fetcher-snapshot /snapshot/fetcher.blob /app/fetcher.blob
USER 65532:65532
ENTRYPOINT ["/nodejs/bin/node", "--snapshot-blob", "/app/fetcher.blob"]
CMD ["fetch"]

FROM ${RUNTIME_IMAGE} AS webhook
COPY --from=build /out/cli.mjs /app/cli.mjs
COPY --from=build /out/chunks /app/chunks
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/nodejs/bin/node", "/app/cli.mjs"]
CMD ["webhook"]
