#!/usr/bin/env bash
# Alert rule tests: promtool check + unit tests, then the static checks of
# check_rules.py (annotations, runbook pages, a firing and a quiet case per
# alert). promtool comes from Debian's `prometheus` package; when it is not on
# PATH this installs the package (its service is not started on a machine
# without systemd as PID 1, which is fine: only promtool is needed).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v promtool >/dev/null 2>&1; then
  echo "==> promtool not found: installing Debian's prometheus package"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool --version 2>&1 | head -1

echo "==> promtool check rules"
promtool check rules roles/prometheus/files/rules/*.yml
echo "==> promtool test rules"
promtool test rules tests/rules/*.test.yml
echo "==> static checks (annotations, runbooks, coverage)"
"${PYTHON:-python3}" tests/rules/check_rules.py
