# mk/cri.mk - the Kubernetes CRI lane: `make test-cri`.
#
# The CRI lane lives in tests/cri (run as `python -m tests.cri.lane`): a private containerd (Debian's,
# CRI plugin enabled, its own root/state/socket/config under a temp dir; the host's /etc/containerd and
# /etc/cni are never read) with the runtime handlers `runc` (the control) and `pyruntime`
# (io.containerd.runc.v2 shim, BinaryName = the pyruntime under test: PYRUNTIME_BIN, default the
# installed /usr/local/bin/pyruntime), Debian's CNI plugins (bridge + host-local on 172.31.250.0/24,
# not routed anywhere), a pause image built here (gcc -static tests/cri/pause.c), busybox pushed to a
# loopback docker-registry for PullImage, and the CRI v1 gRPC stubs from PyPI
# (container-runtime-interface-api).  Every CRI step runs with both handlers in the same run; a step
# that fails with runc too is shown as n/a with runc's error.  The step table (step | runc | pyruntime)
# is printed and written to $(CRI_REPORT); the last line is the verdict.
#
#   make test-cri CRI_INSTALL= PYRUNTIME_BIN=$PWD/bin/pyruntime   (test the tree's launcher, no install)
#   CRI_KEEP=1 keeps the temp dir (containerd.log, registry.log, pod logs) for a post-mortem.
#   CRI_SYSTEMD_CGROUP=1: SystemdCgroup = true, pod cgroup parents as slices (a kubeadm node's setup);
#   needs systemd as PID 1 (the systemd VM: VM_INIT=systemd VM_PASS_ENV=CRI_SYSTEMD_CGROUP
#   tests/vm/run-in-vm.sh .venv/bin/python -m tests.cri.lane).
CRI_REPORT ?= $(ROOT)/build/cri-report.txt
CRI_TIMEOUT ?= 300
CRI_INSTALL ?= install
CRI_PIP_PKGS := container-runtime-interface-api==2.0.1
CRI_APT_PKGS := containerd containernetworking-plugins docker-registry gcc libc6-dev iproute2 runc busybox-static

.PHONY: test-cri cri-deps
TEST_LANES += test-cri

# Debian packages only when something is missing; the CRI stubs (+ grpcio, protobuf) into the .venv.
cri-deps: $(VENV)/.stamp-cri
	@missing=""; \
	for b in containerd:containerd ctr:containerd /usr/lib/cni/bridge:containernetworking-plugins \
	         /usr/include/stdio.h:libc6-dev \
	         docker-registry:docker-registry gcc:gcc ip:iproute2 runc:runc /bin/busybox:busybox-static; do \
	  cmd=$${b%%:*}; pkg=$${b##*:}; \
	  if [ -e "$$cmd" ] || command -v "$$cmd" >/dev/null 2>&1; then :; else missing="$$missing $$pkg"; fi; \
	done; \
	if [ -n "$$missing" ]; then \
	  missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	  echo "test-cri: apt-get install $$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	  || { apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } \
	  || echo "test-cri: apt-get install failed"; \
	fi

$(VENV)/.stamp-cri: $(VENV)/.stamp-pip
	$(PY) -m pip install -q --disable-pip-version-check $(CRI_PIP_PKGS)
	@touch $@

test-cri: cri-deps all $(CRI_INSTALL)
	@mkdir -p $(dir $(CRI_REPORT))
	@CRI_REPORT=$(CRI_REPORT) timeout -k 10 $(CRI_TIMEOUT) $(PY) -m tests.cri.lane; rc=$$?; \
	  if [ $$rc -eq 124 ] || [ $$rc -eq 137 ]; then echo "test-cri: FAILED: timed out after $(CRI_TIMEOUT)s"; fi; \
	  exit $$rc
