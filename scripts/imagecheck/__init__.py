"""Builds gpulab's images and checks them, on a machine with buildah and no Docker engine.

    sudo .venv/bin/python -m scripts.imagecheck [--stand-in-bases] [--services identity,gateway]

For each of the six Python services, `deploy/docker/python.Dockerfile` is built with `buildah bud`
(chroot isolation, vfs storage: no daemon, no overlay mounts), and each image is checked:
it runs as uid 10001, has no uv, pip, compiler or Go in its final layer, cannot write its own code,
and its command line answers `--help`; the gateway's image carries the static agent for `/downloads`.
Then the whole system runs from the images: an embedded PostgreSQL and NATS on this machine (the
tests' servers), each image's `migrate` against its own database role, all six services served from
their images on the host's network, until the gateway's `/api/v1/healthz` says every service is
`ok` and `/downloads/gpulab-agent-linux-amd64` is the agent built in the image.

`--stand-in-bases`: where the public base images cannot be pulled (a machine that reaches package
registries only), local stand-ins are made under the same names first: `python:3.11-slim-bookworm`
from Debian's archive (debootstrap), `ghcr.io/astral-sh/uv` with this checkout's uv, and
`golang:1.26-bookworm` with this machine's Go. They are not the published images (Python 3.11 from
Debian instead of python.org's build), so sizes differ; what is checked is gpulab's own Dockerfile.
Not part of `make test`: it needs root, buildah and minutes (docs/setup-guide.md, "Images").
"""
