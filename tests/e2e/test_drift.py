"""A re-run of site.yml repairs drift and changes nothing else (`make drift`,
part of `make lab-test`, where it is also the idempotence check).

Speed must never come from skipping checks: on one host a managed
configuration file is edited by hand and a managed service is stopped, then
the unchanged `site.yml` runs against the whole inventory. Afterwards the file
is back to what the role renders, the service runs again, and the run changed
only what the drift calls for: on the drifted host, tasks of the two roles
that own the file and the service; on every other host, nothing. That is the
idempotence check of `make lab` (its second site.yml run must change nothing)
with two known differences, so lab-test runs this instead of a plain re-run
(LAB_RERUN=0) and saves one whole site.yml run.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time

from conftest import ROOT

ANSIBLE_PLAYBOOK = os.environ.get(
    "HOKUSAI_ANSIBLE_PLAYBOOK", str(ROOT / ".venv" / "bin" / "ansible-playbook")
)
HOST = "mlflow1"
CONTAINER = f"hokusai-lab-{HOST}"
# pg_endpoint renders it (template); its reload handler must bring it back.
MANAGED_FILE = "/etc/haproxy/haproxy.cfg"
# exporters starts it (state: started, enabled).
MANAGED_SERVICE = "prometheus-node-exporter"
# The roles whose tasks and handlers may report a change on HOST: the owners
# of MANAGED_FILE and MANAGED_SERVICE.
REPAIRING_ROLES = ("pg_endpoint", "exporters")
MARKER = "# drift test: edited by hand"


def on_host(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "exec", CONTAINER, *cmd], capture_output=True, text=True, timeout=60, check=check
    )


def file_sha256() -> str:
    return hashlib.sha256(on_host("cat", MANAGED_FILE).stdout.encode()).hexdigest()


def service_state() -> str:
    return on_host("systemctl", "is-active", MANAGED_SERVICE, check=False).stdout.strip()


def changed_per_host(recap: str) -> dict[str, int]:
    """changed= of every host in the PLAY RECAP of an ansible-playbook run."""
    tail = recap.split("PLAY RECAP", 1)[1]
    rows = re.finditer(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", tail, re.M)
    return {m.group(1): int(m.group(2)) for m in rows}


def changed_tasks(output: str, host: str) -> list[str]:
    """Names of the tasks and handlers that reported `changed` on HOST."""
    tasks, current = [], ""
    for line in output.splitlines():
        header = re.match(r"^(?:TASK|RUNNING HANDLER) \[(.+)\] \*+", line)
        if header:
            current = header.group(1)
        elif re.match(rf"^changed: \[{re.escape(host)}(?:\]| -> )", line):
            tasks.append(current)
    return tasks


def test_changed_tasks_are_read_per_host() -> None:
    out = (
        "TASK [pg_endpoint : Config | haproxy.cfg] ***\nchanged: [mlflow1]\nok: [mlflow2]\n"
        "RUNNING HANDLER [pg_endpoint : reload haproxy] ***\nchanged: [mlflow1]\n"
        "TASK [mlflow : x] ***\nchanged: [mlflow10]\nchanged: [mlflow1] => (item=a)\n"
    )
    assert changed_tasks(out, "mlflow1") == [
        "pg_endpoint : Config | haproxy.cfg",
        "pg_endpoint : reload haproxy",
        "mlflow : x",
    ]


def test_rerun_repairs_an_edited_file_and_a_stopped_service() -> None:
    rendered = file_sha256()
    assert service_state() == "active", f"{MANAGED_SERVICE} must run before the test"

    # Drift, by hand.
    on_host("sh", "-c", f"echo '{MARKER}' >> {MANAGED_FILE}")
    on_host("systemctl", "stop", MANAGED_SERVICE)
    assert file_sha256() != rendered
    assert service_state() != "active"

    t0 = time.monotonic()
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "inventories/lab", "site.yml"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    took = time.monotonic() - t0
    sys.stdout.write(proc.stdout[-2500:])
    print(f"\nsite.yml with drift on {HOST}: rc {proc.returncode} in {took:.1f} s")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

    # Both repaired.
    assert file_sha256() == rendered, f"{MANAGED_FILE} still differs from the rendered template"
    assert MARKER not in on_host("cat", MANAGED_FILE).stdout
    assert service_state() == "active", f"{MANAGED_SERVICE} was not started again"
    # HAProxy serves with the repaired file (its reload handler ran).
    assert on_host("systemctl", "is-active", "haproxy", check=False).stdout.strip() == "active"

    # The repair shows in the recap: changes on the drifted host, none elsewhere.
    changed = changed_per_host(proc.stdout)
    assert changed.get(HOST, 0) >= 2, f"expected the file and the service repaired on {HOST}: {changed}"
    others = {h: c for h, c in changed.items() if h != HOST and c}
    assert not others, f"drift on {HOST} changed other hosts too (not idempotent): {others}"
    # On the drifted host, only the owners of the drifted file and service
    # changed something: any other changed task there is not idempotent.
    stray = [t for t in changed_tasks(proc.stdout, HOST) if not t.startswith(REPAIRING_ROLES)]
    assert not stray, f"tasks on {HOST} that changed without drift (not idempotent): {stray}"
