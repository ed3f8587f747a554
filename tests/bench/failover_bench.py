"""Failover benchmark for the Patroni scenario (a script, not a test).

For Patroni's default timers (ttl 30, loop_wait 10, retry_timeout 10,
primary_start_timeout 300) and for the role's (20, 1, 9, 0), in the same run,
it measures over N runs each:

- crash:      PostgreSQL's postmaster on the leader SIGKILLed (host stays up)
- host loss:  the leader's container SIGKILLed (started again afterwards)
- switchover: planned, through Patroni's REST API to the synchronous standby

Figures: the write gap, i.e. the longest time without an acknowledged write
through the client endpoint (the writer commits every 50 ms, so this is the
outage: event to first write on the new primary), and acknowledged rows lost
(must be 0).

Needs the scenario's containers: `make bench-failover` creates and converges
them, runs this, and destroys them. Prints figures; asserts nothing on time.
usage: failover_bench.py [--runs N]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from labtools import docker, wait_for  # noqa: E402 - path set just above

NODES = ("pg-1", "pg-2", "pg-3")
CLIENT = "pg-client"
WRITER = ROOT / "molecule" / "patroni" / "tests" / "writer.py"
DEFAULT_TIMERS = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10, "primary_start_timeout": 300}
CHOSEN_TIMERS = {"ttl": 20, "loop_wait": 1, "retry_timeout": 9, "primary_start_timeout": 0}


def sh(container: str, command: str, check: bool = True) -> str:
    proc = subprocess.run(["docker", "exec", container, "sh", "-c", command], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{container}: {command}: {proc.stderr.strip()}")
    return proc.stdout


def running(name: str) -> bool:
    return docker("inspect", "-f", "{{.State.Running}}", name).strip() == "true"


def cluster() -> dict:
    for name in NODES:
        if running(name):
            out = sh(name, "curl -sf --max-time 3 http://127.0.0.1:8008/cluster", check=False)
            if out:
                return json.loads(out)
    raise RuntimeError("no Patroni REST API answers")


def role(state: dict, wanted: str) -> str:
    return next(m["name"] for m in state["members"] if m["role"] == wanted)


def healthy() -> bool:
    state = cluster()
    roles = sorted(m["role"] for m in state["members"])
    return roles == ["leader", "replica", "sync_standby"] and all(
        m["state"] in ("running", "streaming") for m in state["members"]
    )


def secret(name: str) -> str:
    """A password the scenario generated (molecule.yml password lookups)."""
    if "MOLECULE_EPHEMERAL_DIRECTORY" in os.environ:
        base = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    else:
        found = sorted(Path.home().glob(".ansible/tmp/molecule.*.patroni"))
        if not found:
            raise SystemExit("no converged patroni scenario: run `molecule converge -s patroni` first")
        base = found[-1]
    return (base / "secrets" / name).read_text().split()[0]


def app_dsn() -> str:
    return (
        f"host=127.0.0.1 port=5433 dbname=mlflow user=mlflow password={secret('pg_mlflow')} connect_timeout=2"
    )


def set_timers(timers: dict) -> None:
    leader = role(cluster(), "leader")
    body = json.dumps(timers)
    auth = f"patroni:{secret('patroni_restapi')}"
    sh(
        leader,
        f"curl -sf -u {shlex.quote(auth)} -X PATCH -d {shlex.quote(body)} http://127.0.0.1:8008/config",
    )
    time.sleep(3)


class Writer:
    def __init__(self, tag: str) -> None:
        self.log, self.stop = f"/var/tmp/bench-{tag}.log", f"/var/tmp/bench-{tag}.stop"
        dsn = app_dsn()
        sh(CLIENT, f"rm -f {self.log} {self.stop}")
        docker("cp", str(WRITER), f"{CLIENT}:/usr/local/bin/hokusai-writer.py")
        docker("exec", "-d", CLIENT, "python3", "/usr/local/bin/hokusai-writer.py", dsn, self.log, self.stop)
        wait_for(lambda: len(self.acked()) >= 20, timeout=30, what="writer warm-up")

    def acked(self) -> list[tuple[int, float]]:
        rows = []
        for line in sh(CLIENT, f"cat {self.log}", check=False).splitlines():
            parts = line.split()
            if parts and parts[0] == "ok":
                rows.append((int(parts[1]), float(parts[2])))
        return rows

    def finish(self) -> list[tuple[int, float]]:
        sh(CLIENT, f"touch {self.stop}")
        wait_for(
            lambda: sh(CLIENT, "pgrep -f '[h]okusai-writer.py'", check=False) == "", 15, what="writer exit"
        )
        return self.acked()


def lost_rows(rows: list[tuple[int, float]]) -> int:
    dsn = app_dsn()
    code = (
        "import sys, psycopg2; c = psycopg2.connect(sys.argv[1]); cur = c.cursor(); "
        "cur.execute('select id from failover_probe'); print(' '.join(str(r[0]) for r in cur))"
    )
    stored = {int(x) for x in sh(CLIENT, f"python3 -c {shlex.quote(code)} {shlex.quote(dsn)}").split()}
    return len({i for i, _ in rows} - stored)


def prepare_table() -> None:
    dsn = app_dsn()
    code = (
        "import sys, psycopg2; c = psycopg2.connect(sys.argv[1]); c.autocommit = True; cur = c.cursor(); "
        "cur.execute('drop table if exists failover_probe'); "
        "cur.execute('create table failover_probe (id int primary key, at timestamptz default now())')"
    )
    sh(CLIENT, f"python3 -c {shlex.quote(code)} {shlex.quote(dsn)}")


def event(kind: str) -> str:
    state = cluster()
    leader = role(state, "leader")
    if kind == "crash":
        sh(leader, "pkill -KILL -o -x postgres")
    elif kind == "host loss":
        docker("kill", "--signal", "KILL", leader)
    else:
        target = role(state, "sync_standby")
        auth = f"patroni:{secret('patroni_restapi')}"
        body = json.dumps({"leader": leader, "candidate": target})
        sh(
            leader,
            f"curl -sf -u {shlex.quote(auth)} -X POST -d {shlex.quote(body)} http://127.0.0.1:8008/switchover",
        )
    return leader


def measure(kind: str) -> dict:
    wait_for(healthy, timeout=240, interval=2, what="a healthy cluster before the run")
    prepare_table()
    writer = Writer(kind.replace(" ", "-"))
    victim = ""
    try:
        victim = event(kind)
        at = time.time()
        # Recovered = a second of steady writes (20 acknowledgements) after the event.
        wait_for(
            lambda: sum(ts > at for _, ts in writer.acked()) >= 20,
            timeout=400,
            interval=0.5,
            what="writes resuming",
        )
    finally:
        rows = writer.finish()
        if kind == "host loss" and victim and not running(victim):
            docker("start", victim)
    # The outage is the longest gap between two acknowledged writes (the
    # writer commits every 50 ms, so anything longer is the failover).
    gap = max(b - a for (_, a), (_, b) in itertools.pairwise(rows))
    return {"gap": gap, "lost": lost_rows(rows)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results: dict[tuple[str, str], list[dict]] = {}
    for label, timers in (
        ("Patroni defaults 30/10/10, pst 300", DEFAULT_TIMERS),
        ("chosen 20/1/9, pst 0", CHOSEN_TIMERS),
    ):
        wait_for(healthy, timeout=240, interval=2, what="a healthy cluster")
        set_timers(timers)
        for kind in ("crash", "host loss", "switchover"):
            for run in range(args.runs):
                r = measure(kind)
                print(
                    f"{label:36} {kind:10} run {run + 1}: no acknowledged write for {r['gap']:5.1f} s, "
                    f"lost rows {r['lost']}",
                    flush=True,
                )
                results.setdefault((label, kind), []).append(r)
    set_timers(CHOSEN_TIMERS)
    print("\n| timers | event | write gap min / median / max (s) | acknowledged rows lost |")
    print("| --- | --- | --- | --- |")
    for (label, kind), rs in results.items():
        gaps = [r["gap"] for r in rs]
        print(
            f"| {label} | {kind} | {min(gaps):.1f} / {statistics.median(gaps):.1f} / {max(gaps):.1f} | "
            f"{sum(r['lost'] for r in rs)} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
