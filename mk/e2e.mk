# mk/e2e.mk - the real-client lanes: `make test-e2e` (podman via conmon, containerd via its runc shim).
#
# Every step runs with runc (the control) and with the installed pyruntime in the same session;
# both must behave the same.  A step that fails with runc here is reported as skipped
# ("fails with runc on this host too: ..."), never as a pass.  The step table (runc | pyruntime)
# is printed at the end and written to $(E2E_REPORT).
#
#   make test-e2e E2E_PYTEST_ARGS="-x -k 'podman and exec'"
E2E_PYTEST_ARGS ?= -ra
E2E_REPORT ?= $(ROOT)/build/e2e-report.txt
E2E_TIMEOUT ?= 900
E2E_APT_PKGS := podman conmon catatonit containerd tmux busybox-static runc util-linux

.PHONY: test-e2e e2e-deps test-e2e-podman test-e2e-containerd
TEST_LANES += test-e2e

# Client packages from Debian, installed only when a binary is missing (no recommends: no
# slirp/netavark/CNI -- the lanes run with --network none).
e2e-deps:
	@missing=""; \
	for b in podman:podman conmon:conmon /usr/libexec/podman/catatonit:catatonit containerd:containerd \
	         ctr:containerd tmux:tmux busybox:busybox-static runc:runc nsenter:util-linux; do \
	  cmd=$${b%%:*}; pkg=$${b##*:}; \
	  if [ -x "$$cmd" ] || command -v "$$cmd" >/dev/null 2>&1; then :; else missing="$$missing $$pkg"; fi; \
	done; \
	if [ -n "$$missing" ]; then \
	  missing=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	  echo "test-e2e: apt-get install $$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	  || { apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; }; \
	fi

# The lanes test the installed command (/usr/local/bin/pyruntime), as podman and containerd see it
# (`all` for the .venv pytest runs in: `install` alone builds only the installed copy).
test-e2e: e2e-deps all install
	@mkdir -p $(dir $(E2E_REPORT))
	E2E_REPORT=$(E2E_REPORT) timeout -k 10 $(E2E_TIMEOUT) $(PYTEST) -m e2e $(E2E_PYTEST_ARGS) tests/e2e

test-e2e-podman: e2e-deps all install
	$(PYTEST) -m e2e $(E2E_PYTEST_ARGS) tests/e2e/test_podman.py

test-e2e-containerd: e2e-deps all install
	$(PYTEST) -m e2e $(E2E_PYTEST_ARGS) tests/e2e/test_containerd.py
