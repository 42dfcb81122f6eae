# syntax=docker/dockerfile:1
#
# One Dockerfile for every gpulab Python service; compose.yaml builds it once per service:
#   docker build -f deploy/docker/python.Dockerfile --build-arg SERVICE=identity -t gpulab/identity:dev .
#
# Built and run by scripts/imagecheck (buildah, no Docker engine needed): all six images, each
# checked (uid 10001, no build tools, read-only code, the gateway's agent) and then run together
# against a real PostgreSQL and NATS until /api/v1/healthz is ok. Where the public base images
# cannot be pulled it makes local stand-ins under their names (`--stand-in-bases`; docs/setup-guide.md,
# "Images"). tests/test_images.py keeps the member COPYs below equal to pyproject.toml's workspace.

ARG PYTHON_VERSION=3.13
# agent/go.mod's go line.
ARG GO_VERSION=1.26
# Pinned like the rest of the toolchain (uv on PyPI); bump both together.
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---- agent: the gateway serves the agent at /downloads (install-agent.sh fetches it) ------------
# Built here, static, as `make -C agent dist` builds it; the other services get an empty folder.
FROM golang:${GO_VERSION}-bookworm AS agent
ARG SERVICE
ARG GPULAB_VERSION=0.0.0-dev
ARG GPULAB_COMMIT=unknown
WORKDIR /src/agent
COPY agent/ ./
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    if [ "${SERVICE}" = gateway ]; then make dist VERSION="${GPULAB_VERSION}" COMMIT="${GPULAB_COMMIT}"; \
    else mkdir -p dist; fi

# ---- build: resolve from uv.lock into /app/.venv ------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "build arg SERVICE is required (identity, pki, ...)" >&2; exit 1; }

COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app

# Third-party dependencies first, from the manifests only: this layer is reused until uv.lock or
# a pyproject.toml changes, not on every source edit. uv needs every workspace member's manifest
# to read the workspace, even those this service does not install: one COPY per member of
# pyproject.toml's [tool.uv.workspace] (tests/test_images.py compares), not `COPY --parents`, which
# older Dockerfile frontends and buildah refuse.
COPY pyproject.toml uv.lock ./
COPY libs/gpulab-core/pyproject.toml libs/gpulab-core/
COPY libs/gpulab-proto/pyproject.toml libs/gpulab-proto/
COPY tools/devstack/pyproject.toml tools/devstack/
COPY services/identity/pyproject.toml services/identity/
COPY services/pki/pyproject.toml services/pki/
COPY services/inventory/pyproject.toml services/inventory/
COPY services/scheduler/pyproject.toml services/scheduler/
COPY services/notify/pyproject.toml services/notify/
COPY services/gateway/pyproject.toml services/gateway/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package "gpulab-${SERVICE}"

# Then gpulab's own code: the shared libs and this one service, nothing of the others.
COPY libs/ libs/
COPY services/${SERVICE}/ services/${SERVICE}/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package "gpulab-${SERVICE}" \
 && python -m compileall -q libs services
# Workspace members stay editable installs at /app/...: each service finds its alembic.ini and
# migrations/ beside its src/ (gpulab_core.migrations), so the runtime keeps the same tree.
# UV_COMPILE_BYTECODE covers site-packages only; compileall does gpulab's own sources, because
# the containers run with a read-only root filesystem and could not cache bytecode themselves.

# ---- runtime: the interpreter, the venv and the sources; no uv, no compilers ---------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ARG SERVICE

# A fixed, unprivileged uid/gid so volume ownership is predictable across rebuilds.
RUN groupadd --system --gid 10001 gpulab \
 && useradd --system --uid 10001 --gid gpulab --no-create-home --shell /usr/sbin/nologin gpulab \
 && mkdir -p /var/lib/gpulab \
 && chown gpulab:gpulab /var/lib/gpulab
# (/var/lib/gpulab: a new named volume mounted there, e.g. pki's, inherits this ownership.)

# Owned by root and read-only to the service: code is not writable by the process that runs it.
COPY --from=build /app /app
# The gateway's GPULAB_DOWNLOADS_DIR default (agent/dist, from WORKDIR /app); empty elsewhere.
COPY --from=agent /src/agent/dist /app/agent/dist

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GPULAB_SERVICE=${SERVICE}
WORKDIR /app
USER 10001:10001

# compose.yaml and the Kubernetes manifests set the command (service or `migrate`); this default
# runs the service itself.
CMD ["sh", "-c", "exec python -m \"gpulab_${GPULAB_SERVICE}\""]
