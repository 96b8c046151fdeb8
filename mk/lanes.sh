#!/bin/bash
# mk/lanes.sh MAKE LANE... - run every test lane (a make target), each to the end even when an earlier one
# failed, print one verdict line per lane as it ends and a summary at the end; exit 1 if any lane failed.
# A lane that reports "SKIPPED: <reason>" (the cgroup v2 VM lane on a host that cannot boot a VM) and exits 0
# is shown as SKIPPED with its reason, never as PASSED.  Each lane's output is also kept in build/lanes/.
make=$1; shift
mkdir -p build/lanes
summary=()
failed=0
for lane in "$@"; do
  echo "== lane $lane: make $lane"
  log="build/lanes/$lane.log"
  start=$SECONDS
  $make --no-print-directory "$lane" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  took=$((SECONDS - start))
  if [ "$rc" -ne 0 ]; then
    verdict="FAILED (exit $rc, ${took}s; output in $log)"
    failed=1
  elif skip=$(grep -m1 -o 'SKIPPED: .*' "$log"); then
    verdict="$skip"
  else
    verdict="PASSED (${took}s)"
  fi
  echo "== lane $lane: $verdict"
  summary+=("$(printf '%-16s %s' "$lane" "$verdict")")
done
echo "== make test: lane verdicts"
printf '   %s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
  echo "== make test: FAILED"
  exit 1
fi
echo "== make test: every lane passed (or was skipped with its reason)"
