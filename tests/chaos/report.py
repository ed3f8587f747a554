"""Report of a whole-stack fault matrix: report.json, report.md and one PNG timeline per fault.

The runner (tests/chaos/chaos.py) measures; this module only judges and renders. It judges every
fault against the seed targets and against our stricter goals:

- seed ``availability``: every registration workload (sdk_register, mlflow_register) has
  (succeeded + pending) / calls >= 99.9 %. A pending call is an SDK outbox receipt; it counts
  because the outbox delivered it later (the runner sets ``lost`` when it did not).
- seed ``failed_share``: every registration workload has failed / calls < 0.1 %.
- seed ``latency``: in every registration workload, the p99 of the successful calls is < 2 s
  (the share of calls over 2 s is reported next to it, not judged; the other workloads' figures
  are reported, not judged: a 1 MiB upload plus download is not a registration).
- seed ``failover``: healthy again (health.yml green) < 300 s after the injection, i.e.
  (t_heal - t_inject, 0 without a heal) + healthy_after_s < 300; never healthy is a miss.
- ours ``no_loss``: no workload lost or duplicated an acknowledged call (lost == 0,
  duplicates == 0), and run_logging misses no metric (missing_metrics == 0).
- ours ``entry_point``: the entry point recovers as fast as the component underneath: the
  longest gap without a success of every steady workload (registrations, run logging: several
  calls a second) <= component.after_s + 2 s; n/a when the runner measured no component
  recovery. The artifact workload's gaps are its own operation time (one 1 MiB upload and
  download every 2 s) and are reported, not judged.

A fault the runner could not inject ("not run") is never counted as passing: its targets have
no verdict, and the matrix is at best "incomplete".

The module imports without matplotlib; only the PNG rendering needs it (Agg, no pyplot).
usage: report.py RESULTS.json OUT_DIR [--no-png]   (RESULTS.json may also be a report.json)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["markdown", "png_name", "render_timeline", "summary_table", "verdicts", "write_report"]

REGISTRATION_WORKLOADS = ("sdk_register", "mlflow_register")
GAP_WORKLOADS = (*REGISTRATION_WORKLOADS, "run_logging")
AVAILABILITY_PER_MILLE = 999  # (succeeded + pending) * 1000 >= 999 * calls
FAILED_PER_MILLE = 1  # failed * 1000 < 1 * calls
LATENCY_LIMIT_S = 2.0
FAILOVER_LIMIT_S = 300.0
ENTRY_POINT_SLACK_S = 2.0
STATUSES = ("passed", "failed", "not run")

Verdict = dict[str, Any]


class Target(NamedTuple):
    key: str
    kind: str  # "seed" or "ours"
    label: str
    definition: str


TARGETS = (
    Target(
        "availability",
        "seed",
        "availability ≥ 99.9 % (registrations)",
        "in every registration workload (sdk_register, mlflow_register): (succeeded + pending) / calls"
        " ≥ 99.9 %; pending = SDK outbox receipts, delivered later (an undelivered one is counted as lost)",
    ),
    Target(
        "failed_share",
        "seed",
        "failed registrations < 0.1 %",
        "in every registration workload: failed / calls < 0.1 %",
    ),
    Target(
        "latency",
        "seed",
        "latency < 2 s (p99)",
        "in every registration workload (sdk_register, mlflow_register): the p99 of the successful"
        " calls' durations < 2 s; the share of calls over 2 s is reported, not judged",
    ),
    Target(
        "failover",
        "seed",
        "failover < 5 min",
        "seconds from the injection until health.yml is green again"
        " ((t_heal - t_inject, or 0 without a heal) + healthy_after_s) < 300; never green is a miss",
    ),
    Target(
        "no_loss",
        "ours",
        "nothing lost or duplicated",
        "in every workload lost == 0 and duplicates == 0 (acknowledged calls),"
        " and missing_metrics == 0 for run_logging",
    ),
    Target(
        "entry_point",
        "ours",
        "entry point as fast as the component",
        "in every steady workload (sdk_register, mlflow_register, run_logging) the longest stretch"
        " without a success ≤ the component's recovery (seconds after the injection) + 2 s;"
        " n/a when no component recovery was measured",
    ),
)


# --------------------------------------------------------------------------- formatting helpers


def _secs(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f} s"


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _cell(text: object) -> str:
    """One markdown table cell: no pipe, no line break."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def png_name(fault_name: str) -> str:
    """File name of a fault's timeline, also the link in report.md."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", fault_name) + ".png"


def _verdict(met: bool | None, value: Any, detail: str) -> Verdict:
    return {"met": met, "value": value, "detail": detail}


def _check_fault(fault: dict[str, Any]) -> None:
    name = fault.get("name", "<unnamed>")
    if fault.get("status") not in STATUSES:
        raise ValueError(f"fault {name}: status {fault.get('status')!r} is not one of {STATUSES}")
    for key in ("name", "title"):
        if key not in fault:
            raise ValueError(f"fault {name}: the results have no {key!r}")
    # A fault that did not run may stop before any timing (the runner skips the rest of the matrix).
    if fault["status"] != "not run" and not isinstance(fault.get("t_inject"), int | float):
        raise ValueError(f"fault {name}: status {fault['status']} but no t_inject (when was it injected?)")


# --------------------------------------------------------------------------- per-fault verdicts


def _registrations(fault: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    workloads = fault.get("workloads") or {}
    return [(name, workloads[name]) for name in REGISTRATION_WORKLOADS if name in workloads]


def _availability(fault: dict[str, Any]) -> Verdict:
    regs = _registrations(fault)
    if not regs:
        return _verdict(None, None, "n/a: no registration workload ran in this segment")
    worst: float | None = None
    parts, misses = [], []
    for name, w in regs:
        calls, ok = w["calls"], w["succeeded"] + w["pending"]
        if calls == 0:
            misses.append(f"{name} made no calls")
            worst = 0.0
            continue
        pct = _pct(ok, calls)
        worst = pct if worst is None else min(worst, pct)
        parts.append(f"{name} {pct:.2f} % ({ok} of {calls})")
        needed = -(-AVAILABILITY_PER_MILLE * calls // 1000)  # ceil(0.999 * calls)
        if ok < needed:
            misses.append(
                f"{name}: {pct:.2f} % ({ok} of {calls} succeeded or pending, {needed} needed for 99.9 %):"
                f" short by {needed - ok} call(s), {99.9 - pct:.2f} points below"
            )
    value = None if worst is None else round(worst, 3)
    if misses:
        return _verdict(False, value, "; ".join(misses))
    return _verdict(True, value, "succeeded or delivered by the outbox: " + ", ".join(parts))


def _failed_share(fault: dict[str, Any]) -> Verdict:
    regs = _registrations(fault)
    if not regs:
        return _verdict(None, None, "n/a: no registration workload ran in this segment")
    worst = 0.0
    parts, misses = [], []
    for name, w in regs:
        calls, failed = w["calls"], w["failed"]
        if calls == 0:
            misses.append(f"{name} made no calls")
            continue
        pct = _pct(failed, calls)
        worst = max(worst, pct)
        parts.append(f"{name} {pct:.2f} % ({failed} of {calls})")
        allowed = (FAILED_PER_MILLE * calls - 1) // 1000  # largest f with f / calls < 0.1 %
        if failed > allowed:
            misses.append(
                f"{name}: {failed} of {calls} failed ({pct:.2f} %; at most {allowed} allowed for < 0.1 %):"
                f" {failed - allowed} too many"
            )
    if misses:
        return _verdict(False, round(worst, 3), "; ".join(misses))
    return _verdict(True, round(worst, 3), "failed: " + ", ".join(parts))


def _latency(fault: dict[str, Any]) -> Verdict:
    workloads = dict(_registrations(fault))
    measured = {n: w["p99_s"] for n, w in workloads.items() if w.get("p99_s") is not None}
    over = ", ".join(
        f"{n} {_pct(w['over_2s'], w['calls']):.1f} % ({w['over_2s']} of {w['calls']})"
        for n, w in workloads.items()
        if w["calls"] and w.get("over_2s")
    )
    unmeasured = [n for n in workloads if n not in measured]
    note = f"; no successful call (no p99) in {', '.join(unmeasured)}" if unmeasured else ""
    if not measured:
        return _verdict(None, None, f"n/a: no successful call in any workload{note}")
    worst_name = max(measured, key=lambda n: measured[n])
    worst = measured[worst_name]
    misses = [
        f"{n}: p99 {p99:.2f} s, {p99 - LATENCY_LIMIT_S:.2f} s over 2 s"
        for n, p99 in measured.items()
        if p99 >= LATENCY_LIMIT_S
    ]
    shares = f"; calls over 2 s: {over}" if over else "; no call over 2 s"
    if misses:
        return _verdict(False, worst, "; ".join(misses) + shares + note)
    return _verdict(True, worst, f"worst p99 {worst:.2f} s ({worst_name}){shares}{note}")


def _seconds_to_healthy(fault: dict[str, Any]) -> float | None:
    healthy = fault.get("healthy_after_s")
    if healthy is None:
        return None
    heal = fault.get("t_heal")
    return float(healthy) + (float(heal) - float(fault["t_inject"]) if heal is not None else 0.0)


def _failover(fault: dict[str, Any]) -> Verdict:
    since = _seconds_to_healthy(fault)
    if since is None:
        return _verdict(False, None, "never healthy again before the segment ended")
    origin = "after the heal" if fault.get("t_heal") is not None else "after the injection (no heal)"
    how = f"healthy {since:.1f} s after the injection ({fault['healthy_after_s']:.1f} s {origin})"
    if since >= FAILOVER_LIMIT_S:
        return _verdict(False, round(since, 1), f"{how}: {since - FAILOVER_LIMIT_S:.1f} s over 5 min")
    return _verdict(True, round(since, 1), how)


def _no_loss(fault: dict[str, Any]) -> Verdict:
    workloads = fault.get("workloads") or {}
    totals: dict[str, int | None] = {"lost": 0, "duplicates": 0, "missing_metrics": None}
    misses = []
    for name, w in workloads.items():
        lost, dup = w.get("lost", 0), w.get("duplicates", 0)
        if lost is None or dup is None:
            # The workload's verification did not run (its process hung or died).
            misses.append(f"{name}: lost and duplicates not verified")
            continue
        totals["lost"] = (totals["lost"] or 0) + lost
        totals["duplicates"] = (totals["duplicates"] or 0) + dup
        if lost:
            misses.append(f"{name}: {lost} acknowledged call(s) lost")
        if dup:
            misses.append(f"{name}: {dup} duplicate(s)")
        if name == "run_logging":
            missing = w.get("missing_metrics")
            if missing is None:
                misses.append("run_logging: missing metrics not measured")
            else:
                totals["missing_metrics"] = missing
                if missing:
                    misses.append(f"run_logging: {missing} metric(s) missing")
    if not workloads:
        return _verdict(False, totals, "no workload ran in this segment")
    if misses:
        return _verdict(False, totals, "; ".join(misses))
    checked = ", 0 missing metrics" if totals["missing_metrics"] is not None else ""
    return _verdict(True, totals, f"0 lost, 0 duplicates{checked} in {len(workloads)} workload(s)")


def _entry_point(fault: dict[str, Any]) -> Verdict:
    component = fault.get("component")
    if not component:
        return _verdict(None, None, "n/a: no component recovery measured for this fault")
    workloads = fault.get("workloads") or {}
    if not workloads:
        return _verdict(False, None, "no workload ran in this segment")
    after = component["after_s"]
    bound = after + ENTRY_POINT_SLACK_S
    segment = fault.get("t_end", 0.0) - fault.get("t_start", 0.0)
    gaps = {}
    for name, w in workloads.items():
        if name not in GAP_WORKLOADS:
            continue
        gap = w.get("longest_gap_s")
        gaps[name] = segment if gap is None else gap  # no success at all: the whole segment
    worst_name = max(gaps, key=lambda n: gaps[n])
    worst = gaps[worst_name]
    base = f"{component['what']} after {after:.1f} s, bound {bound:.1f} s"
    misses = [
        f"{n}: longest gap {g:.1f} s, {g - bound:.1f} s over the bound" for n, g in gaps.items() if g > bound
    ]
    value = round(worst - after, 2)  # how much longer the entry point took than the component
    if misses:
        return _verdict(False, value, f"{base}; " + "; ".join(misses))
    return _verdict(True, value, f"{base}; longest gap {worst:.1f} s ({worst_name})")


JUDGES: dict[str, Callable[[dict[str, Any]], Verdict]] = {
    "availability": _availability,
    "failed_share": _failed_share,
    "latency": _latency,
    "failover": _failover,
    "no_loss": _no_loss,
    "entry_point": _entry_point,
}


def _fault_verdicts(fault: dict[str, Any]) -> dict[str, Any]:
    _check_fault(fault)
    if fault["status"] == "not run":
        why = _one_line(fault.get("why") or "no reason given")
        targets = {t.key: _verdict(None, None, f"not run: {why}") for t in TARGETS}
        return {"verdict": "not run", "status": "not run", "missed": [], "targets": targets}
    targets = {t.key: JUDGES[t.key](fault) for t in TARGETS}
    missed = [k for k, v in targets.items() if v["met"] is False]
    ok = fault["status"] == "passed" and not missed
    return {
        "verdict": "passed" if ok else "failed",
        "status": fault["status"],
        "missed": missed,
        "targets": targets,
    }


# --------------------------------------------------------------------------- overall


def _combine(key: str, values: list[Any]) -> Any:
    if key == "no_loss":
        out: dict[str, int | None] = {"lost": 0, "duplicates": 0, "missing_metrics": None}
        for v in values:
            out["lost"] = (out["lost"] or 0) + (v["lost"] or 0)
            out["duplicates"] = (out["duplicates"] or 0) + (v["duplicates"] or 0)
            if v["missing_metrics"] is not None:
                out["missing_metrics"] = (out["missing_metrics"] or 0) + v["missing_metrics"]
        return out
    numbers = [v for v in values if v is not None]
    if not numbers:
        return None
    return min(numbers) if key == "availability" else max(numbers)


def _overall_target(key: str, faults: dict[str, dict[str, Any]]) -> Verdict:
    ran = {n: f["targets"][key] for n, f in faults.items() if f["verdict"] != "not run"}
    not_run = [n for n, f in faults.items() if f["verdict"] == "not run"]
    value = _combine(key, [v["value"] for v in ran.values() if v["value"] is not None])
    missed = {n: v for n, v in ran.items() if v["met"] is False}
    judged = [n for n, v in ran.items() if v["met"] is True]
    tail = f"; not established for {len(not_run)} fault(s) not run: {', '.join(not_run)}" if not_run else ""
    if missed:
        text = "; ".join(f"{n}: {v['detail']}" for n, v in missed.items())
        return _verdict(False, value, f"missed in {len(missed)} of {len(ran)} fault(s) run — {text}{tail}")
    if not_run or not faults:
        return _verdict(None, value, f"met in {len(judged)} fault(s), n/a in {len(ran) - len(judged)}{tail}")
    if not judged:
        return _verdict(None, value, "n/a in every fault")
    na = f", n/a in {len(ran) - len(judged)}" if len(judged) < len(ran) else ""
    return _verdict(True, value, f"met in {len(judged)} fault(s){na}")


def verdicts(results: dict[str, Any]) -> dict[str, Any]:
    """Judge every fault and the whole matrix. Pure.

    Returns ``{"overall": {"verdict", "faults_run", "faults_not_run", "targets"}, "faults": {name:
    {"verdict", "status", "missed", "targets"}}, "targets": {key: {"kind", "label", "definition"}}}``
    where every target verdict is ``{"met": bool | None, "value": ..., "detail": str}`` (met None:
    n/a or not run). A fault passes when the runner's checks passed and no target was missed.
    """
    names = [f.get("name") for f in results.get("faults", [])]
    if len(set(names)) != len(names):
        raise ValueError(f"fault names must be unique: {sorted(n for n in set(names) if names.count(n) > 1)}")
    faults = {f["name"]: _fault_verdicts(f) for f in results.get("faults", [])}
    states = [f["verdict"] for f in faults.values()]
    if "failed" in states:
        overall = "failed"
    elif "not run" in states or not states:
        overall = "incomplete"
    else:
        overall = "passed"
    return {
        "overall": {
            "verdict": overall,
            "faults_run": sum(s != "not run" for s in states),
            "faults_not_run": [n for n, f in faults.items() if f["verdict"] == "not run"],
            "targets": {t.key: _overall_target(t.key, faults) for t in TARGETS},
        },
        "faults": faults,
        "targets": {t.key: {"kind": t.kind, "label": t.label, "definition": t.definition} for t in TARGETS},
    }


# --------------------------------------------------------------------------- markdown


def _short(key: str, value: Any) -> str:
    if value is None:
        return ""
    if key in ("availability", "failed_share"):
        return f"{value:.2f} %"
    if key == "latency":
        return f"{value:.2f} s"
    if key == "failover":
        return f"{value:.0f} s"
    if key == "entry_point":
        return f"{value:+.1f} s"
    parts = [f"{value['lost']} lost", f"{value['duplicates']} dup"]
    if value.get("missing_metrics"):
        parts.append(f"{value['missing_metrics']} missing")
    return ", ".join(parts)


def _verdict_cell(key: str, v: Verdict, not_run: bool = False, unknown: bool = False) -> str:
    """✔/✘ and the figure; met None is "?" when ``unknown`` (a fault not run), else "n/a"."""
    if not_run:
        return "not run"
    mark = {True: "✔", False: "✘", None: "?" if unknown else "n/a"}[v["met"]]
    return _cell(f"{mark} {_short(key, v['value'])}".strip())


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> list[str]:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _timings(fault: dict[str, Any]) -> str:
    inject, heal, healthy = fault["t_inject"], fault.get("t_heal"), fault.get("healthy_after_s")
    text = f"injected at {inject:.1f} s"
    if heal is not None:
        text += f", healed at {heal:.1f} s ({heal - inject:.1f} s after the injection)"
        origin = "the heal"
    else:
        text += ", no heal action"
        origin = "the injection"
    since = _seconds_to_healthy(fault)
    if healthy is None:
        text += ", never healthy again"
    else:
        text += f", healthy {healthy:.1f} s after {origin}"
        if heal is not None and since is not None:
            text += f" ({since:.1f} s after the injection)"
    start, end = fault.get("t_start"), fault.get("t_end")
    if start is not None and end is not None:
        text += f"; segment {start:.1f} to {end:.1f} s"
    return text


def _workload_rows(fault: dict[str, Any]) -> list[list[object]]:
    rows = []
    for name, w in (fault.get("workloads") or {}).items():
        missing = w.get("missing_metrics")
        rows.append(
            [
                name,
                w["calls"],
                w["succeeded"],
                w["failed"],
                w["pending"],
                w.get("over_2s", 0),
                _secs(w.get("p50_s"), 2),
                _secs(w.get("p95_s"), 2),
                _secs(w.get("p99_s"), 2),
                _secs(w.get("max_s"), 2),
                _secs(w.get("longest_gap_s")),
                w.get("lost", 0),
                w.get("duplicates", 0),
                "—" if missing is None else missing,
            ]
        )
    return rows


def _fault_section(fault: dict[str, Any], v: dict[str, Any], pngs: bool) -> list[str]:
    lines = [f"## {fault['title']} (`{fault['name']}`): {v['verdict']}", ""]
    if fault["status"] != v["verdict"]:
        lines += [f"Runner status: {fault['status']}; verdict {v['verdict']} (targets missed).", ""]
    lines.append(f"- Target: {fault.get('target') or '—'}")
    if fault.get("why"):
        lines.append(f"- Why: {_one_line(fault['why'])}")
    if fault["status"] == "not run":
        lines += ["", "Not run: no verdict, never counted as passing.", ""]
        if pngs:
            lines += [f"![{fault['title']}: calls over time]({png_name(fault['name'])})", ""]
        return lines
    lines.append(f"- Timings: {_timings(fault)}")
    component = fault.get("component")
    if component:
        lines.append(f"- Component: {component['what']}, {component['after_s']:.1f} s after the injection")
    else:
        lines.append("- Component: not measured")
    lines.append("")
    missed = [(k, v["targets"][k]) for k in v["missed"]]
    if missed:
        lines += ["Targets missed:", ""]
        labels = {t.key: t.label for t in TARGETS}
        lines += [f"- ✘ {labels[k]}: {t['detail']}" for k, t in missed]
        lines.append("")
    header = ["workload", "calls", "ok", "failed", "pending", ">2 s", "p50", "p95", "p99", "max"]
    header += ["longest gap", "lost", "dup", "missing metrics"]
    lines += [*_table(header, _workload_rows(fault)), ""]
    checks = fault.get("checks") or []
    if checks:
        lines += ["Checks:", ""]
        for c in checks:
            detail = f": {_one_line(c['detail'])}" if c.get("detail") else ""
            lines.append(f"- {'✔' if c['ok'] else '✘'} {c['name']}{detail}")
        lines.append("")
    errors = [(n, e) for n, w in (fault.get("workloads") or {}).items() for e in w.get("errors") or []]
    if errors:
        lines += ["Errors:", ""]
        lines += [f"- {n}: `{_one_line(e).replace('`', chr(39))}`" for n, e in errors]
        lines.append("")
    if pngs:
        lines += [f"![{fault['title']}: calls over time]({png_name(fault['name'])})", ""]
    return lines


def markdown(results: dict[str, Any], verdicts: dict[str, Any], *, pngs: bool = True) -> str:
    """report.md. Pure; ``pngs=False`` leaves out the timeline links (no PNG written)."""
    overall = verdicts["overall"]
    faults = results.get("faults", [])
    lines = [
        f"# Fault matrix: {overall['verdict']}",
        "",
        f"- Started {results.get('started', '?')}, finished {results.get('finished', '?')},"
        f" mode {results.get('mode', '?')}",
        f"- Entry point: {results.get('entry_point', '?')}",
        f"- Faults: {len(faults)}, run {overall['faults_run']}, not run {len(overall['faults_not_run'])}"
        + (f" ({', '.join(overall['faults_not_run'])})" if overall["faults_not_run"] else ""),
        "",
        "Workloads:",
        "",
        "```json",
        json.dumps(results.get("workloads_config", {}), indent=2, sort_keys=True, default=str),
        "```",
        "",
        "## Verdicts",
        "",
    ]
    header = ["target", "overall"] + [f["name"] for f in faults]
    rows = []
    unknown = bool(overall["faults_not_run"]) or not faults
    for t in TARGETS:
        row: list[object] = [
            f"{t.label} ({t.kind})",
            _verdict_cell(t.key, overall["targets"][t.key], unknown=unknown),
        ]
        for f in faults:
            fv = verdicts["faults"][f["name"]]
            row.append(_verdict_cell(t.key, fv["targets"][t.key], fv["verdict"] == "not run"))
        rows.append(row)
    rows.append(["fault", overall["verdict"]] + [verdicts["faults"][f["name"]]["verdict"] for f in faults])
    lines += _table(header, rows)
    lines += ["", "✔ met, ✘ missed, n/a not applicable, ? not established (a fault not run).", ""]
    lines += ["Definitions:", ""]
    lines += [f"- **{t.label}** ({t.kind}): {t.definition}." for t in TARGETS]
    lines.append("")
    missed = [(t, overall["targets"][t.key]) for t in TARGETS if overall["targets"][t.key]["met"] is False]
    if missed:
        lines += ["Missed:", ""]
        lines += [f"- ✘ {t.label}: {v['detail']}" for t, v in missed]
        lines.append("")
    for f in faults:
        lines += _fault_section(f, verdicts["faults"][f["name"]], pngs)
    return "\n".join(lines).rstrip() + "\n"


def summary_table(results: dict[str, Any]) -> str:
    """A compact markdown table for the README, one row per fault. Pure.

    checks is the runner's status (its hard checks: nothing lost, healthy again without a manual
    step, the fault's own checks); targets missed lists the verdicts missed (seed and ours).
    Gaps are the longest stretch without a success of the SDK and of the stock MLflow client's
    registrations; the healthy column counts from the heal, or from the injection without one.
    """
    v = verdicts(results)
    labels = {t.key: t.key.replace("_", " ") for t in TARGETS}
    header = ["fault", "checks", "targets missed", "component recovered", "gap SDK / stock (s)"]
    header += ["failed calls", "registration p99", "lost / dup", "healthy after heal (s)"]
    rows: list[list[object]] = []
    for f in results.get("faults", []):
        workloads = f.get("workloads") or {}
        if f.get("status") == "not run" or not workloads:
            rows.append([f["name"], f.get("status", "?"), "—", "—", "—", "—", "—", "—", "—"])
            continue
        targets = v["faults"][f["name"]]["targets"]
        missed = ", ".join(labels[k] for k, t in targets.items() if t["met"] is False) or "none"
        comp = f.get("component") or {}
        comp_text = "—" if comp.get("after_s") is None else f"{comp['after_s']:.1f} s"

        def gap(name: str, workloads: dict[str, Any] = workloads) -> str:
            g = (workloads.get(name) or {}).get("longest_gap_s")
            return "—" if g is None else f"{g:.1f}"

        p99s = [w["p99_s"] for n, w in workloads.items() if n in REGISTRATION_WORKLOADS and w.get("p99_s")]
        healthy = f.get("healthy_after_s")
        if healthy is None:
            healthy_text = "never"
        else:
            healthy_text = f"{healthy:.1f}" + ("" if f.get("t_heal") is not None else " (from injection)")
        lost = sum(w.get("lost") or 0 for w in workloads.values())
        dup = sum(w.get("duplicates") or 0 for w in workloads.values())
        rows.append(
            [
                f["name"],
                f.get("status", "?"),
                missed,
                comp_text,
                f"{gap('sdk_register')} / {gap('mlflow_register')}",
                sum(w["failed"] for w in workloads.values()),
                f"{max(p99s):.2f} s" if p99s else "—",
                f"{lost} / {dup}",
                healthy_text,
            ]
        )
    return "\n".join(_table(header, rows)) + "\n"


# --------------------------------------------------------------------------- PNG


COLOURS = {"ok": "tab:green", "failed": "tab:red", "pending": "tab:orange"}


def render_timeline(fault: dict[str, Any], path: Path) -> None:
    """One PNG per fault: a row per workload, each call at (end, duration), fault times as lines."""
    # Imported here so the module (and the runner) work without matplotlib.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    timeline = fault.get("timeline") or {}
    names = list(fault.get("workloads") or {}) or list(timeline)
    names += [n for n in timeline if n not in names]
    fig = Figure(figsize=(10, 6), dpi=90, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows=max(len(names), 1), ncols=1, sharex=True, squeeze=False)[:, 0]
    target = f" ({fault['target']})" if fault.get("target") else ""
    fig.suptitle(f"{fault['title']}{target}", fontsize=11)
    inject, heal, healthy = fault.get("t_inject"), fault.get("t_heal"), fault.get("healthy_after_s")
    healthy_at = None if healthy is None else (heal if heal is not None else inject or 0.0) + healthy
    lines = [(inject, "tab:red", "--", "inject"), (heal, "tab:green", "--", "heal")]
    lines.append((healthy_at, "tab:blue", ":", "healthy"))
    for i, ax in enumerate(axes):
        name = names[i] if names else ""
        calls = timeline.get(name) or []
        for status, colour in COLOURS.items():
            points = [(t + d, max(d, 1e-3)) for t, d, s in calls if s == status]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.scatter(xs, ys, s=6, c=colour, label=status, linewidths=0)
        if calls:
            ax.set_yscale("log")
        else:
            empty = (
                f"not run: {_one_line(fault.get('why') or '')}"
                if fault["status"] == "not run"
                else "no calls"
            )
            ax.text(0.5, 0.5, empty, transform=ax.transAxes, ha="center", va="center", wrap=True)
        for x, colour, style, label in lines:
            if x is not None:
                ax.axvline(x, color=colour, linestyle=style, linewidth=1, label=label)
        ax.set_ylabel(f"{name}\n(s)" if name else "s", fontsize=8)
        ax.tick_params(labelsize=7)
    if fault.get("t_start") is not None and fault.get("t_end") is not None:
        axes[0].set_xlim(fault["t_start"], fault["t_end"])
    axes[-1].set_xlabel("seconds since segment start (each call at its end; y: duration)", fontsize=8)
    handles, labels = {}, []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in handles:
                handles[lab] = h
                labels.append(lab)
    if handles:
        axes[0].legend([handles[lab] for lab in labels], labels, fontsize=7, loc="upper right", ncols=6)
    fig.savefig(path)


# --------------------------------------------------------------------------- files and CLI


def write_report(results: dict[str, Any], out_dir: Path, *, pngs: bool = True) -> dict[str, Any]:
    """Write report.json, report.md and (``pngs``) <fault>.png into out_dir; return the verdicts.

    report.json holds ``{"results": ..., "verdicts": ...}``; it is written first, so a failure
    while drawing (matplotlib missing) loses no data: re-render with the CLI.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    v = verdicts(results)
    report = {"results": results, "verdicts": v}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out_dir / "report.md").write_text(markdown(results, v, pngs=pngs))
    if pngs:
        for fault in results.get("faults", []):
            render_timeline(fault, out_dir / png_name(fault["name"]))
    return v


def load_results(path: Path) -> dict[str, Any]:
    """A results file, or a report.json (its "results")."""
    data: dict[str, Any] = json.loads(Path(path).read_text())
    if "faults" not in data and isinstance(data.get("results"), dict):
        data = data["results"]
    if not isinstance(data.get("faults"), list):
        raise ValueError(f"{path}: no 'faults' list; expected the runner's results or a report.json")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Re-render a fault-matrix report from saved results.")
    parser.add_argument("results", type=Path, help="results JSON written by chaos.py (or a report.json)")
    parser.add_argument("out_dir", type=Path, help="directory for report.json, report.md, <fault>.png")
    parser.add_argument("--no-png", action="store_true", help="skip the timelines (no matplotlib needed)")
    args = parser.parse_args(argv)
    results = load_results(args.results)
    v = write_report(results, args.out_dir, pngs=not args.no_png)
    sys.stdout.write(summary_table(results))
    sys.stdout.write(f"\noverall: {v['overall']['verdict']}; report in {args.out_dir}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
