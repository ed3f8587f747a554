#!/usr/bin/env bash
# Create (or reuse) the SDK's venv and install the SDK into it (editable).
#
# The venv lives outside the clone so CI and developers reuse it across runs; it is
# rebuilt whenever requirements-dev.txt (the exact pins) changes. Prints the venv's path
# on the last line of stdout (the lab's end-to-end tests run in it).
#   HOKUSAI_SDK_VENV   where the venv lives (default: ~/.cache/hokusai/sdk-venv)
#   PYTHON             interpreter used to create it (default: python3)
set -euo pipefail

sdk_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HOKUSAI_SDK_VENV:-$HOME/.cache/hokusai/sdk-venv}"
python="${PYTHON:-python3}"
req="$sdk_dir/requirements-dev.txt"
want_hash="$(sha256sum "$req" | cut -d' ' -f1)"
stamp="$venv/.hokusai-requirements.sha256"

if [[ ! -x "$venv/bin/python" ]] || [[ "$(cat "$stamp" 2>/dev/null || true)" != "$want_hash" ]]; then
    echo "==> creating venv at $venv (requirements hash $want_hash)" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    if ! "$python" -m venv "$venv"; then
        # Debian's python3 without the python3-venv package has no ensurepip: build the venv
        # without pip and let the system pip install pip into it.
        echo "==> 'python3 -m venv' failed; bootstrapping pip into the venv with the system pip" >&2
        rm -rf "$venv"
        "$python" -m venv --without-pip "$venv"
        "$python" -m pip --python "$venv/bin/python" install --quiet "pip==24.3.1"
    fi
    "$venv/bin/python" -m pip install --quiet -r "$req"
    echo "$want_hash" > "$stamp"
fi

echo "==> installing hokusai-ml-platform (editable) into $venv" >&2
"$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$sdk_dir"

echo "$venv"
