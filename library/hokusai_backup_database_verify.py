#!/usr/bin/python
# Hokusai ML platform: pgBackRest backup state and a real restore test, reported, never enforced.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hokusai_backup_database_verify
short_description: Report pgBackRest backups and WAL archive continuity; optionally test-restore the latest
description:
  - Reads C(pgbackrest info --output=json) for the stanza and reports the latest backup (label, type, age,
    size, WAL start and stop, LSNs), the WAL archive range, and whether the archive is continuous.
  - Continuity has two levels. Always, every backup's WAL range must lie inside the archive's min..max of
    its database. With O(list_archive) the archived segments themselves are listed (C(pgbackrest repo-ls))
    and every segment position from the oldest backup's WAL start to the archive's max must be present
    (a timeline switch continues at the same position; older strays are not checked).
  - With O(check), C(pgbackrest check) is run and its result reported.
  - With O(restore_test), the latest backup (or O(backup_set)) is restored into O(scratch_dir) with
    C(--pg1-path) and C(--archive-mode=off) (the throw-away server never pushes WAL into the repository),
    a throw-away PostgreSQL is started with C(pg_ctl) on O(port), listening only on a Unix socket in
    O(scratch_dir), the module waits until it accepts connections and has finished recovery, then checks
    O(expected_tables), O(min_rows) and the optional O(checksum_query). The server is stopped and
    O(scratch_dir) removed afterwards, also when a step failed. Each step's duration is reported.
  - Reports only; a missing backup, a gap or a failed restore test is a normal result (C(healthy=false)),
    never a failure of the module. It fails only on bad arguments.
author:
  - Hokusai ML platform team
options:
  stanza:
    description: pgBackRest stanza.
    type: str
    default: hokusai
  config:
    description: pgBackRest configuration file.
    type: path
    default: /etc/pgbackrest/pgbackrest.conf
  pgbackrest_path:
    description: The pgbackrest binary.
    type: path
    default: /usr/bin/pgbackrest
  run_as:
    description: OS user that runs pgbackrest, pg_ctl and psql (through runuser when the module runs as root).
    type: str
    default: postgres
  list_archive:
    description: List the archived WAL segments and look for gaps between the archive's min and max.
    type: bool
    default: true
  wal_segment_size_mb:
    description: WAL segment size of the cluster in MiB (PostgreSQL's default is 16).
    type: int
    default: 16
  check:
    description: Run C(pgbackrest check) and report its result (it forces a WAL switch on the primary).
    type: bool
    default: false
  restore_test:
    description: Restore a backup into O(scratch_dir), start it and run the checks. Skipped in check mode.
    type: bool
    default: false
  backup_set:
    description: Label of the backup to restore; empty for the latest.
    type: str
    default: ""
  recovery_type:
    description:
      - C(immediate) stops recovery as soon as the backup is consistent (tests the backup alone);
        C(default) replays the archive to its end (tests the backup and every archived WAL segment after it).
    type: str
    choices: [immediate, default]
    default: immediate
  scratch_dir:
    description:
      - Directory for the restore test, created and removed by the module. It must not exist, or be a
        leftover of an earlier test (it holds the module's marker file); anything else is refused.
    type: path
    default: /var/tmp/hokusai-restore-test
  port:
    description: Port of the throw-away server (its socket name; it listens on no TCP address).
    type: int
    default: 55432
  pg_bin_dir:
    description: Directory of pg_ctl and psql of the cluster's PostgreSQL version.
    type: path
    default: /usr/lib/postgresql/15/bin
  database:
    description: Database the checks run in.
    type: str
    default: mlflow
  expected_tables:
    description: Tables (C(schema.table) or a table of the C(public) schema) that must exist in O(database).
    type: list
    elements: str
    default: [alembic_version, experiments, runs, metrics, params, tags, registered_models, model_versions]
  min_rows:
    description: Table name to the least number of rows it must hold after the restore.
    type: dict
    default: {}
  checksum_query:
    description:
      - A query returning one value (for example a count or an md5 over ordered rows),
        compared with O(checksum_expected).
    type: str
    default: ""
  checksum_expected:
    description: The value O(checksum_query) must return (compared as text).
    type: str
    default: ""
  timeout:
    description: Seconds allowed for each of restore, start and recovery.
    type: int
    default: 900
notes:
  - Supports check mode; the backup state is reported and the restore test is skipped (the result says so).
  - Run it on a database host with become; the restore test needs free disk space for a full copy of
    the cluster in O(scratch_dir).
"""

EXAMPLES = r"""
- name: Verify | pgBackRest backups and a restore test
  hokusai_backup_database_verify:
    stanza: hokusai
    restore_test: true
    min_rows: {experiments: 1, alembic_version: 1}
  register: db_verify

- name: Verify | operator checksum over a table the team cares about
  hokusai_backup_database_verify:
    restore_test: true
    checksum_query: "SELECT count(*) FROM registered_models"
    checksum_expected: "12"

- name: Verify | stop when the backup is unusable
  ansible.builtin.assert:
    that: db_verify.healthy
    fail_msg: "{{ db_verify.problems | join('; ') }}"
"""

RETURN = r"""
healthy:
  description:
    - True when the stanza is OK, has a backup, the archive is continuous and the restore test
      (when run) passed.
  returned: always
  type: bool
  sample: true
problems:
  description: One sentence per problem found.
  returned: always
  type: list
  elements: str
  sample: ["WAL archive has a gap: 000000010000000000000007..000000010000000000000008 missing"]
status:
  description: The stanza status from pgbackrest info (C(code), C(message)).
  returned: always
  type: dict
  sample: {code: 0, message: ok}
backups:
  description: Number of backups in the repository.
  returned: always
  type: int
  sample: 3
latest:
  description:
    - The latest backup, C(label), C(type), C(start), C(stop), C(age_seconds), C(size), C(repo_size),
      C(wal_start), C(wal_stop), C(lsn_start), C(lsn_stop), C(error).
  returned: when the stanza has a backup
  type: dict
archive:
  description:
    - The archive of the current database, C(id), C(min), C(max), C(continuous),
      C(gaps) (ranges of missing segments), C(segments) (number listed),
      C(checked_from) (the oldest backup's WAL start; older segments restore nothing and are not checked).
  returned: always
  type: dict
check:
  description: C(pgbackrest check) result, C(rc) and C(output) (last lines).
  returned: when O(check) is true
  type: dict
restore_test:
  description:
    - C(performed), C(ok), C(skipped_reason), C(backup_set), C(steps) (name, seconds, ok, detail),
      C(durations), C(tables_missing), C(row_counts), C(checksum),
      C(log_tail) (last lines of the throw-away server's log on failure).
  returned: always
  type: dict
durations:
  description: Seconds spent on info, archive listing and check.
  returned: always
  type: dict
"""

import json  # noqa: E402 - Ansible modules put DOCUMENTATION before the imports
import os  # noqa: E402
import pwd  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.hokusai_backup import Steps, as_user, quote_ident, wal_name, wal_position  # noqa: E402

MARKER = ".hokusai-restore-test"
SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./-]+$")
SEGMENT_FILE = re.compile(r"(?:^|/)([0-9A-F]{24})-[0-9a-f]{40}(?:\.[a-z0-9]+)?$")


# ---------------------------------------------------------------- info


def stanza_info(info, stanza):
    """The stanza's object from `pgbackrest info --output=json` (a list of stanzas)."""
    for item in info or []:
        if item.get("name") == stanza:
            return item
    return None


def current_db(st):
    """The stanza's current database (highest id): {id, version, system-id}."""
    dbs = st.get("db") or []
    return max(dbs, key=lambda d: d.get("id", 0)) if dbs else None


def backup_view(b, now):
    info = b.get("info") or {}
    ts = b.get("timestamp") or {}
    return {
        "label": b.get("label"),
        "type": b.get("type"),
        "start": ts.get("start"),
        "stop": ts.get("stop"),
        "age_seconds": None if ts.get("stop") is None else int(now - ts["stop"]),
        "size": info.get("size"),
        "repo_size": (info.get("repository") or {}).get("size"),
        "wal_start": (b.get("archive") or {}).get("start"),
        "wal_stop": (b.get("archive") or {}).get("stop"),
        "lsn_start": (b.get("lsn") or {}).get("start"),
        "lsn_stop": (b.get("lsn") or {}).get("stop"),
        "error": bool(b.get("error", False)),
        "db_id": (b.get("database") or {}).get("id"),
    }


def summarize_info(info, stanza, now, segment_size_mb=16):
    """Status, backups, latest backup and archive range; problems found in info alone."""
    problems = []
    st = stanza_info(info, stanza)
    if st is None:
        return {
            "status": {"code": None, "message": "stanza not found"},
            "backups": 0,
            "latest": None,
            "archive": {"id": None, "min": None, "max": None},
            "all_backups": [],
            "problems": [f"stanza {stanza!r} not found in pgbackrest info"],
        }
    status = {
        "code": (st.get("status") or {}).get("code"),
        "message": (st.get("status") or {}).get("message"),
    }
    if status["code"] != 0:
        problems.append(f"stanza {stanza} status {status['code']}: {status['message']}")
    db = current_db(st)
    archives = [
        a
        for a in st.get("archive") or []
        if db is None or (a.get("database") or {}).get("id") == db.get("id")
    ]
    arch = archives[-1] if archives else {}
    archive = {"id": arch.get("id"), "min": arch.get("min"), "max": arch.get("max")}
    backups = [backup_view(b, now) for b in st.get("backup") or []]
    backups.sort(key=lambda b: (b["stop"] or 0, b["label"] or ""))
    latest = backups[-1] if backups else None
    if latest is None:
        if status["code"] == 0:
            problems.append(f"stanza {stanza} has no backup")
    elif latest["error"]:
        problems.append(
            f"latest backup {latest['label']} has errors (checksum/page errors reported by pgBackRest)"
        )
    if latest is not None and not archive["min"]:
        problems.append("no WAL is archived for the current database: no backup can be made consistent")
    elif archive["min"]:
        lo = wal_position(archive["min"], segment_size_mb)[1]
        hi = wal_position(archive["max"], segment_size_mb)[1]
        for b in backups:
            if b["db_id"] != (db or {}).get("id") or not b["wal_start"]:
                continue
            s = wal_position(b["wal_start"], segment_size_mb)[1]
            e = wal_position(b["wal_stop"], segment_size_mb)[1]
            if s < lo or e > hi:
                problems.append(
                    f"backup {b['label']} needs WAL {b['wal_start']}..{b['wal_stop']},"
                    f" outside the archive {archive['min']}..{archive['max']}"
                )
    return {
        "status": status,
        "backups": len(backups),
        "latest": latest,
        "archive": archive,
        "all_backups": backups,
        "problems": problems,
    }


# ---------------------------------------------------------------- archive continuity


def oldest_backup_wal(backups, segment_size_mb=16):
    """WAL start of the oldest backup (by position), or None."""
    starts = [b["wal_start"] for b in backups if b.get("wal_start")]
    return min(starts, key=lambda w: wal_position(w, segment_size_mb)[1]) if starts else None


def archived_segments(repo_ls):
    """Segment names (24 hex) in a `pgbackrest repo-ls --recurse --output=json` listing.

    Partial, backup-label and history files are not segments.
    """
    names = set()
    for path, meta in (repo_ls or {}).items():
        if (meta or {}).get("type") != "file":
            continue
        m = SEGMENT_FILE.search(path)
        if m:
            names.add(m.group(1))
    return sorted(names)


def archive_gaps(segments, first, last, segment_size_mb=16):
    """Missing ranges ['A..B', ...] of segment positions from first to last, whatever the timeline."""
    if not first or not last:
        return []
    tl_first, lo = wal_position(first, segment_size_mb)
    hi = wal_position(last, segment_size_mb)[1]
    have: dict = {}
    for s in segments:
        tl, pos = wal_position(s, segment_size_mb)
        have.setdefault(pos, tl)
    gaps, start, tl = [], None, tl_first
    for pos in range(lo, hi + 1):
        if pos in have:
            tl = have[pos]
            if start is not None:
                gaps.append(
                    f"{wal_name(tl, start, segment_size_mb)}..{wal_name(tl, pos - 1, segment_size_mb)}"
                )
                start = None
        elif start is None:
            start = pos
    if start is not None:
        gaps.append(f"{wal_name(tl, start, segment_size_mb)}..{wal_name(tl, hi, segment_size_mb)}")
    return gaps


# ---------------------------------------------------------------- restore test


def restore_command(p, data_dir):
    argv = [
        p["pgbackrest_path"],
        f"--config={p['config']}",
        f"--stanza={p['stanza']}",
        f"--pg1-path={data_dir}",
        "--archive-mode=off",
        "--log-level-console=warn",
        "--log-level-file=off",
    ]
    if p["recovery_type"] == "immediate":
        argv += ["--type=immediate", "--target-action=promote"]
    if p["backup_set"]:
        argv.append(f"--set={p['backup_set']}")
    return [*argv, "restore"]


def server_options(scratch, port):
    """postgres options of the throw-away server: socket only, no archiving, no replication, own hba."""
    opts = [
        ("port", str(port)),
        ("listen_addresses", ""),
        ("unix_socket_directories", scratch),
        ("archive_mode", "off"),
        ("archive_command", ""),
        ("primary_conninfo", ""),
        ("primary_slot_name", ""),
        ("synchronous_standby_names", ""),
        ("hot_standby", "on"),
        ("hba_file", f"{scratch}/pg_hba.conf"),
        ("ident_file", f"{scratch}/pg_ident.conf"),
        ("cluster_name", "hokusai-restore-test"),
        ("logging_collector", "off"),
        ("log_destination", "stderr"),
    ]
    return " ".join(f"-c {k}={shlex.quote(v)}" for k, v in opts)


def check_sql(expected_tables, min_rows):
    """One query per check: tables present, then row counts."""
    return (
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
        {t: f"SELECT count(*) FROM {quote_ident(t)}" for t in min_rows},  # noqa: S608 - identifiers quoted
    )


def evaluate_checks(
    present, expected_tables, counts, min_rows, checksum_value, checksum_expected, checksum_query
):
    """Problems of the restored database's content."""
    problems = []
    present = set(present)
    qualified = {t if "." in t else f"public.{t}" for t in expected_tables}
    missing = sorted(t for t in qualified if t not in present)
    if missing:
        problems.append(f"restored database lacks tables {', '.join(missing)}")
    for table, least in sorted(min_rows.items()):
        got = counts.get(table)
        if got is None:
            problems.append(f"rows of {table} could not be counted")
        elif got < int(least):
            problems.append(f"table {table} has {got} rows, below the minimum {least}")
    if checksum_query and checksum_value != checksum_expected:
        problems.append(f"checksum query returned {checksum_value!r}, expected {checksum_expected!r}")
    return missing, problems


def tail(path, lines=20):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()[-lines:]
    except OSError:
        return []


class Runner:
    """subprocess as run_as; returns (rc, stdout, stderr)."""

    def __init__(self, user):
        self.user = user

    def __call__(self, argv, timeout=None):
        try:
            proc = subprocess.run(
                as_user(argv, self.user), capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return 124, "", f"timed out after {timeout}s: {argv[0]}"
        except OSError as exc:
            return 127, "", str(exc)
        return proc.returncode, proc.stdout, proc.stderr


def postmaster_alive(pid_file):
    """True when pid_file names a running process."""
    try:
        with open(pid_file, encoding="utf-8") as f:
            pid = int(f.readline().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def prepare_scratch(scratch, user):
    """Create scratch (0700, owned by user); clean a leftover of an earlier test. Refuse anything else."""
    if os.path.lexists(scratch):
        if not os.path.exists(os.path.join(scratch, MARKER)):
            raise RuntimeError(
                f"{scratch} exists and is not a restore-test directory (no {MARKER});"
                " remove it or choose another scratch_dir"
            )
        if postmaster_alive(os.path.join(scratch, "data", "postmaster.pid")):
            raise RuntimeError(
                f"a restore test server is still running in {scratch} (another run?); not touching it"
            )
        shutil.rmtree(scratch)
    os.makedirs(scratch, mode=0o700)
    with open(os.path.join(scratch, MARKER), "w", encoding="utf-8") as f:
        f.write("created by hokusai_backup_database_verify; removed after the test\n")
    with open(os.path.join(scratch, "pg_hba.conf"), "w", encoding="utf-8") as f:
        f.write("local all all peer\n")
    with open(os.path.join(scratch, "pg_ident.conf"), "w", encoding="utf-8") as f:
        f.write("")
    if os.geteuid() == 0 and user:
        pw = pwd.getpwnam(user)
        for name in ("", MARKER, "pg_hba.conf", "pg_ident.conf"):
            os.chown(os.path.join(scratch, name), pw.pw_uid, pw.pw_gid)


def run_restore_test(
    p, run, prepare=prepare_scratch, remove=shutil.rmtree, sleep=time.sleep, clock=time.monotonic
):
    """Restore, start, wait, check, stop, clean up; every step timed. run(argv, timeout) -> (rc, out, err)."""
    scratch = p["scratch_dir"].rstrip("/")
    data = f"{scratch}/data"
    pg_ctl, psql = f"{p['pg_bin_dir']}/pg_ctl", f"{p['pg_bin_dir']}/psql"
    steps = Steps(clock)
    result = {
        "performed": True,
        "ok": False,
        "skipped_reason": "",
        "backup_set": p["backup_set"] or "latest",
        "steps": steps.records,
        "tables_missing": [],
        "row_counts": {},
        "checksum": None,
        "log_tail": [],
        "problems": [],
    }
    started = False

    def sql(query):
        rc, out, err = run(
            [
                psql,
                "-h",
                scratch,
                "-p",
                str(p["port"]),
                "-d",
                p["database"],
                "-XAtq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                query,
            ],
            60,
        )
        if rc != 0:
            raise RuntimeError(f"query failed: {err.strip() or out.strip()}")
        return out.strip()

    try:
        with steps.step("prepare") as rec:
            prepare(scratch, p["run_as"])
        with steps.step("restore") as rec:
            rc, out, err = run(restore_command(p, data), p["timeout"])
            if rc != 0:
                rec["ok"], rec["detail"] = False, (err.strip() or out.strip())[-500:]
                raise RuntimeError(f"pgbackrest restore failed (rc {rc}): {rec['detail']}")
        with steps.step("start") as rec:
            started = True
            rc, out, err = run(
                [
                    pg_ctl,
                    "-D",
                    data,
                    "-l",
                    f"{scratch}/postgres.log",
                    "-w",
                    "-t",
                    str(p["timeout"]),
                    "-o",
                    server_options(scratch, p["port"]),
                    "start",
                ],
                p["timeout"] + 30,
            )
            if rc != 0:
                rec["ok"], rec["detail"] = False, (err.strip() or out.strip())[-500:]
                raise RuntimeError(f"the restored server did not start (rc {rc}): {rec['detail']}")
        with steps.step("recovery") as rec:
            deadline = clock() + p["timeout"]
            while True:
                try:
                    state = sql("SELECT pg_is_in_recovery()")
                except RuntimeError as exc:
                    state = str(exc)
                if state == "f":
                    break
                if clock() > deadline:
                    raise RuntimeError(
                        f"recovery did not finish within {p['timeout']}s (last answer: {state})"
                    )
                sleep(1)
            rec["detail"] = "recovery finished, server promoted"
        with steps.step("checks") as rec:
            tables_sql, count_sql = check_sql(p["expected_tables"], p["min_rows"])
            present = sql(tables_sql).splitlines()
            counts: dict[str, int | None] = {}
            for table, query in count_sql.items():
                try:
                    counts[table] = int(sql(query))
                except (RuntimeError, ValueError):
                    counts[table] = None
            checksum = sql(p["checksum_query"]) if p["checksum_query"] else None
            missing, problems = evaluate_checks(
                present,
                p["expected_tables"],
                counts,
                p["min_rows"],
                checksum,
                p["checksum_expected"],
                p["checksum_query"],
            )
            result.update(tables_missing=missing, row_counts=counts)
            if p["checksum_query"]:
                result["checksum"] = {
                    "value": checksum,
                    "expected": p["checksum_expected"],
                    "ok": checksum == p["checksum_expected"],
                }
            result["problems"] += problems
            rec["ok"] = not problems
            rec["detail"] = "; ".join(problems) or f"{len(present)} tables, rows {counts}"
    except RuntimeError as exc:
        result["problems"].append(f"restore test failed: {exc}")
    finally:
        if started:
            result["log_tail"] = [] if not result["problems"] else tail(f"{scratch}/postgres.log")
            with steps.step("stop") as rec:
                rc, out, err = run([pg_ctl, "-D", data, "-m", "immediate", "-w", "-t", "60", "stop"], 90)
                rec["ok"] = rc == 0
                rec["detail"] = "" if rc == 0 else (err.strip() or out.strip())[-300:]
        with steps.step("cleanup") as rec:
            try:
                remove(scratch)
            except FileNotFoundError:
                pass
            except OSError as exc:
                rec["ok"], rec["detail"] = False, str(exc)
                result["problems"].append(f"could not remove {scratch}: {exc}")
    result["ok"] = not result["problems"]
    result["durations"] = steps.durations()
    return result


# ---------------------------------------------------------------- the whole check


def verify(p, run, now=None, check_mode=False, clock=time.monotonic, restore=run_restore_test):
    now = time.time() if now is None else now
    steps = Steps(clock)
    base = [p["pgbackrest_path"], f"--config={p['config']}", f"--stanza={p['stanza']}"]
    with steps.step("info"):
        rc, out, err = run([*base, "info", "--output=json"], 120)
    try:
        info = json.loads(out) if rc == 0 else None
    except ValueError:
        info = None
    if info is None:
        summary = summarize_info([], p["stanza"], now)
        summary["problems"] = [f"pgbackrest info failed (rc {rc}): {(err.strip() or out.strip())[-300:]}"]
    else:
        summary = summarize_info(info, p["stanza"], now, p["wal_segment_size_mb"])
    problems = list(summary.pop("problems"))
    summary_backups = summary.pop("all_backups")
    archive = summary["archive"]
    archive.update(continuous=None, gaps=[], segments=None, checked_from=None)
    if p["list_archive"] and archive["id"] and archive["min"]:
        with steps.step("archive"):
            rc, out, err = run(
                [*base, "repo-ls", "--recurse", "--output=json", f"archive/{p['stanza']}/{archive['id']}"],
                300,
            )
        try:
            listing = json.loads(out) if rc == 0 else None
        except ValueError:
            listing = None
        if listing is None:
            problems.append(f"cannot list the WAL archive (rc {rc}): {(err.strip() or out.strip())[-300:]}")
        else:
            segments = archived_segments(listing)
            # WAL older than the oldest backup's start restores nothing (pgBackRest may keep
            # strays from before the first backup): continuity counts from that start.
            first = oldest_backup_wal(summary_backups) or archive["min"]
            archive["checked_from"] = first
            gaps = archive_gaps(segments, first, archive["max"], p["wal_segment_size_mb"])
            archive.update(continuous=not gaps, gaps=gaps, segments=len(segments))
            problems += [f"WAL archive has a gap: {g} missing" for g in gaps]
    result = dict(summary)
    if p["check"]:
        with steps.step("check"):
            rc, out, err = run([*base, "check"], 300)
        result["check"] = {"rc": rc, "output": (out + err).strip().splitlines()[-10:]}
        if rc != 0:
            problems.append(f"pgbackrest check failed (rc {rc}): {' '.join(result['check']['output'][-2:])}")
    if not p["restore_test"]:
        result["restore_test"] = {"performed": False, "ok": None, "skipped_reason": "restore_test is false"}
    elif check_mode:
        result["restore_test"] = {
            "performed": False,
            "ok": None,
            "skipped_reason": "check mode: the restore test was skipped",
        }
    elif summary["latest"] is None and not p["backup_set"]:
        result["restore_test"] = {"performed": False, "ok": False, "skipped_reason": "no backup to restore"}
        problems.append("restore test not possible: no backup")
    else:
        rt = restore(p, run)
        problems += rt.pop("problems")
        result["restore_test"] = rt
    result.update(healthy=not problems, problems=problems, durations=steps.durations())
    return result


def validate(p):
    """Problems with the arguments (the module fails on these)."""
    errors = []
    scratch = p["scratch_dir"].rstrip("/")
    if not SAFE_PATH.match(scratch) or scratch.count("/") < 2 or ".." in scratch.split("/"):
        errors.append(
            f"scratch_dir {p['scratch_dir']!r} must be an absolute path two levels deep at least,"
            " of letters, digits, _ . - /"
        )
    if not 1024 <= p["port"] <= 65535:
        errors.append(f"port {p['port']} must be between 1024 and 65535")
    if p["timeout"] < 1:
        errors.append("timeout must be positive")
    if bool(p["checksum_query"]) != bool(p["checksum_expected"]):
        errors.append("checksum_query and checksum_expected go together")
    for table, least in (p["min_rows"] or {}).items():
        try:
            int(least)
        except (TypeError, ValueError):
            errors.append(f"min_rows[{table}] must be a number, not {least!r}")
    if p["wal_segment_size_mb"] not in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024):
        errors.append("wal_segment_size_mb must be a power of two from 1 to 1024")
    return errors


def main():
    module = AnsibleModule(
        argument_spec={
            "stanza": {"type": "str", "default": "hokusai"},
            "config": {"type": "path", "default": "/etc/pgbackrest/pgbackrest.conf"},
            "pgbackrest_path": {"type": "path", "default": "/usr/bin/pgbackrest"},
            "run_as": {"type": "str", "default": "postgres"},
            "list_archive": {"type": "bool", "default": True},
            "wal_segment_size_mb": {"type": "int", "default": 16},
            "check": {"type": "bool", "default": False},
            "restore_test": {"type": "bool", "default": False},
            "backup_set": {"type": "str", "default": ""},
            "recovery_type": {"type": "str", "choices": ["immediate", "default"], "default": "immediate"},
            "scratch_dir": {"type": "path", "default": "/var/tmp/hokusai-restore-test"},  # noqa: S108 - created 0700, marker-checked
            "port": {"type": "int", "default": 55432},
            "pg_bin_dir": {"type": "path", "default": "/usr/lib/postgresql/15/bin"},
            "database": {"type": "str", "default": "mlflow"},
            "expected_tables": {
                "type": "list",
                "elements": "str",
                "default": [
                    "alembic_version",
                    "experiments",
                    "runs",
                    "metrics",
                    "params",
                    "tags",
                    "registered_models",
                    "model_versions",
                ],
            },
            "min_rows": {"type": "dict", "default": {}},
            "checksum_query": {"type": "str", "default": ""},
            "checksum_expected": {"type": "str", "default": ""},
            "timeout": {"type": "int", "default": 900},
        },
        supports_check_mode=True,
    )
    errors = validate(module.params)
    if errors:
        module.fail_json(msg="; ".join(errors))
    result = verify(module.params, Runner(module.params["run_as"]), check_mode=module.check_mode)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
