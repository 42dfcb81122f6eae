"""The pure rules: the accept link, the retry schedule, the recipient check; and the migration matches the models."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_notify.deliveries import models as _models  # noqa: F401  (registers the tables)
from gpulab_notify.deliveries.messages import accept_link, check_recipient
from gpulab_notify.deliveries.service import RetryPolicy
from gpulab_notify.models import SCHEMA, metadata


@pytest.mark.parametrize(
    ("public_url", "token", "link"),
    [
        ("https://lab.example.org", "abc", "https://lab.example.org/invite/abc"),
        ("https://lab.example.org/", "abc", "https://lab.example.org/invite/abc"),
        ("https://example.org/gpulab/", "a/b+c=?d#e%", "https://example.org/gpulab/invite/a%2Fb%2Bc%3D%3Fd%23e%25"),
    ],
)
def test_accept_link_is_the_web_apps_invite_page_with_the_token_as_one_segment(
    public_url: str, token: str, link: str
) -> None:
    assert accept_link(public_url, token) == link


def test_backoff_doubles_up_to_its_cap_and_gives_up_at_either_limit() -> None:
    policy = RetryPolicy(initial_s=5, max_s=300, max_attempts=300, give_up_after_s=86400)
    delays = [policy.delay_s(n) for n in range(1, 10)]
    for delay, nominal in zip(delays, [5, 10, 20, 40, 80, 160, 300, 300, 300], strict=True):
        assert 0.8 * nominal <= delay <= nominal
    assert policy.delay_s(10_000) <= 300
    assert not policy.exhausted(attempts=299, age_s=86399)
    assert policy.exhausted(attempts=300, age_s=10)
    assert policy.exhausted(attempts=3, age_s=86400)


@pytest.mark.parametrize(
    "address", ["a@b.example, c@d.example", "Eve <eve@example.org>", "a@b.example\r\nBcc: x@y", "no-at-sign", "a@@b"]
)
def test_an_address_that_could_name_more_than_one_recipient_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="not a single mail address"):
        check_recipient(address)


async def test_the_migration_creates_exactly_what_the_models_declare(engine: AsyncEngine) -> None:
    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        if type_ == "schema":
            return name == SCHEMA
        return not (type_ == "table" and name == "alembic_version")  # Alembic's, in no model

    def diff(conn: Connection) -> list[Any]:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": True,
                "include_name": include_name,
                "compare_type": True,
            },
        )
        return list(compare_metadata(ctx, metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []
