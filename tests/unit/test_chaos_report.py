"""The fault-matrix report (tests/chaos/report.py): verdicts against the seed targets and our
goals, the markdown, the README summary table, the CLI and the PNG timelines."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[2] / "tests/chaos/report.py"
spec = importlib.util.spec_from_file_location("chaos_report", SRC)
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)


def workload(calls: int = 1000, failed: int = 0, pending: int = 0, **extra: Any) -> dict[str, Any]:
    w = {
        "calls": calls,
        "succeeded": calls - failed - pending,
        "failed": failed,
        "pending": pending,
        "over_2s": 0,
        "p50_s": 0.08,
        "p95_s": 0.4,
        "p99_s": 0.9,
        "max_s": 1.5,
        "longest_gap_s": 3.0,
        "lost": 0,
        "duplicates": 0,
        "missing_metrics": None,
        "errors": [],
    }
    w.update(extra)
    return w


def fault(name: str, status: str = "passed", **extra: Any) -> dict[str, Any]:
    f = {
        "name": name,
        "title": name.replace("_", " ").capitalize(),
        "status": status,
        "why": "",
        "target": "db1",
        "t_start": 0.0,
        "t_inject": 8.0,
        "t_heal": 28.0,
        "t_end": 61.0,
        "healthy_after_s": 14.0,
        "component": {"what": "new Patroni leader elected", "after_s": 2.3},
        "checks": [{"name": "every acknowledged registration present once", "ok": True, "detail": ""}],
        "workloads": {
            "sdk_register": workload(),
            "mlflow_register": workload(),
            "run_logging": workload(calls=200, missing_metrics=0),
            "artifacts": workload(calls=50),
        },
        "timeline": {
            "sdk_register": [[1.0, 0.1, "ok"], [9.0, 3.5, "failed"], [12.0, 0.2, "pending"]],
            "mlflow_register": [[1.0, 0.05, "ok"], [20.0, 0.0, "ok"]],
            "run_logging": [],
            "artifacts": [[5.0, 1.0, "ok"]],
        },
    }
    f.update(extra)
    return f


def lost_one() -> dict[str, Any]:
    f = fault("minio_node_killed", status="failed", target="minio2", why="1 acknowledged registration lost")
    f["workloads"]["sdk_register"]["lost"] = 1
    f["checks"].append({"name": "no registration lost", "ok": False, "detail": "run 4f2a missing"})
    return f


def not_run() -> dict[str, Any]:
    return fault(
        "etcd_partition",
        status="not run",
        why="iptables not available in the container",
        healthy_after_s=None,
        component=None,
        workloads={},
        timeline={},
    )


@pytest.fixture
def results() -> dict[str, Any]:
    return {
        "started": "2026-12-01T22:10:00Z",
        "finished": "2026-12-01T22:40:00Z",
        "mode": "full",
        "entry_point": "https://172.28.10.40",
        "workloads_config": {"sdk_register": {"clients": 2, "rate_per_client": 2.0}},
        "faults": [fault("db_leader_host_killed"), lost_one(), not_run()],
    }


def judge(f: dict[str, Any]) -> dict[str, Any]:
    return report.verdicts({"faults": [f]})["faults"][f["name"]]


# --------------------------------------------------------------------------- verdicts


def test_a_passing_fault_meets_every_target(results):
    v = report.verdicts(results)["faults"]["db_leader_host_killed"]
    assert v["verdict"] == "passed" and v["missed"] == []
    assert {k: t["met"] for k, t in v["targets"].items()} == {
        "availability": True,
        "failed_share": True,
        "latency": True,
        "failover": True,
        "no_loss": True,
        "entry_point": True,
    }
    assert v["targets"]["failover"]["value"] == 34.0  # heal 20 s after the injection + 14 s
    assert v["targets"]["availability"]["value"] == 100.0


def test_one_lost_registration_misses_no_loss_and_names_the_workload(results):
    v = report.verdicts(results)["faults"]["minio_node_killed"]
    assert v["verdict"] == "failed"
    assert v["missed"] == ["no_loss"]
    loss = v["targets"]["no_loss"]
    assert loss["met"] is False
    assert loss["value"] == {"lost": 1, "duplicates": 0, "missing_metrics": 0}
    assert "sdk_register: 1 acknowledged call(s) lost" in loss["detail"]


def test_a_not_run_fault_is_never_counted_as_met(results):
    v = report.verdicts(results)
    nr = v["faults"]["etcd_partition"]
    assert nr["verdict"] == "not run"
    assert all(t["met"] is None and t["detail"].startswith("not run:") for t in nr["targets"].values())
    assert v["overall"]["faults_not_run"] == ["etcd_partition"]
    assert v["overall"]["verdict"] == "failed"  # minio_node_killed lost one
    # only the passing fault and the not-run one: incomplete, and no target counts as met
    only = {"faults": [fault("db_leader_host_killed"), not_run()]}
    overall = report.verdicts(only)["overall"]
    assert overall["verdict"] == "incomplete"
    assert all(t["met"] is not True for t in overall["targets"].values())
    assert "etcd_partition" in overall["targets"]["availability"]["detail"]
    assert report.verdicts({"faults": [not_run()]})["overall"]["verdict"] == "incomplete"
    assert report.verdicts({"faults": []})["overall"]["verdict"] == "incomplete"


def test_a_runner_failure_fails_the_fault_even_when_every_target_is_met():
    v = judge(fault("db_leader_host_killed", status="failed", why="health.yml red"))
    assert v["verdict"] == "failed" and v["missed"] == []


@pytest.mark.parametrize(
    ("calls", "failed", "pending", "met"),
    [
        (1000, 1, 0, True),  # 99.9 % exactly
        (1000, 2, 0, False),  # 99.8 %
        (1000, 1, 9, True),  # outbox receipts count as available
        (120, 1, 0, False),  # one failure in 120 calls is 99.17 %
        (0, 0, 0, False),  # a registration workload that made no call proves nothing
    ],
)
def test_availability(calls, failed, pending, met):
    f = fault("f")
    f["workloads"]["mlflow_register"] = workload(calls=calls, failed=failed, pending=pending)
    assert judge(f)["targets"]["availability"]["met"] is met


def test_availability_miss_says_by_how_much():
    f = fault("f")
    f["workloads"]["mlflow_register"] = workload(calls=120, failed=2)
    a = judge(f)["targets"]["availability"]
    assert a["value"] == pytest.approx(98.333, abs=1e-3)
    assert "mlflow_register: 98.33 % (118 of 120" in a["detail"]
    assert "120 needed" in a["detail"] and "short by 2 call(s)" in a["detail"]


@pytest.mark.parametrize(
    ("calls", "failed", "met"),
    [
        (2000, 1, True),  # 0.05 %
        (1000, 1, False),  # 0.1 % is not < 0.1 %
        (1001, 1, True),  # 0.0999 %
        (1000, 0, True),
    ],
)
def test_failed_share(calls, failed, met):
    f = fault("f")
    f["workloads"]["sdk_register"] = workload(calls=calls, failed=failed)
    share = judge(f)["targets"]["failed_share"]
    assert share["met"] is met
    assert share["value"] == pytest.approx(100.0 * failed / calls, abs=1e-3)


def test_failed_share_ignores_non_registration_workloads():
    f = fault("f")
    f["workloads"]["artifacts"] = workload(calls=50, failed=10)
    assert judge(f)["targets"]["failed_share"]["met"] is True


@pytest.mark.parametrize(("p99", "met"), [(1.99, True), (2.0, False), (2.3, False)])
def test_latency_is_the_p99_of_successful_calls_under_2_s(p99, met):
    f = fault("f")
    f["workloads"]["mlflow_register"] = workload(calls=50, p99_s=p99, over_2s=3)
    lat = judge(f)["targets"]["latency"]
    assert lat["met"] is met
    assert lat["value"] == p99
    assert "mlflow_register 6.0 % (3 of 50)" in lat["detail"]  # the share over 2 s is reported


def test_latency_judges_registrations_only():
    f = fault("f")
    f["workloads"]["artifacts"] = workload(calls=50, p99_s=9.0, over_2s=30)
    assert judge(f)["targets"]["latency"]["met"] is True


def test_entry_point_leaves_the_artifact_workload_out():
    f = fault("f")
    f["component"] = {"what": "x", "after_s": 1.0}
    f["workloads"]["artifacts"] = workload(calls=10, longest_gap_s=9.0)
    assert judge(f)["targets"]["entry_point"]["met"] is True


def test_latency_without_any_successful_call_is_not_applicable():
    f = fault("f")
    f["workloads"] = {"sdk_register": workload(calls=10, failed=10, p99_s=None)}
    assert judge(f)["targets"]["latency"]["met"] is None


@pytest.mark.parametrize(
    ("t_heal", "healthy", "value", "met"),
    [
        (28.0, 14.0, 34.0, True),
        (None, 100.0, 100.0, True),  # no heal: counted from the injection
        (108.0, 250.0, 350.0, False),
        (28.0, None, None, False),  # never healthy again
    ],
)
def test_failover(t_heal, healthy, value, met):
    v = judge(fault("f", t_heal=t_heal, healthy_after_s=healthy))["targets"]["failover"]
    assert v["met"] is met and v["value"] == value


@pytest.mark.parametrize(("gap", "met"), [(4.3, True), (4.4, False)])
def test_entry_point_recovers_within_2_s_of_the_component(gap, met):
    f = fault("f")
    f["workloads"]["run_logging"]["longest_gap_s"] = gap
    v = judge(f)["targets"]["entry_point"]
    assert v["met"] is met
    assert v["value"] == pytest.approx(gap - 2.3)


def test_entry_point_is_not_applicable_without_a_component():
    assert judge(fault("f", component=None))["targets"]["entry_point"]["met"] is None


def test_missing_metrics_and_duplicates_miss_no_loss():
    f = fault("f")
    f["workloads"]["run_logging"]["missing_metrics"] = 3
    f["workloads"]["artifacts"]["duplicates"] = 2
    v = judge(f)["targets"]["no_loss"]
    assert v["met"] is False
    assert "run_logging: 3 metric(s) missing" in v["detail"] and "artifacts: 2 duplicate(s)" in v["detail"]


def test_an_unverified_workload_misses_no_loss_instead_of_crashing():
    """A workload whose process hung has lost/duplicates None: the report says so (seen in CI)."""
    f = fault("f")
    f["workloads"]["artifacts"]["lost"] = None
    f["workloads"]["artifacts"]["duplicates"] = None
    v = judge(f)["targets"]["no_loss"]
    assert v["met"] is False
    assert "artifacts: lost and duplicates not verified" in v["detail"]


def test_a_fault_skipped_before_any_timing_renders(tmp_path):
    """The runner stops the matrix after a fault that left the lab unhealthy: the rest have no times."""
    skipped = {"name": "etcd_partition", "title": "etcd partition", "status": "not run", "why": "lab broken"}
    skipped |= {"workloads": {}, "timeline": {}, "checks": []}
    res = {"faults": [fault("db_leader_host_killed"), skipped]}
    v = report.verdicts(res)
    assert v["faults"]["etcd_partition"]["verdict"] == "not run"
    assert "Not run: no verdict" in report.markdown(res, v)
    assert "| etcd_partition | not run |" in report.summary_table(res)


def test_a_run_fault_needs_its_injection_time():
    with pytest.raises(ValueError, match="no t_inject"):
        report.verdicts({"faults": [fault("f", t_inject=None)]})


def test_duplicate_fault_names_are_refused():
    with pytest.raises(ValueError, match="unique"):
        report.verdicts({"faults": [fault("f"), fault("f")]})


def test_an_unknown_status_is_refused():
    with pytest.raises(ValueError, match="status 'ok'"):
        report.verdicts({"faults": [fault("f", status="ok")]})


# --------------------------------------------------------------------------- markdown


def test_markdown_says_what_was_missed_by_how_much_where(results):
    slow = fault("nginx_stopped", status="failed", why="latency check failed")
    slow["workloads"]["mlflow_register"]["p99_s"] = 2.3
    slow["checks"].append({"name": "p99 under 2 s", "ok": False, "detail": "mlflow_register 2.3 s"})
    results["faults"].append(slow)
    v = report.verdicts(results)
    md = report.markdown(results, v)
    assert md.startswith("# Fault matrix: failed\n")
    assert "| availability ≥ 99.9 % (registrations) (seed) | ? 100.00 % | ✔ 100.00 % |" in md
    assert "mlflow_register: p99 2.30 s, 0.30 s over 2 s" in md
    assert "sdk_register: 1 acknowledged call(s) lost" in md
    assert "- Why: 1 acknowledged registration lost" in md
    assert "- ✘ no registration lost: run 4f2a missing" in md
    assert "- ✔ every acknowledged registration present once" in md
    assert "iptables not available in the container" in md  # a not-run fault's why
    assert "![Db leader host killed: calls over time](db_leader_host_killed.png)" in md
    assert "p99 of the successful calls' durations < 2 s" in md  # the latency definition is stated
    assert '"rate_per_client": 2.0' in md
    verdict_rows = [line for line in md.splitlines() if line.startswith("| nothing lost")]
    assert verdict_rows == ["| nothing lost or duplicated (ours) | ✘ 1 lost, 0 dup | ✔ 0 lost, 0 dup | "
                            "✘ 1 lost, 0 dup | not run | ✔ 0 lost, 0 dup |"]  # fmt: skip


def test_markdown_without_pngs_links_none(results):
    md = report.markdown(results, report.verdicts(results), pngs=False)
    assert ".png)" not in md


# --------------------------------------------------------------------------- summary table


def test_summary_table_has_one_row_per_fault(results):
    lines = report.summary_table(results).splitlines()
    assert len(lines) == 2 + len(results["faults"])
    assert lines[1] == "|" + "---|" * 9
    assert all(line.count(" | ") == 8 for line in lines[:1] + lines[2:])  # 9 columns
    assert lines[0].startswith("| fault | checks | targets missed | component recovered | gap SDK / stock")
    cells = [c.strip() for c in lines[3].strip("|").split("|")]
    expected = ["minio_node_killed", "failed", "no loss", "2.3 s", "3.0 / 3.0", "0", "0.90 s"]
    expected += ["1 / 0", "14.0"]  # lost / duplicates, healthy after the heal
    assert cells == expected
    assert lines[4].startswith("| etcd_partition | not run | — |")


# --------------------------------------------------------------------------- files and CLI


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SRC), *args], capture_output=True, text=True, check=True)


def test_cli_round_trip(results, tmp_path):
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(results))
    out = tmp_path / "out"
    proc = run_cli(str(saved), str(out), "--no-png")
    assert proc.stdout.startswith(report.summary_table(results))
    assert "overall: failed" in proc.stdout
    written = json.loads((out / "report.json").read_text())
    assert written["results"] == results
    assert written["verdicts"] == report.verdicts(results)
    assert (out / "report.md").read_text() == report.markdown(results, report.verdicts(results), pngs=False)
    # a report.json re-renders the same report
    again = tmp_path / "again"
    run_cli(str(out / "report.json"), str(again), "--no-png")
    assert (again / "report.md").read_text() == (out / "report.md").read_text()


def test_the_module_works_without_matplotlib(results, tmp_path):
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(results))
    code = (
        "import sys, importlib.util, json, pathlib\n"
        "sys.modules['matplotlib'] = None\n"  # import matplotlib now raises ImportError
        f"spec = importlib.util.spec_from_file_location('r', {str(SRC)!r})\n"
        "r = importlib.util.module_from_spec(spec); spec.loader.exec_module(r)\n"
        f"res = json.loads(pathlib.Path({str(saved)!r}).read_text())\n"
        f"r.write_report(res, pathlib.Path({str(tmp_path / 'out')!r}), pngs=False)\n"
        "try:\n"
        f"    r.render_timeline(res['faults'][0], pathlib.Path({str(tmp_path / 'x.png')!r}))\n"
        "except ImportError:\n"
        "    print('no matplotlib')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout == "no matplotlib\n"
    assert (tmp_path / "out" / "report.md").exists()


def test_write_report_renders_one_png_per_fault(results, tmp_path):
    pytest.importorskip("matplotlib")
    no_heal = fault("instance_frozen", t_heal=None, component=None)
    results["faults"].append(no_heal)
    skipped = {"name": "skipped", "title": "Skipped", "status": "not run", "why": "lab broken"}
    results["faults"].append(skipped)  # no times, no workloads: still one PNG
    before = copy.deepcopy(results)
    v = report.write_report(results, tmp_path)
    assert results == before
    assert v == report.verdicts(results)
    for f in results["faults"]:
        png = (tmp_path / f"{f['name']}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert (width, height) == (900, 540)  # 10 x 6 in at 90 dpi
    assert {p.name for p in tmp_path.iterdir()} == {"report.json", "report.md"} | {
        f"{f['name']}.png" for f in results["faults"]
    }
