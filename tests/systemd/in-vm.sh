#!/bin/bash
# in-vm.sh - what `make test-systemd` runs inside the systemd VM (tests/vm/systemd-lane.sh):
#
#   tests/systemd/in-vm.sh [--cri] PYTHON PYTEST_ARGS...
#
# PYTHON -m pytest PYTEST_ARGS (tests/systemd), then with --cri the Kubernetes CRI lane
# (tests/cri/lane.py) with SystemdCgroup = true, a kubeadm node's configuration: containerd's CRI
# plugin, handlers runc and pyruntime, pods in slices, containers in scopes.  One boot for both; the
# exit status is non-zero when either failed (a CRI lane that cannot run is a failure here: the VM
# has what it needs, make test-systemd installs it).
cri=0
[ "${1:-}" = --cri ] && { cri=1; shift; }
py=$1; shift
"$py" -m pytest "$@"
rc=$?
if [ $cri = 1 ]; then
    echo "test-systemd: the CRI lane with SystemdCgroup = true"
    CRI_SYSTEMD_CGROUP=1 CRI_REQUIRED=1 CRI_REPORT=${CRI_REPORT:-build/cri-systemd-report.txt} \
        PYRUNTIME_BIN=${PYRUNTIME_BIN:-$PWD/bin/pyruntime} "$py" -m tests.cri.lane
    cri_rc=$?
    [ $rc = 0 ] && rc=$cri_rc
fi
exit $rc
