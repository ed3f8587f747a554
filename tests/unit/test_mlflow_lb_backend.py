"""mlflow-lb-backend (roles/nginx_lb/files): what it asks the pool's runtime API to do.

Decisions on `show stat` answers recorded from the lab's pool
(tests/unit/modules/fixtures/nginx/pool_show_stat*.csv: healthy, and mlflow2
frozen with SIGSTOP, its API entry DOWN).
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests/unit/modules/fixtures/nginx"
_loader = importlib.machinery.SourceFileLoader(
    "mlflow_lb_backend", str(ROOT / "roles/nginx_lb/files/mlflow-lb-backend")
)
_spec = importlib.util.spec_from_loader("mlflow_lb_backend", _loader)
tool = importlib.util.module_from_spec(_spec)
_loader.exec_module(tool)

M1, M2 = "172.28.10.31:5000", "172.28.10.32:5000"


def rows(name: str = "pool_show_stat.csv") -> list[dict[str, str]]:
    return tool.parse_stat((FIXTURES / name).read_text())


def with_status(table: list[dict[str, str]], addr: str, status: str) -> list[dict[str, str]]:
    """The table with every checked entry of ADDR in STATUS (what `set server ... state drain` shows)."""
    return [
        dict(r, status=status) if r["addr"] == addr and not r["svname"].endswith("-fallback") else r
        for r in table
    ]


def test_parse_recorded_pool():
    table = rows()
    assert [(r["pxname"], r["svname"], r["status"]) for r in table] == [
        ("mlflow_api", "mlflow1", "UP"),
        ("mlflow_api", "mlflow2", "UP"),
        ("mlflow_api", "mlflow1-fallback", "no check"),
        ("mlflow_api", "mlflow2-fallback", "no check"),
        ("mlflow_artifacts", "mlflow1", "UP"),
        ("mlflow_artifacts", "mlflow2", "UP"),
        ("mlflow_artifacts", "mlflow1-fallback", "no check"),
        ("mlflow_artifacts", "mlflow2-fallback", "no check"),
    ]
    assert tool.instances(table) == {M1: {"UP"}, M2: {"UP"}}


def test_frozen_instance_is_down_in_the_api_pool():
    # The artifact pool's entry is one failed check from down ("UP 1/2").
    assert tool.instances(rows("pool_show_stat_mlflow2_frozen.csv"))[M2] == {"DOWN", "UP 1/2"}


def test_drain_sets_every_entry_of_the_instance_to_drain():
    code, commands, message = tool.plan(rows(), "drain", M2)
    assert (code, message) == (0, "changed")
    assert commands == [
        "set server mlflow_api/mlflow2 state drain",
        "set server mlflow_api/mlflow2-fallback state drain",
        "set server mlflow_artifacts/mlflow2 state drain",
        "set server mlflow_artifacts/mlflow2-fallback state drain",
    ]


def test_drain_of_a_drained_instance_is_unchanged():
    assert tool.plan(with_status(rows(), M2, "DRAIN"), "drain", M2) == (0, [], "unchanged")
    assert tool.plan(with_status(rows(), M2, "MAINT"), "drain", M2) == (0, [], "unchanged")


def test_drain_refuses_the_last_instance_in_rotation():
    code, commands, message = tool.plan(with_status(rows(), M1, "DRAIN"), "drain", M2)
    assert code == 3 and commands == []
    assert message == f"refusing: {M2} is the last instance still in rotation"


def test_a_down_instance_still_counts_as_in_rotation_for_the_refusal():
    # Down by its checks is not drained: it comes back by itself; draining the other is allowed.
    code, _commands, _message = tool.plan(rows("pool_show_stat_mlflow2_frozen.csv"), "drain", M1)
    assert code == 0


def test_enable_puts_a_drained_instance_back():
    code, commands, message = tool.plan(with_status(rows(), M1, "DRAIN"), "enable", M1)
    assert (code, message) == (0, "changed")
    assert all(c.endswith("state ready") for c in commands) and len(commands) == 4


def test_enable_of_an_instance_in_rotation_is_unchanged():
    assert tool.plan(rows(), "enable", M1) == (0, [], "unchanged")


def test_unknown_instance_names_the_known_ones():
    code, commands, message = tool.plan(rows(), "drain", "10.0.0.9:5000")
    assert code == 2 and commands == []
    assert message == f"unknown instance 10.0.0.9:5000; known: {M1}, {M2}"


def test_not_show_stat_is_refused():
    with pytest.raises(ValueError, match="not a 'show stat' answer"):
        tool.parse_stat("Unknown command\n")


def test_the_refusal_sensors_are_not_instances():
    # Recorded with the artifact store gate: one sensor entry per instance on
    # its readiness port (:5001), DOWN, no traffic. Counted as instances, they
    # would let the last instance in rotation be drained.
    table = rows("pool_show_stat_store_gate.csv")
    assert {r["addr"] for r in table if r["pxname"] == "mlflow_store_refusals"} == {
        "172.28.10.31:5001",
        "172.28.10.32:5001",
    }
    code, commands, message = tool.plan(with_status(table, M1, "DRAIN"), "drain", M2)
    assert code == 3 and commands == [], message
    assert tool.plan(table, "drain", "172.28.10.31:5001")[0] == 2, "a sensor is not an instance to drain"


def test_list_shows_instances_only_and_refusals_the_sensors(monkeypatch, capsys) -> None:
    text = (FIXTURES / "pool_show_stat_store_refuses_writes.csv").read_text()
    monkeypatch.setattr(tool, "command", lambda _cmd: text)
    assert tool.main(["mlflow-lb-backend", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    # Consumers (verify.yml, the e2e and chaos tests) expect every listed checked entry UP.
    assert listed and not any(line.startswith("mlflow_store_refusals") for line in listed)
    assert tool.main(["mlflow-lb-backend", "refusals"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "mlflow1                    172.28.10.31:5001      accepts writes (last check L7STS)",
        "mlflow2                    172.28.10.32:5001      refuses writes (last check L7OK)",
    ]
