"""End-to-end MLflow client session through the load balancer (runs inside an MLflow container).

Environment: MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME/PASSWORD,
MLFLOW_TRACKING_SERVER_CERT_PATH. Prints a JSON report.
"""

import hashlib
import json
import os
import sys
import tempfile
import uuid

from mlflow import MlflowClient

size = int(sys.argv[1]) if len(sys.argv) > 1 else 6 * 1024 * 1024
client = MlflowClient()
tag = uuid.uuid4().hex[:8]
exp_id = client.create_experiment(f"e2e-{tag}")
run = client.create_run(exp_id)
run_id = run.info.run_id
client.log_param(run_id, "alpha", "0.5")
for step in range(5):
    client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)

with tempfile.TemporaryDirectory() as tmp:
    blob = os.urandom(size)
    path = os.path.join(tmp, "blob.bin")
    with open(path, "wb") as fh:
        fh.write(blob)
    client.log_artifact(run_id, path, artifact_path="model")
    client.set_terminated(run_id)
    model = f"e2e-model-{tag}"
    client.create_registered_model(model)
    mv = client.create_model_version(model, source=f"runs:/{run_id}/model", run_id=run_id)
    got_mv = client.get_model_version(model, mv.version)
    back = client.download_artifacts(run_id, "model/blob.bin", tmp + "/back")
    with open(back, "rb") as fh:
        same = hashlib.sha256(fh.read()).hexdigest() == hashlib.sha256(blob).hexdigest()

metrics = client.get_metric_history(run_id, "loss")
print(
    json.dumps(
        {
            "experiment_id": exp_id,
            "run_id": run_id,
            "artifact_uri": client.get_run(run_id).info.artifact_uri,
            "metric_points": len(metrics),
            "model": model,
            "model_version": got_mv.version,
            "model_version_run_id": got_mv.run_id,
            "artifact_roundtrip_identical": same,
            "size": size,
        }
    )
)
