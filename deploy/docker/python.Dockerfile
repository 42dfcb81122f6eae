# syntax=docker/dockerfile:1
#
# One Dockerfile for every gpulab Python service; compose.yaml builds it once per service:
#   docker build -f deploy/docker/python.Dockerfile --build-arg SERVICE=identity -t gpulab/identity:dev .
#
# STATUS: a skeleton, never built yet. No Docker engine runs where it was written, so nothing
# below has been executed; the image issue will build it, run it, and fix what this gets wrong.
# Things to confirm then: `COPY --parents` (Dockerfile frontend >= 1.14), the workspace member
# list matching pyproject.toml, and that `python -m gpulab_<service> migrate` finds
# services/<service>/migrations at the path kept below.

ARG PYTHON_VERSION=3.13
# Pinned like the rest of the toolchain (uv on PyPI); bump both together.
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

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
# to read the workspace, even those this service does not install.
COPY --parents pyproject.toml uv.lock libs/*/pyproject.toml services/*/pyproject.toml tools/*/pyproject.toml ./
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

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GPULAB_SERVICE=${SERVICE}
WORKDIR /app
USER 10001:10001

# compose.yaml and the Kubernetes manifests set the command (service or `migrate`); this default
# runs the service itself.
CMD ["sh", "-c", "exec python -m \"gpulab_${GPULAB_SERVICE}\""]
