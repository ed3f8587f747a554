#!/usr/bin/env bash
# CPU each lab container uses over a window (`make lab-cpu`, SECONDS_WINDOW=30):
# the cgroup's cpuacct.usage before and after, in cores (1.00 = one core busy
# the whole window), busiest first, and the sum. Run on an idle lab, it shows
# what the lab costs doing nothing - the load every lab stage of make test
# competes with on a 2-core machine.
set -euo pipefail
window="${SECONDS_WINDOW:-30}"
root=/sys/fs/cgroup/cpuacct/docker
[ -d "$root" ] || root=/sys/fs/cgroup/system.slice # cgroup v2: docker-<id>.scope/cpu.stat
mapfile -t ids < <(docker ps -q --no-trunc --filter label=hokusai.lab=true)
if [ "${#ids[@]}" = 0 ]; then
  echo "no lab container is running (make lab)" >&2
  exit 2
fi

usage() { # nanoseconds of CPU used by container $1 so far
  if [ -f "$root/$1/cpuacct.usage" ]; then
    cat "$root/$1/cpuacct.usage"
  else
    awk '$1 == "usage_usec" {print $2 * 1000}' "$root/docker-$1.scope/cpu.stat"
  fi
}

declare -A before
for id in "${ids[@]}"; do before[$id]=$(usage "$id"); done
t0=$(date +%s%N)
sleep "$window"
t1=$(date +%s%N)
for id in "${ids[@]}"; do
  name=$(docker inspect -f '{{.Name}}' "$id")
  awk -v n="${name#/}" -v a="${before[$id]}" -v b="$(usage "$id")" -v t=$((t1 - t0)) \
    'BEGIN {printf "%-22s %5.2f\n", n, (b - a) / t}'
done | sort -k2 -rn | awk '{print; s += $2} END {printf "%-22s %5.2f cores over '"$window"' s\n", "total", s}'
