# mk/image.mk - the image module (pyruntime image ..., pyruntime run --image): tools, tests, benchmark.
#
#   make test-image     tests/image (layouts made by umoci, skopeo and buildah; hand-built hostile layers)
#   make bench-image    pyruntime image unpack vs umoci unpack on a Debian minbase image (median, ratio)
#
# The tools that make test layouts come from Debian; debootstrap builds the benchmark's rootfs (cached
# in benchmarks/.cache).  zstandard reads zstd layers; zlib-ng inflates gzip layers ~2.5x faster than
# zlib (optional: without it the stdlib zlib is used).
IMAGE_APT_PKGS := umoci skopeo buildah debootstrap busybox-static docker-registry apache2-utils
IMAGE_PIP_PKGS := zstandard zlib-ng

.PHONY: image-deps test-image bench-image

.stamp-image-apt:
	@missing=$$(for p in $(IMAGE_APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "apt-get install $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	@touch $@

$(VENV)/.stamp-image-pip: $(VENV)/.stamp-pip
	$(PY) -m pip install -q --disable-pip-version-check $(IMAGE_PIP_PKGS)
	@touch $@

image-deps: .stamp-image-apt $(VENV)/.stamp-image-pip

# the whole suite includes tests/image: give it its tools
test test-suite test-unit: image-deps

test-image: all image-deps
	$(PYTEST) -q tests/image

bench-image: image-deps
	$(PY) benchmarks/bench_image.py

bench: bench-image
