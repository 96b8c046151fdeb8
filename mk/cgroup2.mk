# mk/cgroup2.mk - the pure cgroup v2 lane: `make test-cgroup2`.
#
# Boots a qemu VM (TCG) with Debian's kernel, cgroup_no_v1=all and every controller enabled in the
# root cgroup, the host / read-only (+ tmpfs overlay) and this project read-write at the same path,
# and runs the cgroup tests in it: $(PYTEST) -m cgroup tests (see tests/vm/run-in-vm.sh).
# tests/vm/lane.sh exits with pytest's status; 124 = the VM hit CGROUP2_TIMEOUT; 125 = the VM
# did not boot or no status came back. When no VM can be run here (qemu/kernel missing and not
# installable) it prints "test-cgroup2: SKIPPED: <reason>" and succeeds, unless CGROUP2_REQUIRED=1.
#
#   make test-cgroup2 CGROUP2_TIMEOUT=600 CGROUP2_PYTEST_ARGS="-ra -x -k memory" CGROUP2_TESTS=tests/vm
#   VM_VERBOSE=1 (guest console on stderr), VM_MEM=2G, VM_CPUS=2: see tests/vm/run-in-vm.sh
CGROUP2_TIMEOUT ?= 900
CGROUP2_PYTEST_ARGS ?= -ra
CGROUP2_TESTS ?= tests
CGROUP2_REQUIRED ?= 0
CGROUP2_APT_PKGS := qemu-system-x86 linux-image-amd64 cpio xz-utils zstd busybox-static

.PHONY: test-cgroup2 cgroup2-vm-deps
TEST_LANES += test-cgroup2

# Installs the VM's packages when qemu, a kernel or a static busybox is missing. Never fails here:
# if the install fails, the lane reports itself skipped and why.
cgroup2-vm-deps:
	@bb=$$(command -v busybox); \
	if ! command -v qemu-system-x86_64 >/dev/null || ! ls /boot/vmlinuz-* >/dev/null 2>&1 \
	    || [ -z "$$bb" ] || ldd "$$bb" >/dev/null 2>&1; then \
	  echo "test-cgroup2: apt-get install $(CGROUP2_APT_PKGS)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt="apt-get -y -qq -o DPkg::Lock::Timeout=300"; \
	  $$apt install --no-install-recommends $(CGROUP2_APT_PKGS) >/dev/null 2>&1 \
	  || { $$apt update && $$apt install --no-install-recommends $(CGROUP2_APT_PKGS) >/dev/null; } \
	  || echo "test-cgroup2: apt-get install failed"; \
	fi

# all = build (C core) + rootfs (busybox bundle) + bin/pyruntime: the cgroup tests use all three.
test-cgroup2: cgroup2-vm-deps venv all
	@LANE_TIMEOUT=$(CGROUP2_TIMEOUT) LANE_REQUIRED=$(CGROUP2_REQUIRED) VM_INIT=shell VM_CGROUP=v2 \
	  tests/vm/lane.sh test-cgroup2 -- $(PYTEST) -m cgroup $(CGROUP2_PYTEST_ARGS) $(CGROUP2_TESTS)
