"""One request per route of the authorization matrix, valid for its caller: what each sends, and
which resource it names (tests/test_authorization_matrix.py)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .gateway_support import PASSWORD, make_admin, unique_email
from .matrix_world import Person, World, environment_body, new_public_key


@dataclass
class Call:
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None
    query: dict[str, str] = field(default_factory=dict)


# Builds a request for `me` (the caller, or the user when the caller is anonymous). `allowed`: the
# request is expected to succeed, so what it destroys is made for it first; a refused one aims at
# the world's own resources, which must then be unchanged.
Builder = Callable[[World, Person, bool], Awaitable[Call]]


async def nothing(_w: World, _me: Person, _allowed: bool) -> Call:
    return Call()


async def login(_w: World, me: Person, _allowed: bool) -> Call:
    return Call(body={"email": me.email, "password": PASSWORD})


async def invite_lookup(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"token": w.lookup_token})


async def invite_accept(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"token": await w.invite_token()}, {"name": "Grace", "password": PASSWORD})


async def new_invite(_w: World, _me: Person, _allowed: bool) -> Call:
    return Call(body={"email": unique_email("invited"), "role": "user"})


async def the_user(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"id": w.user.id})


async def change_user(w: World, _me: Person, allowed: bool) -> Call:
    if not allowed:  # the user making themselves an admin
        return Call({"id": w.user.id}, {"role": "admin"})
    other = unique_email("demoted")
    await make_admin(w.stack, other)
    users = await w.call(w.admin, "GET", "/users?role=admin&limit=500")
    return Call({"id": next(u["id"] for u in users["items"] if u["email"] == other)}, {"role": "user"})


async def new_key(_w: World, _me: Person, _allowed: bool) -> Call:
    return Call(body={"public_key": new_public_key()})


async def a_key(w: World, me: Person, allowed: bool) -> Call:
    owner = w.admin if me.email == w.admin.email else w.user
    return Call({"id": await w.add_key(owner) if allowed else me.key_id})


async def new_node(_w: World, _me: Person, _allowed: bool) -> Call:
    return Call(body={"hostname": f"gpu-{uuid.uuid4().hex[:8]}", "type": "linux", "management_ip": "10.0.0.7"})


async def the_node(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"id": w.node_id})


async def a_node_to_spend(w: World, _me: Person, allowed: bool) -> Call:
    return Call({"id": await w.pending_node() if allowed else w.node_id})


async def new_environment(_w: World, _me: Person, _allowed: bool) -> Call:
    return Call(body=environment_body())


async def the_environment(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"id": w.environment_id})


async def rename_environment(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"id": w.environment_id}, {"name": f"lab-{uuid.uuid4().hex[:8]}"})


async def an_environment_to_spend(w: World, _me: Person, allowed: bool) -> Call:
    if not allowed:
        return Call({"id": w.environment_id})
    return Call({"id": str((await w.call(w.admin, "POST", "/environments", environment_body()))["id"])})


async def attach(w: World, _me: Person, allowed: bool) -> Call:
    target = await an_environment_to_spend(w, w.admin, allowed) if allowed else Call({"id": w.spare_environment_id})
    return Call(target.params, {"node_id": w.node_id})


async def detach(w: World, _me: Person, allowed: bool) -> Call:
    env = w.environment_id
    if allowed:
        env = str((await w.call(w.admin, "POST", "/environments", environment_body()))["id"])
        await w.call(w.admin, "POST", f"/environments/{env}/nodes", {"node_id": w.node_id})
    return Call({"id": env, "node_id": w.node_id})


async def new_assignment(w: World, _me: Person, _allowed: bool) -> Call:
    return Call(body={"user_id": w.user.id, "environment_id": w.environment_id, "gpus": 1, "placement": "dynamic"})


async def the_assignment(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"id": w.user.assignment_id})


async def an_assignment_to_spend(w: World, _me: Person, allowed: bool) -> Call:
    return Call({"id": await w.assignment_for(w.user) if allowed else w.user.assignment_id})


async def my_assignment(_w: World, me: Person, _allowed: bool) -> Call:
    return Call({"id": me.assignment_id})


async def new_group(_w: World, _me: Person, _allowed: bool) -> Call:
    return Call(body={"name": f"group-{uuid.uuid4().hex[:8]}", "description": "the matrix's"})


async def a_group(w: World, _me: Person, _allowed: bool) -> Call:
    """A group of its own for each request (made before any snapshot): what it changes is its own."""
    made = await w.call(w.admin, "POST", "/groups", {"name": f"group-{uuid.uuid4().hex[:8]}"})
    return Call({"id": str(made["id"])})


async def rename_group(w: World, me: Person, allowed: bool) -> Call:
    return Call((await a_group(w, me, allowed)).params, {"name": f"group-{uuid.uuid4().hex[:8]}"})


async def new_member(w: World, me: Person, allowed: bool) -> Call:
    return Call((await a_group(w, me, allowed)).params, {"user_id": w.user.id})


async def a_member(w: World, me: Person, allowed: bool) -> Call:
    group = (await a_group(w, me, allowed)).params["id"]
    await w.call(w.admin, "POST", f"/groups/{group}/members", {"user_id": w.user.id})
    return Call({"id": group, "user_id": w.user.id})


async def self_service_environment(w: World, mode: str) -> str:
    """An Environment of its own on the world's node that takes requests (`auto` or `approval`)."""
    made = await w.call(w.admin, "POST", "/environments", {**environment_body(), "self_service": mode})
    await w.call(w.admin, "POST", f"/environments/{made['id']}/nodes", {"node_id": w.node_id})
    return str(made["id"])


# Longer than the 24 h ahead of which notify warns of an expiry: a warning mailed while a refused
# request is being checked would look like its change.
HOURS = 48


async def request_of(w: World, me: Person, mode: str) -> dict[str, Any]:
    env = await self_service_environment(w, mode)
    body = {"environment_id": env, "gpus": 1, "hours": HOURS}
    made: dict[str, Any] = await w.call(me, "POST", "/me/requests", body)
    return made


async def new_request(w: World, _me: Person, _allowed: bool) -> Call:
    """In an `approval` Environment: it waits for an admin and holds no GPU of the world's node."""
    env = await self_service_environment(w, "approval")
    return Call(body={"environment_id": env, "gpus": 1, "hours": HOURS, "note": "the matrix's"})


async def a_waiting_request(w: World, me: Person, allowed: bool) -> Call:
    """Mine when allowed (a user cancels only their own); the user's otherwise, which must stay open."""
    return Call({"id": str((await request_of(w, me if allowed else w.user, "approval"))["id"])})


async def a_pending_request(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"id": str((await request_of(w, w.user, "approval"))["id"])})


async def a_denial(w: World, me: Person, allowed: bool) -> Call:
    return Call((await a_pending_request(w, me, allowed)).params, {"reason": "not this week"})


async def an_extension(w: World, me: Person, allowed: bool) -> Call:
    """A granted request's assignment (self-service, with an expiry) when allowed; else the user's own."""
    if not allowed:
        return Call({"id": me.assignment_id}, {"hours": 1})
    granted = await request_of(w, me, "auto")
    assert granted["status"] == "granted", granted
    return Call({"id": str(granted["assignment_id"])}, {"hours": 1})


async def a_release(w: World, me: Person, allowed: bool) -> Call:
    return Call({"id": await w.assignment_for(me) if allowed else me.assignment_id})


async def an_estimate(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"id": await self_service_environment(w, "auto")}, query={"gpus": "1", "hours": "2"})


async def a_user_quota(w: World, _me: Person, _allowed: bool) -> Call:
    return Call({"id": w.user.id}, {"max_gpus": 100, "max_hours": None, "gpu_hours_per_month": 100_000})


async def a_group_quota(w: World, me: Person, allowed: bool) -> Call:
    return Call((await a_group(w, me, allowed)).params, {"max_gpus": 4})


BUILDERS: dict[tuple[str, str], Builder] = {
    ("GET", "/healthz"): nothing,
    ("POST", "/auth/login"): login,
    ("POST", "/auth/logout"): nothing,
    ("GET", "/auth/me"): nothing,
    ("GET", "/auth/invites/{token}"): invite_lookup,
    ("POST", "/auth/invites/{token}/accept"): invite_accept,
    ("POST", "/users/invites"): new_invite,
    ("GET", "/users"): nothing,
    ("GET", "/users/{id}"): the_user,
    ("PATCH", "/users/{id}"): change_user,
    ("GET", "/me/ssh-keys"): nothing,
    ("POST", "/me/ssh-keys"): new_key,
    ("DELETE", "/me/ssh-keys/{id}"): a_key,
    ("POST", "/nodes"): new_node,
    ("GET", "/nodes"): nothing,
    ("GET", "/nodes/{id}"): the_node,
    ("DELETE", "/nodes/{id}"): a_node_to_spend,
    ("POST", "/nodes/{id}/enrollment-tokens"): a_node_to_spend,
    ("GET", "/enrollment/ca"): nothing,
    ("POST", "/environments"): new_environment,
    ("GET", "/environments"): nothing,
    ("GET", "/environments/{id}"): the_environment,
    ("PATCH", "/environments/{id}"): rename_environment,
    ("DELETE", "/environments/{id}"): an_environment_to_spend,
    ("POST", "/environments/{id}/nodes"): attach,
    ("DELETE", "/environments/{id}/nodes/{node_id}"): detach,
    ("POST", "/assignments"): new_assignment,
    ("GET", "/assignments"): nothing,
    ("GET", "/assignments/{id}"): the_assignment,
    ("POST", "/assignments/{id}/revoke"): an_assignment_to_spend,
    ("GET", "/me/assignments"): nothing,
    ("GET", "/me/assignments/{id}/access"): my_assignment,
    ("GET", "/audit-log"): nothing,
    ("GET", "/audit-log/verify"): nothing,
    ("GET", "/usage"): nothing,
    ("GET", "/me/usage"): nothing,
    ("POST", "/groups"): new_group,
    ("GET", "/groups"): nothing,
    ("GET", "/groups/{id}"): a_group,
    ("PATCH", "/groups/{id}"): rename_group,
    ("DELETE", "/groups/{id}"): a_group,
    ("POST", "/groups/{id}/members"): new_member,
    ("DELETE", "/groups/{id}/members/{user_id}"): a_member,
    ("GET", "/me/groups"): nothing,
    ("POST", "/me/requests"): new_request,
    ("GET", "/me/requests"): nothing,
    ("POST", "/me/requests/{id}/cancel"): a_waiting_request,
    ("POST", "/me/assignments/{id}/extend"): an_extension,
    ("POST", "/me/assignments/{id}/release"): a_release,
    ("GET", "/me/environments"): nothing,
    ("GET", "/me/environments/{id}/estimate"): an_estimate,
    ("GET", "/requests"): nothing,
    ("POST", "/requests/{id}/approve"): a_pending_request,
    ("POST", "/requests/{id}/deny"): a_denial,
    ("PUT", "/quotas/users/{id}"): a_user_quota,
    ("PUT", "/quotas/groups/{id}"): a_group_quota,
    ("GET", "/quotas"): nothing,
    ("GET", "/me/quota"): nothing,
}
# Routes whose call ends or replaces the caller's session: each gets a session of its own.
SESSION_ENDING = {("POST", "/auth/login"), ("POST", "/auth/logout")}
