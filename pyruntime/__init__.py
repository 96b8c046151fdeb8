"""pyruntime: a daemonless, runc-compatible OCI container runtime (Python decides, C executes).

Kept empty on purpose: every subcommand imports only what it needs, and `state`/`kill`/`delete`
are called constantly by shims, so their start-up cost is the product's latency.
"""
__version__ = "0.1.0"
SPEC_VERSION = "1.3.0"
