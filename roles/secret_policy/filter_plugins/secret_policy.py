"""The one secret-strength policy every role's preflight applies.

`secret | secret_weakness(min_length=16)` is "" for an acceptable secret, or
why it is not ("shorter than 16 characters", "a well-known default", ...).
`{name: secret, ...} | secret_problems(min_length=16)` lists "name: reason"
for each weak one and each value used under two names. Neither ever contains
a secret, so a preflight prints them without no_log (the assert's result
holds the expression and the message, not the variables):

    - name: Preflight | secrets follow the policy
      ansible.builtin.assert:
        that: __problems | length == 0
        fail_msg: "{{ __problems | join('; ') }}"
      vars:
        __problems: "{{ {'minio_root_password': minio_root_password} | secret_problems }}"

What is refused, whatever the length: a well-known default or placeholder
(case-insensitive, also repeated, e.g. "changemechangeme"), fewer than 8
distinct characters, one short pattern repeated, a run of consecutive
characters ("abcdefgh...", "9876..."), and a leading or trailing space (a
copy-paste accident that the services would not all trim alike). Generated
secrets (the lab's 32 random letters and digits) and pass phrases pass.
"""

from __future__ import annotations

import itertools

# Defaults and placeholders shipped by the components or found in guides.
WELL_KNOWN = frozenset(
    {
        "",
        "admin",
        "administrator",
        "change-me",
        "change_me",
        "changeit",
        "changeme",
        "default",
        "letmein",
        "minio",
        "minio123",
        "minioadmin",
        "mlflow",
        "monitor",
        "passphrase",
        "passw0rd",
        "password",
        "password1",
        "password123",
        "password1234",
        "patroni",
        "postgres",
        "prometheus",
        "qwerty",
        "replicator",
        "rewind",
        "root",
        "secret",
        "superuser",
        "test",
        "xxx",
    }
)
MIN_DISTINCT = 8


def _repeats_a_pattern(text: str) -> bool:
    """TEXT is a shorter string repeated ("abcabcabc...")."""
    return len(text) > 1 and text in (text + text)[1:-1]


def _is_a_run(text: str) -> bool:
    """TEXT is consecutive characters, up or down ("abcdef", "654321")."""
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(text)}
    return len(text) > 2 and steps in ({1}, {-1})


def secret_weakness(value: object, min_length: int = 16) -> str:
    """Why VALUE is not an acceptable secret, or "" when it is."""
    if value is None:
        return "not set"
    text = str(value)
    lowered = text.lower()
    if lowered in WELL_KNOWN:
        return "empty" if text == "" else "a well-known default or placeholder"
    if text != text.strip():
        return "starts or ends with white space"
    if len(text) < min_length:
        return f"shorter than {min_length} characters ({len(text)})"
    for word in WELL_KNOWN - {""}:
        if lowered.count(word) * len(word) == len(lowered):
            return "a well-known default or placeholder, repeated"
    if _repeats_a_pattern(text):
        return "one short pattern repeated"
    if _is_a_run(lowered):
        return "a run of consecutive characters"
    if len(set(text)) < MIN_DISTINCT:
        return f"fewer than {MIN_DISTINCT} distinct characters ({len(set(text))})"
    return ""


def secret_problems(secrets: dict, min_length: int = 16) -> list[str]:
    """What is wrong with SECRETS (variable name -> value), one "name: reason"
    per weak secret and one line per value used under two names; [] when all
    pass. Names only: a preflight can print the list without no_log."""
    problems = [
        f"{name}: {reason}"
        for name, value in secrets.items()
        if (reason := secret_weakness(value, min_length))
    ]
    by_value: dict[str, list[str]] = {}
    for name, value in secrets.items():
        if value:
            by_value.setdefault(str(value), []).append(str(name))
    problems += [
        f"{' and '.join(names)}: the same secret for two purposes"
        for names in by_value.values()
        if len(names) > 1
    ]
    return problems


class FilterModule:
    def filters(self) -> dict:
        return {"secret_weakness": secret_weakness, "secret_problems": secret_problems}
