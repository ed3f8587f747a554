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
