# OCI hooks shipped with pyruntime (included by the top Makefile; `install` depends on install-hooks).
#   make install-hooks [PREFIX=/usr/local] [DESTDIR=]
# installs
#   $(HOOKS_LIBEXEC)/bridge-net         the hook, run by the launcher's interpreter ($(SYS_PYTHON) -IS) with
#                                       $(LIBDIR) (pyroute2, installed by `make install`) on sys.path
#   $(HOOKS_LIBEXEC)/bridge_net/*.py    its modules
#   $(HOOKS_D)/pyruntime-bridge-net.json  an OCI hooks.d entry (podman --hooks-dir, CRI-O hooks_dir)
HOOKS_LIBEXEC ?= $(PREFIX)/libexec/pyruntime/hooks
HOOKS_D ?= $(PREFIX)/share/pyruntime/oci-hooks.d
HOOK_SOURCES := hooks/bridge-net $(wildcard hooks/bridge_net/*.py) hooks/oci-hooks.d/pyruntime-bridge-net.json.in

.PHONY: install-hooks uninstall-hooks
install-hooks: $(HOOK_SOURCES) | install-check-python
	install -d $(DESTDIR)$(HOOKS_LIBEXEC)/bridge_net $(DESTDIR)$(HOOKS_D)
	install -m 644 $(wildcard hooks/bridge_net/*.py) $(DESTDIR)$(HOOKS_LIBEXEC)/bridge_net/
	{ echo "#!$$(readlink -f $(SYS_PYTHON)) -IS"; \
	  echo 'import sys; sys.path.insert(0, "$(LIBDIR)")  # pyroute2 (make install)'; \
	  tail -n +2 hooks/bridge-net; } > $(DESTDIR)$(HOOKS_LIBEXEC)/.bridge-net.tmp
	chmod 755 $(DESTDIR)$(HOOKS_LIBEXEC)/.bridge-net.tmp
	mv $(DESTDIR)$(HOOKS_LIBEXEC)/.bridge-net.tmp $(DESTDIR)$(HOOKS_LIBEXEC)/bridge-net
	sed 's|@HOOK@|$(HOOKS_LIBEXEC)/bridge-net|' hooks/oci-hooks.d/pyruntime-bridge-net.json.in \
	  > $(DESTDIR)$(HOOKS_D)/pyruntime-bridge-net.json
	chmod 644 $(DESTDIR)$(HOOKS_D)/pyruntime-bridge-net.json

uninstall-hooks:
	rm -rf $(DESTDIR)$(HOOKS_LIBEXEC)/bridge_net $(DESTDIR)$(HOOKS_LIBEXEC)/bridge-net
	rm -f $(DESTDIR)$(HOOKS_D)/pyruntime-bridge-net.json
	-rmdir $(DESTDIR)$(HOOKS_LIBEXEC) $(DESTDIR)$(HOOKS_D) $(DESTDIR)$(PREFIX)/libexec/pyruntime \
	  $(DESTDIR)$(PREFIX)/share/pyruntime 2>/dev/null
