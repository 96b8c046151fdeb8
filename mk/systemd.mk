# mk/systemd.mk - the systemd lane: `make test-systemd`.
#
# Boots the qemu VM of mk/cgroup2.mk with systemd as PID 1 (tests/vm/run-in-vm.sh VM_INIT=systemd:
# the host's systemd and dbus) and runs tests/systemd there, from a service unit: the systemd cgroup
# driver against runc --systemd-cgroup (limits read back from the units and the cgroup files, no unit
# left after delete), rootless with a test user's systemd instance (the driver, and rootless podman
# with cgroup_manager=systemd), podman with cgroup_manager=systemd (and --sdnotify=container),
# containerd with SystemdCgroup=true; then, in the same boot (tests/systemd/in-vm.sh), the CRI lane
# (mk/cri.mk) with SystemdCgroup = true, a Kubernetes node's configuration (SYSTEMD_CRI=0 leaves it
# out).  Then it boots the guest again on each of SYSTEMD_V1_LAYOUTS (systemd's hybrid
# and legacy v1 layouts, VM_CGROUP) and runs the driver tests (SYSTEMD_V1_TESTS) there.  Each boot
# prints its verdict; the last line is the lane's; "test-systemd: SKIPPED: <reason>" when no VM can
# run here (a failure with SYSTEMD_REQUIRED=1).
#
#   make test-systemd SYSTEMD_PYTEST_ARGS="-ra -x -k driver" SYSTEMD_TIMEOUT=900 SYSTEMD_V1_LAYOUTS=hybrid
SYSTEMD_TIMEOUT ?= 1800
SYSTEMD_PYTEST_ARGS ?= -ra
SYSTEMD_TESTS ?= tests/systemd/test_systemd_driver.py tests/systemd/test_systemd_rootless.py \
	tests/systemd/test_systemd_clients.py
SYSTEMD_CRI ?= 1
SYSTEMD_REQUIRED ?= 0
SYSTEMD_V1_LAYOUTS ?= hybrid legacy
SYSTEMD_V1_TESTS ?= tests/systemd/test_systemd_driver.py
SYSTEMD_V1_TIMEOUT ?= 900
SYSTEMD_APT_PKGS := systemd dbus dbus-user-session

.PHONY: test-systemd systemd-vm-deps
TEST_LANES += test-systemd

systemd-vm-deps: cgroup2-vm-deps e2e-deps
	@missing=$$(for p in $(SYSTEMD_APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "test-systemd: apt-get install $$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	  || echo "test-systemd: apt-get install failed"; fi

# Each boot's lane.sh prints a verdict line; when the first one is SKIPPED (no VM, no systemd here) so would
# be the others: that line stays the last.
test-systemd: systemd-vm-deps rootless-deps cri-deps venv all
	@rc=0; last=; \
	boot() { local out r; out=$$(mktemp); "$$@" | tee "$$out"; r=$${PIPESTATUS[0]}; last=$$(tail -n 1 "$$out"); \
	  rm -f "$$out"; return $$r; }; \
	boot env LANE_TIMEOUT=$(SYSTEMD_TIMEOUT) LANE_REQUIRED=$(SYSTEMD_REQUIRED) VM_INIT=systemd VM_CGROUP=v2 \
	  tests/vm/lane.sh test-systemd -- tests/systemd/in-vm.sh $(if $(filter 1,$(SYSTEMD_CRI)),--cri) $(PY) \
	  -p no:cacheprovider $(SYSTEMD_PYTEST_ARGS) $(SYSTEMD_TESTS) \
	  || rc=$$?; \
	case "$$last" in *SKIPPED:*) exit $$rc ;; esac; \
	for cg in $(SYSTEMD_V1_LAYOUTS); do \
	  boot env LANE_TIMEOUT=$(SYSTEMD_V1_TIMEOUT) LANE_REQUIRED=$(SYSTEMD_REQUIRED) VM_INIT=systemd VM_CGROUP=$$cg \
	    tests/vm/lane.sh "test-systemd ($$cg)" -- $(PYTEST) -p no:cacheprovider $(SYSTEMD_PYTEST_ARGS) \
	    $(SYSTEMD_V1_TESTS) || rc=$$?; \
	done; \
	if [ $$rc -eq 0 ]; then echo "test-systemd: PASSED (cgroup layouts v2 $(SYSTEMD_V1_LAYOUTS))"; \
	else echo "test-systemd: FAILED (exit $$rc; see the verdicts above)"; fi; exit $$rc
