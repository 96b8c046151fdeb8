"""End-to-end lanes: real clients (podman, containerd) driving pyruntime, with runc as the control."""
