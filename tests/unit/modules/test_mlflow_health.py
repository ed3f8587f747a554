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


# --- round trip: a throw-away model version through the load balancer --------------------------
# Answers recorded with curl through lb1 (fixtures/mlflow/roundtrip_*.json, in call order).
RT = "https://172.28.10.41/api/2.0/mlflow"
RT_NAME = "hokusai-health-probe-rec1"


def rt_answers():
    names = [
        ("POST", "/runs/create", "roundtrip_1_run_create.json", 200),
        ("POST", "/registered-models/create", "roundtrip_2_model_create.json", 200),
        ("POST", "/model-versions/create", "roundtrip_3_version_create.json", 200),
        ("GET", "/model-versions/get", "roundtrip_4_version_get.json", 200),
        ("DELETE", "/registered-models/delete", "roundtrip_5_model_delete.json", 200),
        ("GET", "/registered-models/get", "roundtrip_7_model_get_404.json", 404),
        ("POST", "/runs/delete", "roundtrip_6_run_delete.json", 200),
    ]
    return {(m, p): answer_from("mlflow", f, RT + p, s) for m, p, f, s in names}


class FakeApi:
    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def __call__(self, method, path, body):
        self.calls.append((method, path.split("?")[0], body))
        return self.answers[(method, path.split("?")[0])]


def test_roundtrip_recorded():
    api = FakeApi(rt_answers())
    check, info = mlflow.roundtrip(api, RT_NAME, "0")
    assert check["healthy"] is True, check
    assert info == {
        "model": RT_NAME,
        "version": "1",
        "run_id": "bfbb0f82e0224b99ae8d04289f4964f7",
        "cleaned_up": True,
    }
    assert [c[1] for c in api.calls] == [
        "/runs/create",
        "/registered-models/create",
        "/model-versions/create",
        "/model-versions/get",
        "/registered-models/delete",
        "/registered-models/get",
        "/runs/delete",
    ]
    assert api.calls[2][2]["source"] == "mlflow-artifacts:/0/bfbb0f82e0224b99ae8d04289f4964f7/artifacts/model"


def test_roundtrip_version_refused_still_cleans_up():
    answers = rt_answers()
    # What MLflow answered (recorded) to a version whose source is not under the run's artifacts.
    answers[("POST", "/model-versions/create")] = answer(
        RT + "/model-versions/create",
        400,
        '{"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid model version source"}',
    )
    api = FakeApi(answers)
    check, info = mlflow.roundtrip(api, RT_NAME, "0")
    assert check == {
        "name": "API round trip",
        "healthy": False,
        "detail": f"create a version of {RT_NAME}: Invalid model version source",
    }
    assert info["cleaned_up"] is True
    assert ("DELETE", "/registered-models/delete", {"name": RT_NAME}) in api.calls
    assert api.calls[-1][1] == "/runs/delete"


def test_roundtrip_model_left_behind_is_reported():
    answers = rt_answers()
    answers[("GET", "/registered-models/get")] = answer_from(
        "mlflow", "roundtrip_2_model_create.json", RT, 200
    )
    check, info = mlflow.roundtrip(FakeApi(answers), RT_NAME, "0")
    assert not check["healthy"] and info["cleaned_up"] is False
    assert check["detail"].startswith(f"cleanup: model {RT_NAME} not deleted")


def test_main_roundtrip_skipped_in_check_mode(monkeypatch):
    calls = []

    def http_get(url, **kwargs):
        calls.append((kwargs.get("method", "GET"), url))
        return AUTH_OK if kwargs.get("username") else ANON_401

    monkeypatch.setattr(mlflow, "http_get", http_get)
    args = {
        "api_url": "https://lb",
        "username": "a",
        "password": "b",
        "roundtrip": True,
        "_ansible_check_mode": True,
    }
    result, code = run_main(mlflow, args)
    assert code == 0 and result["healthy"] is True and "roundtrip" not in result
    assert all(method == "GET" for method, _ in calls)


def test_main_roundtrip_needs_api_url(monkeypatch):
    monkeypatch.setattr(mlflow, "http_get", FakeHttp({}))
    result, code = run_main(mlflow, {"ready_url": "http://x:5001/ready", "roundtrip": True})
    assert code == 1 and "roundtrip needs api_url" in result["msg"]
