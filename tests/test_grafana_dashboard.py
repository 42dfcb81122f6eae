"""deploy/grafana/gpulab.json: importable, and in step with the metrics the code defines.

No servers: the dashboard is read as JSON and its PromQL searched for metric names; the metrics the
services export are found by parsing the sources with `ast` (every `Counter(...)`, `Histogram(...)`,
`CounterMetricFamily(...)`, ... of `prometheus_client`, under whatever name it was imported).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "deploy" / "grafana" / "gpulab.json"
SOURCES = [REPO / "libs" / "gpulab-core" / "src", *sorted((REPO / "services").glob("*/src"))]

# The samples Prometheus's exposition format gives each kind of metric family (prometheus_client).
# A counter's family name drops a trailing `_total`, which every sample then carries.
SAMPLES = {
    "Counter": ("_total", "_created"),
    "CounterMetricFamily": ("_total",),
    "Gauge": ("",),
    "GaugeMetricFamily": ("",),
    "Histogram": ("_bucket", "_sum", "_count", "_created"),
    "HistogramMetricFamily": ("_bucket", "_sum", "_count"),
    "Summary": ("", "_sum", "_count", "_created"),
    "SummaryMetricFamily": ("", "_sum", "_count"),
    "Info": ("_info",),
    "InfoMetricFamily": ("_info",),
    "Enum": ("",),
    "StateSetMetricFamily": ("",),
}
# Samples that say when a series began, not what it measures: no panel needs to show them.
BOOKKEEPING = ("_created",)
# PromQL words that are not metric names (functions and aggregations are told by the "(" after them).
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless"}
PROMQL_WORDS |= {"offset", "inf", "nan", "Inf", "NaN"}


def _prometheus_names(tree: ast.Module) -> dict[str, str]:
    """{local name: prometheus_client class} for what this module imported from prometheus_client."""
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("prometheus_client"):
            for alias in node.names:
                if alias.name in SAMPLES:
                    found[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "prometheus_client":
                    for kind in SAMPLES:
                        found[f"{alias.asname or alias.name}.{kind}"] = kind
    return found


def families_in_source(source: str) -> dict[str, str]:
    """{family name: kind} of every metric a module defines."""
    tree = ast.parse(source)
    local = _prometheus_names(tree)
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        kind = local.get(ast.unparse(node.func))
        if kind is None:
            continue
        name = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "name"), None)
        assert isinstance(name, ast.Constant), f"a metric named by a non-literal: {ast.unparse(node)}"
        assert isinstance(name.value, str)
        found[name.value] = kind
    return found


def defined_families() -> dict[str, str]:
    found: dict[str, str] = {}
    for root in SOURCES:
        for path in sorted(root.rglob("*.py")):
            found.update(families_in_source(path.read_text()))
    return found


def samples_of(family: str, kind: str) -> set[str]:
    base = family.removesuffix("_total") if kind.startswith("Counter") else family
    return {base + suffix for suffix in SAMPLES[kind]}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (label values)
    bare = re.sub(r"\{[^}]*\}", "", bare)  # label matchers
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # range selectors, `[$__rate_interval]`
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    bare = re.sub(r"\$\{?\w+\}?", "", bare)  # Grafana variables
    names = set()
    for token in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
        if re.match(r"\s*\(", bare[token.end() :]) or token.group() in PROMQL_WORDS:
            continue  # a function or an aggregation, or a keyword
        if token.start() > 0 and (bare[token.start() - 1].isdigit() or bare[token.start() - 1] == "."):
            continue  # the exponent or a unit of a number (1e3)
        names.add(token.group())
    return names


def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in panels(board):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def test_the_dashboard_is_json_grafana_imports() -> None:
    board = dashboard()
    for key in ("title", "uid", "schemaVersion", "panels", "templating"):
        assert key in board, f"the dashboard has no {key!r}"
    assert isinstance(board["schemaVersion"], int)
    ids = [p["id"] for p in panels(board)]
    assert all(isinstance(i, int) for i in ids), "panel ids are integers"
    assert len(ids) == len(set(ids)), f"panel ids repeat: {sorted(i for i in ids if ids.count(i) > 1)}"
    variables = {v["name"] for v in board["templating"]["list"]}
    for panel in panels(board):
        grid = panel["gridPos"]
        assert {"h", "w", "x", "y"} <= set(grid), f"{panel['title']!r}: gridPos needs h, w, x, y"
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']!r} is wider than the 24 columns"
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"{panel['title']!r} has no query"
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), f"{panel['title']!r}: refIds repeat"
        uid = panel["datasource"]["uid"]
        assert uid.removeprefix("${").removesuffix("}") in variables, f"{panel['title']!r}: unknown datasource {uid}"


def test_every_metric_the_dashboard_queries_is_one_the_code_exports() -> None:
    exported = {s for family, kind in defined_families().items() for s in samples_of(family, kind)}
    unknown = {(title, name) for title, expr in queries(dashboard()) for name in metric_names(expr) - exported}
    assert not unknown, f"panels querying metrics no service exports: {sorted(unknown)}"
    assert all(metric_names(expr) for _title, expr in queries(dashboard())), "a query selects no metric"


def test_every_metric_the_code_exports_is_on_the_dashboard() -> None:
    used = {name for _title, expr in queries(dashboard()) for name in metric_names(expr)}
    families = defined_families()
    assert len(families) >= 20, f"the sources define more metrics than {sorted(families)}"
    missing = sorted(
        family
        for family, kind in families.items()
        if not {s for s in samples_of(family, kind) if not s.endswith(BOOKKEEPING)} & used
    )
    assert not missing, f"metrics the services export that {DASHBOARD.name} shows nowhere: {missing}"


def test_the_readers_of_code_and_promql() -> None:
    """The two readers this file relies on, on examples of what they must catch and skip."""
    source = """
from prometheus_client import Counter as Metric, Histogram
import prometheus_client
from prometheus_client.core import GaugeMetricFamily
A = Metric("gpulab_a_total", "a", ["x"])
B = Histogram("gpulab_b_seconds", "b")
C = prometheus_client.Gauge(name="gpulab_c", documentation="c")
def collect():
    yield GaugeMetricFamily("gpulab_d", "d")
"""
    found = families_in_source(source)
    assert found == {
        "gpulab_a_total": "Counter",
        "gpulab_b_seconds": "Histogram",
        "gpulab_c": "Gauge",
        "gpulab_d": "GaugeMetricFamily",
    }
    assert samples_of("gpulab_a_total", "Counter") == {"gpulab_a_total", "gpulab_a_created"}
    assert samples_of("gpulab_gpu_seconds", "CounterMetricFamily") == {"gpulab_gpu_seconds_total"}
    expr = (
        "histogram_quantile(0.95, sum by (le, service) "
        '(rate(gpulab_b_seconds_bucket{outcome!="ok"}[$__rate_interval])))'
        " / on (service) group_left max without (instance) (gpulab_c) + time() - 1e3 * gpulab_d offset 5m"
    )
    assert metric_names(expr) == {"gpulab_b_seconds_bucket", "gpulab_c", "gpulab_d"}
