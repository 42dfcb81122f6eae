"""Groups (API.md "Self-service and fair use"): identity keeps them and their members (subjects
`gpulab.rpc.identity.groups.*`)."""

from __future__ import annotations

import uuid

from pydantic import Field

from gpulab_core.contracts.common import MAX_LIMIT, Contract


class GroupNamesRequest(Contract):
    ids: list[uuid.UUID] = Field(max_length=MAX_LIMIT)


class GroupNames(Contract):
    """Names of the groups asked for that exist or existed (deleted groups keep their name); unknown
    ids are left out."""

    names: dict[uuid.UUID, str]
