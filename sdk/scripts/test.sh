#!/usr/bin/env bash
# Lint, type-check and test the Hokusai SDK, in the venv made by scripts/venv.sh.
#   HOKUSAI_SDK_VENV   where the venv lives (default: ~/.cache/hokusai/sdk-venv)
#   PYTHON             interpreter used to create it (default: python3)
# Extra arguments go to pytest, e.g. `scripts/test.sh -k breaker`.
set -euo pipefail

sdk_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$("$sdk_dir/scripts/venv.sh" | tail -n 1)"

cd "$sdk_dir"
echo "==> ruff check"
"$venv/bin/ruff" check src tests scripts
echo "==> ruff format --check"
"$venv/bin/ruff" format --check src tests scripts
echo "==> mypy --strict src"
"$venv/bin/mypy" --strict src
echo "==> pytest"
"$venv/bin/python" -m pytest "$@"
