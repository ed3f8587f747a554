"""hokusai_mlflow_health: decisions on answers recorded from the lab's MLflow (fixtures/mlflow)."""

from __future__ import annotations

import pytest
from health_helpers import (
    FakeHttp,
    answer,
    answer_from,
    fixture_text,
    load_module,
    no_answer,
    recorded,
    run_main,
)

mlflow = load_module("hokusai_mlflow_health")

API = "https://172.28.10.41/api/2.0/mlflow/experiments/search?max_results=1"
AUTH_OK = answer_from("mlflow", "experiments_search_authenticated.json", API)
ANON_401 = answer(API, 401, fixture_text("mlflow", "experiments_search_anonymous_401.html"))


@pytest.mark.parametrize("name", ["ready_mlflow1.json", "ready_mlflow2.json"])
def test_recorded_ready(name):
    result = mlflow.evaluate(ready_resp=answer_from("mlflow", name))
    assert result["healthy"] is True
    assert [c["name"] for c in result["checks"]] == [
        "readiness artifacts",
        "readiness database",
        "readiness server",
    ]


def test_recorded_server_stopped():
    # `systemctl stop mlflow` on mlflow2: the readiness service answers 503 naming the failed check.
    result = mlflow.evaluate(ready_resp=recorded("mlflow", "ready_mlflow2_server_stopped.json"))
    assert result["healthy"] is False
    assert result["problems"] == [
        "mlflow readiness server: URLError: <urlopen error [Errno 111] Connection refused>"
    ]


def test_readiness_service_down():
    result = mlflow.evaluate(ready_resp=no_answer("http://172.28.10.32:5001/ready"))
    assert result["problems"] == [
        "mlflow readiness: no answer from http://172.28.10.32:5001/ready: [Errno 111] Connection refused"
    ]


@pytest.mark.parametrize(
    ("auth", "anon", "require_auth", "problems"),
    [
        (AUTH_OK, ANON_401, True, []),
        (
            AUTH_OK,
            AUTH_OK,
            True,
            ["mlflow API (anonymous): answered 200 without credentials: authentication is off"],
        ),
        (AUTH_OK, None, False, []),
        (ANON_401, ANON_401, True, [f"mlflow API (authenticated): {API} answered HTTP 401"]),
        (
            answer(API, 502, "<html>502</html>"),
            answer(API, 502),
            True,
            [
                f"mlflow API (authenticated): {API} answered HTTP 502",
                f"mlflow API (anonymous): {API} answered HTTP 502",
            ],
        ),
        (
            answer(API, 200, "<html>login</html>"),
            ANON_401,
            True,
            ["mlflow API (authenticated): HTTP 200 but the body is not MLflow JSON"],
        ),
    ],
    ids=["healthy", "auth-off", "auth-not-required", "bad-password", "lb-502", "not-mlflow"],
)
def test_api_through_lb(auth, anon, require_auth, problems):
    result = mlflow.evaluate(auth_resp=auth, anon_resp=anon, require_auth=require_auth)
    assert result["problems"] == problems
    assert result["healthy"] is (not problems)


def test_main_calls_api_with_and_without_credentials(monkeypatch):
    calls = []

    def http_get(url, **kwargs):
        calls.append(kwargs)
        return AUTH_OK if kwargs.get("username") else ANON_401

    monkeypatch.setattr(mlflow, "http_get", http_get)
    result, code = run_main(
        mlflow,
        {"api_url": "https://172.28.10.41/", "username": "admin", "password": "pw", "ca_path": "/ca.crt"},
    )
    assert code == 0 and result["healthy"] is True
    assert (result["api_status"], result["anonymous_status"]) == (200, 401)
    assert calls[0]["username"] == "admin" and "password" in calls[0] and "password" not in calls[1]
    assert all(c["ca_path"] == "/ca.crt" for c in calls)


def test_main_readiness(monkeypatch):
    monkeypatch.setattr(
        mlflow,
        "http_get",
        FakeHttp({"http://10.0.0.1:5001/ready": recorded("mlflow", "ready_mlflow2_server_stopped.json")}),
    )
    result, code = run_main(mlflow, {"ready_url": "http://10.0.0.1:5001/ready"})
    assert code == 0 and result["healthy"] is False and result["ready"]["ready"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({}, "one of the following is required: ready_url, api_url"),
        ({"api_url": "https://lb"}, "missing parameter(s) required by 'api_url'"),
    ],
)
def test_main_bad_arguments(monkeypatch, args, message):
    monkeypatch.setattr(mlflow, "http_get", FakeHttp({}))
    result, code = run_main(mlflow, args)
    assert code == 1 and message in result["msg"]
