"""roles/secret_policy: the one secret-strength policy the preflights share."""

from __future__ import annotations

import pytest
from sourceload import load_source

policy = load_source("roles/secret_policy/filter_plugins/secret_policy.py")


@pytest.mark.parametrize(
    "secret",
    [
        "k2Qx9vLmT7pWz4Rb8nYc3JdF6hGs1AeU",  # what the lab's password lookup makes
        "s3cret-superuser-0001",
        "correct horse battery staple",
        "Tr0ub4dor&3-extra-long",
    ],
)
def test_strong_secrets_pass(secret: str) -> None:
    assert policy.secret_weakness(secret) == ""


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (None, "not set"),
        ("", "empty"),
        ("minioadmin", "well-known"),
        ("ChangeMe", "well-known"),
        ("short-1", "shorter than 16 characters (7)"),
        ("changemechangeme", "well-known default or placeholder, repeated"),
        ("PasswordPassword", "well-known default or placeholder, repeated"),
        ("abcabcabcabcabcabc", "one short pattern repeated"),
        ("abcdefghijklmnopq", "a run of consecutive characters"),
        ("ZYXWVUTSRQPONMLK", "a run of consecutive characters"),
        ("aaaabbbbccccdddd", "fewer than 8 distinct characters (4)"),
        (" k2Qx9vLmT7pWz4Rb8n", "white space"),
    ],
)
def test_weak_secrets_are_refused_with_the_reason(secret: str | None, reason: str) -> None:
    assert reason in policy.secret_weakness(secret)


def test_the_reason_never_contains_the_secret() -> None:
    for secret in ("short-1", "aaaabbbbccccdddd", "abcabcabcabcabcabc", "minioadmin"):
        assert secret not in policy.secret_weakness(secret)


def test_min_length_is_the_callers() -> None:
    assert policy.secret_weakness("k2Qx9vLmT7pW", 12) == ""
    assert "shorter than 24" in policy.secret_weakness("k2Qx9vLmT7pWz4Rb8nYc3J", 24)


def test_problems_name_each_weak_secret_and_each_reuse() -> None:
    good = "k2Qx9vLmT7pWz4Rb8nYc3JdF6hGs1AeU"
    problems = policy.secret_problems(
        {"a_password": "changeme", "b_key": good, "c_secret": good, "d": "x"}, 16
    )
    assert problems == [
        "a_password: a well-known default or placeholder",
        "d: shorter than 16 characters (1)",
        "b_key and c_secret: the same secret for two purposes",
    ]
    assert not any(good in p for p in problems)
    assert policy.secret_problems({"a": good, "b": good[::-1]}) == []


def test_filters_are_registered() -> None:
    filters = policy.FilterModule().filters()
    assert filters["secret_weakness"] is policy.secret_weakness
    assert filters["secret_problems"] is policy.secret_problems
