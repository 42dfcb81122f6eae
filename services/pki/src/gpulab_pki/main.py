"""Wiring only: the service spec, its setup and its command line."""

from __future__ import annotations

import sys
from pathlib import Path

from gpulab_core import cli as core_cli
from gpulab_core.runtime import Runtime, ServiceSpec
from gpulab_pki import __version__
from gpulab_pki.authority import service as authority
from gpulab_pki.ca import CaKeyError
from gpulab_pki.config import Settings
from gpulab_pki.context import Pki
from gpulab_pki.enrollment.server import EnrollmentServer
from gpulab_pki.handlers import endpoints
from gpulab_pki.models import tables

SERVICE_DIR = Path(__file__).resolve().parents[2]


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, Settings)
    assert runtime.sessions is not None
    ca = await authority.load_or_create(runtime.sessions, settings.passphrase())
    pki = Pki(runtime.sessions, settings, ca)
    runtime.parts["pki"] = pki
    for endpoint in endpoints(pki):
        runtime.add_endpoint(endpoint)
    server = EnrollmentServer(pki)
    await server.start()
    runtime.parts["enrollment"] = server
    runtime.add_task(server.run)
    runtime.on_stop(server.stop)


spec = ServiceSpec(name="pki", version=__version__, settings_cls=Settings, tables=tables, setup=setup)


def cli() -> int:
    try:
        return core_cli.main(spec, SERVICE_DIR)
    except CaKeyError as exc:
        # A wrong or weak passphrase, an insecure passphrase file: one line for the operator, no traceback.
        print(f"gpulab-pki: cannot start: {exc.message}", file=sys.stderr)  # noqa: T201
        return 1
