# Cross toolchains and qemu-user for tests/core/test_trampoline_arches.py: it cross-builds the trampoline for
# every architecture it has a port to (_native/trampoline_build.py) and runs each under qemu-<arch>, called
# by name.  --no-install-recommends keeps qemu-user-binfmt (a binfmt_misc registration) off the host.
# Per architecture: <Debian arch>:<cross gcc package>:<kernel headers package>; the host's own is skipped
# (its native gcc builds it).
CROSS_ARCHES := arm64:gcc-aarch64-linux-gnu:linux-libc-dev-arm64-cross \
                ppc64el:gcc-powerpc64le-linux-gnu:linux-libc-dev-ppc64el-cross \
                s390x:gcc-s390x-linux-gnu:linux-libc-dev-s390x-cross \
                riscv64:gcc-riscv64-linux-gnu:linux-libc-dev-riscv64-cross \
                amd64:gcc-x86-64-linux-gnu:linux-libc-dev-amd64-cross
HOST_DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
CROSS_APT_PKGS := qemu-user $(foreach a,$(CROSS_ARCHES),$(if $(filter $(HOST_DEB_ARCH):%,$(a)),,\
                  $(wordlist 2,3,$(subst :, ,$(a)))))

.PHONY: cross-deps
cross-deps: .stamp-apt
	@missing=$$(for p in $(CROSS_APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "apt-get install --no-install-recommends $$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

test-suite test-unit: cross-deps
