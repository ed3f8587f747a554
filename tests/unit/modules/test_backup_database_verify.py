"""hokusai_backup_database_verify: decisions on pgBackRest outputs recorded in the lab (fixtures/backup)."""

from __future__ import annotations

import contextlib
import copy
import io
import json

import pytest
from ansible.module_utils.testing import patch_module_args
from health_helpers import FIXTURES as ALL_FIXTURES  # also puts module_utils/ on the path
from health_helpers import load_module

FIXTURES = ALL_FIXTURES / "backup"

from ansible.module_utils import hokusai_backup  # noqa: E402 - needs the path health_helpers adds

dbv = load_module("hokusai_backup_database_verify")
INFO = (FIXTURES / "pgbackrest_info_one_full.json").read_text()
REPO_LS = (FIXTURES / "pgbackrest_repo_ls_archive.json").read_text()
NOW = 1795819074 + 3600  # one hour after the recorded backup ended


def params(**overrides):
    p = {
        "stanza": "hokusai",
        "config": "/etc/pgbackrest/pgbackrest.conf",
        "pgbackrest_path": "/usr/bin/pgbackrest",
        "run_as": "postgres",
        "list_archive": True,
        "wal_segment_size_mb": 16,
        "check": False,
        "restore_test": False,
        "backup_set": "",
        "recovery_type": "immediate",
        "scratch_dir": "/var/tmp/hokusai-restore-test",
        "port": 55432,
        "pg_bin_dir": "/usr/lib/postgresql/15/bin",
        "database": "mlflow",
        "expected_tables": ["alembic_version", "experiments", "runs"],
        "min_rows": {},
        "checksum_query": "",
        "checksum_expected": "",
        "timeout": 30,
    }
    p.update(overrides)
    return p


class FakeRunner:
    """Answers by the command's verb (info, repo-ls, check, restore, start, stop, psql) and records calls."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def __call__(self, argv, timeout=None):
        self.calls.append(argv)
        verb = self.verb(argv)
        answer = self.answers.get(verb, (0, "", ""))
        return answer(argv) if callable(answer) else answer

    @staticmethod
    def verb(argv):
        if argv[0].endswith("/psql"):
            return "psql"
        return next((v for v in ("info", "repo-ls") if v in argv), argv[-1])

    def verbs(self):
        return [self.verb(a) for a in self.calls]


def psql_answers(
    tables=("public.alembic_version", "public.experiments", "public.runs"), counts=None, checksum="1"
):
    counts = counts or {}

    def answer(argv):
        query = argv[-1]
        if "pg_is_in_recovery" in query:
            return 0, "f\n", ""
        if "information_schema.tables" in query:
            return 0, "\n".join(tables) + "\n", ""
        if query.startswith("SELECT count(*) FROM"):
            table = query.split('"')[1]
            return 0, f"{counts.get(table, 0)}\n", ""
        return 0, f"{checksum}\n", ""

    return answer


def lab_answers(**overrides):
    answers = {
        "info": (0, INFO, ""),
        "repo-ls": (0, REPO_LS, ""),
        "restore": (0, "", ""),
        "start": (0, "server started", ""),
        "stop": (0, "", ""),
    }
    answers["psql"] = psql_answers()
    answers.update(overrides)
    return answers


def repo_ls_runner(listing=REPO_LS, **overrides):
    runner = FakeRunner(lab_answers(**{"repo-ls": (0, listing, "")}, **overrides))
    return runner, runner


def fake_restore_env():
    removed = []
    return (lambda scratch, user: None), removed.append, removed


# ---------------------------------------------------------------- info and archive


def test_recorded_healthy_stanza():
    run, _ = repo_ls_runner()
    result = dbv.verify(params(), run, now=NOW)
    assert result["healthy"] is True, result["problems"]
    latest = result["latest"]
    assert latest["label"] == "20261127-223638F" and latest["type"] == "full"
    assert latest["age_seconds"] == 3600
    assert (latest["wal_start"], latest["wal_stop"]) == (
        "000000020000000000000019",
        "00000002000000000000001A",
    )
    assert result["archive"] == {
        "id": "15-1",
        "min": "000000020000000000000018",
        "max": "00000002000000000000001B",
        "continuous": True,
        "gaps": [],
        "segments": 4,
        "checked_from": "000000020000000000000019",
    }
    assert result["restore_test"]["performed"] is False


def test_recorded_gap_in_archive():
    # The recorded listing with segment ...19 removed, as if one archive-push had been lost.
    listing = {k: v for k, v in json.loads(REPO_LS).items() if "000000020000000000000019-" not in k}
    run, _ = repo_ls_runner(json.dumps(listing))
    result = dbv.verify(params(), run, now=NOW)
    assert result["healthy"] is False
    assert result["archive"]["continuous"] is False
    assert result["problems"] == [
        "WAL archive has a gap: 000000020000000000000019..000000020000000000000019 missing"
    ]


def test_recorded_stanza_without_backup():
    no_backup = (FIXTURES / "pgbackrest_info_no_backup.json").read_text()
    run = FakeRunner(lab_answers(info=(0, no_backup, "")))
    result = dbv.verify(params(restore_test=True), run, now=NOW)
    assert result["healthy"] is False
    assert result["latest"] is None and result["backups"] == 0
    assert "stanza hokusai status 2: no valid backups" in result["problems"]
    assert "restore test not possible: no backup" in result["problems"]
    assert "restore" not in run.verbs()


def test_recorded_missing_stanza():
    missing = (FIXTURES / "pgbackrest_info_missing_stanza.json").read_text()
    result = dbv.verify(params(stanza="nosuch"), FakeRunner(lab_answers(info=(0, missing, ""))), now=NOW)
    assert result["healthy"] is False
    assert result["problems"][0] == "stanza nosuch status 1: missing stanza path"


def test_info_command_failure_is_reported():
    result = dbv.verify(
        params(),
        FakeRunner(lab_answers(info=(28, "", "ERROR: [028]: backup and archive info files missing"))),
        now=NOW,
    )
    assert result["healthy"] is False
    assert result["problems"][0].startswith("pgbackrest info failed (rc 28): ERROR: [028]")


def test_backup_outside_the_archive_range():
    info = json.loads(INFO)
    info[0]["archive"][0]["min"] = "00000002000000000000001A"
    summary = dbv.summarize_info(info, "hokusai", NOW)
    assert summary["problems"] == [
        "backup 20261127-223638F needs WAL 000000020000000000000019..00000002000000000000001A,"
        " outside the archive 00000002000000000000001A..00000002000000000000001B"
    ]


def test_backup_with_errors_is_reported():
    info = json.loads(INFO)
    info[0]["backup"][0]["error"] = True
    assert "has errors" in dbv.summarize_info(info, "hokusai", NOW)["problems"][0]


@pytest.mark.parametrize(
    ("segments", "first", "last", "gaps"),
    [
        (
            ["000000010000000000000005", "000000020000000000000006"],
            "000000010000000000000005",
            "000000020000000000000006",
            [],
        ),
        (
            ["0000000100000000000000FF", "000000010000000100000000"],
            "0000000100000000000000FF",
            "000000010000000100000000",
            [],
        ),
        (
            ["000000010000000000000001", "000000010000000000000004"],
            "000000010000000000000001",
            "000000010000000000000004",
            ["000000010000000000000002..000000010000000000000003"],
        ),
        (
            ["000000010000000000000001"],
            "000000010000000000000001",
            "000000010000000000000002",
            ["000000010000000000000002..000000010000000000000002"],
        ),
    ],
    ids=["timeline-switch", "log-boundary", "two-missing", "missing-at-end"],
)
def test_archive_gaps(segments, first, last, gaps):
    assert dbv.archive_gaps(segments, first, last) == gaps


def test_wal_names_round_trip():
    for name in ("000000020000000000000019", "0000000300000001000000FF"):
        tl, pos = hokusai_backup.wal_position(name)
        assert hokusai_backup.wal_name(tl, pos) == name
    with pytest.raises(ValueError, match="not a WAL segment name"):
        hokusai_backup.wal_position("00000002.history")


def test_archived_segments_skip_backup_labels_and_partials():
    listing = json.loads(REPO_LS)
    listing["0000000200000000/00000002000000000000001C.partial-abc.zst"] = {"type": "file"}
    assert dbv.archived_segments(listing) == [
        "000000020000000000000018",
        "000000020000000000000019",
        "00000002000000000000001A",
        "00000002000000000000001B",
    ]


# ---------------------------------------------------------------- restore test


def restore_test(p, runner):
    prepare, remove, removed = fake_restore_env()
    ticks = iter(range(10_000))
    result = dbv.run_restore_test(
        p, runner, prepare=prepare, remove=remove, sleep=lambda s: None, clock=lambda: next(ticks)
    )
    return result, removed


def test_restore_test_passes_and_cleans_up():
    runner = FakeRunner(lab_answers(psql=psql_answers(counts={"experiments": 7})))
    result, removed = restore_test(params(restore_test=True, min_rows={"experiments": 1}), runner)
    assert result["ok"] is True, result["problems"]
    assert [s["name"] for s in result["steps"]] == [
        "prepare",
        "restore",
        "start",
        "recovery",
        "checks",
        "stop",
        "cleanup",
    ]
    assert result["row_counts"] == {"experiments": 7}
    assert removed == ["/var/tmp/hokusai-restore-test"]
    restore_argv = runner.calls[0]
    assert "--pg1-path=/var/tmp/hokusai-restore-test/data" in restore_argv
    assert "--archive-mode=off" in restore_argv and "--type=immediate" in restore_argv
    start_argv = next(a for a in runner.calls if a[-1] == "start")
    options = start_argv[start_argv.index("-o") + 1]
    assert "-c listen_addresses=''" in options and "-c archive_mode=off" in options
    assert "-c unix_socket_directories=/var/tmp/hokusai-restore-test" in options


def test_restore_failure_still_cleans_up_and_starts_nothing():
    runner = FakeRunner(
        lab_answers(restore=(38, "", "ERROR: [038]: unable to restore while PostgreSQL is running"))
    )
    result, removed = restore_test(params(restore_test=True), runner)
    assert result["ok"] is False
    assert result["problems"][0].startswith("restore test failed: pgbackrest restore failed (rc 38)")
    assert "start" not in runner.verbs() and "stop" not in runner.verbs()
    assert removed == ["/var/tmp/hokusai-restore-test"]


def test_server_that_never_finishes_recovery_is_stopped():
    def in_recovery(argv):
        return 0, "t\n", ""

    runner = FakeRunner(lab_answers(psql=in_recovery))
    result, removed = restore_test(params(restore_test=True, timeout=5), runner)
    assert result["ok"] is False
    assert "recovery did not finish within 5s (last answer: t)" in result["problems"][0]
    assert runner.verbs()[-1] == "stop" and removed


@pytest.mark.parametrize(
    ("overrides", "psql", "problem"),
    [
        (
            {"checksum_query": "SELECT 1", "checksum_expected": "2"},
            psql_answers(),
            "checksum query returned '1', expected '2'",
        ),
        (
            {"expected_tables": ["experiments", "model_versions"]},
            psql_answers(),
            "restored database lacks tables public.model_versions",
        ),
        (
            {"min_rows": {"experiments": 10}},
            psql_answers(counts={"experiments": 7}),
            "table experiments has 7 rows, below the minimum 10",
        ),
    ],
    ids=["checksum", "missing-table", "too-few-rows"],
)
def test_content_checks_fail_with_a_reason(overrides, psql, problem):
    runner = FakeRunner(lab_answers(psql=psql))
    result, removed = restore_test(params(restore_test=True, **overrides), runner)
    assert result["ok"] is False
    assert problem in result["problems"]
    assert runner.verbs()[-1] == "stop" and removed


def test_check_mode_skips_the_restore_test():
    run, runner = repo_ls_runner()
    result = dbv.verify(params(restore_test=True), run, now=NOW, check_mode=True)
    assert result["healthy"] is True
    assert result["restore_test"]["skipped_reason"] == "check mode: the restore test was skipped"
    assert "restore" not in runner.verbs()


def test_pgbackrest_check_result_is_reported():
    run, _ = repo_ls_runner(
        check=(
            82,
            "",
            "ERROR: [082]: WAL segment 00000002000000000000001C was not archived before the 60000ms timeout",
        )
    )
    result = dbv.verify(params(check=True), run, now=NOW)
    assert result["check"]["rc"] == 82
    assert result["problems"][0].startswith("pgbackrest check failed (rc 82)")


def test_prepare_refuses_a_foreign_directory(tmp_path):
    foreign = tmp_path / "data"
    foreign.mkdir()
    with pytest.raises(RuntimeError, match="is not a restore-test directory"):
        dbv.prepare_scratch(str(foreign), "")


def test_prepare_replaces_a_leftover(tmp_path):
    scratch = tmp_path / "restore"
    dbv.prepare_scratch(str(scratch), "")
    (scratch / "data").mkdir()
    dbv.prepare_scratch(str(scratch), "")
    assert sorted(p.name for p in scratch.iterdir()) == [
        ".hokusai-restore-test",
        "pg_hba.conf",
        "pg_ident.conf",
    ]


# ---------------------------------------------------------------- main()


def run_main(args, monkeypatch=None, runner=None):
    if monkeypatch is not None:
        monkeypatch.setattr(dbv, "Runner", lambda user: runner)
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exc:
        dbv.main()
    return json.loads(out.getvalue()), exc.value.code


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"scratch_dir": "/"}, "scratch_dir '/' must be an absolute path"),
        ({"scratch_dir": "/var/lib/../tmp"}, "must be an absolute path"),
        ({"port": 80}, "port 80 must be between 1024 and 65535"),
        ({"checksum_query": "SELECT 1"}, "checksum_query and checksum_expected go together"),
        ({"min_rows": {"runs": "many"}}, "min_rows[runs] must be a number"),
        ({"recovery_type": "time"}, "value of recovery_type must be one of"),
    ],
)
def test_bad_arguments_fail(args, message):
    result, code = run_main(args)
    assert code == 1 and result["failed"] is True
    assert message in result["msg"]


def test_main_reports_in_check_mode(monkeypatch):
    run, _ = repo_ls_runner()
    runner = copy.copy(run)
    result, code = run_main({"restore_test": True, "_ansible_check_mode": True}, monkeypatch, runner)
    assert code == 0 and result["changed"] is False
    assert result["restore_test"]["performed"] is False
    assert result["latest"]["label"] == "20261127-223638F"


# ---------------------------------------------------------------- a real timeline switch, old strays

INFO_TL3 = (FIXTURES / "pgbackrest_info_timeline3.json").read_text()
REPO_LS_TL3 = (FIXTURES / "pgbackrest_repo_ls_timeline3_strays.json").read_text()


def test_recorded_timeline_switch_with_strays_before_the_first_backup():
    # Recorded after a switchover (timeline 3 from ...20) with segments ...0E-11 archived before the
    # first backup and ...12-17 never archived: those restore nothing, so no gap is reported.
    run = FakeRunner(lab_answers(info=(0, INFO_TL3, ""), **{"repo-ls": (0, REPO_LS_TL3, "")}))
    result = dbv.verify(params(), run, now=NOW)
    assert result["healthy"] is True, result["problems"]
    assert result["archive"]["min"] == "00000002000000000000000E"
    assert result["archive"]["checked_from"] == "000000020000000000000019"
    assert result["archive"]["max"] == "000000030000000000000020"
    assert result["backups"] == 3 and result["latest"]["type"] == "incr"


def test_recorded_timeline_switch_with_a_segment_lost_after_the_first_backup():
    listing = {k: v for k, v in json.loads(REPO_LS_TL3).items() if "00000002000000000000001C-" not in k}
    run = FakeRunner(lab_answers(info=(0, INFO_TL3, ""), **{"repo-ls": (0, json.dumps(listing), "")}))
    result = dbv.verify(params(), run, now=NOW)
    assert result["problems"] == [
        "WAL archive has a gap: 00000002000000000000001C..00000002000000000000001C missing"
    ]


def test_prepare_refuses_a_leftover_with_a_running_server(tmp_path):
    import os

    scratch = tmp_path / "restore"
    dbv.prepare_scratch(str(scratch), "")
    (scratch / "data").mkdir()
    (scratch / "data" / "postmaster.pid").write_text(f"{os.getpid()}\n")
    with pytest.raises(RuntimeError, match="still running"):
        dbv.prepare_scratch(str(scratch), "")
    assert (scratch / "data" / "postmaster.pid").exists()
