"""hokusai_minio_health: decisions on answers recorded from the lab's MinIO (fixtures/minio)."""

from __future__ import annotations

import pytest
from health_helpers import (
    FakeHttp,
    answer,
    fixture_json,
    fixture_text,
    load_module,
    no_answer,
    recorded,
    run_main,
)

minio = load_module("hokusai_minio_health")


@pytest.mark.parametrize(
    ("write", "read", "info", "healthy", "problems"),
    [
        ("cluster_write_healthy.json", "cluster_read_healthy.json", "admin_info_healthy.json", True, []),
        # minio4 stopped (2 of 8 drives): quorum holds (write 5, read 4), the node and its drives are offline.
        (
            "cluster_write_minio4_down.json",
            "cluster_read_minio4_down.json",
            "admin_info_minio4_down.json",
            False,
            ["minio node minio4:9000: state offline", "minio drives: 2 offline, 6 online"],
        ),
    ],
    ids=["healthy", "minio4-stopped"],
)
def test_recorded(write, read, info, healthy, problems):
    result = minio.evaluate(recorded("minio", write), recorded("minio", read), fixture_json("minio", info))
    assert result["healthy"] is healthy
    assert result["problems"] == problems
    assert (result["write_quorum"], result["read_quorum"]) == (5, 4)
    assert len(result["nodes"]) == 4


def test_quorum_lost():
    # MinIO answers 503 on /minio/health/cluster when the write quorum is lost (headers as recorded).
    write = recorded("minio", "cluster_write_healthy.json") | {"status": 503, "error": "HTTP 503"}
    result = minio.evaluate(write, recorded("minio", "cluster_read_healthy.json"))
    assert result["problems"] == ["minio write quorum: lost: the cluster answered 503"]


def test_node_does_not_answer():
    url = "https://127.0.0.1:9000/minio/health/cluster"
    result = minio.evaluate(
        no_answer(url), no_answer(url + "/read"), None, "mc admin info failed (rc 1): timeout"
    )
    assert result["healthy"] is False
    assert (
        result["problems"][0] == f"minio write quorum: no answer from {url}: [Errno 111] Connection refused"
    )
    assert result["problems"][2] == "minio admin info: mc admin info failed (rc 1): timeout"


def test_drive_not_ok_on_online_node():
    info = fixture_json("minio", "admin_info_healthy.json")
    info["info"]["servers"][0]["drives"][1]["state"] = "faulty"
    result = minio.evaluate(
        recorded("minio", "cluster_write_healthy.json"), recorded("minio", "cluster_read_healthy.json"), info
    )
    assert result["problems"] == ["minio node minio2:9000: drives not ok: /srv/minio/drive2 faulty"]


def test_mc_error_document():
    doc = {"status": "error", "error": {"message": "Unable to get service status", "cause": {}}}
    checks, nodes, _, _ = minio.admin_info_checks(doc)
    assert checks == [{"name": "admin info", "healthy": False, "detail": "Unable to get service status"}]
    assert nodes == []


def test_mc_host_url_escapes_credentials():
    assert (
        minio.mc_host_url("https://minio1:9000", "admin", "a/b:c@d")
        == "https://admin:a%2Fb%3Ac%40d@minio1:9000"
    )


def test_parse_mc_output_takes_last_json_line():
    assert minio.parse_mc_output('mc: <WARN> something\n{"status": "success"}\n') == {"status": "success"}
    assert minio.parse_mc_output("not json") is None


def _fake_http():
    return FakeHttp(
        {
            "https://127.0.0.1:9000/minio/health/cluster/read": recorded(
                "minio", "cluster_read_minio4_down.json"
            ),
            "https://127.0.0.1:9000/minio/health/cluster": recorded(
                "minio", "cluster_write_minio4_down.json"
            ),
        }
    )


def test_main_runs_mc_with_credentials_in_the_environment_only(monkeypatch):
    calls = []

    def run_command(self, args, environ_update=None, check_rc=False, **kwargs):
        calls.append((args, environ_update))
        return 0, fixture_text("minio", "admin_info_minio4_down.json"), ""

    monkeypatch.setattr(minio, "http_get", _fake_http())
    monkeypatch.setattr(minio.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(minio.AnsibleModule, "get_bin_path", lambda self, name, *a, **kw: None)
    result, code = run_main(
        minio, {"url": "https://127.0.0.1:9000", "access_key": "hokusai-admin", "secret_key": "s3cr3t/x"}
    )
    assert code == 0 and result["healthy"] is False
    assert "minio node minio4:9000: state offline" in result["problems"]
    args, env = calls[0]
    assert args == ["/usr/local/bin/mc", "admin", "info", "hokusaihealth", "--json"]
    assert env["MC_HOST_hokusaihealth"] == "https://hokusai-admin:s3cr3t%2Fx@127.0.0.1:9000"
    assert env["MC_CONFIG_DIR"] == "/etc/minio/mc"
    assert "s3cr3t" not in str(result)


def test_main_without_admin_info(monkeypatch):
    monkeypatch.setattr(minio, "http_get", _fake_http())
    result, code = run_main(minio, {"url": "https://127.0.0.1:9000", "admin_info": False})
    assert code == 0 and result["healthy"] is True and result["nodes"] == []


def test_main_mc_bounded_by_timeout(monkeypatch):
    calls = []

    def run_command(self, args, environ_update=None, check_rc=False, **kwargs):
        calls.append(args)
        return 124, "", ""

    monkeypatch.setattr(minio, "http_get", _fake_http())
    monkeypatch.setattr(minio.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(minio.AnsibleModule, "get_bin_path", lambda self, name, *a, **kw: "/usr/bin/timeout")
    result, code = run_main(
        minio,
        {"url": "https://127.0.0.1:9000", "access_key": "admin-x", "secret_key": "secret-y", "timeout": 3},
    )
    assert calls[0][:3] == ["/usr/bin/timeout", "12s", "/usr/local/bin/mc"]
    assert code == 0 and "minio admin info: mc admin info did not finish within 12 s" in result["problems"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"url": "https://127.0.0.1:9000"}, "admin_info is True but all of the following are missing"),
        ({"url": "minio1:9000", "admin_info": False}, "url must start with http:// or https://"),
    ],
)
def test_main_bad_arguments(monkeypatch, args, message):
    monkeypatch.setattr(minio, "http_get", lambda url, **kw: answer(url, 200))
    result, code = run_main(minio, args)
    assert code == 1 and message in result["msg"]
