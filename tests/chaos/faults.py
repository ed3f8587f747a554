"""The faults of the matrix. Each is a function of a :class:`Segment`: it injects the fault into
real lab containers (``seg.inject``), measures how fast the component underneath recovers
(``seg.component``), holds it, heals it (``seg.heal``) and adds the checks that are specific
to it (``seg.check``). Which Docker command simulates which failure:
../shared/notes/fault-injection.md (kill = host lost, network disconnect = partition,
SIGSTOP = a process that hangs with its sockets open)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import lab
from lab import PREFIX, InjectionFailed, docker, on

ROOT = Path(__file__).resolve().parents[2]


class Segment(Protocol):
    def inject(self, target: str, action: Callable[[], object]) -> None: ...
    def heal(self, action: Callable[[], object] | None = None) -> None: ...
    def component(self, what: str, condition: Callable[[], object], timeout: float = 120) -> float | None: ...
    def hold(self, seconds: float) -> None: ...
    def check(self, name: str, ok: bool, detail: str = "") -> None: ...
    def since_inject(self) -> float: ...


@dataclass(frozen=True)
class Fault:
    name: str
    title: str
    run: Callable[[Segment], None]
    # Workload calls allowed to fail during this fault (e.g. uploads without write quorum):
    # reported, but not counted against the fault's verdict.
    may_fail: frozenset[str] = field(default_factory=frozenset)


HOLD_S = 15.0


def _leader() -> str:
    name = lab.patroni_leader()
    if not name:
        raise InjectionFailed("no running Patroni leader to hit")
    return name


def _new_leader(old: str) -> Callable[[], str | None]:
    def probe() -> str | None:
        now = lab.patroni_leader()
        return now if now and now != old else None

    return probe


def _kill(host: str) -> None:
    docker("kill", PREFIX + host)


def _start(host: str) -> None:
    docker("start", PREFIX + host)


def _reconnect(host: str) -> None:
    docker("network", "connect", "--ip", lab.ADDRESSES[host], "--alias", host, lab.NETWORK, PREFIX + host)


def db_leader_host_killed(seg: Segment) -> None:
    old = _leader()
    seg.inject(old, lambda: _kill(old))
    seg.component("a new Patroni leader elected", _new_leader(old), timeout=90)
    seg.hold(max(0.0, HOLD_S - seg.since_inject()))
    seg.heal(lambda: _start(old))


def _psql(host: str, sql: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """SQL on HOST's own PostgreSQL over its socket, the client cut off after TIMEOUT seconds
    (a cut-off client is never told its commit happened; statement_timeout would be: a cancelled
    wait for the synchronous standby reports the commit with a warning)."""
    return on(
        host,
        "timeout",
        "-s",
        "KILL",
        str(timeout),
        "runuser",
        "-u",
        "postgres",
        "--",
        "psql",
        "-XAtq",
        "-h",
        "/var/run/postgresql",
        "-d",
        "postgres",
        "-c",
        sql,
        timeout=timeout + 10,
    )


def db_leader_partitioned(seg: Segment) -> None:
    old = _leader()
    table = "hokusai_chaos_isolated_writes"
    created = _psql(
        old, f"CREATE TABLE IF NOT EXISTS {table} (id text PRIMARY KEY, at timestamptz DEFAULT now())", 10
    )
    if created.returncode != 0:
        raise InjectionFailed(f"cannot create the probe table on {old}: {created.stderr.strip()[-200:]}")
    seg.inject(old, lambda: docker("network", "disconnect", lab.NETWORK, PREFIX + old))
    # While isolated, the old leader is asked for writes directly, once a second: none may be
    # acknowledged (synchronous replication: its standbys are out of reach).
    acked: list[str] = []
    attempts = 0
    elected: float | None = None
    while seg.since_inject() < 90:
        wid = f"w-{uuid.uuid4().hex[:8]}"
        proc = _psql(old, f"INSERT INTO {table} (id) VALUES ('{wid}')", 3)  # noqa: S608 - own uuid, own table
        attempts += 1
        if proc.returncode == 0 and "ERROR" not in proc.stderr:
            acked.append(wid)
        if elected is None and _new_leader(old)():
            elected = seg.since_inject()
            seg.component("a new Patroni leader elected (the old one isolated)", lambda: True, timeout=0)
        if elected is not None and seg.since_inject() >= max(HOLD_S, elected + 10):
            break
        time.sleep(0.5)
    seg.check(
        "the isolated old leader acknowledged no write",
        not acked,
        f"{attempts} direct writes tried while isolated, {len(acked)} acknowledged {acked[:5]}",
    )
    seg.heal(lambda: _reconnect(old))
    if elected is None:
        seg.check("a new leader was elected while the old one was isolated", False, "none within 90 s")


def postgres_killed_on_leader(seg: Segment) -> None:
    old = _leader()
    # The oldest postgres process of the postgres user is the postmaster.
    seg.inject(old, lambda: on(old, "pkill", "-KILL", "-o", "-u", "postgres", "-x", "postgres", check=True))
    seg.component("a Patroni leader running again", lambda: lab.patroni_leader(), timeout=90)
    seg.hold(max(0.0, HOLD_S - seg.since_inject()))
    seg.heal()


def sync_standby_killed(seg: Segment) -> None:
    standby = lab.sync_standby()
    if not standby:
        raise InjectionFailed("no synchronous standby to kill")

    def another_sync() -> bool:
        now = lab.sync_standby()
        return bool(now and now != standby)

    seg.inject(standby, lambda: _kill(standby))
    seg.component("another member became the synchronous standby", another_sync, timeout=90)
    seg.hold(max(0.0, HOLD_S - seg.since_inject()))
    seg.heal(lambda: _start(standby))


def etcd_leader_killed(seg: Segment) -> None:
    old = lab.etcd_leader()
    if not old:
        raise InjectionFailed("no etcd leader found")
    seg.inject(old, lambda: on(old, "systemctl", "kill", "-s", "KILL", "etcd", check=True))

    def new_leader() -> bool:
        now = lab.etcd_leader()
        return bool(now and now != old)

    seg.component("etcd elected a new leader", new_leader, timeout=60)
    seg.hold(max(0.0, HOLD_S - seg.since_inject()))
    # systemd restarts the killed member (Restart=on-failure): no heal action.
    seg.heal()


def etcd_quorum_lost(seg: Segment) -> None:
    pg_leader = lab.patroni_leader()
    # Two members away, the Patroni leader's own member among them when possible: the DCS is
    # gone for the leader, which keeps its role only through Patroni's failsafe mode.
    victims = sorted(lab.DB_HOSTS, key=lambda h: h != pg_leader)[:2]

    def stop() -> None:
        for host in victims:
            on(host, "systemctl", "stop", "etcd", check=True)

    seg.inject(",".join(victims), stop)
    seg.hold(30.0)

    def start() -> None:
        for host in victims:
            on(host, "systemctl", "start", "etcd", check=True)

    seg.heal(start)
    seg.component("etcd quorum back (every member healthy)", lab.etcd_healthy, timeout=90)
    leader_after = lab.patroni_leader()
    seg.check(
        "the Patroni leader kept its role through the quorum loss (failsafe mode)",
        leader_after == pg_leader,
        f"leader before {pg_leader}, after {leader_after}",
    )


def mlflow_instance_killed(seg: Segment) -> None:
    target = "mlflow1"
    holder = (lab.vip_holders() or ["lb1"])[0]
    seg.inject(target, lambda: _kill(target))
    seg.component(
        f"{target} out of the pool's rotation on {holder}",
        lambda: lab.instance_out_of_rotation(holder, target),
        timeout=60,
    )
    seg.hold(max(0.0, HOLD_S - seg.since_inject()))
    seg.heal(lambda: _start(target))


def mlflow_instance_frozen(seg: Segment) -> None:
    target = "mlflow1"
    holder = (lab.vip_holders() or ["lb1"])[0]
    seg.inject(target, lambda: on(target, "systemctl", "kill", "-s", "STOP", "mlflow", check=True))
    try:
        seg.component(
            f"{target} out of the pool's rotation on {holder}",
            lambda: lab.instance_out_of_rotation(holder, target),
            timeout=60,
        )
        seg.hold(max(0.0, HOLD_S - seg.since_inject()))
    finally:
        seg.heal(lambda: on(target, "systemctl", "kill", "-s", "CONT", "mlflow", check=True))


def minio_node_killed(seg: Segment) -> None:
    target = "minio3"
    seg.inject(target, lambda: _kill(target))
    seg.hold(25.0)
    seg.heal(lambda: _start(target))
    seg.component(f"{target} ready again", lambda: lab.minio_node_ready(target), timeout=120)


def minio_two_nodes_killed(seg: Segment) -> None:
    targets = ("minio3", "minio4")

    def kill() -> None:
        for t in targets:
            _kill(t)

    def start() -> None:
        for t in targets:
            _start(t)

    seg.inject(",".join(targets), kill)
    seg.hold(25.0)
    seg.heal(start)
    seg.component("both MinIO nodes ready again", lambda: all(lab.minio_node_ready(t) for t in targets), 120)


def nginx_restarted(seg: Segment) -> None:
    holder = (lab.vip_holders() or ["lb1"])[0]
    seg.inject(holder, lambda: on(holder, "systemctl", "restart", "nginx", check=True))
    seg.component(
        f"nginx active on {holder}",
        lambda: on(holder, "systemctl", "is-active", "nginx").stdout.strip() == "active",
        30,
    )
    seg.hold(max(0.0, 10.0 - seg.since_inject()))
    seg.heal()


def active_lb_killed(seg: Segment) -> None:
    holders = lab.vip_holders()
    if len(holders) != 1:
        raise InjectionFailed(f"expected one holder of {lab.VIP}, found {holders}")
    holder = holders[0]
    standby = next(lb for lb in lab.LB_HOSTS if lb != holder)
    seg.inject(holder, lambda: _kill(holder))
    seg.component(f"{standby} holds {lab.VIP}", lambda: lab.vip_holders() == [standby], timeout=30)
    seg.hold(max(0.0, 15.0 - seg.since_inject()))
    seg.heal(lambda: _start(holder))


def alertmanager_killed(seg: Segment) -> None:
    target = "mon1"
    unit = "prometheus-alertmanager"
    seg.inject(target, lambda: on(target, "systemctl", "kill", "-s", "KILL", unit, check=True))
    seg.hold(10.0)

    def back() -> None:
        if on(target, "systemctl", "is-active", unit).stdout.strip() != "active":
            on(target, "systemctl", "start", unit, check=True)

    seg.heal(back)
    seg.component(
        f"{unit} active on {target}",
        lambda: on(target, "systemctl", "is-active", unit).stdout.strip() == "active",
        60,
    )


def rolling_restart(seg: Segment) -> None:
    playbook = os.environ.get("HOKUSAI_ANSIBLE_PLAYBOOK", "ansible-playbook")
    books = ("mlflow_rolling_restart.yml", "minio_rolling_restart.yml", "switchover.yml")
    failed: list[str] = []

    def run() -> None:
        for book in books:
            proc = subprocess.run(
                [playbook, "-i", str(ROOT / "inventories" / "lab"), str(ROOT / "playbooks" / book)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if proc.returncode != 0:
                failed.append(f"{book}: rc {proc.returncode}: {proc.stdout.strip()[-400:]}")

    seg.inject("mlflow, minio, patroni", run)
    seg.check("every rolling-restart playbook succeeded", not failed, "; ".join(failed))
    seg.heal()


FAULTS: tuple[Fault, ...] = (
    Fault("db_leader_host_killed", "Database leader host killed (docker kill)", db_leader_host_killed),
    Fault(
        "mlflow_instance_killed", "One MLflow instance killed (docker kill mlflow1)", mlflow_instance_killed
    ),
    Fault(
        "db_leader_partitioned",
        "Database leader partitioned from the others (network disconnect)",
        db_leader_partitioned,
    ),
    Fault("postgres_killed_on_leader", "PostgreSQL SIGKILLed on the leader", postgres_killed_on_leader),
    Fault("sync_standby_killed", "Synchronous standby host killed", sync_standby_killed),
    Fault("etcd_leader_killed", "etcd leader killed (SIGKILL)", etcd_leader_killed),
    Fault("etcd_quorum_lost", "etcd quorum lost: 2 of 3 members stopped for 30 s", etcd_quorum_lost),
    Fault(
        "mlflow_instance_frozen", "One MLflow instance frozen (SIGSTOP: grey failure)", mlflow_instance_frozen
    ),
    Fault("minio_node_killed", "One MinIO node killed (docker kill minio3)", minio_node_killed),
    Fault(
        "minio_two_nodes_killed",
        "Two MinIO nodes killed (write quorum lost)",
        minio_two_nodes_killed,
        may_fail=frozenset({"artifacts/upload"}),
    ),
    Fault("nginx_restarted", "nginx restarted on the active load balancer", nginx_restarted),
    Fault("active_lb_killed", "Active load balancer killed (docker kill)", active_lb_killed),
    Fault("alertmanager_killed", "One Alertmanager killed (SIGKILL)", alertmanager_killed),
    Fault(
        "rolling_restart",
        "Rolling restart of every tier (MLflow, MinIO, Patroni switchover)",
        rolling_restart,
    ),
)
SMOKE = ("db_leader_host_killed", "mlflow_instance_killed")
