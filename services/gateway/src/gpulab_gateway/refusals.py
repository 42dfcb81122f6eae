"""Requests refused with 403 (a failed CSRF check, a user at an admin route) go to the audit log.

identity owns the log and bounds what it writes (GPULAB_AUDIT_REFUSALS_*_PER_MINUTE, shared by every
replica). The gateway reports without making the caller wait, and sends at most
GPULAB_AUDIT_REFUSAL_REPORTS_PER_MINUTE (default REPORTS_PER_MINUTE) a minute itself, so that a
flood of refusals does not become a flood of requests to identity either.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from fastapi import Request
from prometheus_client import Counter

from gpulab_core.contracts import identity as contract
from gpulab_core.rpc import RpcClient
from gpulab_gateway.middleware import route_template

log = logging.getLogger(__name__)

# Twice identity's default bound on the rows it writes a minute (audit_refusals_per_minute = 60):
# what identity would drop anyway is not sent, with room for identity's bound to be raised a little.
REPORTS_PER_MINUTE = 120
WINDOW_S = 60.0

NOT_REPORTED = Counter(
    "gpulab_gateway_refusals_not_reported_total",
    "Refused requests not reported to the audit log: over REPORTS_PER_MINUTE, or identity unreachable",
    ["why"],
)


class RefusalReporter:
    def __init__(self, rpc: RpcClient, per_minute: int = REPORTS_PER_MINUTE) -> None:
        self._rpc = rpc
        self._per_minute = per_minute
        self._window_start = time.monotonic()
        self._sent = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def report(self, request: Request, code: contract.RefusalCode, actor_id: uuid.UUID | None) -> None:
        now = time.monotonic()
        if now - self._window_start >= WINDOW_S:
            self._window_start, self._sent = now, 0
        if self._sent >= self._per_minute:
            NOT_REPORTED.labels("bound").inc()
            return
        self._sent += 1
        # The template (`/api/v1/users/{id}`), never the path itself: paths carry invite tokens.
        params = request.scope.get("path_params")
        route = route_template(request.scope["path"], params if isinstance(params, dict) else {})
        req = contract.RecordRefusalRequest(
            code=code,
            method=request.method[:10],
            route=route[:200],
            actor_id=actor_id,
            client_ip=request.client.host[:64] if request.client is not None else None,
        )
        task = asyncio.create_task(self._send(req))
        self._tasks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._tasks.discard)

    async def _send(self, req: contract.RecordRefusalRequest) -> None:
        try:
            await self._rpc.call(contract.SERVICE, "audit.record_refusal", req)
        except Exception as exc:  # the refusal stands either way; only its record is missing
            NOT_REPORTED.labels("unavailable").inc()
            log.warning("a refused %s %s was not audited: %s", req.method, req.route, exc)
