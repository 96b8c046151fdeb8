# mk/rootless.mk - the rootless lanes: `make test-rootless` (all of tests/rootless) and
# `make test-rootless-podman` (rootless podman with pyruntime as its runtime; one of `make test`'s lanes,
# the rest of tests/rootless already runs in `make test`'s pytest run).
#
# tests/rootless runs pyruntime as a dedicated unprivileged user that the test fixture creates (and
# removes, with its /etc/subuid and /etc/subgid lines), with runc as the control in the same session.
# Mapping more than the caller's own uid/gid needs the setuid helpers newuidmap/newgidmap (Debian's
# uidmap); the fixture also uses useradd/userdel (passwd) and setpriv (util-linux).
ROOTLESS_APT_PKGS := uidmap passwd util-linux
# part of the base set too: `make test` runs tests/rootless (they are not an e2e lane)
APT_PKGS += $(ROOTLESS_APT_PKGS)
ROOTLESS_PYTEST_ARGS ?= -ra

ROOTLESS_PODMAN_PKGS := podman conmon catatonit tmux
.PHONY: rootless-deps test-rootless test-rootless-podman
TEST_LANES += test-rootless-podman
rootless-deps:
	@missing=$$(for p in $(ROOTLESS_APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "test-rootless: apt-get install $$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	  || { apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; }; fi

test-rootless: all rootless-deps
	$(PYTEST) $(ROOTLESS_PYTEST_ARGS) tests/rootless

test-rootless-podman: all
	@$(MAKE) --no-print-directory rootless-deps ROOTLESS_APT_PKGS="$(ROOTLESS_APT_PKGS) $(ROOTLESS_PODMAN_PKGS)"
	$(PYTEST) $(ROOTLESS_PYTEST_ARGS) -m e2e tests/rootless
