"""Issue 12, finding 2: the internet-facing gateway holds no database credentials at all."""

from __future__ import annotations

import subprocess
import sys

from gpulab_gateway.config import Settings


def test_the_gateway_has_no_database_setting_and_refuses_to_start_with_one() -> None:
    assert not {"database_url", "migration_database_url", "db_pool_size"} & set(Settings.model_fields)
    password = "s3cr3t-db-password"
    done = subprocess.run(
        [sys.executable, "-m", "gpulab_gateway"],
        env={"PATH": "/usr/bin:/bin", "GPULAB_DATABASE_URL": f"postgresql://gpulab_identity:{password}@db/gpulab"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "gpulab-gateway: invalid setting GPULAB_DATABASE_URL given to the gateway: "
        "it holds no database credentials; remove it"
    ]
