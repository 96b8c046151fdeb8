#!/bin/bash
# cgroup2-lane.sh - the `make test-cgroup2` lane: run PYTEST_CMD... in the pure cgroup v2 VM.
#
#   tests/vm/cgroup2-lane.sh /path/to/python -m pytest -m cgroup -ra tests
#
# Prints one "test-cgroup2: ..." verdict line at the end and exits with the command's status
# (pytest's), 124 = the VM was killed after CGROUP2_TIMEOUT seconds, 125 = the VM did not boot or
# no status came back. When no VM can be started here it prints
#   test-cgroup2: SKIPPED: no VM can be started on this machine: <reason>
# and exits 0, or 77 when CGROUP2_REQUIRED=1.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
TIMEOUT=${CGROUP2_TIMEOUT:-900}

if ! why=$("$HERE/run-in-vm.sh" --check); then
    echo "test-cgroup2: SKIPPED: no VM can be started on this machine: ${why#run-in-vm: VM not usable: }"
    [ "${CGROUP2_REQUIRED:-0}" = 1 ] && { echo "test-cgroup2: CGROUP2_REQUIRED=1, so this is a failure"; exit 77; }
    exit 0
fi
echo "test-cgroup2: $* (in a pure cgroup v2 VM, ${VM_ACCEL:-tcg}, timeout ${TIMEOUT}s)"
T0=${EPOCHREALTIME/,/.}
VM_TIMEOUT=$TIMEOUT "$HERE/run-in-vm.sh" "$@"
rc=$?
took=$(awk -v a="$T0" -v b="${EPOCHREALTIME/,/.}" 'BEGIN { printf "%.0f", b - a }')
case $rc in
    0)   echo "test-cgroup2: PASSED in ${took}s" ;;
    124) echo "test-cgroup2: FAILED: the VM was killed after ${TIMEOUT}s (CGROUP2_TIMEOUT)" ;;
    125) echo "test-cgroup2: FAILED: the VM did not boot or no exit status came back (see above)" ;;
    5)   echo "test-cgroup2: FAILED: no cgroup tests were collected (pytest status 5)" ;;
    *)   echo "test-cgroup2: FAILED: exit status $rc after ${took}s" ;;
esac
exit $rc
