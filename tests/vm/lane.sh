#!/bin/bash
# lane.sh - one VM lane of `make test` (test-cgroup2, test-systemd): run CMD... in tests/vm/run-in-vm.sh's
# VM and print one verdict line at the end.
#
#   tests/vm/lane.sh NAME -- CMD...          e.g. tests/vm/lane.sh test-cgroup2 -- python -m pytest -m cgroup tests
#
# The guest is chosen by run-in-vm.sh's own knobs: VM_INIT=shell|systemd, VM_CGROUP=v2|hybrid|legacy.
# LANE_TIMEOUT (s, default 900) bounds the whole VM.  Last line: "NAME: PASSED in Ns" or
# "NAME: FAILED: ..." (exit: CMD's status; 124 = the VM was killed after LANE_TIMEOUT; 125 = the VM did
# not boot or no status came back); when no VM (or, for VM_INIT=systemd, no systemd) can run here,
# "NAME: SKIPPED: <reason>" and exit 0, or 77 with LANE_REQUIRED=1.
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
NAME=${1:?usage: $0 NAME -- CMD...}; shift
[ "${1:-}" = -- ] && shift
[ $# -ge 1 ] || { echo "usage: $0 NAME -- CMD..." >&2; exit 2; }
TIMEOUT=${LANE_TIMEOUT:-900}
INIT=${VM_INIT:-shell} CG=${VM_CGROUP:-v2}

skip() {
    echo "$NAME: SKIPPED: $1"
    [ "${LANE_REQUIRED:-0}" = 1 ] && { echo "$NAME: LANE_REQUIRED=1, so this is a failure"; exit 77; }
    exit 0
}
why=$("$HERE/run-in-vm.sh" --check) || skip "no VM can be started on this machine: ${why#run-in-vm: VM not usable: }"
if [ "$INIT" = systemd ]; then
    [ -x /lib/systemd/systemd ] || skip "systemd is not installed on this machine (the guest boots the host's)"
    command -v dbus-daemon >/dev/null || skip "dbus-daemon is not installed on this machine (apt-get install dbus)"
    guest="systemd as PID 1, cgroup layout $CG"
else
    guest="a pure cgroup v2 VM"
fi
echo "$NAME: $* (in $guest, ${VM_ACCEL:-tcg}, timeout ${TIMEOUT}s)"
T0=${EPOCHREALTIME/,/.}
VM_TIMEOUT=$TIMEOUT "$HERE/run-in-vm.sh" "$@"
rc=$?
took=$(awk -v a="$T0" -v b="${EPOCHREALTIME/,/.}" 'BEGIN { printf "%.0f", b - a }')
case $rc in
    0)   echo "$NAME: PASSED in ${took}s" ;;
    124) echo "$NAME: FAILED: the VM was killed after ${TIMEOUT}s (LANE_TIMEOUT)" ;;
    125) echo "$NAME: FAILED: the VM did not boot or no exit status came back (see above)" ;;
    5)   echo "$NAME: FAILED: no tests were collected (pytest status 5)" ;;
    *)   echo "$NAME: FAILED: exit status $rc after ${took}s" ;;
esac
exit $rc
