#!/usr/bin/env bash
# Run tests/bench/mlflow_bench.py against the Molecule scenario `mlflow`
# (bring it up first: molecule converge -s mlflow). The client runs inside
# mlflow-1 with that host's MLflow venv; it compares the load balancer
# (https://mlflow-lb, TLS + nginx, 2 instances) with mlflow-2 directly.
# Extra arguments go to the benchmark, e.g. --calls 100.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
eph="${MOLECULE_EPHEMERAL_DIRECTORY:-$(ls -d "$HOME"/.ansible/tmp/molecule.*.mlflow 2>/dev/null | head -n 1)}"
[[ -f "$eph/secrets/mlflow_admin" ]] || { echo "no Molecule state for scenario mlflow (run: molecule converge -s mlflow)" >&2; exit 2; }
direct=$(docker inspect -f '{{(index .NetworkSettings.Networks "molecule-mlflow").IPAddress}}' mlflow-2)
docker cp "$here/mlflow_bench.py" mlflow-1:/var/tmp/mlflow_bench.py
docker cp "$eph/pki/ca.crt" mlflow-1:/var/tmp/lab-ca.crt
awk '{print $1}' "$eph/secrets/mlflow_admin" | docker exec -i mlflow-1 sh -c 'umask 077; cat > /var/tmp/bench-pw'
exec docker exec mlflow-1 /opt/mlflow/venv/bin/python /var/tmp/mlflow_bench.py \
  --target lb=https://mlflow-lb --target direct="http://$direct:5000" \
  --user admin --password-file /var/tmp/bench-pw --ca /var/tmp/lab-ca.crt "$@"
