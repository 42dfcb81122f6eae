from gpulab_core.migrations import run_env
from gpulab_notify.deliveries import models as _deliveries  # noqa: F401  (registers its tables on metadata)
from gpulab_notify.models import SCHEMA, metadata

run_env(SCHEMA, metadata)
