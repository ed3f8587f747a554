# Hokusai ML platform: helpers shared by the backup-verification modules
# (library/hokusai_backup_*_verify.py). Standard library only.
"""Commands as another user, JSON-lines output, env files, WAL names, timed steps.

Every function here is pure or takes the command runner as an argument, so the
modules' unit tests replay recorded outputs without a lab.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time

WAL_SEGMENT_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")


def as_user(argv, user, euid=None):
    """argv run as `user` (through runuser when we are root and someone else is asked for)."""
    if not user:
        return list(argv)
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        return list(argv)
    return ["runuser", "-u", user, "--", *argv]


def parse_json_lines(text):
    """Objects of a JSON-lines output (mc --json); other lines are ignored."""
    out = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def parse_env_file(text):
    """KEY=value / KEY="value" lines of a systemd EnvironmentFile (comments skipped)."""
    env = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def wal_position(segment, segment_size_mb=16):
    """(timeline, position) of a WAL segment name; position counts segments from 0/0.

    A timeline switch continues at the same position, so continuity is checked on
    positions, whatever the timeline.
    """
    m = WAL_SEGMENT_RE.match(segment or "")
    if not m:
        raise ValueError(f"not a WAL segment name: {segment!r}")
    per_log = 0x100000000 // (segment_size_mb * 1024 * 1024)
    return int(m.group(1), 16), int(m.group(2), 16) * per_log + int(m.group(3), 16)


def wal_name(timeline, position, segment_size_mb=16):
    """Inverse of wal_position."""
    per_log = 0x100000000 // (segment_size_mb * 1024 * 1024)
    return f"{timeline:08X}{position // per_log:08X}{position % per_log:08X}"


def quote_ident(name):
    """SQL identifier, quoted (schema.table allowed)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def command_line(argv):
    return " ".join(shlex.quote(a) for a in argv)


class Steps:
    """Timed steps for a report: with steps.step('restore'): ... records name, seconds, ok, detail."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.records = []

    def step(self, name):
        return _Step(self, name)

    def durations(self):
        return {r["name"]: r["seconds"] for r in self.records}


class _Step:
    def __init__(self, steps, name):
        self.steps, self.name = steps, name
        self.record = {"name": name, "seconds": None, "ok": None, "detail": ""}

    def __enter__(self):
        self.start = self.steps.clock()
        self.steps.records.append(self.record)
        return self.record

    def __exit__(self, exc_type, exc, tb):
        self.record["seconds"] = round(self.steps.clock() - self.start, 3)
        if exc is not None:
            self.record["ok"] = False
            self.record["detail"] = self.record["detail"] or f"{exc_type.__name__}: {exc}"
        elif self.record["ok"] is None:
            self.record["ok"] = True
        return False
