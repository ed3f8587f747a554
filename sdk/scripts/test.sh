#!/usr/bin/env bash
# Lint, type-check and test the Hokusai SDK, in the venv made by scripts/venv.sh.
#   HOKUSAI_SDK_VENV   where the venv lives (default: ~/.cache/hokusai/sdk-venv)
#   PYTHON             interpreter used to create it (default: python3)
# Extra arguments go to pytest, e.g. `scripts/test.sh -k breaker`.
set -euo pipefail

sdk_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$("$sdk_dir/scripts/venv.sh" | tail -n 1)"

# The race tests run MLflow on a throw-away PostgreSQL cluster (initdb into a temp dir, loopback
# only). Install the Debian server binaries when missing; never create or start Debian's own
# "main" cluster (create_main_cluster = false before the package's first install).
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing PostgreSQL for the race tests"
        if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
            mkdir -p /etc/postgresql-common
            echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
        fi
        apt_install=(apt-get install -y -q --no-install-recommends
            -o Dpkg::Options::=--force-confold postgresql)
        DEBIAN_FRONTEND=noninteractive "${apt_install[@]}" >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive "${apt_install[@]}" >/dev/null; }
    else
        echo "WARNING: PostgreSQL is not installed and this is not root: the PostgreSQL race tests will be skipped" >&2
    fi
fi

cd "$sdk_dir"
echo "==> ruff check"
"$venv/bin/ruff" check src tests scripts
echo "==> ruff format --check"
"$venv/bin/ruff" format --check src tests scripts
echo "==> mypy --strict src"
"$venv/bin/mypy" --strict src
echo "==> pytest"
"$venv/bin/python" -m pytest "$@"
