"""Each process's NATS identity and what it may publish and subscribe, derived from the table of
operations (gpulab_core.contracts.operations) and nothing else (docs/adr/0016).

A service may:
- request an operation only if the table lists it among the operation's callers, and serve only its
  own operations (plus micro's `$SRV.PING|INFO|STATS` discovery of itself);
- answer a request only on the reply subject of a request it received (`allow_responses`), so it
  cannot publish into another process's inbox; its own inboxes are `_INBOX.<service>.>`, which no
  other identity may read;
- publish events only on `gpulab.events.<service>.>` (nobody else can forge them), and its own core
  notices on `gpulab.<service>.>`;
- use the JetStream API only to read the stream's info and to create, read and ack its own listed
  durable consumers. Creating and configuring the stream belongs to the setup step's identity
  (`setup`), which may create, update and read the stream, and nothing else: no identity may delete
  or purge it.

`python -m gpulab_core.natsauth <file>` writes the server's `authorization` block for the deployment
(deploy/nats/users.conf: passwords from the container's environment); the local run and the tests
write theirs with generated passwords (gpulab_devstack.servers).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from gpulab_core.contracts import operations as ops
from gpulab_core.events import EVENT_SUBJECT_PREFIX, STREAM

SETUP = "setup"  # the identity of the step that creates and configures the event stream
IDENTITIES = (*ops.SERVICES, SETUP)
JS_API = "$JS.API"
JS_ACK = "$JS.ACK"


def inbox_prefix(identity: str) -> str:
    """Where this identity's replies arrive; only it may subscribe there."""
    return f"_INBOX.{identity}"


def password_variable(identity: str) -> str:
    """The environment variable that holds this identity's password in the deployment."""
    return f"GPULAB_NATS_{identity.upper()}_PASSWORD"


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # Answers go to the reply subject of a request received, once, within a short time (nats-server).
    allow_responses: bool


def consumer_name(service: str, durable: str) -> str:
    return f"{service}-{durable}"


def service_permissions(service: str) -> Permissions:
    publish: list[str] = [op.subject for op in ops.called_by(service)]
    subscribe: list[str] = [op.subject for op in ops.served_by(service)]
    subscribe += [inbox_prefix(service) + ".>"]
    # micro's discovery: all services, services of this name, this very instance.
    subscribe += ["$SRV.PING", "$SRV.INFO", "$SRV.STATS"]
    subscribe += [f"$SRV.{verb}.{service}" for verb in ("PING", "INFO", "STATS")]
    subscribe += [f"$SRV.{verb}.{service}.*" for verb in ("PING", "INFO", "STATS")]
    own = f"gpulab.{service}.>"  # the service's own core notices between its replicas
    publish.append(own)
    subscribe.append(own)
    subscribe += [f"{EVENT_SUBJECT_PREFIX}.{t}" for t in ops.EVENT_SUBSCRIPTIONS.get(service, ())]
    if service != ops.GATEWAY:  # the gateway keeps no outbox: it emits nothing
        publish.append(f"{EVENT_SUBJECT_PREFIX}.{service}.>")
        publish.append(f"{JS_API}.STREAM.INFO.{STREAM}")
    for durable in ops.CONSUMERS.get(service, ()):
        name = consumer_name(service, durable)
        publish += [
            f"{JS_API}.CONSUMER.DURABLE.CREATE.{STREAM}.{name}",
            f"{JS_API}.CONSUMER.INFO.{STREAM}.{name}",
            f"{JS_API}.CONSUMER.MSG.NEXT.{STREAM}.{name}",
            f"{JS_ACK}.{STREAM}.{name}.>",
        ]
    return Permissions(tuple(publish), tuple(subscribe), allow_responses=True)


def setup_permissions() -> Permissions:
    verbs = ("INFO", "CREATE", "UPDATE")
    return Permissions(
        tuple(f"{JS_API}.STREAM.{verb}.{STREAM}" for verb in verbs),
        (inbox_prefix(SETUP) + ".>",),
        allow_responses=False,
    )


def permissions(identity: str) -> Permissions:
    return setup_permissions() if identity == SETUP else service_permissions(identity)


def _quoted(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def user_block(identity: str, password: str, *, literal: bool, indent: str = "    ") -> str:
    """One entry of nats-server's `authorization.users`: the password as a quoted literal, or (not
    `literal`) as a `$VARIABLE` nats-server reads from its environment."""
    perms = permissions(identity)
    pw = json.dumps(password) if literal else f"${password}"
    lines = [
        f"{indent}{{",
        f"{indent}  user: {json.dumps(identity)}",
        f"{indent}  password: {pw}",
        f"{indent}  permissions: {{",
        f"{indent}    publish: {{ allow: {_quoted(perms.publish)} }}",
        f"{indent}    subscribe: {{ allow: {_quoted(perms.subscribe)} }}",
    ]
    if perms.allow_responses:
        lines.append(f"{indent}    allow_responses: true")
    lines += [f"{indent}  }}", f"{indent}}}"]
    return "\n".join(lines)


def authorization_block(
    users: Mapping[str, str], *, literal: bool, full_access: Mapping[str, str] | None = None
) -> str:
    """nats-server's `authorization { users = [...] }` for `users` (identity -> password, or the
    name of the variable holding it when not `literal`). `full_access` users (the tests' own
    operator, never a deployment's) may do anything."""
    entries = [user_block(identity, secret, literal=literal) for identity, secret in users.items()]
    for name, secret in (full_access or {}).items():
        entries.append(f"    {{ user: {json.dumps(name)}, password: {json.dumps(secret)} }}")
    return "authorization {\n  users = [\n" + "\n".join(entries) + "\n  ]\n}\n"


DEPLOY_HEADER = """# GENERATED by `python -m gpulab_core.natsauth deploy/nats/users.conf` from the table of operations
# (libs/gpulab-core/src/gpulab_core/contracts/operations.py); never edit by hand (a test compares).
# One NATS identity per service, each allowed only the subjects it owns or calls (docs/adr/0016).
# The passwords come from the nats container's environment (compose.yaml).
"""


def deployment_conf() -> str:
    return DEPLOY_HEADER + authorization_block({i: password_variable(i) for i in IDENTITIES}, literal=False)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m gpulab_core.natsauth <users.conf>", file=sys.stderr)  # noqa: T201
        return 2
    with open(argv[0], "w", encoding="utf-8") as out:
        out.write(deployment_conf())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
