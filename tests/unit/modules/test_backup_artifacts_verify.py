"""hokusai_backup_artifacts_verify: decisions on mc listings recorded in the lab (fixtures/backup)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from ansible.module_utils.testing import patch_module_args
from health_helpers import FIXTURES as ALL_FIXTURES  # also puts module_utils/ on the path
from health_helpers import load_module

FIXTURES = ALL_FIXTURES / "backup"

from ansible.module_utils.hokusai_backup import parse_json_lines  # noqa: E402 - needs the path health_helpers adds

av = load_module("hokusai_backup_artifacts_verify")
SRC, DST = "source/mlflow-artifacts", "target/mlflow-artifacts-copy"


def recorded(name):
    return parse_json_lines((FIXTURES / name).read_text())


def lister(source_file, copy_file):
    table = {SRC: recorded(source_file), DST: recorded(copy_file)}
    return lambda url: table["/".join(url.split("/")[:2])]


def same_content(url):
    return "sha-of-" + url.split("/", 2)[2], None


def now_after(name, seconds):
    """A clock `seconds` after the newest object of a recorded listing."""
    objects, _ = av.listing(recorded(name))
    return max(o["mtime"] for o in objects.values()) + seconds


def run(source_file, copy_file, hash_object=same_content, grace=0, sample_size=5, now_offset=3600, prefix=""):
    return av.verify(
        SRC,
        DST,
        prefix,
        sample_size,
        7,
        grace,
        lister(source_file, copy_file),
        hash_object,
        now=now_after(source_file, now_offset),
    )


def test_healthy_copy_recorded():
    result = run("mc_ls_source_healthy.jsonl", "mc_ls_copy_healthy.jsonl")
    assert result["healthy"] is True, result["problems"]
    assert result["source"]["objects"] == result["copy"]["objects"] == 21
    assert result["source"]["bytes"] == result["copy"]["bytes"]
    assert result["missing"] == 0 and result["copy_lag_seconds"] == 0
    assert result["sample"]["checked"] == 5 and result["sample"]["mismatched"] == []


def test_copy_behind_reports_missing_objects_and_lag():
    # Recorded while two new runs' weights had been uploaded after the last mirror.
    result = run("mc_ls_source_behind.jsonl", "mc_ls_copy_behind.jsonl")
    assert result["healthy"] is False
    assert result["missing"] == 2
    assert result["missing_keys"][0].endswith("/artifacts/model/weights.bin")
    assert result["copy_lag_seconds"] >= 3600
    assert result["problems"][0].startswith("2 objects missing in the copy")


def test_grace_turns_recent_missing_objects_into_pending():
    result = run("mc_ls_source_behind.jsonl", "mc_ls_copy_behind.jsonl", grace=2 * 86400)
    assert result["healthy"] is True
    assert result["pending"] == 2 and result["missing"] == 0
    assert result["copy_lag_seconds"] > 0


def test_sample_mismatch_is_named():
    def corrupt_copy(url):
        return ("other" if url.startswith("target/") else "same"), None

    result = run("mc_ls_source_healthy.jsonl", "mc_ls_copy_healthy.jsonl", hash_object=corrupt_copy)
    assert result["healthy"] is False
    assert len(result["sample"]["mismatched"]) == 5
    assert result["problems"][0].startswith("sample differs: artifacts/")


def test_objects_only_in_copy_are_kept_not_a_problem():
    # A source holding only the older 19 objects against the complete copy: as if two objects had
    # been deleted from the source (deletions are not propagated, the copy keeps them).
    result = run("mc_ls_copy_behind.jsonl", "mc_ls_copy_healthy.jsonl")
    assert result["healthy"] is True
    assert result["only_in_copy"] == 2 and result["missing"] == 0


def test_listing_error_recorded():
    result = run("mc_ls_source_healthy.jsonl", "mc_ls_no_such_bucket.jsonl")
    assert result["healthy"] is False
    assert "cannot list the copy: Unable to list folder." in result["problems"]


def test_download_error_is_reported():
    result = run(
        "mc_ls_source_healthy.jsonl",
        "mc_ls_copy_healthy.jsonl",
        hash_object=lambda url: (None, "Object does not exist"),
    )
    assert result["healthy"] is False
    assert result["sample"]["checked"] == 0
    assert result["problems"][0].endswith("Object does not exist")


@pytest.mark.parametrize(("size", "expected"), [(0, 0), (3, 3), (100, 21)])
def test_sample_size(size, expected):
    import random

    src, _ = av.listing(recorded("mc_ls_source_healthy.jsonl"))
    assert len(av.choose_sample(src, src, size, random.Random(1))) == expected  # noqa: S311 - test data


def run_main(args):
    out = io.StringIO()
    with patch_module_args(args), contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exc:
        av.main()
    return json.loads(out.getvalue()), exc.value.code


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"source": "mlflow-artifacts", "target": DST}, "source must be alias/bucket"),
        ({"source": SRC, "target": DST, "sample_size": -1}, "must not be negative"),
        ({"source": SRC, "target": DST, "env_file": "/nonexistent/env"}, "cannot read env_file"),
    ],
)
def test_bad_arguments_fail(args, message):
    result, code = run_main(args)
    assert code == 1 and result["failed"] is True
    assert message in result["msg"]


def test_main_runs_mc_from_env_file(tmp_path, monkeypatch):
    env = tmp_path / "env"
    env.write_text(
        '# managed\nMC_HOST_source="https://k:s@minio1:9000"\nMC_HOST_target="https://k:s@minio1:9000"\n'
    )
    seen = []

    def fake_list(self, url):
        seen.append((url, self.env["MC_HOST_source"]))
        return recorded("mc_ls_source_healthy.jsonl")

    monkeypatch.setattr(av.Mc, "list_objects", fake_list)
    monkeypatch.setattr(av.Mc, "hash_object", lambda self, url: ("x", None))
    result, code = run_main({"source": SRC, "target": DST, "env_file": str(env), "_ansible_check_mode": True})
    assert code == 0 and result["changed"] is False and result["healthy"] is True
    assert seen == [(SRC + "/", "https://k:s@minio1:9000"), (DST + "/", "https://k:s@minio1:9000")]
