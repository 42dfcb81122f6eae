"""The registry of mails (deliveries/kinds.py): what the running stream and the stored deliveries rely
on stays put, and the freshness rules hold at both moments they are checked."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from gpulab_core.contracts import operations as ops
from gpulab_core.contracts.inventory import NodeOnlineEvent
from gpulab_core.contracts.scheduler import AssignmentExpiring, AssignmentFailed
from gpulab_notify.deliveries.kinds import BY_NAME, KINDS, Envelope, Undeliverable, consumers, subjects

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def envelope() -> Envelope:
    return Envelope(
        recipient="admin@example.org",
        mail_id=uuid.UUID(int=1),
        event_id=uuid.UUID(int=2),
        created_at=NOW,
        public_url="https://lab.example.org/",
        sender="gpulab <noreply@lab.example.org>",
        invite_seal_key="unused",
    )


def test_the_consumers_keep_the_names_and_filter_subjects_the_running_stream_knows() -> None:
    found = {durable: subjects(kinds) for durable, kinds in consumers().items()}
    assert found == {
        "mail": ["identity.user_invited"],
        "node-mail": [
            "inventory.node_offline",
            "inventory.node_online",
            "scheduler.assignment_failed",
            "scheduler.request_submitted",
        ],
        "assignment-mail": [
            "scheduler.assignment_created",
            "scheduler.assignment_expiring",
            "scheduler.assignment_ended",
            "scheduler.request_granted",
            "scheduler.request_denied",
        ],
    }
    # notify's NATS identity may create and read only these (natsauth).
    assert set(found) <= set(ops.CONSUMERS[ops.NOTIFY])


def test_every_kind_keeps_the_name_its_stored_deliveries_carry() -> None:
    assert [kind.name for kind in KINDS] == [
        "invite",
        "node_offline",
        "node_online",
        "assignment_failed",
        "assignment_created",
        "assignment_expiring",
        "assignment_ended",
        "request_granted",
        "request_denied",
        "request_needs_approval",
    ]
    assert len(BY_NAME) == len(KINDS)


def test_a_reminder_past_the_end_is_not_recorded_and_a_recorded_one_is_not_sent_late() -> None:
    kind = BY_NAME["assignment_expiring"]
    data = AssignmentExpiring(
        assignment_id=uuid.uuid4(),
        user_id=uuid.uuid4(),
        user_email="alice@example.org",
        node_hostname="gpu-01",
        expires_at=NOW + timedelta(hours=24),
    ).model_dump(mode="json")
    assert kind.asked(data, NOW) is not None
    assert kind.asked(data, NOW + timedelta(hours=25)) is None
    assert "your GPUs on gpu-01 end in about 24 h" in str(kind.render(data, envelope(), NOW)["Subject"])
    with pytest.raises(Undeliverable, match="ended before its reminder"):
        kind.render(data, envelope(), NOW + timedelta(hours=25))


def test_a_first_contact_asks_for_no_mail_and_coming_back_from_offline_does() -> None:
    kind = BY_NAME["node_online"]
    event = NodeOnlineEvent(node_id=uuid.UUID(int=20), hostname="gpu-01", previous_status="pending", at=NOW)
    assert kind.asked(event.model_dump(mode="json"), NOW) is None
    back = event.model_copy(update={"previous_status": "offline", "offline_since": NOW - timedelta(hours=1)})
    assert kind.asked(back.model_dump(mode="json"), NOW) is not None


def test_the_admins_alerts_are_written_as_they_always_were() -> None:
    node_id = uuid.UUID(int=20)
    online = NodeOnlineEvent(
        node_id=node_id, hostname="gpu-01", previous_status="offline", at=NOW + timedelta(hours=1), offline_since=NOW
    )
    msg = BY_NAME["node_online"].render(online.model_dump(mode="json"), envelope(), NOW)
    assert msg["Subject"] == "[gpulab] node gpu-01 is back online"
    assert msg.get_content() == (
        "The node gpu-01 is sending heartbeats again and is back online.\n\n"
        "Host name:      gpu-01\n"
        f"Node id:        {node_id}\n"
        "Offline since:  2026-12-01T09:30:00Z\n"
        "Back online:    2026-12-01T10:30:00Z\n\n"
        f"https://lab.example.org/nodes/{node_id}\n\n"
        "You receive this mail because you are an administrator of gpulab.\n"
    )
    failed = AssignmentFailed(
        assignment_id=uuid.UUID(int=30),
        user_id=uuid.UUID(int=31),
        user_email="alice@example.org",
        node_id=node_id,
        node_hostname="gpu-01",
        linux_username="alice",
        message=None,
        reported_at=NOW,
    )
    msg = BY_NAME["assignment_failed"].render(failed.model_dump(mode="json"), envelope(), NOW)
    assert msg["Subject"] == "[gpulab] node gpu-01 could not set up access for alice"
    assert msg.get_content() == (
        "The node gpu-01 could not apply an assignment: its user cannot log in until this is fixed.\n\n"
        "Node:           gpu-01\n"
        f"Node id:        {node_id}\n"
        f"Assignment:     {failed.assignment_id}\n"
        "User:           alice@example.org\n"
        "Linux user:     alice\n"
        "Reported at:    2026-12-01T09:30:00Z\n"
        "Node's reason:  (the node gave no reason)\n\n"
        "The node tries again at every heartbeat; you get this mail once per failure.\n\n"
        "https://lab.example.org/assignments\n"
        f"https://lab.example.org/nodes/{node_id}\n\n"
        "You receive this mail because you are an administrator of gpulab.\n"
    )
