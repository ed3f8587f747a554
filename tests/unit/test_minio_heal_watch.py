"""The MinIO heal watcher (roles/minio/files/minio_heal_watch.py): reading what
a node reports, when to heal and who heals, reading the heal's result.

Fixtures in tests/unit/fixtures/minio_heal/ were recorded on the lab
(4 nodes x 2 drives) with the pinned mc: `mc admin info --json` asked of
minio1 healthy, 8 s after minio4 was cut off (`docker network disconnect`),
right after it was reconnected (still offline) and 3 s later (online);
`mc admin heal -r --json` during that outage (objects stay yellow: 6 drives)
and after minio4 came back (two objects written during the outage, yellow
before, green after). The heal outputs were cut to a few objects and the
summary."""

from __future__ import annotations

import os
import stat
import sys
import time
from pathlib import Path

import pytest
from sourceload import ROOT, load_source

watch = load_source("roles/minio/files/minio_heal_watch.py")
FIXTURES = ROOT / "tests/unit/fixtures/minio_heal"


def info(name: str):
    return watch.parse_info((FIXTURES / f"info_{name}.json").read_text())


def test_healthy_cluster_is_whole_with_the_first_endpoint_as_leader() -> None:
    view = info("healthy")
    assert (view.online, view.offline, view.whole) == (8, 0, True)
    assert view.leader == "minio1:9000"
    assert view.describe() == "8/8 drives online"


@pytest.mark.parametrize("name", ["outage", "returned0"])
def test_a_node_cut_off_is_named_until_its_drives_are_seen_again(name: str) -> None:
    view = info(name)
    assert (view.online, view.offline, view.whole) == (6, 2, False)
    assert view.servers_offline == ("minio4:9000",)
    assert view.describe() == "6/8 drives online (minio4:9000 offline)"


def test_back_online_three_seconds_after_the_reconnect() -> None:
    assert info("returned3").whole


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{}",
        "[]",
        '{"info": {}}',
        '{"info": {"backend": {}, "servers": [{"state": "online"}]}}',
        "mc: <ERROR> Unable to get service info",
    ],
)
def test_what_is_not_an_answer_is_refused(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - json's and ours alike
        watch.parse_info(text)


def run_watcher(
    node: str, views: list[tuple[float, str | None]], settle: float = 30
) -> list[tuple[float, str]]:
    w = watch.Watcher(node, settle)
    return [(t, w.observe(info(v) if v else None, t)) for t, v in views]


def test_start_counts_as_an_outage_the_leader_heals_after_settle() -> None:
    decisions = run_watcher(
        "minio1:9000", [(0, "healthy"), (20, "healthy"), (30, "healthy"), (35, "healthy")]
    )
    assert decisions == [(0, "wait"), (20, "wait"), (30, "heal"), (35, "heal")]


def test_outage_then_return_heals_once_settled_and_once_only() -> None:
    w = watch.Watcher("minio1:9000", 30)
    assert w.observe(info("healthy"), 0) == "wait"
    w.observe(info("healthy"), 30)
    w.healed(True, 31)
    assert w.observe(info("healthy"), 40) == "wait"  # nothing pending after the start's heal
    assert w.observe(info("outage"), 50) == "wait"
    assert w.observe(None, 55) == "wait"  # no answer counts as an outage too
    assert w.observe(info("returned0"), 60) == "wait"
    assert w.observe(info("returned3"), 63) == "wait"  # settling: 0 s
    assert w.observe(info("healthy"), 92) == "wait"  # 29 s
    assert w.observe(info("healthy"), 93) == "heal"  # 30 s
    w.healed(True, 95)
    assert w.observe(info("healthy"), 200) == "wait"


def test_an_outage_during_the_settle_period_starts_it_again() -> None:
    decisions = run_watcher(
        "minio1:9000", [(0, "healthy"), (20, "outage"), (25, "healthy"), (50, "healthy"), (55, "healthy")]
    )
    assert [d for _, d in decisions] == ["wait", "wait", "wait", "wait", "heal"]


def test_a_failed_heal_is_tried_again_later_and_later() -> None:
    w = watch.Watcher("minio1:9000", 30, max_wait=100)
    w.observe(info("healthy"), 0)
    assert w.observe(info("healthy"), 30) == "heal"
    w.healed(False, 40)
    assert w.observe(info("healthy"), 99) == "wait"
    assert w.observe(info("healthy"), 100) == "heal"  # 60 s after the failure
    w.healed(False, 100)
    assert w.observe(info("healthy"), 199) == "wait"
    assert w.observe(info("healthy"), 200) == "heal"  # 120 s, capped at max_wait = 100
    w.healed(True, 210)
    assert w.wait == 30


def test_only_the_leader_heals() -> None:
    decisions = run_watcher("minio3:9000", [(0, "outage"), (10, "healthy"), (40, "healthy"), (80, "healthy")])
    assert [d for _, d in decisions] == ["wait"] * 4


def test_heal_after_return_is_a_success_with_its_counts() -> None:
    lines = (FIXTURES / "heal_after_return.jsonl").read_text().splitlines()
    result = watch.parse_heal(lines, 3.0, 0)
    assert result.ok
    assert (result.healed, result.failed, result.examples) == (2, 0, ())
    assert result.describe().endswith("2 healed in 3 s")


def test_heal_during_an_outage_fails_and_names_what_stayed_yellow() -> None:
    lines = (FIXTURES / "heal_during_outage.jsonl").read_text().splitlines()
    result = watch.parse_heal(lines, 4.0, 0)
    assert not result.ok
    assert result.failed == 2  # the fixture keeps two of the 130 yellow objects
    assert all(name.startswith("mlflow-artifacts/") for name in result.examples)


def test_odd_json_from_mc_counts_as_not_healed_and_does_not_crash() -> None:
    lines = ["[1, 2]", '{"status": "error", "error": "plain string"}', '{"status": "success", "after": null}']
    result = watch.parse_heal(lines, 1.0, 0)
    assert (result.ok, result.failed, result.examples) == (False, 1, ("plain string",))


def test_what_mc_said_without_json_is_kept_for_the_log() -> None:
    result = watch.parse_heal(["mc: <ERROR> Unable to heal. Server not initialized", ""], 1.0, 1)
    assert not result.ok
    assert result.examples == ("mc: <ERROR> Unable to heal. Server not initialized",)


@pytest.mark.parametrize(
    ("lines", "returncode"),
    [
        ([], 0),  # no summary: cut off
        (['{"status":"error","error":{"message":"Unable to heal"}}'], 1),
        (['{"status":"success","type":"summary","objects_scanned":1,"objects_healed":0}'], 1),
    ],
)
def test_no_summary_an_error_or_a_failed_exit_is_not_a_success(lines: list[str], returncode: int) -> None:
    assert not watch.parse_heal(lines, 1.0, returncode).ok


def test_credentials_reach_mc_in_its_environment_escaped_and_not_as_minio_variables() -> None:
    os.environ["MINIO_ROOT_PASSWORD"] = "not/for:mc"  # noqa: S105 - a test value
    try:
        env = watch.mc_env("https://minio1:9000", "root user", "p@ss/w:rd", "/etc/minio/mc")
    finally:
        del os.environ["MINIO_ROOT_PASSWORD"]
    assert env["MC_HOST_hokusai"] == "https://root%20user:p%40ss%2Fw%3Ard@minio1:9000"
    assert env["MC_CONFIG_DIR"] == "/etc/minio/mc"
    assert not any(k.startswith("MINIO_") for k in env)


def fake_mc(tmp_path: Path, body: str) -> Path:
    """A stand-in for mc: records its argv, then runs `body` (Python)."""
    mc = tmp_path / "mc"
    seen = tmp_path / "argv"
    mc.write_text(
        f"#!{sys.executable}\nimport sys, time\n"
        f"open({str(seen)!r}, 'w').write(' '.join(sys.argv[1:]))\n{body}\n"
    )
    mc.chmod(mc.stat().st_mode | stat.S_IEXEC)
    return mc


def config(mc: Path, **kw: float) -> dict:
    return {"mc": str(mc), "mc_config_dir": str(mc.parent), "heal_timeout": 60, "interval": 0.05, **kw}


def test_heal_runs_mc_with_the_alias_only_and_reads_its_stream(tmp_path: Path) -> None:
    """The subprocess path: mc replays a recorded heal."""
    replay = FIXTURES / "heal_after_return.jsonl"
    mc = fake_mc(tmp_path, f"sys.stdout.write(open({str(replay)!r}).read())")
    env = watch.mc_env("https://minio1:9000", "root", "s3cret-value", str(tmp_path))
    result, stayed_whole = watch.heal(config(mc), env)
    assert result.ok and result.healed == 2 and stayed_whole
    argv = (tmp_path / "argv").read_text()
    assert argv == f"--config-dir {tmp_path} admin heal -r --json hokusai"
    assert "s3cret" not in argv


def test_a_silent_hung_mc_is_killed_after_heal_timeout(tmp_path: Path) -> None:
    mc = fake_mc(tmp_path, "time.sleep(30)")
    t0 = time.monotonic()
    result, _ = watch.heal(config(mc, heal_timeout=0.3), {})
    assert not result.ok
    assert time.monotonic() - t0 < 10


def test_an_outage_during_the_heal_is_reported(tmp_path: Path) -> None:
    replay = FIXTURES / "heal_after_return.jsonl"
    mc = fake_mc(tmp_path, f"time.sleep(0.4); sys.stdout.write(open({str(replay)!r}).read())")
    answers = iter([True, False])
    result, stayed_whole = watch.heal(config(mc), {}, still_whole=lambda: next(answers, True))
    assert result.ok
    assert not stayed_whole
