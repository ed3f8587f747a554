"""Registrations through the load balancer while the database primary crashes.

The SDK's own stream (sdk/scripts/registration_stream.py) runs 4 clients with
the default breaker, retry and outbox settings against the lab's entry point;
once registrations are flowing, PostgreSQL's postmaster on the Patroni leader
is SIGKILLed (a crash: Patroni fails over instead of restarting it in place).
What must hold afterwards: every key registered exactly once, none lost, every
outbox drained without a flush() call, a new leader elected and the old one
streaming again. The figures (failover, pending span, drain) are printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

from conftest import ROOT, Lab
from mlflow import MlflowClient

STREAM = ROOT / "sdk" / "scripts" / "registration_stream.py"
DB_HOSTS = ("db1", "db2", "db3")


def patroni_cluster() -> list[dict]:
    """Members as Patroni's REST API reports them, asked on any node that answers."""
    for host in DB_HOSTS:
        proc = subprocess.run(
            ["docker", "exec", f"hokusai-lab-{host}", "/opt/patroni/bin/patronictl",
             "-c", "/etc/patroni/patroni.yml", "list", "-f", "json"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if proc.returncode == 0 and proc.stdout.strip():
            return json.loads(proc.stdout)
    return []


def leader() -> str | None:
    for m in patroni_cluster():
        if m.get("Role") == "Leader" and m.get("State") == "running":
            return str(m["Member"])
    return None


def wait_for(what: str, condition, timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def all_streaming() -> bool:
    members = patroni_cluster()
    replicas = [m for m in members if m.get("Role") != "Leader"]
    return (
        len(members) == len(DB_HOSTS)
        and sum(m.get("Role") == "Leader" and m.get("State") == "running" for m in members) == 1
        and all(m.get("State") == "streaming" for m in replicas)
    )


def test_registrations_survive_a_primary_crash(lab: Lab, tmp_path: Path) -> None:
    assert all_streaming(), f"the cluster must be healthy first: {patroni_cluster()}"
    old = leader()
    assert old, "no running leader"
    model = f"e2e-failover-{uuid.uuid4().hex[:8]}"
    stream = subprocess.Popen(
        [sys.executable, str(STREAM), "--tracking-uri", lab.url, "--model", model,
         "--clients", "4", "--rate", "4", "--seconds", "40", "--key-index",
         "--drain-timeout", "120", "--outbox-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        client = MlflowClient(tracking_uri=lab.url)

        def flowing() -> bool:
            try:
                return len(client.search_model_versions(f"name='{model}'", max_results=50)) >= 20
            except Exception:  # noqa: BLE001 - the model may not exist yet
                return False

        wait_for("registrations to flow", flowing, timeout=60)

        t_kill = time.monotonic()
        # The oldest postgres process of the postgres user is the postmaster.
        postmaster = ["pkill", "-KILL", "-o", "-u", "postgres", "-x", "postgres"]
        subprocess.run(["docker", "exec", f"hokusai-lab-{old}", *postmaster], check=True, timeout=30)

        def new_leader() -> str | None:
            now = leader()
            return now if now and now != old else None

        new = wait_for("a new leader", new_leader, timeout=60)
        failover_s = time.monotonic() - t_kill

        out, err = stream.communicate(timeout=400)
    finally:
        if stream.poll() is None:
            stream.kill()
    sys.stderr.write(err[-3000:])
    assert out.strip(), f"the stream printed no result (rc {stream.returncode}): {err[-2000:]}"
    result = json.loads(out.strip().splitlines()[-1])
    print(f"\nleader {old} -> {new} in {failover_s:.1f} s after the crash")
    print(json.dumps({k: v for k, v in result.items() if k not in ("duplicated", "lost")}, indent=1))

    assert not result["duplicated"], f"keys with more than one version: {result['duplicated']}"
    assert not result["lost"], f"keys never registered: {result['lost'][:20]}"
    assert result["still_pending"] == 0, "rows left in the outboxes after the drain timeout"
    assert result["ok"] and stream.returncode == 0

    # The crashed node comes back as a streaming replica by itself.
    wait_for("the old leader streaming again", all_streaming, timeout=180, every=2)
