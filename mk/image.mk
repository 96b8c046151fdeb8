# mk/image.mk - the image module (pyruntime image ..., pyruntime run --image): tools, tests, benchmark.
#
#   make test-image     tests/image (layouts made by umoci, skopeo and buildah; hand-built hostile layers;
#                       run --image on the layer store; the registry lane)
#   make test-registry  the registry lane alone: docker-registry on 127.0.0.1 (plain, TLS + htpasswd, token
#                       auth), images pushed with skopeo, pulled with `pyruntime image pull`, compared
#   make bench-image    pyruntime image unpack vs umoci unpack on a Debian minbase image (median, ratio)
#   make bench-run-image  run --image (cached) vs run --bundle vs podman run, same image
#
# The tools that make test layouts come from Debian; debootstrap builds the benchmark's rootfs (cached
# in benchmarks/.cache).  zstandard reads zstd layers; zlib-ng inflates gzip layers ~2.5x faster than
# zlib (optional: without it the stdlib zlib is used).  The registry lane needs docker-registry (the CNCF
# distribution registry), apache2-utils (htpasswd, bcrypt) and openssl (a throw-away CA); `image pull`
# needs urllib3.  The stamps depend on this file, so adding a package here installs it on the next make.
IMAGE_APT_PKGS := umoci skopeo buildah debootstrap busybox-static docker-registry apache2-utils openssl
IMAGE_PIP_PKGS := zstandard zlib-ng urllib3

.PHONY: image-deps test-image test-registry bench-image bench-run-image

.stamp-image-apt: mk/image.mk
	@missing=$$(for p in $(IMAGE_APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "apt-get install $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	@touch $@

$(VENV)/.stamp-image-pip: $(VENV)/.stamp-pip mk/image.mk
	$(PY) -m pip install -q --disable-pip-version-check $(IMAGE_PIP_PKGS)
	@touch $@

image-deps: .stamp-image-apt $(VENV)/.stamp-image-pip

# the whole suite includes tests/image: give it its tools
test test-suite test-unit: image-deps

test-image: all image-deps
	$(PYTEST) -q tests/image

test-registry: all image-deps
	$(PYTEST) -q tests/image/test_registry.py

bench-image: image-deps
	$(PY) benchmarks/bench_image.py

bench-run-image: all image-deps
	$(PY) benchmarks/bench_run_image.py

bench: bench-image bench-run-image
