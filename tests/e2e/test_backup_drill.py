"""Backup drill against the lab (`make backup-drill`, part of `make lab-test`).

Destructive for the lab's database: it restores the Patroni cluster. It
proves the chain an operator relies on: backup.yml takes a full backup and
the artifact mirror, verify_backups.yml restores it into a scratch server and
checks it, restore.yml brings the cluster back to that backup (what was
written after it is gone, what was before it is there), and the platform is
healthy and usable afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, Lab
from mlflow import MlflowClient

ANSIBLE_PLAYBOOK = os.environ.get(
    "HOKUSAI_ANSIBLE_PLAYBOOK", str(ROOT / ".venv" / "bin" / "ansible-playbook")
)
PATRONI_SCOPE = "hokusai-pg"
STANZA = "hokusai"


def playbook(*args: str) -> subprocess.CompletedProcess[str]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "inventories/lab", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    print(f"\n--- ansible-playbook {' '.join(args)}: rc {proc.returncode} in {time.monotonic() - t0:.1f} s")
    sys.stdout.write(proc.stdout[-3000:])
    return proc


def newest_backup_label() -> str:
    out = subprocess.run(
        ["docker", "exec", "hokusai-lab-db1", "runuser", "-u", "postgres", "--",
         "pgbackrest", f"--stanza={STANZA}", "info", "--output=json"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    backups = json.loads(out)[0]["backup"]
    assert backups, "the stanza holds no backup"
    return str(backups[-1]["label"])


def test_backup_verify_restore(lab: Lab, unique: str, tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=lab.url)
    before = client.create_experiment(f"{unique}-before")

    proc = playbook("playbooks/backup.yml", "-e", "backup_type=full")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    label = newest_backup_label()
    assert label.endswith("F"), label

    proc = playbook("playbooks/verify_backups.yml")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

    after = client.create_experiment(f"{unique}-after")

    proc = playbook(
        "playbooks/restore.yml", "-e", f"restore_confirm={PATRONI_SCOPE}", "-e", f"restore_set={label}"
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

    # What the backup held is back; what was written after it is not.
    names = {
        e.name: e.experiment_id for e in client.search_experiments(filter_string=f"name LIKE '{unique}%'")
    }
    assert names.get(f"{unique}-before") == before, names
    assert f"{unique}-after" not in names, names
    assert after not in names.values()

    # The platform is healthy and writable again.
    proc = playbook("playbooks/health.yml")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    run = client.create_run(before)
    client.log_metric(run.info.run_id, "after_restore", 1.0)
    client.set_terminated(run.info.run_id)
    client.delete_experiment(before)
