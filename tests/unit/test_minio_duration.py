"""roles/minio's minio_duration_seconds filter reads durations the way MinIO (Go) does."""

from __future__ import annotations

import pytest
from sourceload import load_source

minio_duration = load_source("roles/minio/filter_plugins/minio_duration.py")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3s", 3.0),
        ("1s", 1.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("500ms", 0.5),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("0", 0.0),
        ("+3s", 3.0),
        ("-2s", -2.0),
    ],
)
def test_go_durations_are_read(value: str, seconds: float) -> None:
    assert minio_duration.minio_duration_seconds(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "3", "s", "3 s", " 3s", "--3s", "1s2", "abc", "3sec"])
def test_what_go_refuses_is_not_a_duration(value: str) -> None:
    assert minio_duration.minio_duration_seconds(value) is None
