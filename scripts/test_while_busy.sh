#!/usr/bin/env bash
# Runs README's test suite RUNS times in a row (default 3) while two busy loops keep both cores
# busy, the way a shared or slow machine runs it; prints each run's time and result. Not for CI:
# it checks that no test depends on the machine being idle (wall-clock limits, thread timing).
#   bash scripts/test_while_busy.sh [RUNS] [pytest args...]
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shift || true
python3 -c 'while True: pass' & busy1=$!
python3 -c 'while True: pass' & busy2=$!
trap 'kill $busy1 $busy2 2>/dev/null' EXIT
status=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  log=$(mktemp -t busy-run-$i-XXXX.log)
  python -m pytest -q "$@" >"$log" 2>&1
  rc=$?
  grep -E '^(FAILED|ERROR) ' "$log"
  tail -n 1 "$log"
  echo "(whole output: $log)"
  echo "run $i of $runs: exit $rc after $(( $(date +%s) - start )) s, with both cores kept busy"
  [ "$rc" -eq 0 ] || status=1
done
exit $status
