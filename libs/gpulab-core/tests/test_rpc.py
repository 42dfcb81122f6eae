"""The NATS RPC layer against a real NATS server: envelope, error codes, bad input, replicas."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from nats.aio.client import Client as NATS
from pydantic import BaseModel, Field

from gpulab_core import errors
from gpulab_core.rpc import Endpoint, RpcClient, RpcServer, subject


class Greet(BaseModel):
    name: str = Field(min_length=1)
    times: int = 1


class Reply(BaseModel):
    text: str


async def greet(req: Greet) -> Reply:
    return Reply(text=" ".join([f"hello {req.name}"] * req.times))


async def refuse(_req: Greet) -> Reply:
    raise errors.Conflict("already greeted", details={"who": "x"})


async def crash(_req: Greet) -> Reply:
    raise RuntimeError("secret internal detail")


async def database_restarting(_req: Greet) -> Reply:
    # What asyncpg raises while PostgreSQL recovers after a crash (SQLSTATE 57P03).
    raise asyncpg.CannotConnectNowError("the database system is in recovery mode")


async def slow(_req: Greet) -> Reply:
    await asyncio.sleep(1.0)
    return Reply(text="slow")


def unique_name() -> str:
    return "t" + uuid.uuid4().hex[:10]


async def start_server(nc: NATS, name: str, instance_tag: str = "") -> RpcServer:
    server = RpcServer(nc, name, "1.2.3")
    for op, fn in [
        ("greet", greet),
        ("refuse", refuse),
        ("crash", crash),
        ("slow", slow),
        ("database_restarting", database_restarting),
    ]:
        server.add(Endpoint(op, Greet, fn))

    async def whoami(_req: Greet) -> dict[str, str]:
        return {"instance": instance_tag}

    server.add(Endpoint("whoami", Greet, whoami))
    await server.start()
    return server


@pytest.fixture
async def svc(nc: NATS) -> AsyncIterator[str]:
    name = unique_name()
    server = await start_server(nc, name)
    yield name
    await server.stop()


async def test_request_is_answered_with_the_ok_envelope(nc: NATS, svc: str) -> None:
    msg = await nc.request(subject(svc, "greet"), b'{"name": "ada", "times": 2}', timeout=5)
    assert json.loads(msg.data) == {"ok": True, "data": {"text": "hello ada hello ada"}}
    assert not (msg.headers or {}).get("Nats-Service-Error")


async def test_the_handler_sees_which_fields_the_caller_set(nc: NATS) -> None:
    class Change(BaseModel):
        name: str | None = None
        note: str | None = None

    name = unique_name()
    server = RpcServer(nc, name, "1.2.3")

    async def fields_set(req: Change) -> dict[str, list[str]]:
        return {"set": sorted(req.model_fields_set)}

    server.add(Endpoint("change", Change, fields_set))
    await server.start()
    try:
        client = RpcClient(nc)
        assert await client.call(name, "change", Change(name="lab")) == {"set": ["name"]}
        assert await client.call(name, "change", Change(name="lab", note=None)) == {"set": ["name", "note"]}
    finally:
        await server.stop()


async def test_body_that_is_not_json_gets_invalid_request_not_a_crash(nc: NATS, svc: str) -> None:
    msg = await nc.request(subject(svc, "greet"), b"\x00not json{", timeout=5)
    body = json.loads(msg.data)
    assert body["ok"] is False
    assert body["error"]["code"] == "invalid_request"
    assert msg.headers is not None
    assert msg.headers["Nats-Service-Error"] == "invalid_request"
    assert msg.headers["Nats-Service-Error-Code"] == "400"
    # and the service still answers
    again = await nc.request(subject(svc, "greet"), b'{"name": "x"}', timeout=5)
    assert json.loads(again.data)["ok"] is True


@pytest.mark.parametrize(
    "payload",
    [
        b'{"name": 5}',
        b'{"times": 1}',
        b'{"name": ""}',
        b"[1, 2]",
        b'"just a string"',
        b'{"name": "x", "times": "many"}',
    ],
)
async def test_wrong_schema_gets_invalid_request_with_details(nc: NATS, svc: str, payload: bytes) -> None:
    msg = await nc.request(subject(svc, "greet"), payload, timeout=5)
    body = json.loads(msg.data)
    assert body["ok"] is False
    assert body["error"]["code"] == "invalid_request"
    assert body["error"]["details"]["errors"], "says which field is wrong"


async def test_domain_error_keeps_its_code_through_the_client(nc: NATS, svc: str) -> None:
    with pytest.raises(errors.RemoteError) as caught:
        await RpcClient(nc).call(svc, "refuse", {"name": "x"})
    assert caught.value.code == "conflict"
    assert caught.value.message == "already greeted"
    assert caught.value.details == {"who": "x"}


async def test_handler_bug_is_internal_error_without_leaking_details(nc: NATS, svc: str) -> None:
    msg = await nc.request(subject(svc, "crash"), b'{"name": "x"}', timeout=5)
    body = json.loads(msg.data)
    assert body["error"]["code"] == "internal_error"
    assert "secret" not in msg.data.decode()
    assert json.loads((await nc.request(subject(svc, "greet"), b'{"name": "y"}', timeout=5)).data)["ok"]


async def test_a_database_that_is_unreachable_is_unavailable_not_a_bug(nc: NATS, svc: str) -> None:
    """The caller may try again (the gateway answers 503), where an internal error says it is a bug."""
    with pytest.raises(errors.RemoteError) as caught:
        await RpcClient(nc).call(svc, "database_restarting", {"name": "x"})
    assert caught.value.code == errors.UNAVAILABLE
    assert caught.value.message == "the database is unreachable; try again"


async def test_no_running_service_is_unavailable_at_once(nc: NATS) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(errors.Unavailable):
        await RpcClient(nc, timeout_s=5).call(unique_name(), "greet", {"name": "x"})
    assert loop.time() - started < 1.0, "NATS no-responders answers at once, no timeout wait"


async def test_slow_request_does_not_block_others_on_the_same_endpoint(nc: NATS, svc: str) -> None:
    client = RpcClient(nc)
    loop = asyncio.get_running_loop()
    started = loop.time()
    results = await asyncio.gather(*(client.call(svc, "slow", {"name": "x"}) for _ in range(10)))
    assert [r["text"] for r in results] == ["slow"] * 10
    assert loop.time() - started < 3.0, "10 one-second requests ran concurrently"


async def test_replicas_share_requests_in_one_queue_group(nc: NATS) -> None:
    name = unique_name()
    a = await start_server(nc, name, "a")
    b = await start_server(nc, name, "b")
    try:
        client = RpcClient(nc)
        seen = [(await client.call(name, "whoami", {"name": "x"}))["instance"] for _ in range(60)]
        assert len(seen) == 60, "each request answered exactly once"
        assert set(seen) == {"a", "b"}
        pings = await collect(nc, f"$SRV.PING.{name}", expect=2)
        assert {p["name"] for p in pings} == {name}
        assert len({p["id"] for p in pings}) == 2
        assert {p["version"] for p in pings} == {"1.2.3"}
    finally:
        await a.stop()
        await b.stop()


async def collect(nc: NATS, subj: str, expect: int, timeout_s: float = 2.0) -> list[dict[str, str]]:
    """All replies to one request (micro's PING is answered by every instance)."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(subj, b"", reply=inbox)
    replies: list[dict[str, str]] = []
    try:
        while len(replies) < expect:
            msg = await sub.next_msg(timeout=timeout_s)
            replies.append(json.loads(msg.data))
    finally:
        await sub.unsubscribe()
    return replies
