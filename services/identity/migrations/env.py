from gpulab_core.migrations import run_env
from gpulab_identity.models import SCHEMA, metadata

run_env(SCHEMA, metadata)
