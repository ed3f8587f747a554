"""The entry point survives losing a load balancer, and grey failures behind it.

A registration stream of the SDK (sdk/scripts/registration_stream.py: 4 clients,
default breaker, retry and outbox settings) runs against the floating address
while:
- the container holding the address is killed (host lost);
- only nginx stops on the holder (the service dies, the host lives);
- one MLflow instance is frozen (SIGSTOP on its whole unit) behind the pool.
What must hold: the address moves within 3 s, no stretch longer than 5 s
without a synchronous success, no registration lost or duplicated; for the
frozen instance, no call longer than 5 s and nothing spooled. Both load
balancers up: exactly one holds the address.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ROOT, Lab
from mlflow import MlflowClient

STREAM = ROOT / "sdk" / "scripts" / "registration_stream.py"
LBS = ("lb1", "lb2")
VIP = "172.28.10.40"
MOVE_GOAL_S = 3.0
GAP_GOAL_S = 5.0
CALL_GOAL_S = 5.0
# Frozen instance out of rotation: 3.0 s worst case by configuration
# (roles/nginx_lb); this test polls through docker exec on a loaded 2-core
# machine, which adds up to ~0.5 s (measured 2.84-3.51 s).
OUT_OF_ROTATION_GOAL_S = 4.0


def sh(
    container: str, *cmd: str, check: bool = True, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "exec", f"hokusai-lab-{container}", *cmd],
                          capture_output=True, text=True, timeout=timeout, check=check)  # fmt: skip


def holds(lb: str) -> bool:
    try:
        return (
            VIP in sh(lb, "ip", "-o", "-4", "addr", "show", "to", f"{VIP}/32", check=False, timeout=5).stdout
        )
    except subprocess.TimeoutExpired:
        return False


def holders() -> list[str]:
    return [lb for lb in LBS if holds(lb)]


def wait_for(what: str, condition: Callable[[], object], timeout: float, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def pool(lb: str) -> dict[str, str]:
    """'backend/server' -> state, as the pool on LB sees the instances (checked entries only)."""
    out = sh(lb, "/usr/local/sbin/mlflow-lb-backend", "list", check=False).stdout
    states = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and not parts[1].endswith("-fallback"):
            states[f"{parts[0]}/{parts[1]}"] = parts[3]
    return states


def lb_ready(lb: str) -> bool:
    """nginx, the pool and keepalived run on LB and every instance is in its rotation."""
    active = sh(
        lb, "systemctl", "is-active", "nginx", "mlflow-lb-pool", "keepalived", check=False
    ).stdout.split()
    states = pool(lb)
    return active == ["active"] * 3 and bool(states) and all(s == "UP" for s in states.values())


def stable_holder() -> str:
    def probe() -> str | None:
        h = holders()
        return h[0] if len(h) == 1 and all(lb_ready(lb) for lb in LBS) else None

    return wait_for(
        "both load balancers ready and exactly one holding the address", probe, timeout=120, every=1
    )


@contextmanager
def stream(lab: Lab, tmp_path: Path, seconds: int) -> Iterator[dict]:
    """Run the registration stream; yield a dict that holds its result once the block ends."""
    model = f"e2e-lb-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [sys.executable, str(STREAM), "--tracking-uri", lab.url, "--model", model,
         "--clients", "4", "--rate", "4", "--seconds", str(seconds), "--key-index",
         "--drain-timeout", "120", "--outbox-dir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    result: dict = {}
    try:
        client = MlflowClient(tracking_uri=lab.url)

        def flowing() -> bool:
            try:
                return len(client.search_model_versions(f"name='{model}'", max_results=50)) >= 16
            except Exception:  # noqa: BLE001 - the model may not exist yet
                return False

        wait_for("registrations to flow", flowing, timeout=60)
        yield result
        out, err = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    sys.stderr.write(err[-3000:])
    assert out.strip(), f"the stream printed no result (rc {proc.returncode}): {err[-2000:]}"
    result.update(json.loads(out.strip().splitlines()[-1]))
    print(json.dumps({k: v for k, v in result.items() if k not in ("duplicated", "lost")}, indent=1))


def assert_nothing_lost(result: dict) -> None:
    assert not result["duplicated"], f"keys with more than one version: {result['duplicated']}"
    assert not result["lost"], f"keys never registered: {result['lost'][:20]}"
    assert result["still_pending"] == 0, "rows left in the outboxes after the drain timeout"
    assert not result["errors"], result["errors"]
    assert result["ok"]


def move(fault: Callable[[], object], new_holder: str) -> float:
    """Seconds from FAULT() until NEW_HOLDER holds the address (alone or not)."""
    start = time.monotonic()
    fault()
    wait_for(f"{new_holder} to hold {VIP}", lambda: holds(new_holder), timeout=30, every=0.1)
    return time.monotonic() - start


def test_exactly_one_load_balancer_holds_the_address() -> None:
    holder = stable_holder()
    for _ in range(6):
        assert holders() == [holder]
        time.sleep(0.5)


def test_holder_killed_under_registrations(lab: Lab, tmp_path: Path) -> None:
    holder = stable_holder()
    standby = next(lb for lb in LBS if lb != holder)
    try:
        with stream(lab, tmp_path, seconds=25) as result:
            took = move(
                lambda: subprocess.run(["docker", "kill", f"hokusai-lab-{holder}"], check=True), standby
            )
            print(f"\n{holder} killed: {standby} holds {VIP} after {took:.2f} s")
    finally:
        subprocess.run(["docker", "start", f"hokusai-lab-{holder}"], check=True)
    assert took <= MOVE_GOAL_S, f"the address moved after {took:.2f} s (goal {MOVE_GOAL_S} s)"
    assert result["longest_gap_seconds"] <= GAP_GOAL_S, f"{result['longest_gap_seconds']} s without a success"
    assert_nothing_lost(result)
    # The killed node comes back as a standby: no second move.
    wait_for(f"{holder} back and ready", lambda: lb_ready(holder), timeout=120, every=1)
    assert holders() == [standby]


def test_load_balancing_service_stopped_under_registrations(lab: Lab, tmp_path: Path) -> None:
    holder = stable_holder()
    standby = next(lb for lb in LBS if lb != holder)
    try:
        with stream(lab, tmp_path, seconds=25) as result:
            took = move(lambda: sh(holder, "systemctl", "stop", "nginx"), standby)
            print(f"\nnginx stopped on {holder}: {standby} holds {VIP} after {took:.2f} s")
            assert holders() == [standby], "the node whose service stopped must give the address up"
    finally:
        sh(holder, "systemctl", "start", "nginx")
    assert took <= MOVE_GOAL_S, f"the address moved after {took:.2f} s (goal {MOVE_GOAL_S} s)"
    assert result["longest_gap_seconds"] <= GAP_GOAL_S, f"{result['longest_gap_seconds']} s without a success"
    assert_nothing_lost(result)
    wait_for(f"{holder} serving again", lambda: lb_ready(holder), timeout=60, every=1)
    assert holders() == [standby], "no preemption: the recovered node stays a standby"


@pytest.mark.parametrize("instance", ["mlflow1"])
def test_frozen_instance_leaves_rotation(lab: Lab, tmp_path: Path, instance: str) -> None:
    holder = stable_holder()
    freeze_s = 15
    try:
        with stream(lab, tmp_path, seconds=freeze_s + 12) as result:
            t0 = time.monotonic()
            sh(instance, "systemctl", "kill", "-s", "STOP", "mlflow")

            def out_of_rotation() -> bool:
                states = pool(holder)
                mine = [s for k, s in states.items() if k.endswith(f"/{instance}")]
                return bool(mine) and all(s.startswith("DOWN") for s in mine)

            wait_for(f"{instance} out of the pool's rotation", out_of_rotation, timeout=30, every=0.1)
            out_after = time.monotonic() - t0
            print(f"\n{instance} frozen: out of rotation after {out_after:.2f} s")
            time.sleep(
                max(0.0, freeze_s - (time.monotonic() - t0))
            )  # the fault lasts freeze_s, traffic keeps flowing
            sh(instance, "systemctl", "kill", "-s", "CONT", "mlflow")
    finally:
        sh(instance, "systemctl", "kill", "-s", "CONT", "mlflow", check=False)
    assert out_after <= OUT_OF_ROTATION_GOAL_S, f"{instance} left rotation after {out_after:.2f} s"
    assert result["max_call_seconds"] <= CALL_GOAL_S, f"a call took {result['max_call_seconds']} s"
    assert result["spooled"] == 0, f"{result['spooled']} registrations were spooled instead of registered"
    assert_nothing_lost(result)
    wait_for(f"{instance} back in rotation", lambda: lb_ready(holder), timeout=60, every=1)
