"""hokusai_nginx_health: decisions on answers recorded from the lab's load balancer (fixtures/nginx)."""

from __future__ import annotations

import pytest
from health_helpers import FakeHttp, answer, answer_from, fixture_text, load_module, no_answer, run_main

nginx = load_module("hokusai_nginx_health")

STUB = "http://127.0.0.1:8080/stub_status"
UP1, UP2 = "http://172.28.10.31:5000/health", "http://172.28.10.32:5000/health"


def test_parse_recorded_stub_status():
    assert nginx.parse_stub_status(fixture_text("nginx", "stub_status.txt")) == {
        "active": 2,
        "accepts": 40,
        "handled": 40,
        "requests": 72,
        "reading": 0,
        "writing": 1,
        "waiting": 1,
    }


@pytest.mark.parametrize(
    ("stub", "upstreams", "problems"),
    [
        (answer_from("nginx", "stub_status.txt", STUB), [answer(UP1, 200, "OK"), answer(UP2, 200, "OK")], []),
        # mlflow.service stopped on mlflow2 (recorded: connection refused from the lb host).
        (
            answer_from("nginx", "stub_status.txt", STUB),
            [answer(UP1, 200, "OK"), no_answer(UP2)],
            [f"nginx upstream {UP2}: no answer from {UP2}: [Errno 111] Connection refused"],
        ),
        (no_answer(STUB), [], [f"nginx stub_status: no answer from {STUB}: [Errno 111] Connection refused"]),
        (
            answer(STUB, 200, "<html>welcome</html>"),
            [],
            ["nginx stub_status: the answer is not a stub_status page"],
        ),
        (
            answer_from("nginx", "stub_status.txt", STUB),
            [answer(UP1, 503)],
            [f"nginx upstream {UP1}: {UP1} answered HTTP 503"],
        ),
    ],
    ids=["healthy", "upstream-down", "nginx-down", "not-stub-status", "upstream-503"],
)
def test_evaluate(stub, upstreams, problems):
    result = nginx.evaluate(stub, upstreams)
    assert result["problems"] == problems
    assert result["healthy"] is (not problems)


def test_main(monkeypatch):
    http = FakeHttp({STUB: answer_from("nginx", "stub_status.txt", STUB), UP1: answer(UP1, 200, "OK")})
    monkeypatch.setattr(nginx, "http_get", http)
    result, code = run_main(nginx, {"upstreams": [UP1, UP2]})
    assert code == 0 and result["healthy"] is False and result["stub_status"]["requests"] == 72
    assert [c[0] for c in http.calls] == [STUB, UP1, UP2]


POOL = "http://172.28.10.41:8405/stats;csv"


def test_pool_in_rotation_and_vip_held():
    result = nginx.evaluate(
        answer_from("nginx", "stub_status.txt", STUB),
        [],
        answer_from("nginx", "pool_show_stat.csv", POOL),
        vip="172.28.10.40",
        vip_held=True,
    )
    assert result["healthy"] is True
    assert [e["server"] for e in result["pool"]] == ["mlflow1", "mlflow2", "mlflow1", "mlflow2"]
    assert result["vip_held"] is True
    assert {"name": "vip", "healthy": True, "detail": "holds 172.28.10.40"} in result["checks"]


def test_frozen_instance_out_of_rotation_is_a_problem():
    # Recorded on lb1 two seconds after SIGSTOP on mlflow2's unit.
    result = nginx.evaluate(
        answer_from("nginx", "stub_status.txt", STUB),
        [],
        answer_from("nginx", "pool_show_stat_mlflow2_frozen.csv", POOL),
        vip="172.28.10.40",
        vip_held=False,
    )
    assert result["problems"] == [
        "nginx pool mlflow_api/mlflow2: DOWN (last check L7TOUT)",
        "nginx pool mlflow_artifacts/mlflow2: UP 1/2 (last check * L7TOUT)",
    ]
    assert {"name": "vip", "healthy": True, "detail": "standby for 172.28.10.40"} in result["checks"]


def test_pool_not_answering():
    result = nginx.evaluate(answer_from("nginx", "stub_status.txt", STUB), [], no_answer(POOL))
    assert result["problems"] == [f"nginx pool: no answer from {POOL}: [Errno 111] Connection refused"]


def test_holds_address():
    out = (
        "1: lo    inet 127.0.0.1/8 scope host lo\n"
        "474: eth0    inet 172.28.10.41/24 brd 172.28.10.255 scope global eth0\n"
        "474: eth0    inet 172.28.10.40/32 scope global eth0\n"
    )
    assert nginx.holds_address(out, "172.28.10.40") is True
    assert nginx.holds_address(out, "172.28.10.4") is False


def test_store_refusal_entries_are_healthy_while_down():
    # Recorded on lb1 with the artifact store gate (backend mlflow_store_refusals:
    # no traffic, DOWN while no instance sees the store refuse writes).
    result = nginx.evaluate(
        answer_from("nginx", "stub_status.txt", STUB),
        [],
        answer_from("nginx", "pool_show_stat_store_gate.csv", POOL),
    )
    assert result["healthy"] is True, result["problems"]
    assert {
        "name": "artifact store writable, as mlflow1 sees it",
        "healthy": True,
        "detail": "yes",
    } in result["checks"]


def test_store_refusing_writes_is_a_problem():
    # The recording above with mlflow2's entry UP (its probe refused a write for want of write quorum).
    result = nginx.evaluate(
        answer_from("nginx", "stub_status.txt", STUB),
        [],
        answer_from("nginx", "pool_show_stat_store_refuses_writes.csv", POOL),
    )
    assert result["problems"] == [
        "nginx artifact store writable, as mlflow2 sees it: "
        "refuses writes: MinIO write quorum lost (uploads are refused)"
    ]
