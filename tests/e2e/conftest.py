"""Fixtures for the end-to-end tests against the running lab (`make lab` first).

They run in the SDK's venv (`sdk/scripts/venv.sh`): the client side is the real
`hokusai` package talking to MLflow through nginx over TLS with basic auth, as an
ML engineer's laptop would.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRETS = Path(os.environ.get("HOKUSAI_SECRETS_DIR", ROOT / ".secrets"))
# The lab's entry point: the floating address keepalived moves between lb1 and
# lb2 (inventories/lab/group_vars/all: hokusai_vip).
LB_URL = os.environ.get("HOKUSAI_LAB_MLFLOW_URL", "https://172.28.10.40")


@dataclass(frozen=True)
class Lab:
    url: str
    ca: Path
    username: str
    password: str = field(repr=False)  # never in a failure report
    minio_container: str
    minio_url: str
    minio_access_key: str
    minio_secret_key: str = field(repr=False)
    bucket: str
    prefix: str

    def mc(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the MinIO client on a MinIO host as the MLflow user (least privilege)."""
        host = self.minio_url.replace("https://", f"https://{self.minio_access_key}:{self.minio_secret_key}@")
        return subprocess.run(
            [
                "docker",
                "exec",
                "-e",
                "MC_HOST_lab",  # its value from the environment below, not on the command line
                self.minio_container,
                "mc",
                "--config-dir",
                "/etc/minio/mc",
                "--json",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "MC_HOST_lab": host},
        )


def _secret(name: str) -> str:
    path = SECRETS / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: bring the lab up with `make lab` first")
    return path.read_text().strip()


@pytest.fixture(scope="session")
def lab() -> Lab:
    return Lab(
        url=LB_URL,
        ca=SECRETS / "lab-ca" / "ca.crt",
        username="admin",
        password=_secret("mlflow_admin_password"),
        minio_container="hokusai-lab-minio1",
        minio_url="https://minio1:9000",
        minio_access_key="mlflow",
        minio_secret_key=_secret("minio_mlflow_secret_key"),
        bucket="mlflow-artifacts",
        prefix="artifacts",
    )


@pytest.fixture(scope="session", autouse=True)
def mlflow_env(lab: Lab) -> Iterator[None]:
    """MLflow's client reads credentials and the CA bundle from the environment."""
    saved = {
        k: os.environ.get(k)
        for k in (
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
            "MLFLOW_TRACKING_SERVER_CERT_PATH",
            "MLFLOW_DISABLE_TELEMETRY",
        )
    }
    os.environ["MLFLOW_TRACKING_USERNAME"] = lab.username
    os.environ["MLFLOW_TRACKING_PASSWORD"] = lab.password
    os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(lab.ca)
    # Lab traffic only: MLflow 3's usage telemetry would call out (the stream subprocesses
    # inherit this environment).
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def unique() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}"
