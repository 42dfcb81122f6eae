"""Stopping background tasks: a stop must end even when a task drops its first cancellation."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from gpulab_core.runtime import cancel_and_wait


async def _drops_one_cancel(started: asyncio.Event) -> None:
    """Behaves like a loop around Python 3.11's `asyncio.wait_for` when the cancellation lands in the
    iteration its inner await completes in: the first CancelledError never reaches the loop."""
    started.set()
    dropped = False
    while True:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if dropped:
                raise
            dropped = True  # swallowed once; the loop goes on


async def test_a_task_that_drops_its_first_cancellation_still_stops() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(_drops_one_cancel(started))
    await started.wait()

    # One cancel is not enough: the task is still running afterwards.
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()

    began = time.monotonic()
    await cancel_and_wait([task], every_s=0.05, limit_s=5)
    assert task.cancelled()
    assert time.monotonic() - began < 2


async def test_a_task_that_never_stops_is_named_and_left_after_the_limit(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                if release.is_set():
                    raise

    task = asyncio.create_task(stubborn(), name="svc:stubborn")
    await asyncio.sleep(0)
    began = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="gpulab_core.runtime"):
        await cancel_and_wait([task], every_s=0.05, limit_s=0.3)
    assert time.monotonic() - began < 2
    assert not task.done()
    assert "svc:stubborn did not stop within" in caplog.text

    release.set()  # leave nothing running for the tests after this one
    await cancel_and_wait([task], limit_s=1)
    assert task.cancelled()


async def test_tasks_that_end_normally_or_with_an_error_are_waited_for(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    ok = asyncio.create_task(asyncio.sleep(0))
    bad = asyncio.create_task(fails(), name="svc:fails")
    await asyncio.sleep(0.01)
    with caplog.at_level(logging.WARNING, logger="gpulab_core.runtime"):
        await cancel_and_wait([ok, bad], limit_s=1)
    assert ok.done()
    assert bad.done()
    assert "svc:fails ended with RuntimeError('boom')" in caplog.text
