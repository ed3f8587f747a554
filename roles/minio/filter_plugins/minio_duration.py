"""Filter for the minio role: the seconds in a Go duration string, as MinIO parses its settings.

MinIO reads durations such as MINIO_DRIVE_MAX_TIMEOUT with Go's time.ParseDuration
and, for that one, silently replaces anything it cannot parse or that is not above
1 s with its 30 s default (internal/config/drive/drive.go). The preflight uses this
filter to refuse such values instead of letting them turn into 30 s.
"""

from __future__ import annotations

import re

# Go's units (time.ParseDuration), in seconds.
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def minio_duration_seconds(value: object) -> float | None:
    """Seconds in VALUE read as a Go duration ('3s', '1m30s', '1.5s', '500ms'), or None if it is not one.

    Like time.ParseDuration: an optional sign, then one or more number+unit parts;
    a bare '0' is zero; a number without a unit, '' and anything else is not a
    duration.
    """
    text = str(value)
    sign = -1.0 if text.startswith("-") else 1.0
    if text[:1] in ("+", "-"):
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        return None
    total, pos = 0.0, 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        return None
    return sign * total


class FilterModule:
    """minio_duration_seconds."""

    def filters(self) -> dict:
        return {"minio_duration_seconds": minio_duration_seconds}
