"""Every RPC operation between gpulab's processes, in one typed table: who serves it, what it takes
and gives back, which stable error codes it may answer with, and which services may call it.

Everything that names an operation reads it from here: callers (`RpcClient.ask(op, payload)`), the
servers (each registered endpoint must be in this table with the same request model), the gateway's
OpenAPI error responses (the codes of `errors`), and the NATS permissions of each service's identity
(`gpulab_core.natsauth`): a service may publish a request only to an operation that lists it among
its `callers`. Adding a caller here is the one way to let a service call another (docs/adr/0016).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from gpulab_core import errors
from gpulab_core.contracts import groups as grp
from gpulab_core.contracts import identity as idc
from gpulab_core.contracts import inventory as inv
from gpulab_core.contracts import pki, usage
from gpulab_core.contracts import scheduler as sch
from gpulab_core.contracts import selfservice as ss
from gpulab_core.contracts.common import Contract, HealthReply, Page

RPC_PREFIX = "gpulab.rpc"

# The processes that hold a NATS identity of their own (docs/adr/0016).
IDENTITY, PKI, INVENTORY, SCHEDULER, NOTIFY, GATEWAY = "identity", "pki", "inventory", "scheduler", "notify", "gateway"
SERVICES = (IDENTITY, PKI, INVENTORY, SCHEDULER, NOTIFY, GATEWAY)
BACKEND = (IDENTITY, PKI, INVENTORY, SCHEDULER, NOTIFY)

Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)


class Done(Contract):
    """The reply of an operation that answers with nothing but success (or an error)."""


class AuthorizedKeys(Contract):
    """A user's authorized_keys lines and their version, as `identity.ssh_keys_changed` carries them."""

    public_keys: list[str]
    version: int


@dataclass(frozen=True)
class Operation(Generic[Req, Rep]):
    service: str
    name: str
    request: type[Req]
    reply: type[Rep]
    # The stable codes (beyond invalid_request, internal_error and service_unavailable, which any
    # operation may answer) that a caller must be ready for.
    errors: tuple[str, ...] = ()
    callers: frozenset[str] = field(default_factory=frozenset)

    @property
    def subject(self) -> str:
        return f"{RPC_PREFIX}.{self.service}.{self.name}"


def _op(
    service: str,
    name: str,
    request: type[Req],
    reply: type[Rep],
    *,
    callers: tuple[str, ...],
    errors: tuple[str, ...] = (),
) -> Operation[Req, Rep]:
    return Operation(service, name, request, reply, errors, frozenset(callers))


NF, CF = errors.NOT_FOUND, errors.CONFLICT
GW = (GATEWAY,)

# ---- identity ----
AUTH_LOGIN = _op(
    IDENTITY,
    "auth.login",
    idc.LoginRequest,
    idc.LoginReply,
    callers=GW,
    errors=(idc.INVALID_CREDENTIALS, idc.TOO_MANY_ATTEMPTS),
)
AUTH_LOGOUT = _op(IDENTITY, "auth.logout", idc.SessionRequest, Done, callers=GW)
AUTH_SESSION = _op(
    IDENTITY, "auth.session", idc.SessionRequest, idc.SessionReply, callers=GW, errors=(idc.UNAUTHENTICATED,)
)
INVITES_CREATE = _op(IDENTITY, "invites.create", idc.InviteRequest, idc.User, callers=GW, errors=(idc.ALREADY_ACTIVE,))
INVITES_LOOKUP = _op(
    IDENTITY,
    "invites.lookup",
    idc.InviteTokenRequest,
    idc.InviteLookupReply,
    callers=GW,
    errors=(NF, idc.INVITE_EXPIRED, idc.INVITE_USED),
)
INVITES_ACCEPT = _op(
    IDENTITY,
    "invites.accept",
    idc.AcceptInviteRequest,
    idc.User,
    callers=GW,
    errors=(NF, idc.INVITE_EXPIRED, idc.INVITE_USED, idc.INVALID_PASSWORD),
)
# notify asks who the admins are when a node goes down; the gateway lists users for admins.
USERS_LIST = _op(IDENTITY, "users.list", idc.ListUsersRequest, idc.UserPage, callers=(GATEWAY, NOTIFY))
# The scheduler reads the user an assignment is for.
USERS_GET = _op(IDENTITY, "users.get", idc.UserIdRequest, idc.User, callers=(GATEWAY, SCHEDULER), errors=(NF,))
USERS_UPDATE = _op(IDENTITY, "users.update", idc.UpdateUserRequest, idc.User, callers=GW, errors=(NF, idc.LAST_ADMIN))
SSH_KEYS_LIST = _op(IDENTITY, "ssh_keys.list", idc.ListSshKeysRequest, idc.SshKeyList, callers=GW)
SSH_KEYS_ADD = _op(
    IDENTITY,
    "ssh_keys.add",
    idc.AddSshKeyRequest,
    idc.SshKey,
    callers=GW,
    errors=(idc.INVALID_SSH_KEY, idc.DUPLICATE_SSH_KEY, idc.TOO_MANY_SSH_KEYS, errors.EVENT_TOO_LARGE),
)
SSH_KEYS_DELETE = _op(IDENTITY, "ssh_keys.delete", idc.DeleteSshKeyRequest, Done, callers=GW, errors=(NF,))
# The keys a new assignment starts with (later changes reach the nodes by event).
SSH_KEYS_AUTHORIZED = _op(
    IDENTITY, "ssh_keys.authorized", idc.ListSshKeysRequest, AuthorizedKeys, callers=(SCHEDULER,), errors=(NF,)
)
AUDIT_LIST = _op(IDENTITY, "audit.list", idc.ListAuditRequest, idc.AuditPage, callers=GW)
AUDIT_VERIFY = _op(IDENTITY, "audit.verify", idc.VerifyAuditRequest, idc.AuditVerification, callers=GW)
# The gateway reports each request it refused (CSRF, 403) for the audit log (docs/adr/0009).
AUDIT_RECORD_REFUSAL = _op(
    IDENTITY, "audit.record_refusal", idc.RecordRefusalRequest, idc.RecordRefusalReply, callers=GW
)

# Groups (identity keeps them; the scheduler charges requests to them).
GROUPS_CREATE = _op(
    IDENTITY, "groups.create", grp.CreateGroupRequest, grp.Group, callers=GW, errors=(grp.GROUP_EXISTS,)
)
GROUPS_LIST = _op(IDENTITY, "groups.list", grp.ListGroupsRequest, grp.GroupPage, callers=GW)
GROUPS_GET = _op(IDENTITY, "groups.get", grp.GroupIdRequest, grp.Group, callers=GW, errors=(NF,))
GROUPS_UPDATE = _op(
    IDENTITY, "groups.update", grp.UpdateGroupRequest, grp.Group, callers=GW, errors=(NF, grp.GROUP_EXISTS)
)
# The gateway asks the scheduler's groups.charged first (409 group_in_use).
GROUPS_DELETE = _op(IDENTITY, "groups.delete", grp.DeleteGroupRequest, Done, callers=GW, errors=(NF,))
GROUPS_ADD_MEMBER = _op(IDENTITY, "groups.add_member", grp.GroupMemberRequest, Done, callers=GW, errors=(NF,))
GROUPS_REMOVE_MEMBER = _op(IDENTITY, "groups.remove_member", grp.GroupMemberRequest, Done, callers=GW, errors=(NF,))
GROUPS_OF_USER = _op(IDENTITY, "groups.of_user", grp.GroupsOfUserRequest, grp.GroupList, callers=GW)
# The scheduler checks that a request's user is in the group it is charged to.
GROUPS_MEMBERSHIP = _op(
    IDENTITY,
    "groups.membership",
    grp.GroupMembershipRequest,
    grp.GroupMembership,
    callers=(SCHEDULER,),
    errors=(NF,),
)
# The gateway names the groups of usage rows.
GROUPS_NAMES = _op(IDENTITY, "groups.names", grp.GroupNamesRequest, grp.GroupNames, callers=GW)

# ---- pki: inventory's, apart from the CA the install script pins ----
INV = (INVENTORY,)
CA_GET = _op(PKI, "ca.get", pki.Empty, pki.CaInfo, callers=(GATEWAY, INVENTORY))
TOKENS_ISSUE = _op(PKI, "tokens.issue", pki.IssueTokenRequest, pki.EnrollmentToken, callers=INV)
# Nothing calls it today (a new token or a deleted node revokes inside pki): no identity may.
TOKENS_REVOKE = _op(PKI, "tokens.revoke", pki.NodeRequest, Done, callers=())
CERTS_REVOKE_NODE = _op(PKI, "certs.revoke_node", pki.NodeRequest, pki.RevokedReply, callers=INV)
CERTS_REVOKED = _op(PKI, "certs.revoked", pki.Empty, pki.RevokedSerials, callers=INV)
CERTS_SIGN_SERVER = _op(
    PKI,
    "certs.sign_server",
    pki.SignServerRequest,
    pki.SignedCertificate,
    callers=INV,
    errors=(pki.INVALID_CSR, pki.CA_UNAVAILABLE),
)

# ---- inventory ----
NODES_CREATE = _op(
    INVENTORY, "nodes.create", inv.CreateNodeRequest, inv.NodeCreated, callers=GW, errors=(inv.NODE_EXISTS,)
)
NODES_LIST = _op(INVENTORY, "nodes.list", inv.ListNodesRequest, inv.NodePage, callers=GW)
NODES_GET = _op(INVENTORY, "nodes.get", inv.NodeIdRequest, inv.Node, callers=GW, errors=(NF,))
NODES_DELETE = _op(INVENTORY, "nodes.delete", inv.NodeIdRequest, inv.Node, callers=GW, errors=(NF,))
NODES_NEW_TOKEN = _op(
    INVENTORY, "nodes.new_token", inv.NodeIdRequest, inv.Enrollment, callers=GW, errors=(NF, inv.NODE_REVOKED)
)

# ---- scheduler ----
ENVIRONMENTS_CREATE = _op(
    SCHEDULER,
    "environments.create",
    sch.CreateEnvironmentRequest,
    sch.Environment,
    callers=GW,
    errors=(sch.ENVIRONMENT_EXISTS,),
)
ENVIRONMENTS_LIST = _op(SCHEDULER, "environments.list", Page, sch.EnvironmentPage, callers=GW)
ENVIRONMENTS_GET = _op(
    SCHEDULER, "environments.get", sch.EnvironmentIdRequest, sch.Environment, callers=GW, errors=(NF,)
)
ENVIRONMENTS_UPDATE = _op(
    SCHEDULER,
    "environments.update",
    sch.UpdateEnvironmentRequest,
    sch.Environment,
    callers=GW,
    errors=(NF, sch.ENVIRONMENT_EXISTS, sch.NODE_NOT_MIG_CAPABLE),
)
ENVIRONMENTS_DELETE = _op(
    SCHEDULER, "environments.delete", sch.EnvironmentIdRequest, Done, callers=GW, errors=(NF, sch.ENVIRONMENT_IN_USE)
)
ENVIRONMENTS_ATTACH_NODE = _op(
    SCHEDULER,
    "environments.attach_node",
    sch.EnvironmentNodeRequest,
    sch.Environment,
    callers=GW,
    errors=(NF, sch.NODE_NOT_MIG_CAPABLE),
)
ENVIRONMENTS_DETACH_NODE = _op(
    SCHEDULER, "environments.detach_node", sch.EnvironmentNodeRequest, sch.Environment, callers=GW, errors=(NF,)
)
ASSIGNMENTS_CREATE = _op(
    SCHEDULER,
    "assignments.create",
    sch.CreateAssignmentRequest,
    sch.Assignment,
    callers=GW,
    errors=(NF, sch.NO_CAPACITY, sch.USER_HAS_NO_SSH_KEY, errors.EVENT_TOO_LARGE),
)
ASSIGNMENTS_LIST = _op(SCHEDULER, "assignments.list", sch.ListAssignmentsRequest, sch.AssignmentPage, callers=GW)
ASSIGNMENTS_GET = _op(SCHEDULER, "assignments.get", sch.AssignmentIdRequest, sch.Assignment, callers=GW, errors=(NF,))
ASSIGNMENTS_REVOKE = _op(
    SCHEDULER,
    "assignments.revoke",
    sch.AssignmentIdRequest,
    sch.Assignment,
    callers=GW,
    errors=(NF, sch.ASSIGNMENT_ENDED_ALREADY),
)
# No process calls it today (the gateway's access page uses assignments.access): no identity may.
ASSIGNMENTS_GET_MINE = _op(
    SCHEDULER, "assignments.get_mine", sch.MyAssignmentRequest, sch.Assignment, callers=(), errors=(NF,)
)
ASSIGNMENTS_ACCESS = _op(
    SCHEDULER,
    "assignments.access",
    sch.MyAssignmentRequest,
    sch.Access,
    callers=GW,
    errors=(NF, sch.ASSIGNMENT_ENDED_ALREADY, sch.ACCESS_NOT_READY, sch.ACCESS_PROVIDER_FAILED),
)

# GPU-hours per user, group, Environment or node over a time range (docs/adr/0020).
USAGE_REPORT = _op(SCHEDULER, "usage.report", usage.UsageReportRequest, usage.UsageReport, callers=GW)
# Whether a group may be deleted (the gateway asks before identity's groups.delete).
GROUPS_CHARGED = _op(SCHEDULER, "groups.charged", grp.GroupChargedRequest, grp.GroupCharged, callers=GW)

# Self-service (API.md "Self-service and fair use"): requests, the queue, quotas, a user's own assignment.
REQUESTS_SUBMIT = _op(
    SCHEDULER,
    "requests.submit",
    ss.SubmitRequest,
    ss.Request,
    callers=GW,
    errors=(NF, ss.SELF_SERVICE_OFF, ss.QUOTA_EXCEEDED, ss.TOO_LONG, ss.NOT_A_MEMBER, sch.USER_HAS_NO_SSH_KEY),
)
REQUESTS_LIST = _op(SCHEDULER, "requests.list", ss.ListRequestsRequest, ss.RequestPage, callers=GW)
REQUESTS_CANCEL = _op(
    SCHEDULER, "requests.cancel", ss.MyRequestRequest, ss.Request, callers=GW, errors=(NF, ss.REQUEST_NOT_OPEN)
)
REQUESTS_APPROVE = _op(
    SCHEDULER,
    "requests.approve",
    ss.RequestIdRequest,
    ss.Request,
    callers=GW,
    errors=(NF, ss.REQUEST_NOT_OPEN, ss.QUOTA_EXCEEDED, ss.OTHERS_WAITING, ss.TOO_LONG, sch.ASSIGNMENT_ENDED_ALREADY),
)
REQUESTS_DENY = _op(
    SCHEDULER, "requests.deny", ss.DenyRequest, ss.Request, callers=GW, errors=(NF, ss.REQUEST_NOT_OPEN)
)
QUOTAS_SET = _op(SCHEDULER, "quotas.set", ss.SetQuotaRequest, ss.Quota, callers=GW)
QUOTAS_LIST = _op(SCHEDULER, "quotas.list", ss.ListQuotasRequest, ss.QuotaList, callers=GW)
QUOTAS_MINE = _op(SCHEDULER, "quotas.mine", ss.MyQuotaRequest, ss.MyQuota, callers=GW)
ASSIGNMENTS_EXTEND = _op(
    SCHEDULER,
    "assignments.extend",
    ss.ExtendRequest,
    ss.ExtendReply,
    callers=GW,
    errors=(
        NF,
        sch.ASSIGNMENT_ENDED_ALREADY,
        ss.SELF_SERVICE_OFF,
        ss.QUOTA_EXCEEDED,
        ss.OTHERS_WAITING,
        ss.TOO_LONG,
    ),
)
ASSIGNMENTS_RELEASE = _op(
    SCHEDULER,
    "assignments.release",
    ss.ReleaseRequest,
    sch.Assignment,
    callers=GW,
    errors=(NF, sch.ASSIGNMENT_ENDED_ALREADY),
)
ENVIRONMENTS_OFFERS = _op(SCHEDULER, "environments.offers", ss.ListOffersRequest, ss.EnvironmentOffers, callers=GW)
ENVIRONMENTS_ESTIMATE = _op(
    SCHEDULER, "environments.estimate", ss.EstimateRequest, ss.Estimate, callers=GW, errors=(NF,)
)

# What each code of an operation's `errors` tells its caller (the gateway's OpenAPI says it per route).
ERROR_MEANING: dict[str, str] = {
    errors.NOT_FOUND: "no such resource, or not yours",
    errors.EVENT_TOO_LARGE: "the change would make an event larger than the bus carries (nothing was changed)",
    idc.INVALID_CREDENTIALS: "the same for an unknown email and a wrong password",
    idc.TOO_MANY_ATTEMPTS: "wait `Retry-After` seconds",
    idc.UNAUTHENTICATED: "no valid session (log in first)",
    idc.ALREADY_ACTIVE: "that email has an account already",
    idc.INVITE_EXPIRED: "the invite has expired",
    idc.INVITE_USED: "the invite was used already",
    idc.INVALID_PASSWORD: "12 to 128 characters",
    idc.LAST_ADMIN: "the last active admin cannot be disabled or demoted",
    idc.INVALID_SSH_KEY: "the key is not valid (`reason` says why)",
    idc.DUPLICATE_SSH_KEY: "you have this key already",
    idc.TOO_MANY_SSH_KEYS: "you have as many keys as allowed",
    pki.INVALID_CSR: "the certificate request is not valid",
    pki.CA_UNAVAILABLE: "the CA key cannot be used",
    inv.NODE_EXISTS: "a node with this host name exists",
    inv.NODE_REVOKED: "the node was deleted",
    grp.GROUP_EXISTS: "a group has this name",
    sch.ENVIRONMENT_EXISTS: "the name is taken",
    sch.NODE_NOT_MIG_CAPABLE: "a node reported no MIG-capable GPU",
    sch.ENVIRONMENT_IN_USE: "it has active assignments",
    sch.NO_CAPACITY: "the detail says what was short (no online node, GPUs, CPUs or RAM)",
    sch.USER_HAS_NO_SSH_KEY: "the user has no SSH key to log in with",
    sch.ASSIGNMENT_ENDED_ALREADY: "it has ended",
    sch.ACCESS_PROVIDER_FAILED: "the jump host is not configured, or NetBird failed",
    sch.ACCESS_NOT_READY: "the node has not reported the SSH port of the assignment's container yet",
    ss.SELF_SERVICE_OFF: "the Environment takes no requests: an admin assigns its GPUs",
    ss.QUOTA_EXCEEDED: "a quota does not allow it: the detail names the limit and what is left",
    ss.TOO_LONG: "longer than the Environment's or the quota's longest request",
    ss.NOT_A_MEMBER: "you are not a member of that group",
    ss.REQUEST_NOT_OPEN: "the request was decided, granted or cancelled already",
    ss.OTHERS_WAITING: "requests wait in the Environment's queue: no extension while they do",
}


class NoRequest(Contract):
    """The body of a request that carries nothing."""


# Every service answers `health` (gpulab_core.runtime); the gateway's /healthz asks each back-end
# service's. Nothing asks the gateway's own over NATS (its HTTP /healthz and /readyz say it).
HEALTH = {name: _op(name, "health", NoRequest, HealthReply, callers=GW if name in BACKEND else ()) for name in SERVICES}

OPERATIONS: tuple[Operation[Any, Any], ...] = (
    *(v for v in list(globals().values()) if isinstance(v, Operation)),
    *HEALTH.values(),
)
BY_SUBJECT: dict[str, Operation[Any, Any]] = {op.subject: op for op in OPERATIONS}
assert len(BY_SUBJECT) == len(OPERATIONS), "an operation is listed twice"


def find(service: str, name: str) -> Operation[Any, Any] | None:
    return BY_SUBJECT.get(f"{RPC_PREFIX}.{service}.{name}")


def served_by(service: str) -> list[Operation[Any, Any]]:
    return [op for op in OPERATIONS if op.service == service]


def called_by(service: str) -> list[Operation[Any, Any]]:
    return [op for op in OPERATIONS if service in op.callers]


# Each service's durable JetStream consumers (the name after `<service>-`), so that its identity may
# create and read exactly these (gpulab_core.runtime refuses a consumer that is not listed).
CONSUMERS: dict[str, tuple[str, ...]] = {
    IDENTITY: ("invite-delivery", "node-audit", "scheduler-audit", "certificate-audit"),
    PKI: (),
    INVENTORY: ("revoked-certificates", "desired-state"),
    SCHEDULER: ("nodes", "users", "user-keys", "node-reports"),
    NOTIFY: ("mail", "node-mail", "assignment-mail"),
    GATEWAY: (),
}

# Events a service also watches live on core NATS (not through a consumer): inventory drops a node's
# cached state at once when it goes offline, is deleted, comes online, or its certificates are revoked.
EVENT_SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    INVENTORY: (inv.NODE_OFFLINE, inv.NODE_DELETED, inv.NODE_ONLINE, pki.CERTIFICATES_REVOKED),
}
