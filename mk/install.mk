# mk/install.mk - `make install` / `make uninstall` [PREFIX=/usr/local] [DESTDIR=] and the generated docs.
#
# The installed copy is self-contained and never points into this checkout:
#   $(PREFIX)/bin/pyruntime                        launcher: `#!$(SYS_PYTHON real path) -IS`, adds LIBDIR to sys.path
#   $(LIBDIR) = $(PREFIX)/lib/pyruntime            the package, its C core built for SYS_PYTHON, and its Python
#                                                  dependencies (cffi, pyroute2, zstandard, zlib-ng), byte-compiled
#   $(PREFIX)/libexec/pyruntime/hooks, $(PREFIX)/share/pyruntime/oci-hooks.d   the bridge-net hook (mk/hooks.mk)
#   $(MANDIR)/man8/pyruntime.8, pyruntime-COMMAND.8, $(BASHCOMPDIR)/pyruntime   generated (pyruntime/docgen.py)
# SYS_PYTHON is Debian's /usr/bin/python3: every user can execute it (the .venv's interpreter may be a
# pyenv build under /root).  -I -S: no environment, no site-packages scan, so start-up costs what the
# checkout's bin/pyruntime costs.  The lib is built once in build/install (a venv of SYS_PYTHON builds the
# wheel; pip --target adds the dependencies) and copied; DESTDIR only prefixes where files are written.
SYS_PYTHON ?= /usr/bin/python3
LIBDIR ?= $(PREFIX)/lib/pyruntime
MANDIR ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
# runtime dependencies beyond cffi: netDevices and the bridge-net hook (pyroute2), image layers
INSTALL_PIP_PKGS = pyroute2 $(IMAGE_PIP_PKGS)
INSTALL_BUILD := $(ROOT)/build/install
SYSVENV := $(INSTALL_BUILD)/venv
STAGE := $(INSTALL_BUILD)/lib
DOCS := build/man/pyruntime.8 build/completion/pyruntime
PKG_SOURCES := $(shell find pyruntime -name '*.py' 2>/dev/null)

.PHONY: docs install uninstall install-check-python bench-startup
all: docs

# Man pages and completion from the parsers themselves (any interpreter that can import the package).
$(DOCS) &: $(PKG_SOURCES) | .stamp-apt
	$(SYS_PYTHON) -I -S -c 'import sys; sys.path.insert(0, "$(ROOT)"); from pyruntime.docgen import main; main(sys.argv[1:])' \
	  --man build/man --bash build/completion/pyruntime
docs: $(DOCS)

# Refuse an interpreter other users cannot run, or one that lives in a home or in this checkout.
install-check-python: | .stamp-apt
	@real=$$(readlink -f $(SYS_PYTHON)); \
	case "$$real" in /root/*|/home/*|$(ROOT)/*|*/.pyenv/*) \
	  echo "install: $(SYS_PYTHON) -> $$real: not a system interpreter every user can run" >&2; exit 1;; esac; \
	[ "$$(stat -c %A "$$real" | cut -c10)" = x ] || { echo "install: $$real is not executable by others" >&2; exit 1; }

$(SYSVENV)/.stamp: | install-check-python
	rm -rf $(SYSVENV)
	$(SYS_PYTHON) -m venv $(SYSVENV)
	$(SYSVENV)/bin/python -m pip install -q --disable-pip-version-check cffi setuptools wheel
	@touch $@

# The wheel is built by SYS_PYTHON itself, so the core matches the interpreter the launcher runs.
$(INSTALL_BUILD)/.stamp-lib: $(PKG_SOURCES) $(NATIVE) setup.py pyproject.toml MANIFEST.in $(SYSVENV)/.stamp
	@# setuptools' own build dirs keep modules deleted since the last build: they would reach the wheel
	rm -rf $(STAGE) $(INSTALL_BUILD)/wheel $(ROOT)/build/lib.* $(ROOT)/build/bdist.*
	$(SYSVENV)/bin/python -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
	  -w $(INSTALL_BUILD)/wheel $(ROOT)
	umask 022 && $(SYSVENV)/bin/python -m pip install -q --disable-pip-version-check --no-warn-script-location \
	  --target $(STAGE) $(INSTALL_BUILD)/wheel/pyruntime-*.whl $(INSTALL_PIP_PKGS)
	rm -rf $(STAGE)/bin
	@# pip's record of where the wheel came from (a path in the checkout): not part of the install
	rm -f $(STAGE)/*.dist-info/direct_url.json && sed -i '/direct_url.json/d' $(STAGE)/*.dist-info/RECORD
	strip --strip-debug $(STAGE)/pyruntime/_core*.so      # no build paths, a smaller file
	@so=$$(ls $(STAGE)/pyruntime/_core*.so); [ "$$(echo $$so | wc -w)" = 1 ] || { echo "install: expected one core, got: $$so" >&2; exit 1; }
	$(SYS_PYTHON) -I -S -c 'import sys; sys.path.insert(0, "$(STAGE)"); from pyruntime._core import lib'
	@touch $@

# LIBDIR is replaced as a whole: it must be pyruntime's own directory.
install: $(INSTALL_BUILD)/.stamp-lib docs install-hooks
	@case "$(LIBDIR)" in /*/pyruntime) ;; *) echo "install: LIBDIR=$(LIBDIR) must be an absolute .../pyruntime" >&2; exit 1;; esac
	rm -rf $(DESTDIR)$(LIBDIR)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR)
	cp -a $(STAGE)/. $(DESTDIR)$(LIBDIR)/ && chmod -R u+w,go-w,a+rX $(DESTDIR)$(LIBDIR)
	@# byte-code for every user (nobody else can write __pycache__ there), naming the installed files
	umask 022 && $(SYS_PYTHON) -I -m compileall -q -f -j 0 -d $(LIBDIR) $(DESTDIR)$(LIBDIR) >/dev/null
	$(SYS_PYTHON) _native/mklauncher.py --python $(SYS_PYTHON) --path $(LIBDIR) $(DESTDIR)$(PREFIX)/bin/pyruntime
	install -m 644 build/man/*.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 build/completion/pyruntime $(DESTDIR)$(BASHCOMPDIR)/pyruntime

uninstall: uninstall-hooks
	@case "$(LIBDIR)" in /*/pyruntime) ;; *) echo "uninstall: LIBDIR=$(LIBDIR) must be an absolute .../pyruntime" >&2; exit 1;; esac
	rm -f $(DESTDIR)$(PREFIX)/bin/pyruntime $(DESTDIR)$(BASHCOMPDIR)/pyruntime
	rm -f $(DESTDIR)$(MANDIR)/man8/pyruntime.8 $(DESTDIR)$(MANDIR)/man8/pyruntime-*.8
	rm -rf $(DESTDIR)$(LIBDIR)

# Start-up of the installed command vs the checkout's launcher and the bare interpreter (prints only).
BENCH_PREFIX := $(ROOT)/build/bench-prefix
bench-startup: all
	$(MAKE) --no-print-directory -s install PREFIX=$(BENCH_PREFIX)
	$(SYS_PYTHON) benchmarks/bench_startup.py $(BENCH_PREFIX)/bin/pyruntime
	$(MAKE) --no-print-directory -s uninstall PREFIX=$(BENCH_PREFIX)
bench: bench-startup
