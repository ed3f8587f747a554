"""Figures of one workload over one fault segment, from its call records (pure functions)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

OVER_S = 2.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def longest_gap(success_ends: Iterable[float], start: float, end: float) -> float:
    """Longest stretch within [START, END] without a success (edges included)."""
    points = [start, *sorted(t for t in success_ends if start <= t <= end), end]
    return max((b - a for a, b in itertools.pairwise(points)), default=0.0)


def workload_stats(
    calls: list[dict], start: float, end: float, may_fail: frozenset[str] = frozenset()
) -> dict:
    """CALLS: records {"t0", "dur", "outcome", "op"?} of one workload. START/END bound the
    window of the longest gap (from the baseline before the fault to the end of the traffic).
    Failures of ops listed in MAY_FAIL ("<workload>/<op>") are counted apart as expected."""
    durations = [c["dur"] for c in calls]
    # Latency percentiles of the calls that got an answer (a registration accepted into the
    # SDK's outbox is one); failed calls are counted, and their time is in max_s and over_2s.
    answered = [c["dur"] for c in calls if c["outcome"] in ("ok", "pending")]
    failed = [c for c in calls if c["outcome"] == "failed"]
    expected = [c for c in failed if f"{c['w']}/{c.get('op', '')}" in may_fail]
    # Reads and writes are separate operations: a gap is a stretch where the user got nothing
    # done; the ops allowed to fail are left out of it (e.g. uploads without write quorum).
    ok_ends = [c["t0"] + c["dur"] for c in calls if c["outcome"] in ("ok", "pending")]
    return {
        "calls": len(calls),
        "succeeded": sum(c["outcome"] == "ok" for c in calls),
        "failed": len(failed),
        "failed_expected": len(expected),
        "pending": sum(c["outcome"] == "pending" for c in calls),
        "over_2s": sum(d > OVER_S for d in durations),
        "p50_s": round(percentile(answered, 50), 3),
        "p95_s": round(percentile(answered, 95), 3),
        "p99_s": round(percentile(answered, 99), 3),
        "max_s": round(max(durations, default=0.0), 3),
        "longest_gap_s": round(longest_gap(ok_ends, start, end), 2) if calls else None,
        "errors": sorted({c.get("error", "")[:200] for c in failed})[:5],
    }
