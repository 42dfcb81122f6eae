"""The fake NetBird server and an HTTP client as fixtures, with the token and groups it knows: shared by
the netbird provider's tests and the fake's own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from .fake_netbird import FakeNetBird

TOKEN = "nbp_S3cretT0kenThatMustNeverShowUp0123456"
GROUP = "ch8i4ug6lnn4g9hqv7m0"
ALL_GROUP = "ch8i4ug6lnn4g9hqv7a1"


@pytest.fixture(scope="module")
async def netbird_server() -> AsyncIterator[FakeNetBird]:
    fake = FakeNetBird(tokens=set())
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def netbird(netbird_server: FakeNetBird) -> FakeNetBird:
    netbird_server.reset(tokens={TOKEN}, groups={GROUP: "gpulab-users", ALL_GROUP: "All"})
    return netbird_server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client
