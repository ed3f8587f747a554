"""End to end through the lab: SDK -> nginx (TLS, basic auth) -> MLflow -> PostgreSQL/MinIO.

Run after `make lab` with `make e2e`. Every object the tests create is named
`e2e-<random>` and deleted at the end, so the tests can run against a lab
that is in use.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from conftest import ROOT, Lab
from hokusai.core import IDEMPOTENCY_TAG, ModelRegistry
from hokusai.tracking import ExperimentManager
from mlflow import MlflowClient

# Every way in (inventories/lab/hosts.yml): each load balancer on its own
# address, and each MLflow instance behind them.
INSTANCES = [
    "https://172.28.10.41",
    "https://172.28.10.42",
    "http://172.28.10.31:5000",
    "http://172.28.10.32:5000",
]


def test_anonymous_call_is_refused(lab: Lab) -> None:
    resp = requests.get(
        f"{lab.url}/api/2.0/mlflow/experiments/search", params={"max_results": 1}, verify=lab.ca, timeout=10
    )
    assert resp.status_code == 401


def test_plain_http_is_not_served_unencrypted(lab: Lab) -> None:
    """Port 80 only redirects: no API answer in clear text."""
    resp = requests.get(
        lab.url.replace("https://", "http://") + "/api/2.0/mlflow/experiments/search",
        auth=(lab.username, lab.password),
        allow_redirects=False,
        timeout=10,
    )
    assert resp.status_code in (301, 302, 308), resp.status_code


def test_experiment_run_artifact_and_model_version(lab: Lab, unique: str, tmp_path: Path) -> None:
    registry = ModelRegistry(lab.url, outbox_path=tmp_path / "outbox.sqlite3")
    manager = ExperimentManager(experiment_name=unique, registry=registry)
    client: MlflowClient = registry.client
    model_name = f"{unique}-model"
    try:
        # 1. experiment + run with params, metrics and an artifact.
        with manager.start_run(run_name="e2e") as run:
            run.log_params({"lr": 0.1, "layers": 3})
            run.log_metrics({"auc": 0.91})
            payload = os.urandom(256 * 1024)
            model_dir = tmp_path / "model"
            model_dir.mkdir()
            (model_dir / "weights.bin").write_bytes(payload)
            # An old-style model directory: the SDK registers run artifacts only where an
            # MLmodel marks them as a model (MLflow 3 logged models are the other way).
            (model_dir / "MLmodel").write_text("artifact_path: model\nflavors: {}\n")
            client.log_artifacts(run.run_id, str(model_dir), artifact_path="model")
        run_id = run.run_id
        got = client.get_run(run_id)
        assert got.data.params == {"lr": "0.1", "layers": "3"}
        assert got.data.metrics["auc"] == pytest.approx(0.91)
        assert got.info.status == "FINISHED"

        # 2. the artifact really sits in MinIO, byte for byte (read back with mc as the MLflow user).
        experiment_id = manager.experiment_id
        key = f"{lab.bucket}/{lab.prefix}/{experiment_id}/{run_id}/artifacts/model/weights.bin"
        stat = lab.mc("stat", f"lab/{key}")
        assert stat.returncode == 0, stat.stdout + stat.stderr
        assert json.loads(stat.stdout.splitlines()[-1])["size"] == len(payload)
        cat = subprocess.run(
            [
                "docker",
                "exec",
                "-e",
                f"MC_HOST_lab={lab.minio_url.replace('https://', f'https://{lab.minio_access_key}:{lab.minio_secret_key}@')}",
                lab.minio_container,
                "mc",
                "--config-dir",
                "/etc/minio/mc",
                "cat",
                f"lab/{key}",
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )
        assert hashlib.sha256(cat.stdout).hexdigest() == hashlib.sha256(payload).hexdigest()
        # ... and MLflow serves it back through nginx.
        downloaded = Path(client.download_artifacts(run_id, "model/weights.bin", str(tmp_path)))
        assert downloaded.read_bytes() == payload

        # 3. register a model version through the SDK; read it back.
        receipt = registry.register_model(
            model_name, run_id=run_id, artifact_path="model", tags={"stage": "e2e"}, aliases=["candidate"]
        )
        assert not receipt.pending, receipt
        version = client.get_model_version(model_name, str(receipt.version))
        assert version.run_id == run_id
        assert version.tags["stage"] == "e2e"
        assert version.tags[IDEMPOTENCY_TAG] == receipt.idempotency_key
        assert client.get_model_version_by_alias(model_name, "candidate").version == version.version

        # 4. every MLflow instance sees it (one database behind all of them).
        for url in INSTANCES:
            seen = MlflowClient(tracking_uri=url).get_model_version(model_name, str(receipt.version))
            assert seen.run_id == run_id, url

        # 5. registering again with the same idempotency key returns the same version.
        again = registry.register_model(
            model_name, run_id=run_id, artifact_path="model", idempotency_key=receipt.idempotency_key
        )
        assert again.version == receipt.version
        assert len(registry.list_versions(model_name)) == 1
    finally:
        for cleanup in (
            lambda: client.delete_registered_model(model_name),
            lambda: client.delete_experiment(manager.experiment_id),
        ):
            try:
                cleanup()
            except Exception as exc:  # noqa: BLE001 - cleanup must not hide the test's own failure
                print(f"cleanup: {exc}")


def test_health_playbook_is_green() -> None:
    """playbooks/health.yml against the lab inventory: every component healthy."""
    ansible = os.environ.get("HOKUSAI_ANSIBLE_PLAYBOOK", str(ROOT / ".venv" / "bin" / "ansible-playbook"))
    proc = subprocess.run(
        [ansible, "-i", "inventories/lab", "playbooks/health.yml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    sys.stdout.write(proc.stdout[-6000:])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
