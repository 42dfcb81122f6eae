"""docs/setup-guide.md's "Every setting" is every field of every service's Settings, with its default.

No servers: the Settings classes are imported and their fields read; the guide is read from this
checkout. A field missing from the tables, a default that differs, a service named as reading a
setting it does not read (or not named though it does), or a row for a setting nobody reads fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from gpulab_core.settings import ENV_PREFIX
from gpulab_gateway.config import Settings as GatewaySettings
from gpulab_identity.config import Settings as IdentitySettings
from gpulab_inventory.config import Settings as InventorySettings
from gpulab_notify.config import Settings as NotifySettings
from gpulab_pki.config import Settings as PkiSettings
from gpulab_scheduler.config import Settings as SchedulerSettings

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "setup-guide.md"
SECTION = "## Every setting"
SERVICES: dict[str, type[BaseSettings]] = {
    "gateway": GatewaySettings,
    "identity": IdentitySettings,
    "pki": PkiSettings,
    "inventory": InventorySettings,
    "scheduler": SchedulerSettings,
    "notify": NotifySettings,
}
# How a "read by" cell may name groups of services.
EVERY = "every service"
# A default cell starting with one of these words (any explanation may follow).
WORDS = ("required", "unset", "empty")


def shown(field: FieldInfo) -> str:
    """A field's default as the tables write it."""
    default = field.default
    if default is PydanticUndefined:
        return "required"
    if default is None:
        return "unset"
    if default == "":
        return "empty"
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


@dataclass(frozen=True)
class Row:
    variable: str
    default: str | dict[str, str]  # one value for every reader, or one per service
    readers: frozenset[str]
    line: str


def _readers(cell: str) -> frozenset[str]:
    if cell == EVERY:
        return frozenset(SERVICES)
    names = frozenset(n.strip() for n in cell.split(","))
    unknown = names - set(SERVICES)
    assert not unknown, f"'read by' names no service: {sorted(unknown)} in {cell!r}"
    return names


def _default(cell: str) -> str | dict[str, str]:
    per_service = dict(re.findall(rf"\b({'|'.join(SERVICES)}) `([^`]*)`", cell))
    if len(per_service) > 1:
        return per_service
    for word in WORDS:
        if cell == word or cell.startswith(f"{word} "):
            return word
    value = re.match(r"`([^`]*)`", cell)
    assert value is not None, f"a default is `value`, or starts with one of {WORDS}: {cell!r}"
    return value.group(1)


def rows() -> list[Row]:
    text = GUIDE.read_text()
    assert text.count(SECTION) == 1, f"{GUIDE.name} has no single {SECTION!r} section"
    body = re.split(r"^## ", text.split(SECTION, 1)[1], maxsplit=1, flags=re.MULTILINE)[0]
    found = []
    for line in body.splitlines():
        if not line.startswith("| `GPULAB_"):
            continue  # headers, separators, prose
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, f"a row has 4 cells (variable, default, read by, what it sets): {line}"
        variable = cells[0].strip("`")
        found.append(Row(variable, _default(cells[1]), _readers(cells[2]), line))
    return found


def fields() -> dict[str, dict[str, FieldInfo]]:
    """{variable: {service: its field}} for every field of every service's Settings."""
    found: dict[str, dict[str, FieldInfo]] = {}
    for service, settings in SERVICES.items():
        for name, field in settings.model_fields.items():
            found.setdefault(f"{ENV_PREFIX}{name.upper()}", {})[service] = field
    return found


def test_each_setting_has_one_row() -> None:
    variables = [r.variable for r in rows()]
    assert len(variables) > 80, "the tables list every setting"
    repeated = sorted({v for v in variables if variables.count(v) > 1})
    assert not repeated, f"settings with more than one row: {repeated}"


def test_every_field_of_every_settings_class_has_a_row() -> None:
    missing = sorted(set(fields()) - {r.variable for r in rows()})
    assert not missing, f"settings the services read that {GUIDE.name}'s {SECTION!r} lacks: {missing}"


def test_every_row_is_a_setting_some_service_reads() -> None:
    unknown = sorted({r.variable for r in rows()} - set(fields()))
    assert not unknown, f"rows of {SECTION!r} for settings no service's Settings has: {unknown}"


@pytest.mark.parametrize("row", rows(), ids=lambda r: r.variable)
def test_a_row_names_exactly_the_services_that_read_it_and_their_defaults(row: Row) -> None:
    readers = fields().get(row.variable, {})
    assert row.readers == set(readers), (
        f"{row.variable} is read by {sorted(readers)}, the table says {sorted(row.readers)}"
    )
    actual = {service: shown(field) for service, field in readers.items()}
    if isinstance(row.default, dict):
        assert row.default == actual, f"{row.variable}'s defaults are {actual}, the table says {row.default}"
    else:
        differing = {s: d for s, d in actual.items() if d != row.default}
        assert not differing, f"{row.variable}'s default is {differing}, the table says {row.default!r}"


def test_defaults_are_written_the_way_the_tables_read_them() -> None:
    """The test's own reading of a cell, so that a misread cell cannot pass unnoticed."""
    assert _default("`5`") == "5"
    assert _default("unset (the public URL's host)") == "unset"
    assert _default("required") == "required"
    assert _default("gateway `9100`, identity `9101`") == {"gateway": "9100", "identity": "9101"}
    assert _readers(EVERY) == set(SERVICES)
    assert _readers("identity, notify") == {"identity", "notify"}
    assert shown(FieldInfo(default=0.5)) == "0.5"
    assert shown(FieldInfo(default=5.0)) == "5"
    assert shown(FieldInfo(default=Path(".gpulab"))) == ".gpulab"
