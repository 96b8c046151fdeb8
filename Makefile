# pyruntime — build, demo, test, bench.  Installs what it needs on a fresh Debian 12 (as root).
SHELL := /bin/bash
ROOT := $(abspath .)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest
PREFIX ?= /usr/local
# The interpreter of the .venv (and so of the checkout's bin/pyruntime and of `make bench`): Debian's
# /usr/bin/python3 when there is one, the interpreter `make install` runs too (statically linked
# libpython: ~1 ms less CPU per start than a shared-libpython build such as pyenv's), else the real
# interpreter behind python3, never a pyenv shim.  Deferred (=): on a fresh machine python3 may only
# exist once .stamp-apt has run.
PYTHON ?= $(shell p=$$(test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3) && "$$p" -c 'import sys; print(getattr(sys, "_base_executable", sys.executable))')
APT_PKGS := gcc make libc6-dev libseccomp-dev libcap-dev pkg-config busybox-static runc iproute2 nftables \
            python3 python3-venv python3-dev
PIP_PKGS := cffi pytest pyroute2 zstandard jeepney urllib3
CORE := build/.stamp-core
NATIVE := $(wildcard _native/*.c _native/*.h _native/*.py _native/cdef/*.h _native/trampoline/*.c)
BUSYBOX_ROOTFS := bundles/busybox/rootfs

.PHONY: all deps venv build rootfs demo test test-unit install uninstall bench bench-deps clean lint
all: build rootfs bin/pyruntime

# --- set-up -------------------------------------------------------------------------------
.stamp-apt:
	@missing=$$(for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "apt-get install $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	@touch $@
deps: .stamp-apt

$(PY): | .stamp-apt
	$(PYTHON) -m venv $(VENV)
$(VENV)/.stamp-pip: $(PY)
	$(PY) -m pip install -q --disable-pip-version-check $(PIP_PKGS)
	@touch $@
venv: $(VENV)/.stamp-pip

$(CORE): $(NATIVE) $(VENV)/.stamp-pip
	$(PY) _native/build.py
	@touch $@
build: $(CORE)

# The installed command runs the venv's real interpreter directly, isolated and without site
# (no .pth scanning): containerd and podman call `state`/`kill`/`delete` constantly.
bin/pyruntime: Makefile _native/mklauncher.py $(VENV)/.stamp-pip
	@mkdir -p bin
	$(PY) _native/mklauncher.py $(ROOT) $@

$(BUSYBOX_ROOTFS)/bin/busybox: bundles/mkrootfs.sh | .stamp-apt
	bundles/mkrootfs.sh $(BUSYBOX_ROOTFS)
rootfs: $(BUSYBOX_ROOTFS)/bin/busybox

# install / uninstall: mk/install.mk (a self-contained copy under $(PREFIX), DESTDIR honoured)

# --- use ----------------------------------------------------------------------------------
demo: all
	@echo "== pyruntime run --bundle bundles/busybox demo-$$$$ (hostname, PID 1, mounts, then exit)"
	bin/pyruntime --root /run/pyruntime run --bundle bundles/busybox demo-$$$$

test-unit: all
	$(PYTEST) -q -m "not e2e" tests

# The whole suite, lane by lane: the integration tests here, then every lane a mk/*.mk file adds to
# TEST_LANES (the cgroup v2 VM, the podman and containerd clients).  Every lane runs even when an earlier
# one fails, each prints its verdict, and `make test` fails at the end if any lane failed (mk/lanes.sh).
TEST_LANES := test-suite
.PHONY: test-suite test-lanes
test: all
	@mk/lanes.sh "$(MAKE)" $(TEST_LANES)

test-suite: all
	$(PYTEST) -q -m "not e2e and not cgroup_vm" tests

# the lanes without the suite (each lane's own target stays in its mk file)
test-lanes:
	@mk/lanes.sh "$(MAKE)" $(filter-out test-suite,$(TEST_LANES))

# A pinned ruff from PyPI (config: [tool.ruff] in pyproject.toml); .ci/run runs it before the tests.
RUFF_VERSION := 0.17.6
$(VENV)/.stamp-ruff-$(RUFF_VERSION): $(VENV)/.stamp-pip
	$(PY) -m pip install -q --disable-pip-version-check ruff==$(RUFF_VERSION)
	@touch $@
lint: $(VENV)/.stamp-ruff-$(RUFF_VERSION)
	$(VENV)/bin/ruff check --no-cache $(ROOT)

# crun (the figure to chase next), GNU time (peak RSS) and nsenter: only for the benchmark, only when missing.
BENCH_APT_PKGS := crun time util-linux
bench-deps:
	@missing=$$(for p in $(BENCH_APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "apt-get install $$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

bench: all bench-deps
	$(PY) benchmarks/bench_runtime.py

clean:
	rm -rf build bin pyruntime/_core*.so .stamp-apt pyruntime.egg-info

-include mk/*.mk
