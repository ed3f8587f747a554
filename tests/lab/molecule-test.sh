#!/usr/bin/env bash
# `molecule test -s SCENARIO`, step by step, as `make molecule` runs it.
#
# The steps are those of the shared test_sequence (.config/molecule/config.yml;
# idempotence included, never skipped). Molecule's own create and destroy
# playbooks (molecule-plugins' docker driver) start containers with `async`
# and poll them with `async_status`; under Mitogen's strategy those jobs never
# report finished, so create and destroy run with Ansible's linear strategy
# and every other step (converge, idempotence, verify, ...) with whatever the
# environment sets (the Makefile: Mitogen). The scenario is destroyed on any
# exit, as `molecule test` does.
#
# Usage: tests/lab/molecule-test.sh SCENARIO
set -euo pipefail
scenario=${1:?usage: $0 SCENARIO}
cd "$(dirname "$0")/../.."
[ -d "molecule/$scenario" ] || { echo "molecule-test: no scenario molecule/$scenario" >&2; exit 2; }

linear() { ANSIBLE_STRATEGY=linear molecule "$@"; }
step() { printf -- '--> [%s] molecule %s -s %s\n' "$(date -u +%H:%M:%S)" "$1" "$scenario"; }

trap 'rc=$?; step destroy; linear destroy -s "$scenario" || true; exit $rc' EXIT

step destroy; linear destroy -s "$scenario"
step syntax; molecule syntax -s "$scenario"
step create; linear create -s "$scenario"
for s in prepare converge idempotence side-effect verify cleanup; do
  step "$s"; molecule "$s" -s "$scenario"
done
