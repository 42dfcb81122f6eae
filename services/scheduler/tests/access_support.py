"""Shared by the access provider tests: the assignment an access is asked for."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from gpulab_scheduler.access import AccessTarget


def target(**changes: Any) -> AccessTarget:
    base = AccessTarget(
        assignment_id=uuid.UUID("0b7c6f0e-4a63-4d38-9a55-0d7f2f3b8c11"),
        user_email="alice@example.org",
        linux_username="alice",
        node_hostname="gpu-node-1.lab",
        management_ip="10.20.0.5",
        ssh_port=22,
        expires_at=datetime.now(UTC) + timedelta(days=3),
    )
    return dataclasses.replace(base, **changes)
