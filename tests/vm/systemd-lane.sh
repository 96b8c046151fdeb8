#!/bin/bash
# systemd-lane.sh - the `make test-systemd` lane: run PYTEST_CMD... in a VM whose PID 1 is systemd
# (pure cgroup v2; tests/vm/run-in-vm.sh with VM_INIT=systemd).
#
#   tests/vm/systemd-lane.sh /path/to/python -m pytest -ra tests/systemd
#
# Last line: "test-systemd: PASSED|FAILED ..." or, when no VM can run here,
# "test-systemd: SKIPPED: <reason>" (exit 0, or 77 with SYSTEMD_REQUIRED=1).
set -u
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
TIMEOUT=${SYSTEMD_TIMEOUT:-1500}

skip() {
    echo "test-systemd: SKIPPED: $1"
    [ "${SYSTEMD_REQUIRED:-0}" = 1 ] && { echo "test-systemd: SYSTEMD_REQUIRED=1, so this is a failure"; exit 77; }
    exit 0
}
why=$("$HERE/run-in-vm.sh" --check) || skip "no VM can be started on this machine: ${why#run-in-vm: VM not usable: }"
[ -x /lib/systemd/systemd ] || skip "systemd is not installed on this machine (the guest boots the host's)"
command -v dbus-daemon >/dev/null || skip "dbus-daemon is not installed on this machine (apt-get install dbus)"
echo "test-systemd: $* (systemd as PID 1 in a pure cgroup v2 VM, ${VM_ACCEL:-tcg}, timeout ${TIMEOUT}s)"
T0=${EPOCHREALTIME/,/.}
VM_INIT=systemd VM_TIMEOUT=$TIMEOUT "$HERE/run-in-vm.sh" "$@"
rc=$?
took=$(awk -v a="$T0" -v b="${EPOCHREALTIME/,/.}" 'BEGIN { printf "%.0f", b - a }')
case $rc in
    0)   echo "test-systemd: PASSED in ${took}s" ;;
    124) echo "test-systemd: FAILED: the VM was killed after ${TIMEOUT}s (SYSTEMD_TIMEOUT)" ;;
    125) echo "test-systemd: FAILED: the VM did not boot or no exit status came back (see above)" ;;
    5)   echo "test-systemd: FAILED: no tests were collected (pytest status 5)" ;;
    *)   echo "test-systemd: FAILED: exit status $rc after ${took}s" ;;
esac
exit $rc
