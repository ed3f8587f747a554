"""A replica that was away longer than the primary keeps WAL catches up from
the pgBackRest archive, and an unreachable repository neither stalls its start
nor leaves it silently broken.

Runs before test_backup.py (file order): the restore drills there rebuild the
cluster. Under a writer committing numbered rows on the leader:

1. the asynchronous replica's container is stopped (a host in maintenance);
2. the leader writes ~130 MB of WAL, more than its slot for the replica may
   hold (patroni_max_slot_wal_keep_size is 48 MB in this scenario), and
   checkpoints until the segment the replica needs next is gone from its
   pg_wal;
3. the repository (bk-minio-1, the only S3 endpoint) is frozen
   (`docker pause`: connections are accepted, nothing answers) and the
   replica started: PostgreSQL must come up within a bound (archive-get is
   bounded in time) and then wait, reported by Patroni as not streaming
   (what PatroniReplicaNotStreaming alerts on);
4. the repository is thawed: the replica fetches the missing WAL from the
   archive, streams again, and holds every acknowledged row.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from labtools import docker, inventory_host, wait_for

NODES = ("bk-db-1", "bk-db-2", "bk-db-3")
REPOSITORY = "bk-minio-1"
WRITER = Path(__file__).resolve().parents[2] / "patroni" / "tests" / "writer.py"
LOCAL_DSN = "host=/var/run/postgresql dbname=postgres"
# Bounds asserted below (measured figures are printed).
START_BOUND = 90
CATCHUP_BOUND = 180
STREAMING = "patroni_postgres_streaming"


def cluster() -> dict:
    for name in NODES:
        result = inventory_host(name).run("curl -sf --max-time 3 http://127.0.0.1:8008/cluster")
        if result.rc == 0:
            return json.loads(result.stdout)
    raise AssertionError("no Patroni REST API answers")


def members() -> dict[str, dict]:
    return {m["name"]: m for m in cluster()["members"]}


def psql(node, query: str) -> str:
    return node.check_output(f'runuser -u postgres -- psql -X -At -d postgres -c "{query}"')


def metric(node, name: str) -> float | None:
    text = node.check_output("curl -sf --max-time 3 http://127.0.0.1:8008/metrics")
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def oldest_segment(node) -> str:
    return psql(node, r"SELECT min(name) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}\$'")


def acked(node, log: str) -> set[int]:
    lines = node.file(log).content_string.splitlines()
    return {int(p[1]) for p in (ln.split() for ln in lines) if p[0] == "ok"}


def archive_get_calls(node, since: float) -> list[float]:
    """Durations of the restore_command (archive-get) calls on NODE since SINCE (epoch)."""
    out = node.run(
        f"journalctl -u patroni --since=@{int(since)} -o short-unix --no-pager | grep 'archive-get command '"
    ).stdout
    begun: dict[str, float] = {}
    durations = []
    for line in out.splitlines():
        stamp, _, rest = line.partition(" ")
        pid = rest.split("[", 1)[1].split("]", 1)[0] if "[" in rest else ""
        if "command begin" in rest:
            begun[pid] = float(stamp)
        elif "command end" in rest and pid in begun:
            durations.append(float(stamp) - begun.pop(pid))
    return durations


def accepts_connections(node) -> bool:
    return node.run("runuser -u postgres -- psql -X -At -d postgres -c 'SELECT 1'").stdout.strip() == "1"


def start_writer(leader: str, primary) -> tuple[str, str]:
    """The scenario's writer (molecule/patroni/tests/writer.py) on the leader, over the local socket."""
    psql(primary, "CREATE TABLE IF NOT EXISTS failover_probe (id int PRIMARY KEY, at timestamptz)")
    psql(primary, "TRUNCATE failover_probe")
    log, stop = "/var/tmp/catchup-writer.log", "/var/tmp/catchup-writer.stop"
    primary.run(f"rm -f {log} {stop}")
    docker("cp", str(WRITER), f"{leader}:/var/tmp/hokusai-writer.py")
    docker(
        "exec", "-d", "-u", "postgres", leader, "python3", "/var/tmp/hokusai-writer.py", LOCAL_DSN, log, stop
    )
    return log, stop


def stop_writer(primary, stop: str) -> None:
    primary.run(f"touch {stop}")
    wait_for(lambda: primary.run("pgrep -f '[h]okusai-writer.py'").rc != 0, timeout=15, what="writer exit")


def test_replica_away_catches_up_from_the_archive_after_a_repository_outage():
    state = members()
    leader = next(n for n, m in state.items() if m["role"] == "leader")
    replica = next(n for n, m in state.items() if m["role"] == "replica")
    primary, standby = inventory_host(leader), inventory_host(replica)
    slot_name = replica.replace("-", "_")
    log, stop = start_writer(leader, primary)
    paused = False
    try:
        wait_for(lambda: len(acked(primary, log)) >= 20, timeout=30, what="writer warm-up")

        # 1. The replica goes away.
        left_at = psql(standby, "SELECT pg_last_wal_replay_lsn()")
        docker("stop", "--time", "20", replica)

        # 2. More WAL than the primary keeps for it.
        psql(
            primary,
            "DROP TABLE IF EXISTS walgen; CREATE TABLE walgen AS"
            " SELECT g, repeat(md5(g::text), 3) AS pad FROM generate_series(1, 800000) g",
        )
        needed = psql(primary, f"SELECT pg_walfile_name('{left_at}')")

        def recycled() -> bool:
            psql(primary, "SELECT pg_switch_wal()")
            psql(primary, "CHECKPOINT")
            return oldest_segment(primary) > needed

        wait_for(recycled, timeout=120, interval=3, what=f"{needed} gone from the primary's pg_wal")
        wal_bytes = int(float(psql(primary, f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{left_at}')")))
        slot = psql(primary, f"SELECT wal_status FROM pg_replication_slots WHERE slot_name = '{slot_name}'")  # noqa: S608 - names of this scenario
        print(
            f"\n{replica} away: primary wrote {wal_bytes / 2**20:.0f} MiB of WAL past it; oldest segment kept"
            f" {oldest_segment(primary)} > needed {needed}; its slot: {slot or 'dropped'}"
        )

        # 3. Repository frozen, replica started: it must come up, then wait visibly.
        docker("pause", REPOSITORY)
        paused = True
        started_at, started_epoch = time.monotonic(), time.time()
        docker("start", replica)

        wait_for(
            lambda: standby.run("curl -sf --max-time 2 http://127.0.0.1:8008/patroni").rc == 0,
            timeout=START_BOUND,
            interval=1,
            what=f"{replica}'s Patroni answering",
        )
        boot_seconds = time.monotonic() - started_at
        what = f"{replica} accepting connections with the repository frozen"
        wait_for(lambda: accepts_connections(standby), timeout=START_BOUND, interval=1, what=what)
        start_seconds = time.monotonic() - started_at
        samples = []
        for _ in range(3):
            samples.append((metric(standby, "patroni_replica"), metric(standby, STREAMING)))
            time.sleep(2)
        assert all(s == (1.0, 0.0) for s in samples), f"replica should be up and not streaming: {samples}"
        calls = archive_get_calls(standby, started_epoch)
        print(
            f"repository frozen: {replica}'s Patroni answered {boot_seconds:.1f} s after the container start,"
            f" PostgreSQL accepted connections after {start_seconds:.1f} s,"
            f" then waited ({STREAMING} 0, Patroni state {members()[replica]['state']!r});"
            f" {len(calls)} archive-get calls so far, longest {max(calls, default=0):.1f} s"
        )

        # 4. Repository back: catch up from the archive, then stream.
        docker("unpause", REPOSITORY)
        paused = False
        thawed_at = time.monotonic()
        wait_for(
            lambda: members()[replica]["state"] == "streaming",
            timeout=CATCHUP_BOUND,
            interval=1,
            what=f"{replica} streaming after catching up from the archive",
        )
        catchup = time.monotonic() - thawed_at
        print(
            f"repository back: {replica} streaming {catchup:.1f} s later"
            f" ({wal_bytes / 2**20 / catchup:.1f} MiB of WAL per second, archive included)"
        )
    finally:
        if paused:
            docker("unpause", REPOSITORY)
        stop_writer(primary, stop)

    # Every acknowledged row is on the replica once it has replayed the leader's WAL.
    target = psql(primary, "SELECT pg_current_wal_lsn()")
    wait_for(
        lambda: psql(standby, f"SELECT pg_last_wal_replay_lsn() >= '{target}'") == "t",
        timeout=60,
        what=f"{replica} replayed the leader's WAL",
    )
    rows = acked(primary, log)
    stored = {int(i) for i in psql(standby, "SELECT id FROM failover_probe").split()}
    assert rows and not rows - stored, f"acknowledged rows missing on {replica}: {sorted(rows - stored)[:20]}"
    psql(primary, "DROP TABLE walgen; DROP TABLE failover_probe")
    wait_for(
        lambda: (
            all(m["role"] == "leader" or m["state"] == "streaming" for m in members().values())
            and len(members()) == len(NODES)
        ),
        timeout=60,
        what="every member streaming",
    )
    assert members()[leader]["role"] == "leader"
