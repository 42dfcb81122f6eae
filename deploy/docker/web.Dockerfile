# syntax=docker/dockerfile:1
#
# The web app's image for Kubernetes (deploy/kubernetes/base/web.yaml): the Angular build served by
# Caddy with the repository's own Caddyfile, so the headers, SPA fallback and cache rules are the
# ones compose serves. The pod sets GPULAB_DOMAIN=":8080": plain HTTP on 8080 behind the Ingress.
#   docker build -f deploy/docker/web.Dockerfile -t gpulab/web:dev .
#
# Built and checked by `python -m scripts.imagecheck --web` (buildah): uid 10001, no file capability left on
# caddy, no node in the final layer, the Caddyfile valid as the pod runs it, and the app and a
# client-side route served by the image's caddy. tools/deploycheck validates the Caddyfile too.

# An LTS Node that Angular 21 supports (^20.19, ^22.12 or ^24).
ARG NODE_VERSION=22
# The same minor as compose's caddy image and the caddy that validates the Caddyfile.
ARG CADDY_VERSION=2.11

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY frontend/ ./
RUN NG_CLI_ANALYTICS=false node_modules/.bin/ng build

FROM caddy:${CADDY_VERSION}-alpine AS runtime
# The image gives caddy the file capability cap_net_bind_service (for :80 and :443). The pod drops
# every capability, and the kernel refuses to exec a file whose capabilities the process may not
# have; on :8080 none is needed, so the file keeps none.
RUN setcap -r /usr/bin/caddy
COPY Caddyfile /etc/caddy/Caddyfile
COPY --from=build /src/frontend/dist/gpulab/browser /srv/frontend
ENV GPULAB_FRONTEND_ROOT=/srv/frontend
# The uid of the Python images (deploy/kubernetes runs every gpulab pod as 10001).
USER 10001:10001
