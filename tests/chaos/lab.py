"""What the fault matrix asks of the running container lab: states of the components, read
through ``docker exec`` on the lab's containers (no traffic leaves the lab's network)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

PREFIX = "hokusai-lab-"
NETWORK = "hokusai-lab"
DB_HOSTS = ("db1", "db2", "db3")
MINIO_HOSTS = ("minio1", "minio2", "minio3", "minio4")
MLFLOW_HOSTS = ("mlflow1", "mlflow2")
LB_HOSTS = ("lb1", "lb2")
MON_HOSTS = ("mon1", "mon2")
ALL_HOSTS = (*DB_HOSTS, *MINIO_HOSTS, *MLFLOW_HOSTS, *LB_HOSTS, *MON_HOSTS, "ops1")
VIP = "172.28.10.40"
ADDRESSES = {
    "db1": "172.28.10.11",
    "db2": "172.28.10.12",
    "db3": "172.28.10.13",
    "minio1": "172.28.10.21",
    "minio2": "172.28.10.22",
    "minio3": "172.28.10.23",
    "minio4": "172.28.10.24",
    "mlflow1": "172.28.10.31",
    "mlflow2": "172.28.10.32",
    "lb1": "172.28.10.41",
    "lb2": "172.28.10.42",
    "mon1": "172.28.10.51",
    "mon2": "172.28.10.52",
    "ops1": "172.28.10.61",
}

T = TypeVar("T")


class InjectionFailed(RuntimeError):
    """A command that injects or heals a fault did not work: the fault is reported "not run"."""


def docker(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise InjectionFailed(f"docker {' '.join(args)}: rc {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return proc


def on(host: str, *cmd: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess[str]:
    try:
        return docker("exec", PREFIX + host, *cmd, timeout=timeout, check=check)
    except subprocess.TimeoutExpired:
        if check:
            raise InjectionFailed(f"{host}: {' '.join(cmd)} timed out after {timeout} s") from None
        return subprocess.CompletedProcess(cmd, 124, "", "timeout")


def running(host: str) -> bool:
    proc = docker("inspect", "-f", "{{.State.Running}}", PREFIX + host, check=False, timeout=10)
    return proc.stdout.strip() == "true"


def wait_for(what: str, condition: Callable[[], T], timeout: float, every: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# --- Patroni -----------------------------------------------------------------
def patroni_members() -> list[dict]:
    for host in DB_HOSTS:
        proc = on(
            host,
            "/opt/patroni/bin/patronictl",
            "-c",
            "/etc/patroni/patroni.yml",
            "list",
            "-f",
            "json",
            timeout=15,
        )
        if proc.returncode == 0 and proc.stdout.strip():
            return json.loads(proc.stdout)
    return []


def patroni_leader(members: list[dict] | None = None) -> str | None:
    for m in patroni_members() if members is None else members:
        if m.get("Role") == "Leader" and m.get("State") == "running":
            return str(m["Member"])
    return None


def sync_standby() -> str | None:
    for m in patroni_members():
        if m.get("Role") == "Sync Standby" and m.get("State") == "streaming":
            return str(m["Member"])
    return None


def patroni_healthy() -> bool:
    members = patroni_members()
    return (
        len(members) == len(DB_HOSTS)
        and sum(m.get("Role") == "Leader" and m.get("State") == "running" for m in members) == 1
        and all(m.get("State") == "streaming" for m in members if m.get("Role") != "Leader")
    )


# --- etcd --------------------------------------------------------------------
def _etcdctl(host: str, *args: str) -> subprocess.CompletedProcess[str]:
    script = "set -a; . /etc/etcd/etcdctl.env; set +a; exec etcdctl --command-timeout=2s " + " ".join(args)
    return on(host, "bash", "-c", script, timeout=15)


def etcd_leader() -> str | None:
    """The db host whose etcd member leads, asked of any member that answers."""
    for host in DB_HOSTS:
        proc = _etcdctl(host, "endpoint", "status", "--cluster", "-w", "json")
        if proc.returncode != 0 or not proc.stdout.strip():
            continue
        for status in json.loads(proc.stdout):
            header = status.get("Status", {})
            if header.get("header", {}).get("member_id") == header.get("leader"):
                endpoint = status.get("Endpoint", "")
                for name, address in ADDRESSES.items():
                    if name in DB_HOSTS and (f"//{name}:" in endpoint or f"//{address}:" in endpoint):
                        return name
    return None


def etcd_healthy() -> bool:
    for host in DB_HOSTS:
        proc = _etcdctl(host, "endpoint", "health", "--cluster", "-w", "json")
        if proc.stdout.strip():
            try:
                states = json.loads(proc.stdout)
            except json.JSONDecodeError:
                continue
            return len(states) == len(DB_HOSTS) and all(s.get("health") for s in states)
    return False


# --- the entry point -----------------------------------------------------------
def vip_holders() -> list[str]:
    return [
        lb
        for lb in LB_HOSTS
        if VIP in on(lb, "ip", "-o", "-4", "addr", "show", "to", f"{VIP}/32", timeout=5).stdout
    ]


def pool_states(lb: str) -> dict[str, str]:
    """'backend/server' -> state in LB's instance pool (fallback entries left out)."""
    out = on(lb, "/usr/local/sbin/mlflow-lb-backend", "list", timeout=10).stdout
    states = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and not parts[1].endswith("-fallback"):
            states[f"{parts[0]}/{parts[1]}"] = parts[3]
    return states


def instance_out_of_rotation(lb: str, instance: str) -> bool:
    mine = [s for k, s in pool_states(lb).items() if k.endswith(f"/{instance}")]
    return bool(mine) and all(not s.startswith("UP") for s in mine)


def entry_point_healthy() -> bool:
    holders = vip_holders()
    if len(holders) != 1:
        return False
    for lb in LB_HOSTS:
        active = on(
            lb, "systemctl", "is-active", "nginx", "mlflow-lb-pool", "keepalived", timeout=10
        ).stdout.split()
        states = pool_states(lb)
        if active != ["active"] * 3 or not states or any(s != "UP" for s in states.values()):
            return False
    return True


# --- MinIO -------------------------------------------------------------------
def minio_node_ready(host: str) -> bool:
    proc = on(
        host,
        "curl",
        "-sk",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "3",
        "https://127.0.0.1:9000/minio/health/ready",
        timeout=10,
    )
    return proc.stdout.strip() == "200"


def minio_healthy() -> bool:
    return all(running(h) and minio_node_ready(h) for h in MINIO_HOSTS)


def quick_health() -> dict[str, bool]:
    """The fast checks polled after a heal, before health.yml confirms."""
    return {
        "containers running": all(running(h) for h in ALL_HOSTS),
        "patroni: one leader, replicas streaming": patroni_healthy(),
        "etcd: every member healthy": etcd_healthy(),
        "entry point: one address holder, every instance in rotation": entry_point_healthy(),
        "minio: every node ready": minio_healthy(),
    }
