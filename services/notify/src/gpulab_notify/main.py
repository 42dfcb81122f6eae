"""Wiring only: the service spec and its command line."""

from pathlib import Path

from gpulab_core import cli as core_cli
from gpulab_core.runtime import ServiceSpec
from gpulab_notify import __version__
from gpulab_notify.config import Settings
from gpulab_notify.models import tables

SERVICE_DIR = Path(__file__).resolve().parents[2]

spec = ServiceSpec(name="notify", version=__version__, settings_cls=Settings, tables=tables)


def cli() -> int:
    return core_cli.main(spec, SERVICE_DIR)
