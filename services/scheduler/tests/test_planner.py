"""The queue's plan (requests/planner.py), pure: conservative backfill against plain first-fit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gpulab_scheduler.requests.planner import Busy, NodeLine, Planner

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
H = timedelta(hours=1)


def node(capacity: int, *busy: tuple[int, float | None], name: str = "a") -> NodeLine:
    """A node with GPUs held now until NOW + hours (None: no expiry)."""
    return NodeLine(
        uuid.uuid4(), name, capacity, [Busy(g, NOW - H, None if h is None else NOW + h * H) for g, h in busy]
    )


def first_fit(planner: Planner, queue: list[tuple[int, int]]) -> list[int]:
    """What plain "first that fits now" would start: every request that fits the free GPUs now."""
    free = planner.free_now()
    started = []
    for i, (gpus, _hours) in enumerate(queue):
        if gpus <= free:
            free -= gpus
            started.append(i)
    return started


def backfill(planner: Planner, queue: list[tuple[int, int]]) -> tuple[list[int], list[datetime | None]]:
    started, starts = [], []
    for i, (gpus, hours) in enumerate(queue):
        spot = planner.earliest(gpus, hours)
        starts.append(spot.start if spot else None)
        if spot is None:
            continue
        if planner.starts_now(spot):
            started.append(i)
        planner.take(spot, gpus, hours)
    return started, starts


def test_a_small_request_that_would_delay_the_head_waits() -> None:
    # 4 GPUs: 2 held for 2 h more. The head wants 4 (starts in 2 h); a later one wants 2 for 3 h: it
    # fits now, but would hold 2 GPUs past the head's start. First-fit starts it; backfill must not.
    queue = [(4, 1), (2, 3)]
    assert first_fit(Planner(NOW, [node(4, (2, 2))]), queue) == [1]
    started, starts = backfill(Planner(NOW, [node(4, (2, 2))]), queue)
    assert started == []
    assert starts[0] == NOW + 2 * H  # the head is not delayed
    assert starts[1] == NOW + 3 * H  # after the head


def test_a_small_request_that_ends_before_the_head_starts_goes_first() -> None:
    queue = [(4, 1), (2, 1)]  # the later one ends in 1 h, before the head's start in 2 h
    started, starts = backfill(Planner(NOW, [node(4, (2, 2))]), queue)
    assert started == [1]
    assert starts == [NOW + 2 * H, NOW]


def test_backfill_on_another_node_leaves_the_heads_node_alone() -> None:
    heads = node(4, (2, 2), name="a")
    other = node(2, name="b")
    started, starts = backfill(Planner(NOW, [heads, other]), [(4, 1), (2, 5)])
    assert started == [1]  # on b, which the head does not need
    assert starts[0] == NOW + 2 * H


def test_no_known_end_means_no_estimate_and_nothing_taken() -> None:
    planner = Planner(NOW, [node(2, (2, None))])
    assert planner.earliest(1, 1) is None
    assert planner.free_now() == 0


def test_more_gpus_than_any_node_has_never_fits() -> None:
    assert Planner(NOW, [node(4), node(4, name="b")]).earliest(5, 1) is None


def test_best_fit_takes_the_fullest_node_that_starts_now() -> None:
    roomy, tight = node(8, name="a"), node(8, (6, 1), name="b")
    spot = Planner(NOW, [roomy, tight]).earliest(2, 1)
    assert spot is not None
    assert spot.node is tight
    assert spot.start == NOW


def brute_earliest(line: NodeLine, gpus: int, length: timedelta) -> datetime | None:
    """The definition, checked point by point: the first start (now, or a span's end) from which the
    node has `gpus` free at every instant where the free count can change within the length."""
    if gpus > line.capacity:
        return None
    starts = sorted({NOW, *(b.end for b in line.busy if b.end is not None and b.end > NOW)})
    for t in starts:
        points = [t, *(b.start for b in line.busy if t < b.start < t + length)]
        if all(line.free_at(p) >= gpus for p in points):
            return t
    return None


@given(
    spans=st.lists(
        st.tuples(st.integers(1, 4), st.integers(-3, 6), st.one_of(st.none(), st.integers(1, 6))), max_size=8
    ),
    gpus=st.integers(1, 8),
    hours=st.integers(1, 5),
)
def test_the_sweep_finds_the_same_start_as_the_definition(
    spans: list[tuple[int, int, int | None]], gpus: int, hours: int
) -> None:
    busy = [Busy(g, NOW + s * H, None if d is None else NOW + (s + d) * H) for g, s, d in spans]
    line = NodeLine(uuid.uuid4(), "a", 8, busy)
    assert line.earliest(gpus, hours * H, NOW) == brute_earliest(line, gpus, hours * H)
