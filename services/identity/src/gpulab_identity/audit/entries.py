"""One audit row as an event's builder makes it (service.py writes it, in the consumer's transaction)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Entry:
    action: str
    target_type: str
    target_id: uuid.UUID
    actor_id: uuid.UUID | None  # None: the system acted, as in the rows identity writes itself
    details: dict[str, Any]


Build = Callable[[dict[str, Any]], Entry]
