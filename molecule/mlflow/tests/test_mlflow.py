"""Verify two MLflow instances behind nginx: TLS, auth, stores, readiness, losing and restarting instances."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from labtools import container_stopped, docker, inventory_host, wait_for
from mlflow_stream import ClientStream

INSTANCES = ("mlflow-1", "mlflow-2")
LB = "mlflow-lb"
BACKEND = "mlflow-backend"
NETWORK = "molecule-mlflow"
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
CA = EPHEMERAL / "pki" / "ca.crt"
VENV_PY = "/opt/mlflow/venv/bin/python"
# Calls the stream may lose when an instance's container is stopped under it:
# reads none (nginx moves them to the other instance), writes (POST, never
# replayed on another instance) at most the ones in flight, one per writer thread.
WRITERS = 2
MAX_LOST_WRITES_ON_STOP = WRITERS


def secret(name: str) -> str:
    return (EPHEMERAL / "secrets" / name).read_text().split()[0]


def address(container: str) -> str:
    return docker(
        "inspect", "-f", f'{{{{(index .NetworkSettings.Networks "{NETWORK}").IPAddress}}}}', container
    ).strip()


def tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(CA))
    ctx.check_hostname = False  # connecting by address; the chain is still verified against the lab CA
    return ctx


def lb_call(
    method: str, path: str, body: dict | None = None, auth: tuple[str, str] | None = None, host: str = LB
):
    """One HTTPS call to the load balancer; returns (status, parsed body)."""
    headers = {"Host": host, "Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"https://{address(LB)}{path}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30, context=tls_context()) as resp:  # noqa: S310 - scenario container
            raw = resp.read()
            return resp.status, json.loads(raw) if raw.strip().startswith(b"{") else raw.decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@pytest.fixture(scope="module")
def nodes():
    return {name: inventory_host(name) for name in (*INSTANCES, LB, BACKEND)}


@pytest.fixture(scope="module")
def admin() -> tuple[str, str]:
    return ("admin", secret("mlflow_admin"))


@pytest.fixture(scope="module")
def stream_target(admin):
    """An experiment and a run the client stream reads and writes."""
    name = f"stream-{uuid.uuid4().hex[:8]}"
    status, body = lb_call("POST", "/api/2.0/mlflow/experiments/create", {"name": name}, auth=admin)
    assert status == 200, body
    status, body = lb_call(
        "POST", "/api/2.0/mlflow/runs/create", {"experiment_id": body["experiment_id"]}, auth=admin
    )
    assert status == 200, body
    return name, body["run"]["info"]["run_id"]


def make_stream(admin, stream_target) -> ClientStream:
    name, run_id = stream_target
    return ClientStream(
        f"https://{address(LB)}", admin[0], admin[1], str(CA), LB, name, run_id, readers=3, writers=WRITERS
    )


def wait_ready(node, timeout: float = 180) -> None:
    wait_for(
        lambda: node.run("/usr/local/sbin/mlflow-ready").rc == 0,
        timeout=timeout,
        interval=2,
        what="mlflow-ready",
    )


# --- the instances ------------------------------------------------------------


@pytest.mark.parametrize("name", INSTANCES)
def test_services_active_and_hardened(nodes, name):
    node = nodes[name]
    for unit in ("mlflow", "hokusai-s3-endpoint", "mlflow-readiness"):
        assert node.service(unit).is_running, unit
        assert node.service(unit).is_enabled, unit
    props = node.check_output("systemctl show mlflow -p KillMode -p User -p ProtectSystem -p NoNewPrivileges")
    for expected in ("KillMode=control-group", "User=mlflow", "ProtectSystem=strict", "NoNewPrivileges=yes"):
        assert expected in props
    env = node.file("/etc/mlflow/mlflow.env")
    assert (env.user, env.group, env.mode) == ("root", "mlflow", 0o640)
    # Credentials are in the environment file, not on the command line.
    cmdline = node.check_output("tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value mlflow)/cmdline")
    assert "postgresql" not in cmdline and secret("minio_mlflow") not in cmdline
    assert (
        "--workers 2" in cmdline and "--app-name basic-auth" in cmdline and "--expose-prometheus" in cmdline
    )


@pytest.mark.parametrize("name", INSTANCES)
def test_job_runner_off_and_pool_from_budget(nodes, name):
    env = nodes[name].file("/etc/mlflow/mlflow.env").content_string
    assert "MLFLOW_SERVER_ENABLE_JOB_EXECUTION='false'" in env
    # budget 60 / (2 instances x (2 workers x 3 engines + 1)) = 4 per engine -> 2 + 2
    assert "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE='2'" in env
    assert "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW='2'" in env
    assert nodes[name].run("pgrep -f '[h]uey_consumer'").rc != 0, "a job runner is running"


def test_uvloop_and_httptools_installed(nodes):
    out = nodes["mlflow-1"].check_output(
        f"{VENV_PY} -c 'import uvloop, httptools, mlflow; print(mlflow.__version__)'"
    )
    assert out.strip() == "3.17.2"


def test_readiness_endpoint_reports_ready(nodes):
    for name in INSTANCES:
        out = nodes[LB].check_output(f"curl -sS --max-time 10 http://{address(name)}:5001/ready")
        report = json.loads(out)
        assert report["ready"], report
        assert set(report["checks"]) == {"database", "artifacts", "server"}


def test_readiness_fails_without_database_while_health_still_ok(nodes):
    node, backend = nodes["mlflow-1"], nodes[BACKEND]
    backend.check_output("systemctl stop postgresql@15-main")
    try:
        result = node.run("/usr/local/sbin/mlflow-ready")
        report = json.loads(result.stdout)
        assert result.rc != 0
        assert not report["checks"]["database"]["ok"]
        assert report["checks"]["artifacts"]["ok"], report
        health = node.check_output(
            f"curl -sS -o /dev/null -w '%{{http_code}}' http://{address('mlflow-1')}:5000/health"
        )
        assert health == "200", (
            "MLflow's /health should stay 200 without a database: that is why readiness exists"
        )
    finally:
        backend.check_output("systemctl start postgresql@15-main")
    wait_ready(node, timeout=60)


@pytest.mark.parametrize("name", INSTANCES)
def test_prometheus_metrics(nodes, name, admin):
    # basic-auth covers /metrics too: Prometheus scrapes with a user of its own.
    anonymous = nodes[LB].check_output(
        f"curl -sS -o /dev/null -w '%{{http_code}}' http://{address(name)}:5000/metrics"
    )
    assert anonymous == "401"
    out = nodes[LB].check_output(
        f"curl -sS --max-time 10 -u {admin[0]}:{admin[1]} http://{address(name)}:5000/metrics"
    )
    assert "mlflow_http_request" in out


# --- the load balancer --------------------------------------------------------


def test_http_redirects_to_https():
    req = urllib.request.Request(
        f"http://{address(LB)}/api/2.0/mlflow/experiments/search", headers={"Host": LB}
    )

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.build_opener(NoRedirect).open(req, timeout=10)
    assert err.value.code == 301
    assert err.value.headers["Location"].startswith(f"https://{LB}/")


def test_health_through_tls():
    status, body = lb_call("GET", "/health")
    assert (status, body) == (200, "OK")


def test_anonymous_access_refused():
    status, _ = lb_call("GET", "/api/2.0/mlflow/experiments/search?max_results=1")
    assert status == 401


def test_unknown_host_name_refused(admin):
    status, _ = lb_call(
        "GET",
        "/api/2.0/mlflow/experiments/search?max_results=1",
        auth=admin,
        host="not-a-client-name.example",
    )
    assert status == 403


def test_stub_status_on_loopback_only(nodes):
    lb = nodes[LB]
    assert "Active connections" in lb.check_output("curl -sS http://127.0.0.1:8080/stub_status")
    assert lb.run(f"curl -sS --max-time 3 http://{address(LB)}:8080/stub_status").rc != 0


def test_access_log_is_json_with_upstream(nodes, admin):
    lb_call("GET", "/api/2.0/mlflow/experiments/search?max_results=1", auth=admin)
    line = nodes[LB].check_output("tail -n 1 /var/log/nginx/mlflow-access.json")
    entry = json.loads(line)
    # nginx sends to the instance pool on loopback; the pool names the instance
    # that answered (logged, not shown to clients).
    assert entry["upstream_addr"] == "127.0.0.1:5080"
    assert entry["instance"] in ("mlflow-1", "mlflow-2")
    headers = nodes[LB].check_output(
        f"curl -sk -D - -o /dev/null -H 'Host: {LB}' https://127.0.0.1/api/2.0/mlflow/experiments/search"
    )
    assert "x-mlflow-instance" not in headers.lower() and " 401" in headers
    assert float(entry["request_time"]) >= 0 and entry["upstream_response_time"]


# --- end to end -----------------------------------------------------------------


def test_end_to_end_run_artifact_and_model_version(nodes, admin):
    # /tmp is a tmpfs in the container: docker cp would write under it, invisibly.
    docker("cp", str(Path(__file__).with_name("e2e_client.py")), "mlflow-1:/var/tmp/e2e_client.py")
    docker("cp", str(CA), "mlflow-1:/var/tmp/lab-ca.crt")
    env = (
        f"MLFLOW_TRACKING_URI=https://{LB} "
        f"MLFLOW_TRACKING_USERNAME={admin[0]} MLFLOW_TRACKING_PASSWORD={admin[1]} "
        "MLFLOW_TRACKING_SERVER_CERT_PATH=/var/tmp/lab-ca.crt MLFLOW_HTTP_REQUEST_MAX_RETRIES=0"
    )
    size = 6 * 1024 * 1024
    out = nodes["mlflow-1"].check_output(f"env {env} {VENV_PY} /var/tmp/e2e_client.py {size}")
    report = json.loads(out.strip().splitlines()[-1])
    assert report["metric_points"] == 5
    assert report["model_version"] == "1" and report["model_version_run_id"] == report["run_id"]
    assert report["artifact_roundtrip_identical"]
    assert report["artifact_uri"].startswith("mlflow-artifacts:")
    key = f"mlflow/artifacts/{report['experiment_id']}/{report['run_id']}/artifacts/model/blob.bin"
    stat = json.loads(nodes[BACKEND].check_output(f"mc stat --json local/{key}"))
    assert stat["size"] == size, stat


def test_user_created_via_one_instance_is_known_to_all(nodes, admin):
    user, password = f"u{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    status, body = lb_call(
        "POST", "/api/2.0/mlflow/users/create", {"username": user, "password": password}, auth=admin
    )
    assert status == 200, body
    for name in INSTANCES:
        url = f"http://{address(name)}:5000/api/2.0/mlflow/experiments/search?max_results=1"
        ok = nodes[LB].check_output(f"curl -sS -o /dev/null -w '%{{http_code}}' -u {user}:{password} '{url}'")
        bad = nodes[LB].check_output(f"curl -sS -o /dev/null -w '%{{http_code}}' -u {user}:wrong '{url}'")
        assert (ok, bad) == ("200", "401"), name


# --- losing an instance, rolling restart -----------------------------------------


def test_stream_survives_a_stopped_instance_and_it_rejoins(nodes, admin, stream_target):
    victim = "mlflow-2"
    victim_addr = f"{address(victim)}:5000"
    with make_stream(admin, stream_target) as stream:
        time.sleep(3)
        with container_stopped(victim):
            stopped = stream.snapshot()
            time.sleep(12)
            during = stream.snapshot().since(stopped)
        # While the instance was down, the other one served every read and
        # the writes went on (at most the ones in flight at the stop failed).
        stalled = f"calls stalled while {victim} was down: {during.summary()}"
        assert during.reads_ok > 50 and during.writes_ok > 20, stalled
        assert during.reads_failed == 0, during.summary()
        assert during.writes_failed <= MAX_LOST_WRITES_ON_STOP, during.summary()
        assert address(victim) + ":5000" == victim_addr, "the restarted container got another address"
        wait_ready(inventory_host(victim))
        mark = int(nodes[LB].check_output("wc -l < /var/log/nginx/mlflow-access.json"))

        def served_by_victim() -> bool:
            # The pool names the instance that answered (field "instance").
            lines = nodes[LB].check_output(f"tail -n +{mark + 1} /var/log/nginx/mlflow-access.json")
            return any(json.loads(line).get("instance") == victim for line in lines.splitlines() if line)

        wait_for(served_by_victim, timeout=60, interval=2, what=f"{victim} serving through the LB again")
        time.sleep(2)
    result = stream.result
    print(f"\nstop {victim} under load: {result.summary()}", file=sys.stderr)
    print(f"while stopped: {during.summary()}", file=sys.stderr)
    assert result.reads_ok > 100 and result.writes_ok > 50, "the stream did not run"
    assert result.reads_failed == 0, result.summary()
    assert result.writes_failed <= MAX_LOST_WRITES_ON_STOP, result.summary()


def test_rolling_restart_under_load_loses_no_call(nodes, admin, stream_target):
    root = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"])
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    env = dict(
        os.environ,
        ANSIBLE_ROLES_PATH=str(root / "roles"),
        ANSIBLE_LIBRARY=str(root / "library"),
        ANSIBLE_MODULE_UTILS=str(root / "module_utils"),
        ANSIBLE_PIPELINING="true",
    )
    pids_before = {n: nodes[n].check_output("systemctl show -p MainPID --value mlflow") for n in INSTANCES}
    playbook = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory)]
    with make_stream(admin, stream_target) as stream:
        time.sleep(3)
        started = time.monotonic()
        proc = subprocess.run(
            [*playbook, str(root / "playbooks" / "mlflow_rolling_restart.yml")],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        took = time.monotonic() - started
        time.sleep(3)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = stream.result
    print(f"\nrolling restart ({took:.0f} s) under load: {result.summary()}", file=sys.stderr)
    for name in INSTANCES:
        assert nodes[name].check_output("systemctl show -p MainPID --value mlflow") != pids_before[name], (
            f"{name} was not restarted"
        )
    listing = nodes[LB].check_output("/usr/local/sbin/mlflow-lb-backend list")
    assert "DRAIN" not in listing and "MAINT" not in listing
    assert result.reads_ok > 100 and result.writes_ok > 50, "the stream did not run"
    assert result.reads_failed == 0 and result.writes_failed == 0, result.summary()
