"""A node's identity does not outlive a new one: every new enrollment token, and every enrollment, ends
the node's earlier certificates (issue 12, finding 4); each enrollment and renewal names the address it
came from, for the audit log."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from cryptography import x509
from gpulab.agent.v1 import enrollment_pb2 as pb
from gpulab.agent.v1 import enrollment_pb2_grpc as pb_grpc
from nats.aio.msg import Msg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from gpulab_core.contracts import pki as c
from gpulab_core.events import Event
from gpulab_devstack.testing import wait_until
from gpulab_pki.ca import serial_hex

from .conftest import PkiService, make_csr, new_key
from .test_renewal import renew, renew_refused


class Events:
    """pki's events of one node, as the stream's subscribers get them."""

    def __init__(self, node_id: uuid.UUID) -> None:
        self.node_id = str(node_id)
        self.seen: list[Event] = []

    async def on_message(self, msg: Msg) -> None:
        event = Event.model_validate_json(msg.data)
        if event.data.get("node_id") == self.node_id:
            self.seen.append(event)

    async def of_type(self, event_type: str, count: int = 1) -> list[dict[str, Any]]:
        def found() -> list[dict[str, Any]]:
            return [e.data for e in self.seen if e.type == event_type]

        await wait_until(lambda: len(found()) >= count, timeout_s=20)
        return found()


@pytest.fixture
async def events(pki_short: PkiService) -> AsyncIterator[Events]:
    """A new node's events, from now on."""
    seen = Events(uuid.uuid4())
    sub = await pki_short.runtime.nc.subscribe("gpulab.events.pki.>", cb=seen.on_message)
    yield seen
    await sub.unsubscribe()


def serial_of(pem: bytes | str) -> str:
    return serial_hex(x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem))


async def enroll_with(service: PkiService, token: str) -> tuple[Any, bytes]:
    key = new_key()
    async with service.channel() as channel:
        reply = await pb_grpc.EnrollmentStub(channel).Enroll(pb.EnrollRequest(token=token, csr_pem=make_csr(key)))
    return key, reply.certificate_pem.encode()


async def test_the_first_certificate_is_refused_after_a_re_enroll(pki_short: PkiService, events: Events) -> None:
    node_id, first_key, first_cert = await enrolled_as(pki_short, events)
    # The admin makes a new token for the node: the certificate in use stops working at once.
    token = (await pki_short.call("tokens.issue", {"node_id": str(node_id)}))["token"]
    err = await renew_refused(pki_short, first_key, first_cert)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "revoked" in (err.details() or "")
    (revoked,) = await events.of_type(c.CERTIFICATES_REVOKED)
    assert (revoked["serials"], revoked["reason"]) == ([serial_of(first_cert)], "new_token")
    # The node enrolls again: the new certificate works, the first still does not.
    second_key, second_cert = await enroll_with(pki_short, token)
    renewed = await renew(pki_short, second_key, second_cert, make_csr(new_key()))
    assert renewed.certificate_pem
    err = await renew_refused(pki_short, first_key, first_cert)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def enrolled_as(service: PkiService, events: Events) -> tuple[uuid.UUID, Any, bytes]:
    """Enroll the node `events` follows."""
    node_id = uuid.UUID(events.node_id)
    token = (await service.call("tokens.issue", {"node_id": str(node_id)}))["token"]
    key, cert = await enroll_with(service, token)
    return node_id, key, cert


async def test_an_enrollment_revokes_the_certificates_an_older_token_left_alive(
    pki_short: PkiService, events: Events, db: AsyncEngine
) -> None:
    node_id, first_key, first_cert = await enrolled_as(pki_short, events)
    token = (await pki_short.call("tokens.issue", {"node_id": str(node_id)}))["token"]
    # As if the token had been made before new tokens revoked: the first certificate still valid.
    async with db.begin() as conn:
        await conn.execute(
            text("UPDATE pki.certificates SET revoked_at = NULL WHERE serial = :s"), {"s": serial_of(first_cert)}
        )
    await enroll_with(pki_short, token)
    async with db.connect() as conn:
        revoked_at = await conn.scalar(
            text("SELECT revoked_at FROM pki.certificates WHERE serial = :s"), {"s": serial_of(first_cert)}
        )
    assert revoked_at is not None
    reasons = [e["reason"] for e in await events.of_type(c.CERTIFICATES_REVOKED, 2)]
    assert reasons == ["new_token", "reenrolled"]
    err = await renew_refused(pki_short, first_key, first_cert)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_enrollment_and_renewal_events_carry_the_address_they_came_from(
    pki_short: PkiService, events: Events
) -> None:
    _node_id, key, cert = await enrolled_as(pki_short, events)
    await renew(pki_short, key, cert, make_csr(new_key()))
    (enrolled_event,) = await events.of_type(c.NODE_ENROLLED)
    (renewed_event,) = await events.of_type(c.CERTIFICATE_RENEWED)
    assert enrolled_event["address"] == "127.0.0.1"
    assert renewed_event["address"] == "127.0.0.1"
    assert renewed_event["previous_serial"] == serial_of(cert)


async def test_a_new_token_for_a_node_never_enrolled_revokes_nothing_and_says_nothing(
    pki_short: PkiService, events: Events
) -> None:
    await pki_short.call("tokens.issue", {"node_id": events.node_id})
    await pki_short.call("tokens.issue", {"node_id": events.node_id})
    await events.of_type(c.ENROLLMENT_TOKEN_ISSUED, 2)
    await asyncio.sleep(0.5)
    assert [e.type for e in events.seen] == [c.ENROLLMENT_TOKEN_ISSUED] * 2


async def test_two_enrollments_racing_a_revocation_leave_no_live_certificate_behind(
    pki_short: PkiService, events: Events
) -> None:
    """The node's lock is taken before the token's row: an enrollment and a delete at once neither
    deadlock nor leave the new certificate alive once the delete has committed after it."""
    node_id = uuid.UUID(events.node_id)
    token = (await pki_short.call("tokens.issue", {"node_id": str(node_id)}))["token"]
    enrolling = asyncio.create_task(enroll_with(pki_short, token))
    revoking = asyncio.create_task(pki_short.call("certs.revoke_node", {"node_id": str(node_id)}))
    results = await asyncio.gather(enrolling, revoking, return_exceptions=True)
    revoked = results[1]
    assert isinstance(revoked, dict), revoked
    if isinstance(results[0], BaseException):
        # The revocation came first: the token was gone.
        assert isinstance(results[0], grpc.aio.AioRpcError), results[0]
        assert results[0].code() == grpc.StatusCode.UNAUTHENTICATED
        return
    key, cert = results[0]
    # The enrollment came first: the revocation that followed ended its certificate.
    assert serial_of(cert) in revoked["revoked_serials"]
    err = await renew_refused(pki_short, key, cert)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
