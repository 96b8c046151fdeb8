# mk/systemd.mk - the systemd lane: `make test-systemd`.
#
# Boots the qemu VM of mk/cgroup2.mk with systemd as PID 1 (tests/vm/run-in-vm.sh VM_INIT=systemd:
# the host's systemd and dbus, pure cgroup v2) and runs tests/systemd there, from a service unit:
# the systemd cgroup driver against runc --systemd-cgroup (limits read back from the units and the
# cgroup files, no unit left after delete), rootless with a test user's systemd instance (the driver
# and rootless podman with cgroup_manager=systemd), podman with cgroup_manager=systemd (and
# --sdnotify=container), containerd with SystemdCgroup=true; then, in the same boot
# (tests/systemd/in-vm.sh), the CRI lane (mk/cri.mk) with SystemdCgroup = true (SYSTEMD_CRI=0 leaves
# it out).  The last line is the verdict;
# "test-systemd: SKIPPED: <reason>" when no VM can run here (a failure with SYSTEMD_REQUIRED=1).
#
#   make test-systemd SYSTEMD_PYTEST_ARGS="-ra -x -k driver" SYSTEMD_TIMEOUT=900
SYSTEMD_TIMEOUT ?= 1500
SYSTEMD_PYTEST_ARGS ?= -ra
SYSTEMD_TESTS ?= tests/systemd/test_systemd_driver.py tests/systemd/test_systemd_rootless.py \
	tests/systemd/test_systemd_clients.py
SYSTEMD_CRI ?= 1
SYSTEMD_REQUIRED ?= 0
SYSTEMD_APT_PKGS := systemd dbus dbus-user-session

.PHONY: test-systemd systemd-vm-deps
TEST_LANES += test-systemd

systemd-vm-deps: cgroup2-vm-deps e2e-deps
	@missing=$$(for p in $(SYSTEMD_APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "test-systemd: apt-get install $$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	  || echo "test-systemd: apt-get install failed"; fi

test-systemd: systemd-vm-deps rootless-deps cri-deps venv all
	@SYSTEMD_TIMEOUT=$(SYSTEMD_TIMEOUT) SYSTEMD_REQUIRED=$(SYSTEMD_REQUIRED) \
	  tests/vm/systemd-lane.sh tests/systemd/in-vm.sh $(if $(filter 1,$(SYSTEMD_CRI)),--cri) $(PY) \
	  -p no:cacheprovider $(SYSTEMD_PYTEST_ARGS) $(SYSTEMD_TESTS)
