"""identity's domain errors: each has the stable code the gateway maps to an HTTP status."""

from gpulab_core.contracts import groups as grp
from gpulab_core.contracts import identity as c
from gpulab_core.errors import Conflict, GpulabError, InvalidRequest


class InvalidCredentials(GpulabError):
    code = c.INVALID_CREDENTIALS


class TooManyAttempts(GpulabError):
    code = c.TOO_MANY_ATTEMPTS


class Unauthenticated(GpulabError):
    code = c.UNAUTHENTICATED


class InviteExpired(GpulabError):
    code = c.INVITE_EXPIRED


class InviteUsed(GpulabError):
    code = c.INVITE_USED


class InvalidPassword(InvalidRequest):
    code = c.INVALID_PASSWORD


class InvalidSshKeyError(InvalidRequest):
    code = c.INVALID_SSH_KEY


class DuplicateSshKey(Conflict):
    code = c.DUPLICATE_SSH_KEY


class TooManySshKeys(Conflict):
    code = c.TOO_MANY_SSH_KEYS


class AlreadyActive(Conflict):
    code = c.ALREADY_ACTIVE


class LastAdmin(Conflict):
    code = c.LAST_ADMIN


class GroupExists(Conflict):
    code = grp.GROUP_EXISTS
