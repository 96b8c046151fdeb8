"""Media types of OCI image-spec v1.1 and Docker image manifest v2 schema 2."""
from __future__ import annotations

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYOUT_HEADER = "application/vnd.oci.layout.header.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"          # docker save, uncompressed
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEXES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFESTS = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
CONFIGS = frozenset({OCI_CONFIG, DOCKER_CONFIG})

#: layer media type -> (compression, non-distributable)
LAYERS: dict[str, tuple[str, bool]] = {
    OCI_LAYER: ("none", False),
    OCI_LAYER + "+gzip": ("gzip", False),
    OCI_LAYER + "+zstd": ("zstd", False),
    OCI_LAYER_ND: ("none", True),
    OCI_LAYER_ND + "+gzip": ("gzip", True),
    OCI_LAYER_ND + "+zstd": ("zstd", True),
    DOCKER_LAYER: ("none", False),
    DOCKER_LAYER_GZIP: ("gzip", False),
    DOCKER_LAYER_ZSTD: ("zstd", False),
    DOCKER_FOREIGN_GZIP: ("gzip", True),
}


def short(media_type: str) -> str:
    """A column-friendly name for `image ls`."""
    if media_type in INDEXES:
        return "index" if media_type == OCI_INDEX else "docker-list"
    if media_type in MANIFESTS:
        return "manifest" if media_type == OCI_MANIFEST else "docker-manifest"
    return media_type or "-"
