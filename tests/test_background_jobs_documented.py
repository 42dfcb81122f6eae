"""docs/architecture.md's "Background jobs with N replicas" names every background job the code starts.

No servers: the sources are parsed with `ast`, never imported, so what is checked is this checkout's
code. A job is recognised by how it is started:

- `runtime.add_task(f)`: `add_task(<f>)` as written (`server.run`, `prune`); for a lambda, the loop it
  wraps (`tasks.repeat(sweeper.sweep, ...)` is `sweeper.sweep`, `lambda: p.run_announcer(...)` is
  `p.run_announcer`); for a call, the function called (`refresher(...)` is `refresher`);
- a durable consumer: `consumer <name>`, from `gpulab_core.contracts.operations.CONSUMERS` (the runtime
  refuses any other) and from every `add_consumer("<name>", ...)`;
- the outbox relay every service that owns a schema runs: `OutboxRelay`;
- a core NATS subscription: `nc.subscribe(cb=<callback>)`;
- `asyncio.create_task` in a service: `create_task in <enclosing function>`, except the per-request
  and per-connection plumbing named in PLUMBING.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
SECTION = "## Background jobs with N replicas"
SERVICES = ("gateway", "identity", "pki", "inventory", "scheduler", "notify")
CORE = "core"
OPERATIONS = REPO / "libs" / "gpulab-core" / "src" / "gpulab_core" / "contracts" / "operations.py"

# Tasks that serve one request or one connection and end with it: the request's or the connection's
# own fate, not a job of the process. Each says where it is and why it is left out.
PLUMBING = {
    (CORE, "create_task in Runtime.start"): "the supervisor of the jobs themselves (Runtime._supervise)",
    (CORE, "create_task in RpcServer._dispatcher.dispatch"): "one task per RPC request (gpulab_core/rpc.py)",
    ("pki", "create_task in TlsFront._pipe"): "one enrollment connection's byte pipes and idle timer",
    ("pki", "create_task in TlsFront.start"): "the enrollment port's accept loop, part of server.run's port",
    ("pki", "create_task in TlsFront._accept"): "one task per accepted enrollment connection",
}


def source_root(service: str) -> Path:
    if service == CORE:
        return REPO / "libs" / "gpulab-core" / "src" / "gpulab_core"
    return REPO / "services" / service / "src" / f"gpulab_{service}"


# ---- what the code starts ----


def _task_key(arg: ast.expr) -> str:
    if isinstance(arg, ast.Lambda):
        body = arg.body
        if isinstance(body, ast.Call):
            if ast.unparse(body.func).split(".")[-1] == "repeat" and body.args:
                return ast.unparse(body.args[0])  # tasks.repeat(work, every_s, ...)
            return ast.unparse(body.func)
        return ast.unparse(body)
    if isinstance(arg, ast.Call):
        return ast.unparse(arg.func)
    return ast.unparse(arg)


def _is_create_task(call: ast.Call) -> bool:
    return ast.unparse(call.func) in ("asyncio.create_task", "create_task", "asyncio.ensure_future")


def _calls_with_scope(tree: ast.Module) -> Iterator[tuple[str, ast.Call]]:
    """Every call with the dotted name of the class and functions around it ("" at module level)."""

    def visit(node: ast.AST, scope: tuple[str, ...]) -> Iterator[tuple[str, ast.Call]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                yield from visit(child, (*scope, child.name))
                continue
            if isinstance(child, ast.Call):
                yield ".".join(scope), child
            yield from visit(child, scope)

    yield from visit(tree, ())


def jobs_in_source(source: str, service: str) -> set[tuple[str, str]]:
    """The jobs one file starts, as (service, key)."""
    found: set[tuple[str, str]] = set()
    for where, call in _calls_with_scope(ast.parse(source)):
        func = call.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name == "add_task" and call.args:
            found.add((service, f"add_task:{_task_key(call.args[0])}"))
        elif name == "add_consumer" and call.args:
            first = call.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add((service, f"consumer {first.value}"))
        elif name == "subscribe":
            cb = next((k.value for k in call.keywords if k.arg == "cb"), None)
            if cb is not None:
                found.add((service, f"nc.subscribe(cb={ast.unparse(cb)})"))
        elif name == "ServiceSpec":
            tables = next((k.value for k in call.keywords if k.arg == "tables"), None)
            if tables is not None and not (isinstance(tables, ast.Constant) and tables.value is None):
                found.add((service, "OutboxRelay"))
        elif _is_create_task(call):
            found.add((service, f"create_task in {where}"))
    return found


def declared_consumers() -> set[tuple[str, str]]:
    """operations.CONSUMERS, read from its source: {service constant: (durable, ...)}."""
    tree = ast.parse(OPERATIONS.read_text())
    constants: dict[str, str] = {}
    table: ast.Dict | None = None
    for node in tree.body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if value is None:
            continue
        # `IDENTITY, PKI, ... = "identity", "pki", ...` as well as `NAME = "value"`
        pairs = (
            zip(target.elts, value.elts, strict=True)
            if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
            else [(target, value)]
        )
        for name, constant in pairs:
            if isinstance(name, ast.Name) and isinstance(constant, ast.Constant) and isinstance(constant.value, str):
                constants[name.id] = constant.value
        if isinstance(target, ast.Name) and target.id == "CONSUMERS" and isinstance(value, ast.Dict):
            table = value
    assert table is not None, f"no CONSUMERS dict in {OPERATIONS}"
    found: set[tuple[str, str]] = set()
    for key, durables in zip(table.keys, table.values, strict=True):
        assert isinstance(key, ast.Name), "CONSUMERS' keys are the service constants"
        service = constants[key.id]
        assert isinstance(durables, ast.Tuple)
        for d in durables.elts:
            assert isinstance(d, ast.Constant)
            assert isinstance(d.value, str)
            found.add((service, f"consumer {d.value}"))
    return found


def started_jobs() -> set[tuple[str, str]]:
    found = declared_consumers()
    for service in (*SERVICES, CORE):
        for path in sorted(source_root(service).rglob("*.py")):
            found |= jobs_in_source(path.read_text(), service)
    return found - set(PLUMBING)


# ---- what the table says ----


@dataclass(frozen=True)
class Row:
    services: tuple[str, ...]
    key: str
    cells: tuple[str, ...]


def section() -> str:
    text = DOC.read_text()
    assert SECTION in text, f"{DOC} has no section {SECTION!r}"
    body = text.split(SECTION, 1)[1]
    return re.split(r"^## ", body, maxsplit=1, flags=re.MULTILINE)[0]


def rows() -> list[Row]:
    found = []
    lines = [line for line in section().splitlines() if line.startswith("|")]
    for line in lines[2:]:  # the header and its separator
        cells = tuple(c.strip() for c in line.strip().strip("|").split("|"))
        services = tuple(s for s in SERVICES if re.search(rf"\b{s}\b", cells[0]))
        key = re.search(r"`([^`]+)`", cells[1])
        assert key is not None, f"no job in backticks in the second cell of: {line}"
        found.append(Row(services, key.group(1), cells))
    return found


def _doc_key(key: str) -> str:
    """A row's job as `jobs_in_source` names it: add_task jobs are written bare in the table."""
    if key.startswith(("consumer ", "create_task in ", "nc.subscribe(")) or key == "OutboxRelay":
        return key
    return f"add_task:{key}"


def documented_jobs() -> set[tuple[str, str]]:
    return {(service, _doc_key(row.key)) for row in rows() for service in row.services}


# ---- the tests ----


def test_the_table_has_a_row_for_every_background_job_the_code_starts() -> None:
    missing = started_jobs() - documented_jobs()
    assert not missing, (
        f"background jobs without a row in {DOC.name}'s {SECTION!r} (say what makes them safe with N "
        f"replicas and what a replica's death mid-step does; per-request plumbing goes to PLUMBING): "
        f"{sorted(missing)}"
    )


def test_every_row_names_a_job_the_code_still_starts() -> None:
    gone = documented_jobs() - started_jobs()
    assert not gone, f"rows of {SECTION!r} for jobs the code no longer starts: {sorted(gone)}"


def test_every_row_names_its_services_and_fills_every_column() -> None:
    for row in rows():
        assert row.services, f"row {row.key!r} names no service"
        assert len(row.cells) == 6, f"row {row.key!r} has {len(row.cells)} cells, not 6"
        assert all(row.cells), f"row {row.key!r} has an empty cell"
        assert re.search(r"gpulab_\w+/[\w/]+\.py", row.cells[5]), f"row {row.key!r} cites no code"


CITATION = re.compile(r"(gpulab_[a-z]+)/([\w/]+\.py)(?::([\w.]+))?")


def _resolve(package: str, relative: str) -> Path:
    if package == "gpulab_core":
        return source_root(CORE) / relative
    return source_root(package.removeprefix("gpulab_")) / relative


def _defines(tree: ast.Module, qualname: str) -> bool:
    scope: list[ast.stmt] = tree.body
    for part in qualname.split("."):
        match = None
        for node in scope:
            if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.name == part:
                match = node
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == part for t in node.targets):
                return True  # e.g. `record_node_event = _recorder(...)`
        if match is None:
            return False
        scope = match.body
    return True


def test_every_file_and_function_the_section_cites_exists() -> None:
    citations = CITATION.findall(section())
    assert len(citations) > 40, "the section cites the code of each job"
    for package, relative, qualname in citations:
        path = _resolve(package, relative)
        assert path.is_file(), f"{package}/{relative} cited in {SECTION!r} does not exist ({path})"
        if qualname:
            tree = ast.parse(path.read_text())
            assert _defines(tree, qualname), f"{package}/{relative} has no {qualname} (cited in {SECTION!r})"


def test_a_job_added_anywhere_is_seen() -> None:
    """The collector finds each way of starting a job, so a new one cannot slip past the table."""
    source = """
async def setup(runtime):
    runtime.add_task(lambda: tasks.repeat(cleaner.clean, 5, "cleaning"))
    runtime.add_task(reaper.run)
    runtime.add_task(metrics.refresher(sessions, 5))
    runtime.add_consumer("new-durable", ["x.y"], handler)
    await runtime.nc.subscribe("gpulab.events.x", cb=on_x)

class Thing:
    def poke(self):
        asyncio.create_task(self._later())

spec = ServiceSpec(name="x", version="1", settings_cls=S, tables=tables, setup=setup)
"""
    assert jobs_in_source(source, "x") == {
        ("x", "add_task:cleaner.clean"),
        ("x", "add_task:reaper.run"),
        ("x", "add_task:metrics.refresher"),
        ("x", "consumer new-durable"),
        ("x", "nc.subscribe(cb=on_x)"),
        ("x", "create_task in Thing.poke"),
        ("x", "OutboxRelay"),
    }
    assert jobs_in_source('spec = ServiceSpec(name="gateway", tables=None)', "gateway") == set()


def test_plumbing_left_out_is_still_there() -> None:
    """What PLUMBING leaves out exists, so that the exception cannot outlive its reason."""
    found: set[tuple[str, str]] = set()
    for service in (*SERVICES, CORE):
        for path in source_root(service).rglob("*.py"):
            found |= jobs_in_source(path.read_text(), service)
    for key, why in PLUMBING.items():
        assert key in found, f"PLUMBING names {key} ({why}), which the code no longer has"
