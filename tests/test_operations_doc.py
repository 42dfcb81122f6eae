"""docs/operations.md names only what exists: settings, commands, compose services, metrics, files.

No servers: the page is read as text and each name in it looked up where it is defined (the Settings
classes, the command lines' sources, compose.yaml, the metrics the code defines, the tree).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from gpulab_core.settings import ENV_PREFIX
from gpulab_gateway.config import Settings as GatewaySettings
from gpulab_identity.config import Settings as IdentitySettings
from gpulab_inventory.config import Settings as InventorySettings
from gpulab_notify.config import Settings as NotifySettings
from gpulab_pki.config import Settings as PkiSettings
from gpulab_scheduler.config import Settings as SchedulerSettings

from .test_grafana_dashboard import defined_families, samples_of

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "operations.md"
SERVICES = ("gateway", "identity", "pki", "inventory", "scheduler", "notify")
SETTINGS = (GatewaySettings, IdentitySettings, PkiSettings, InventorySettings, SchedulerSettings, NotifySettings)
# Names of the page that look like settings but are not read by a service: the event stream.
NOT_SETTINGS = {"GPULAB_EVENTS"}


def page() -> str:
    return PAGE.read_text()


def code() -> str:
    """The page's code: its fenced blocks and inline code spans (which may wrap), one per line."""
    text = page()
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    prose = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    spans = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
    return "\n".join([*blocks, *spans])


def compose_keys(section: str) -> set[str]:
    """The names under a top-level key of compose.yaml (`services`, `volumes`): the keys indented once."""
    found: set[str] = set()
    inside = False
    for line in (REPO / "compose.yaml").read_text().splitlines():
        if re.match(r"^\S", line):
            inside = line.startswith(f"{section}:")
        elif inside and (key := re.match(r"^  ([a-z][a-z0-9-]*):", line)):
            found.add(key.group(1))
    return found


def core_commands() -> set[str]:
    """`python -m gpulab_<service> <command>`: the subparsers of gpulab_core.cli."""
    tree = ast.parse((REPO / "libs" / "gpulab-core" / "src" / "gpulab_core" / "cli.py").read_text())
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "add_parser"
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }


def operator_commands() -> set[str]:
    """`gpulab <group> <command>` of identity's typer app (admin_cli.py)."""
    tree = ast.parse((REPO / "services" / "identity" / "src" / "gpulab_identity" / "admin_cli.py").read_text())
    groups: dict[str, str] = {}  # typer variable -> group name
    commands: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "add_typer":
            name = next(k.value for k in node.keywords if k.arg == "name")
            assert isinstance(node.args[0], ast.Name)
            assert isinstance(name, ast.Constant)
            assert isinstance(name.value, str)
            groups[node.args[0].id] = name.value
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and isinstance(deco.func, ast.Attribute) and deco.func.attr == "command":
                    assert isinstance(deco.func.value, ast.Name)
                    assert isinstance(deco.args[0], ast.Constant)
                    assert isinstance(deco.args[0].value, str)
                    commands.add(f"{groups[deco.func.value.id]} {deco.args[0].value}")
    return commands


def test_every_setting_the_page_names_is_read_by_a_service() -> None:
    read = {f"{ENV_PREFIX}{name.upper()}" for s in SETTINGS for name in s.model_fields}
    named = set(re.findall(r"\bGPULAB_[A-Z0-9_]*[A-Z0-9]\b", page()))
    unknown = named - read - NOT_SETTINGS
    assert not unknown, f"{PAGE.name} names settings no service reads: {sorted(unknown)}"


def test_every_service_command_the_page_runs_exists() -> None:
    runs = re.findall(r"python -m gpulab_(\w+|<service>) (\w[\w-]*)", code())
    assert runs, "the page runs a service's command (migrate)"
    for service, command in runs:
        assert service in (*SERVICES, "<service>"), f"python -m gpulab_{service}: no such service"
        assert command in core_commands(), f"python -m gpulab_{service} {command}: no such command"
    for name in re.findall(r"\bgpulab ((?:admin|audit) \w+)", code()):
        assert name in operator_commands(), f"gpulab {name}: no such command in admin_cli.py"
    assert "audit verify" in operator_commands()


def compose_targets(text: str) -> set[str]:
    """The compose services `docker compose <verb> ...` lines act on (not the commands run in them)."""
    found: set[str] = set()
    for line in re.findall(r"docker compose [^\n]*", text):
        line = line.split(" #", 1)[0]  # a shell comment
        words = [w.strip("`),.;") for w in line.split()[2:] if not w.startswith("-")]
        if not words:
            continue
        verb, rest = words[0], words[1:]
        if verb in ("exec", "run") and rest:
            found.add(rest[0])  # what follows is the command run in it
        elif verb == "cp" and len(rest) > 1:
            found.add(rest[1].split(":", 1)[0])  # `cp FILE SERVICE:PATH`
        elif verb in ("stop", "restart", "up"):
            found |= {w for w in rest if re.fullmatch(r"[a-z][a-z0-9-]*", w)}
    return found


def test_every_compose_service_and_volume_the_page_names_exists() -> None:
    named = compose_targets(code())
    assert {"postgres", "pki", "identity", "migrate-scheduler"} <= named, "the page's compose commands are read"
    unknown = named - compose_keys("services")
    assert not unknown, f"{PAGE.name} names compose services compose.yaml lacks: {sorted(unknown)}"
    volumes = set(re.findall(r"\bgpulab_([a-z]+-data)\b", page()))
    assert volumes, "the page names compose volumes"
    unknown = volumes - compose_keys("volumes")
    assert not unknown, f"volumes the page names that compose.yaml lacks: {sorted(unknown)}"


def test_every_metric_the_page_names_is_defined() -> None:
    families = defined_families()
    known = set(families) | {s for f, k in families.items() for s in samples_of(f, k)}
    not_metrics = {"gpulab_core", *(f"gpulab_{s}" for s in SERVICES)}
    not_metrics |= {f"gpulab_{volume.split('-')[0]}" for volume in compose_keys("volumes")}
    named = set(re.findall(r"\bgpulab_[a-z0-9_]*[a-z0-9]\b", page())) - not_metrics
    assert named, "the page names metrics"
    unknown = named - known
    assert not unknown, f"{PAGE.name} names metrics the code does not define: {sorted(unknown)}"


def test_every_file_the_page_names_exists() -> None:
    paths = set(re.findall(r"`((?:deploy|docs|services|libs|agent|tools)/[\w./-]+\.\w+)`", page()))
    paths |= set(re.findall(r"\b(docs/adr/\d{4}-[\w-]+\.md)\b", page()))
    assert paths, "the page names files"
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert not missing, f"{PAGE.name} names files that do not exist: {missing}"
