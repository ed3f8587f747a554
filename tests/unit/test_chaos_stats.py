"""Figures of the fault matrix (tests/chaos/stats.py): percentiles, gaps, outcome counts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "tests" / "chaos" / "stats.py"
spec = importlib.util.spec_from_file_location("chaos_stats", SRC)
assert spec and spec.loader
stats = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stats)


def call(t0: float, dur: float, outcome: str = "ok", w: str = "artifacts", op: str = "") -> dict:
    c = {"w": w, "t0": t0, "dur": dur, "outcome": outcome}
    if op:
        c["op"] = op
    return c


@pytest.mark.parametrize(("q", "want"), [(50, 5.0), (95, 10.0), (99, 10.0), (10, 1.0)])
def test_nearest_rank_percentile(q: float, want: float) -> None:
    assert stats.percentile([float(v) for v in range(10, 0, -1)], q) == want


def test_percentile_of_nothing_is_zero() -> None:
    assert stats.percentile([], 99) == 0.0


def test_longest_gap_counts_the_edges_of_the_window() -> None:
    assert stats.longest_gap([2.0, 3.0], 0.0, 10.0) == 7.0
    assert stats.longest_gap([], 0.0, 4.0) == 4.0
    # successes outside the window do not shorten a gap inside it
    assert stats.longest_gap([-5.0, 1.0, 20.0], 0.0, 6.0) == 5.0


def test_outcomes_latency_and_gap() -> None:
    calls = [call(0, 0.1), call(1, 2.5, "failed"), call(4, 0.2, "pending"), call(5, 0.1)]
    calls[1]["error"] = "ConnectionError: refused"
    fig = stats.workload_stats(calls, start=0.0, end=6.0)
    assert (fig["calls"], fig["succeeded"], fig["failed"], fig["pending"]) == (4, 2, 1, 1)
    assert fig["over_2s"] == 1
    assert fig["max_s"] == 2.5
    assert fig["p99_s"] == 0.2  # of the answered calls: the failed 2.5 s call is in max_s
    # successes end at 0.1, 4.2 and 5.1: the gap is 4.1 s (a pending receipt is an answer)
    assert fig["longest_gap_s"] == pytest.approx(4.1)
    assert fig["errors"] == ["ConnectionError: refused"]


def test_failures_of_ops_allowed_to_fail_are_counted_apart() -> None:
    calls = [
        call(0, 0.1, "failed", op="upload"),
        call(1, 0.1, op="download"),
        call(2, 0.1, "failed", op="download"),
    ]
    fig = stats.workload_stats(calls, 0.0, 3.0, may_fail=frozenset({"artifacts/upload"}))
    assert fig["failed"] == 2
    assert fig["failed_expected"] == 1


def test_no_calls_has_no_gap() -> None:
    assert stats.workload_stats([], 0.0, 5.0)["longest_gap_s"] is None
