#!/usr/bin/env bash
# `make lab`: lab hosts, `ansible-playbook site.yml`, the idempotent re-run,
# playbooks/health.yml, then the endpoints and the deploy figures.
#
# Figures go to .lab-figures/last-run (key=value) and are printed at the end:
#   fresh        1 when the lab containers did not exist before this run
#   hosts_s      creating/starting the containers
#   site_s       the first site.yml run (from fresh hosts when fresh=1)
#   rerun_s      the second site.yml run; rerun_changed = its changed tasks (must be 0)
#   health_s     playbooks/health.yml
# Environment: LAB_INVENTORY (default inventories/lab), LAB_RERUN=0 skips the re-run.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The venv's ansible when run outside make.
[ -d .venv/bin ] && export PATH="$PWD/.venv/bin:$PATH"
# Mitogen's strategy, as the Makefile sets it (HOKUSAI_MITOGEN=0: Ansible's own).
if [ "${HOKUSAI_MITOGEN:-1}" = 1 ] && [ -z "${ANSIBLE_STRATEGY:-}" ]; then
  for d in .venv/lib/python3*/site-packages/ansible_mitogen/plugins/strategy; do
    [ -d "$d" ] && export ANSIBLE_STRATEGY_PLUGINS="$PWD/$d" ANSIBLE_STRATEGY=mitogen_linear
  done
fi

inventory="${LAB_INVENTORY:-inventories/lab}"
figures=.lab-figures
mkdir -p "$figures"
now() { date +%s; }
phase() { printf '\n==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# Sum of changed= over the PLAY RECAP of an ansible-playbook log.
changed_in() {
  awk '/^PLAY RECAP/ {r = 1; next} r && /changed=/ {for (i = 1; i <= NF; i++) if ($i ~ /^changed=/) {split($i, a, "="); s += a[2]}} END {print s + 0}' "$1"
}

fresh=0
if [ -z "$(docker ps -aq --filter name='^hokusai-lab-')" ]; then fresh=1; fi

t0=$(now)
phase "lab hosts (systemd containers on network hokusai-lab; fresh=$fresh)"
ansible-playbook -i "$inventory" tests/lab/lab.yml
t1=$(now)

phase "ansible-playbook site.yml -i $inventory"
ansible-playbook -i "$inventory" site.yml 2>&1 | tee "$figures/site.log"
t2=$(now)
site_changed=$(changed_in "$figures/site.log")

rerun_s=-1
rerun_changed=-1
if [ "${LAB_RERUN:-1}" = 1 ]; then
  phase "ansible-playbook site.yml again: must change nothing"
  ansible-playbook -i "$inventory" site.yml > "$figures/site-rerun.log" 2>&1 || {
    tail -n 60 "$figures/site-rerun.log"
    echo "the re-run of site.yml failed (log: $figures/site-rerun.log)" >&2
    exit 1
  }
  t3=$(now)
  rerun_s=$((t3 - t2))
  rerun_changed=$(changed_in "$figures/site-rerun.log")
  sed -n '/^PLAY RECAP/,/^$/p' "$figures/site-rerun.log"
  if [ "$rerun_changed" != 0 ]; then
    grep -B2 -E '^changed:' "$figures/site-rerun.log" | head -n 40 >&2 || true
    echo "the re-run of site.yml changed $rerun_changed task(s): the roles are not idempotent (log: $figures/site-rerun.log)" >&2
    exit 1
  fi
fi
t3=$(now)

phase "playbooks/health.yml"
ansible-playbook -i "$inventory" playbooks/health.yml -e health_retries="${HEALTH_RETRIES:-12}" \
  2>&1 | tee "$figures/health.log"
t4=$(now)

cat > "$figures/last-run" <<FIG
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
fresh=$fresh
hosts_s=$((t1 - t0))
site_s=$((t2 - t1))
site_changed=$site_changed
rerun_s=$rerun_s
rerun_changed=$rerun_changed
health_s=$((t4 - t3))
total_s=$((t4 - t0))
FIG

# The same as JSON for tests/lab/summary.yml.
awk -F= 'BEGIN {printf "{"} NR > 1 {printf ", "} {printf "\"%s\": \"%s\"", $1, $2} END {print "}"}' \
  "$figures/last-run" > "$figures/last-run.json"

ansible-playbook -i "$inventory" tests/lab/summary.yml
